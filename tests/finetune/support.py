"""Constants and helpers of the files / fine-tuning tests (fixtures live in conftest.py)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import openai
import orjson
from starlette.applications import Starlette

from routerd.config import load_config
from routerd.events import ManagementRequest
from routerd.server.app import create_app
from routerd.settings import Settings
from routerd.testing.finetune_fakes import FakeAzureFineTuning, FakeOpenAIFineTuning, FakeVertexFineTuning
from routerd.testing.gemini_fake import FakeGoogleToken
from routerd.testing.server import RouterdServer

MASTER_KEY = "sk-gateway-master"
OPENAI_KEY = "sk-upstream-openai-0123456789"
AZURE_KEY = "azure-upstream-key-0123456789"
PROJECT = "fake-project"
LOCATION = "us-central1"
BUCKET = "routerd-test"
AZURE_DEPLOYMENT = "support-ft"


def chat_line(question: str, answer: str) -> bytes:
    example = {
        "messages": [
            {"role": "system", "content": "You answer support questions."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }
    return orjson.dumps(example) + b"\n"


TRAINING = b"".join(chat_line(f"question {i}?", f"answer {i}.") for i in range(10))


@dataclass
class Upstreams:
    openai: FakeOpenAIFineTuning
    azure: FakeAzureFineTuning
    vertex: FakeVertexFineTuning
    token: FakeGoogleToken
    credentials_path: Path


def provider_entries(up: Upstreams, providers: tuple[str, ...]) -> str:
    entries = {
        "openai": f"""
  - custom_llm_provider: openai
    api_base: {up.openai.base_url}
    api_key: {OPENAI_KEY}""",
        "azure": f"""
  - custom_llm_provider: azure
    api_base: {up.azure.origin}
    api_key: {AZURE_KEY}
    api_version: "2024-10-21\"""",
        "vertex_ai": f"""
  - custom_llm_provider: vertex_ai
    vertex_project: {PROJECT}
    vertex_location: {LOCATION}
    vertex_credentials: {up.credentials_path}
    api_base: {up.vertex.base_url}
    gcs_bucket_name: {BUCKET}
    gcs_api_base: {up.vertex.base_url}""",
    }
    return "".join(entries[name] for name in providers)


def config_text(up: Upstreams, providers: tuple[str, ...] = ("openai", "azure", "vertex_ai")) -> str:
    """Chat routes for the models fine-tuning produces, and files/fine-tuning entries per provider."""
    entries = provider_entries(up, providers)
    head = textwrap.dedent(
        f"""\
        model_list:
          - model_name: "ft:*"
            litellm_params:
              model: "openai/ft:*"
              api_base: {up.openai.base_url}
              api_key: {OPENAI_KEY}
          - model_name: support-bot
            litellm_params:
              model: azure/{AZURE_DEPLOYMENT}
              api_base: {up.azure.origin}
              api_key: {AZURE_KEY}
              api_version: "2024-10-21"
          - model_name: "vertex_ai/*"
            litellm_params:
              model: "vertex_ai/*"
              api_base: {up.vertex.base_url}
              vertex_project: {PROJECT}
              vertex_location: {LOCATION}
              vertex_credentials: {up.credentials_path}
        general_settings:
          master_key: {MASTER_KEY}
        """
    )
    sections = ""
    if entries:
        sections = f"files_settings:{entries}\nfinetune_settings:{entries}\n"
    return head + sections


@dataclass
class Gateway:
    server: RouterdServer
    app: Starlette
    client: openai.AsyncOpenAI
    records: list[ManagementRequest] = field(default_factory=list)

    def operations(self) -> list[tuple[str, str, str, int]]:
        return [(r.api, r.operation, r.provider, r.status) for r in self.records]


def build_app(config_path: Path, settings: Settings) -> Starlette:
    """The daemon's own app: it serves the Files and fine-tuning routes itself (lazily)."""
    return create_app(load_config(config_path), settings=settings)
