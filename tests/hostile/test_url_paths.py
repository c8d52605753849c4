"""Client values in upstream URL paths are escaped and never step up a segment (issue 21, L5)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from routerd.errors import BadRequestError
from routerd.finetune.upstream import path
from routerd.providers.gemini import model_path
from routerd.providers.urlpath import path_segment, resource_path
from routerd.providers.vertex import model_resource
from routerd.testing.gemini_fake import FakeGemini
from routerd.testing.openai_fake import run_in_thread
from routerd.testing.server import RouterdServer

KEY = "sk-url-master"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("file-abc", "file-abc"),
        ("a?b#c", "a%3Fb%23c"),
        ("a/b", "a%2Fb"),
        ("%2e%2e", "%252e%252e"),
        ("m@1", "m@1"),
    ],
)
def test_a_segment_is_escaped_into_one_segment(value: str, escaped: str) -> None:
    assert path_segment(value) == escaped
    assert path("files", value) == f"files/{escaped}"


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    with pytest.raises(BadRequestError):
        path("files", value, "content")


@pytest.mark.parametrize("model", ["../../v1/admin", "models/../x", "tunedModels/./x", "a//b"])
def test_gemini_and_vertex_refuse_dot_segments_in_model_names(model: str) -> None:
    with pytest.raises(BadRequestError):
        model_path(model)
    with pytest.raises(BadRequestError):
        model_resource(f"projects/{model}", "p", "us-central1")


def test_gemini_and_vertex_escape_model_names() -> None:
    assert model_path("gemini-2.0-flash") == "models/gemini-2.0-flash"
    assert model_path("tunedModels/my-model") == "tunedModels/my-model"
    assert model_path("x?alt=json#frag") == "models/x%3Falt%3Djson%23frag"
    assert model_resource("gem?x", "p", "l") == "projects/p/locations/l/publishers/google/models/gem%3Fx"
    assert resource_path("projects/p/locations/l/endpoints/1") == "projects/p/locations/l/endpoints/1"


def test_a_gemini_wildcard_model_name_reaches_only_its_own_path(tmp_path: Path) -> None:
    with run_in_thread(FakeGemini(api_key="gemini-key")) as fake:  # type: ignore[arg-type]
        config = tmp_path / "routerd.yaml"
        config.write_text(
            f"""
model_list:
  - model_name: "gemini/*"
    litellm_params:
      model: "gemini/*"
      api_base: {fake.base_url}/v1beta
      api_key: gemini-key
general_settings:
  master_key: {KEY}
"""
        )
        with (
            RouterdServer.from_file(config) as server,
            httpx.Client(base_url=server.base_url, timeout=30) as client,
        ):

            def ask(model: str) -> httpx.Response:
                return client.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {KEY}"},
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                )

            escaped = ask("gemini/flash?alt=json#x")
            assert escaped.status_code == 200, escaped.text
            # the whole name stayed in the path (the fake sees it decoded), nothing became a query
            assert fake.requests[-1].path == "/v1beta/models/flash?alt=json#x:generateContent"
            assert fake.requests[-1].query == {}
            seen = len(fake.requests)
            for model in ("gemini/../../v1beta/files", "gemini/models/.."):
                refused = ask(model)
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"]["param"] == "model"
            assert len(fake.requests) == seen  # nothing was sent upstream
