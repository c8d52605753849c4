"""Choosing the provider client for a request: settings lookup, environment defaults, construction."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

from routerd.config.table import ProviderSettings
from routerd.errors import BadRequestError
from routerd.finetune.azure import AzureClient
from routerd.finetune.openai import OpenAIClient
from routerd.finetune.types import AZURE, OPENAI, PROVIDERS, SETTINGS_KEY, VERTEX_AI, ProviderClient
from routerd.finetune.upstream import DEFAULT_TIMEOUT
from routerd.finetune.vertex import VertexClient
from routerd.http import HttpClient

# Environment variables a settings entry (or an SDK call) falls back to, per field.
_ENV: dict[str, dict[str, tuple[str, ...]]] = {
    OPENAI: {
        "api_key": ("OPENAI_API_KEY",),
        "api_base": ("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        "organization": ("OPENAI_ORGANIZATION",),
    },
    AZURE: {
        "api_key": ("AZURE_API_KEY",),
        "api_base": ("AZURE_API_BASE",),
        "api_version": ("AZURE_API_VERSION",),
    },
    VERTEX_AI: {
        "vertex_project": ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"),
        "vertex_location": ("VERTEXAI_LOCATION", "VERTEX_LOCATION"),
        "vertex_credentials": ("VERTEXAI_CREDENTIALS",),
    },
}


def normalize_provider(name: object) -> str:
    """The provider a client asked for, checked; a 400 naming the choices otherwise."""
    if not isinstance(name, str) or name.strip().lower() not in PROVIDERS:
        raise BadRequestError(
            f"unknown custom_llm_provider {name!r}: the files and fine-tuning endpoints support "
            f"{', '.join(PROVIDERS)}",
            param="custom_llm_provider",
            code="invalid_provider",
        )
    return name.strip().lower()


def settings_for(entries: Sequence[ProviderSettings], provider: str, api: str) -> ProviderSettings:
    """The first ``files_settings`` / ``finetune_settings`` entry for ``provider``; a 400 if none."""
    for entry in entries:
        if entry.custom_llm_provider == provider:
            return entry
    key = SETTINGS_KEY[api]
    raise BadRequestError(
        f"custom_llm_provider {provider!r} has no {key} entry on this gateway; add "
        f"'{key}: [{{custom_llm_provider: {provider}, ...}}]' to the config",
        param="custom_llm_provider",
        code="provider_not_configured",
    )


def with_env_defaults(
    settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> ProviderSettings:
    """``settings`` with empty fields filled from the provider's usual environment variables."""
    environ = os.environ if environ is None else environ
    updates: dict[str, object] = {}
    for field_name, names in _ENV.get(settings.custom_llm_provider, {}).items():
        if getattr(settings, field_name) is None:
            value = next((environ[name] for name in names if environ.get(name)), None)
            if value is not None:
                updates[field_name] = value
    if settings.custom_llm_provider == VERTEX_AI and not settings.extra.get("gcs_bucket_name"):
        bucket = environ.get("GCS_BUCKET_NAME")
        if bucket:
            updates["extra"] = {**settings.extra, "gcs_bucket_name": bucket}
    return replace(settings, **updates) if updates else settings  # type: ignore[arg-type]


def make_client(
    settings: ProviderSettings, http: HttpClient, *, environ: Mapping[str, str] | None = None
) -> ProviderClient:
    """The client for one settings entry, talking through ``http``."""
    settings = with_env_defaults(settings, environ)
    timeout = _timeout(settings.extra.get("timeout"))
    provider = settings.custom_llm_provider
    if provider == OPENAI:
        return OpenAIClient(settings, http, timeout=timeout)
    if provider == AZURE:
        return AzureClient(settings, http, timeout=timeout)
    if provider == VERTEX_AI:
        return VertexClient(settings, http, timeout=timeout)
    normalize_provider(provider)  # raises the 400 naming the supported providers
    raise AssertionError("unreachable")


def _timeout(raw: object) -> float:
    """``timeout`` of a settings entry (seconds); the default when absent or not a positive number."""
    try:
        value = float(raw) if isinstance(raw, int | float | str) and not isinstance(raw, bool) else 0.0
    except ValueError:
        value = 0.0
    return value if value > 0 else DEFAULT_TIMEOUT
