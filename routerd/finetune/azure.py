"""Azure OpenAI's Files and fine-tuning APIs, answered in OpenAI's shapes.

Azure serves the same operations under ``{api_base}/openai/files`` and ``{api_base}/openai/fine_tuning/jobs``
with a mandatory ``api-version`` query parameter and an ``api-key`` header. Its answers are close to
OpenAI's but not the same: statuses of its own (``pending``, ``notRunning``, ``deleting``...), fields that
are missing or null where OpenAI always sends them, and an empty ``error`` object on jobs that did not
fail. The ``_file`` / ``_job`` hooks below normalize them.
"""

from __future__ import annotations

from routerd.config.table import ProviderSettings
from routerd.errors import APIError
from routerd.finetune.openai import OpenAIClient
from routerd.finetune.types import AZURE, JSON

#: used when the settings entry has no ``api_version``: the first GA version with fine-tuning
DEFAULT_API_VERSION = "2024-10-21"

_JOB_STATUS = {
    "validating_files": "validating_files",
    "pending": "queued",
    "notrunning": "queued",
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelling": "cancelled",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
_FILE_STATUS = {
    "uploaded": "uploaded",
    "pending": "uploaded",
    "running": "uploaded",
    "processed": "processed",
    "succeeded": "processed",
    "error": "error",
    "failed": "error",
    "deleting": "processed",
    "deleted": "processed",
}


class AzureClient(OpenAIClient):
    """Files and fine-tuning jobs on an Azure OpenAI resource."""

    provider = AZURE

    def _api_base(self, settings: ProviderSettings) -> str:
        if not settings.api_base:
            raise APIError(
                "routerd is misconfigured: the azure entry needs an api_base "
                "(https://<resource>.openai.azure.com)",
                llm_provider=AZURE,
                code="provider_misconfigured",
            )
        base = settings.api_base.rstrip("/")
        return base if base.endswith("/openai") else f"{base}/openai"

    def _auth_headers(self, settings: ProviderSettings) -> dict[str, str]:
        return {"api-key": settings.api_key} if settings.api_key else {}

    def _query(self, settings: ProviderSettings) -> dict[str, str]:
        return {"api-version": settings.api_version or DEFAULT_API_VERSION}

    def _file(self, raw: JSON) -> JSON:
        return azure_file_to_openai(raw)

    def _job(self, raw: JSON) -> JSON:
        return azure_job_to_openai(raw)

    def _event(self, raw: JSON) -> JSON:
        return {"object": "fine_tuning.job.event", "level": "info", "type": "message", "data": None, **raw}

    def _checkpoint(self, raw: JSON) -> JSON:
        return {"object": "fine_tuning.job.checkpoint", "metrics": {}, **raw}


def azure_file_to_openai(raw: JSON) -> JSON:
    """An Azure file object in OpenAI's ``file`` shape."""
    status = str(raw.get("status") or "uploaded")
    return {
        **raw,
        "id": raw.get("id"),
        "object": "file",
        "bytes": raw.get("bytes") or 0,
        "created_at": raw.get("created_at") or 0,
        "filename": raw.get("filename") or "",
        "purpose": raw.get("purpose") or "fine-tune",
        "status": _FILE_STATUS.get(status.lower(), "uploaded"),
        "status_details": raw.get("status_details"),
    }


def azure_job_to_openai(raw: JSON) -> JSON:
    """An Azure fine-tuning job in OpenAI's ``fine_tuning.job`` shape."""
    status = _JOB_STATUS.get(str(raw.get("status") or "").lower(), "queued")
    error = raw.get("error")
    # Azure sends an error object on every job; only one with a message describes a failure
    if not isinstance(error, dict) or not error.get("message"):
        error = None
    else:
        error = {
            "code": str(error.get("code") or "failed"),
            "message": error["message"],
            "param": error.get("param"),
        }
    given = raw.get("hyperparameters")
    hyperparameters: JSON = given if isinstance(given, dict) else {}
    return {
        **raw,
        "id": raw.get("id"),
        "object": "fine_tuning.job",
        "model": raw.get("model"),
        "created_at": raw.get("created_at") or 0,
        "finished_at": raw.get("finished_at"),
        "fine_tuned_model": raw.get("fine_tuned_model"),
        "organization_id": raw.get("organization_id") or "",
        "result_files": raw.get("result_files") or [],
        "status": status,
        "training_file": raw.get("training_file"),
        "validation_file": raw.get("validation_file"),
        "trained_tokens": raw.get("trained_tokens"),
        "seed": raw.get("seed"),
        "error": error,
        "hyperparameters": {
            "batch_size": hyperparameters.get("batch_size", "auto"),
            "learning_rate_multiplier": hyperparameters.get("learning_rate_multiplier", "auto"),
            "n_epochs": hyperparameters.get("n_epochs", "auto"),
        },
    }
