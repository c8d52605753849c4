"""Pure translation between OpenAI's fine-tuning shapes and Vertex AI's supervised tuning jobs.

Vertex AI (``projects.locations.tuningJobs``) names things differently and reports less:

===========================  =====================================================================
OpenAI                       Vertex AI
===========================  =====================================================================
``model``                    ``baseModel``
``training_file``            ``supervisedTuningSpec.trainingDatasetUri`` (a ``gs://`` URI)
``validation_file``          ``supervisedTuningSpec.validationDatasetUri``
``hyperparameters.n_epochs`` ``supervisedTuningSpec.hyperParameters.epochCount``
``learning_rate_multiplier`` ``hyperParameters.learningRateMultiplier``
(``adapter_size``)           ``hyperParameters.adapterSize`` (``ADAPTER_SIZE_FOUR``...)
``suffix``                   ``tunedModelDisplayName``
``id``                       the last segment of ``name`` (a number)
``status``                   ``state`` (see :data:`STATUS_BY_STATE`)
``fine_tuned_model``         ``tunedModel.endpoint`` (what a chat completion is sent to)
``trained_tokens``           ``tuningDataStats.supervisedTuningDataStats.totalBillableTokenCount``
===========================  =====================================================================

Vertex has no batch size, seed, integrations or events; events are synthesized from the job's
timestamps and state (:func:`job_events`), checkpoints come from ``tunedModel.checkpoints``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from routerd.errors import UnsupportedParamsError
from routerd.finetune.types import JSON, VERTEX_AI, JobRequest

STATUS_BY_STATE = {
    "JOB_STATE_UNSPECIFIED": "queued",
    "JOB_STATE_QUEUED": "queued",
    "JOB_STATE_PENDING": "queued",
    "JOB_STATE_PAUSED": "queued",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_UPDATING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    # Cancelling is Vertex's way of saying "cancel accepted": OpenAI has no such state, and a client that
    # just cancelled expects to read "cancelled".
    "JOB_STATE_CANCELLING": "cancelled",
    "JOB_STATE_CANCELLED": "cancelled",
}
_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

ADAPTER_SIZES = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
    32: "ADAPTER_SIZE_THIRTY_TWO",
}
_SIZE_BY_NAME = {name: size for size, name in ADAPTER_SIZES.items()}

# google.rpc.Code numbers in Vertex error objects, as the snake-case names OpenAI-style codes use
_RPC_CODES = {
    1: "cancelled",
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    10: "aborted",
    13: "internal",
    14: "unavailable",
    16: "unauthenticated",
}

FILE_ID_PREFIX = "file-"


# --- file ids ------------------------------------------------------------------------------------


def file_id_for(bucket: str, name: str) -> str:
    """The OpenAI-style id of a GCS object: the object's location, encoded, so no lookup table is needed.

    Ids survive restarts, reloads and multiple workers, and any replica can resolve them.
    """
    encoded = base64.urlsafe_b64encode(f"{bucket}/{name}".encode()).decode().rstrip("=")
    return FILE_ID_PREFIX + encoded


def gcs_location(file_id: str) -> tuple[str, str] | None:
    """``(bucket, object name)`` for a routerd Vertex file id, or None when it is not one."""
    if not file_id.startswith(FILE_ID_PREFIX):
        return None
    encoded = file_id[len(FILE_ID_PREFIX) :]
    try:
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    bucket, sep, name = decoded.partition("/")
    if not sep or not bucket or not name:
        return None
    return bucket, name


def dataset_uri(file_ref: str) -> str | None:
    """The ``gs://`` URI for a ``training_file`` / ``validation_file``: a gs:// URI or a routerd file id."""
    if file_ref.startswith("gs://") and len(file_ref) > len("gs://"):
        return file_ref
    location = gcs_location(file_ref)
    return f"gs://{location[0]}/{location[1]}" if location else None


# --- requests ------------------------------------------------------------------------------------


def job_request_to_vertex(job: JobRequest, training_uri: str, validation_uri: str | None) -> JSON:
    """The ``tuningJobs.create`` body for ``job``; raises a 400 for what Vertex cannot do."""
    _refuse_unsupported(job)
    hyper = job.hyperparameters
    params: JSON = {}
    if isinstance(hyper.n_epochs, int):
        params["epochCount"] = hyper.n_epochs
    if isinstance(hyper.learning_rate_multiplier, int | float):
        params["learningRateMultiplier"] = float(hyper.learning_rate_multiplier)
    if hyper.adapter_size is not None:
        if hyper.adapter_size not in ADAPTER_SIZES:
            sizes = ", ".join(str(size) for size in ADAPTER_SIZES)
            raise UnsupportedParamsError(
                f"vertex_ai adapter_size must be one of {sizes}, got {hyper.adapter_size}",
                llm_provider=VERTEX_AI,
                param="hyperparameters.adapter_size",
            )
        params["adapterSize"] = ADAPTER_SIZES[hyper.adapter_size]
    spec: JSON = {"trainingDatasetUri": training_uri}
    if validation_uri:
        spec["validationDatasetUri"] = validation_uri
    if params:
        spec["hyperParameters"] = params
    body: JSON = {"baseModel": base_model(job.model), "supervisedTuningSpec": spec}
    if job.suffix:
        body["tunedModelDisplayName"] = job.suffix
    return body


def base_model(model: str) -> str:
    """``vertex_ai/gemini-2.0-flash-001`` -> ``gemini-2.0-flash-001``."""
    return model.removeprefix("vertex_ai/")


def _refuse_unsupported(job: JobRequest) -> None:
    unsupported: list[str] = []
    if isinstance(job.hyperparameters.batch_size, int):
        unsupported.append("hyperparameters.batch_size")
    if job.seed is not None:
        unsupported.append("seed")
    if job.integrations:
        unsupported.append("integrations")
    if job.metadata:
        unsupported.append("metadata")
    if job.method is not None and job.method.get("type", "supervised") != "supervised":
        unsupported.append(f"method.type={job.method.get('type')}")
    if unsupported:
        raise UnsupportedParamsError(
            f"vertex_ai supervised tuning does not support {', '.join(unsupported)}; remove "
            f"{'it' if len(unsupported) == 1 else 'them'} (batch_size 'auto' is accepted)",
            llm_provider=VERTEX_AI,
            param=unsupported[0].split("=")[0],
        )


# --- responses -----------------------------------------------------------------------------------


def job_id(raw: JSON) -> str:
    """``projects/p/locations/l/tuningJobs/123`` -> ``123``."""
    return str(raw.get("name", "")).rsplit("/", 1)[-1]


def job_to_openai(raw: JSON) -> JSON:
    """A Vertex ``TuningJob`` in OpenAI's ``fine_tuning.job`` shape."""
    spec = raw.get("supervisedTuningSpec") or {}
    params = spec.get("hyperParameters") or {}
    status = STATUS_BY_STATE.get(str(raw.get("state", "")), "queued")
    tuned = raw.get("tunedModel") or {}
    hyperparameters = {
        "batch_size": "auto",
        "learning_rate_multiplier": _number(params.get("learningRateMultiplier")) or "auto",
        "n_epochs": _integer(params.get("epochCount")) or "auto",
    }
    adapter = _SIZE_BY_NAME.get(str(params.get("adapterSize", "")))
    if adapter is not None:
        hyperparameters["adapter_size"] = adapter
    return {
        "id": job_id(raw),
        "object": "fine_tuning.job",
        "model": raw.get("baseModel") or (raw.get("source_model") or {}).get("baseModel"),
        "created_at": timestamp(raw.get("createTime")) or 0,
        "finished_at": timestamp(raw.get("endTime")) if status in _TERMINAL else None,
        "fine_tuned_model": tuned.get("endpoint") or None,
        "organization_id": _project(raw),
        "result_files": [],
        "status": status,
        "training_file": spec.get("trainingDatasetUri"),
        "validation_file": spec.get("validationDatasetUri"),
        "trained_tokens": _trained_tokens(raw),
        "hyperparameters": hyperparameters,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "error": _error(raw.get("error")),
        "seed": None,
        "estimated_finish": None,
        "integrations": None,
        "user_provided_suffix": raw.get("tunedModelDisplayName"),
        "metadata": None,
    }


def job_events(raw: JSON) -> list[JSON]:
    """Events for a job, newest first, from what Vertex records: creation, start and end.

    Vertex keeps no event log for tuning jobs; these give OpenAI clients that follow ``/events`` the
    same milestones OpenAI's own log has.
    """
    ident = job_id(raw)
    job = job_to_openai(raw)
    events: list[JSON] = []

    def add(when: Any, message: str, level: str = "info") -> None:
        created = timestamp(when)
        if created is not None:
            events.append(_event(f"ftevent-{ident}-{len(events) + 1}", created, message, level))

    add(raw.get("createTime"), f"Created fine-tuning job: {ident}")
    add(raw.get("startTime"), "Fine-tuning job started")
    status = job["status"]
    end = raw.get("endTime") or raw.get("updateTime")
    if status == "succeeded":
        add(end, f"The job has successfully completed; tuned model endpoint: {job['fine_tuned_model']}")
    elif status == "failed":
        message = (job["error"] or {}).get("message") or "no reason given"
        add(end, f"The job failed: {message}", "error")
    elif status == "cancelled":
        add(end, "The job was cancelled", "warn")
    return events[::-1]


def _event(ident: str, created: int, message: str, level: str) -> JSON:
    return {
        "id": ident,
        "object": "fine_tuning.job.event",
        "created_at": created,
        "level": level,
        "message": message,
        "type": "message",
        "data": None,
    }


def job_checkpoints(raw: JSON) -> list[JSON]:
    """``tunedModel.checkpoints`` in OpenAI's checkpoint shape, newest (highest step) first."""
    ident = job_id(raw)
    created = timestamp(raw.get("endTime")) or timestamp(raw.get("createTime")) or 0
    checkpoints: list[JSON] = []
    for checkpoint in (raw.get("tunedModel") or {}).get("checkpoints") or []:
        step = _integer(checkpoint.get("step")) or 0
        epoch = _integer(checkpoint.get("epoch"))
        checkpoints.append(
            {
                "id": f"ftckpt-{ident}-{checkpoint.get('checkpointId', step)}",
                "object": "fine_tuning.job.checkpoint",
                "created_at": created,
                "fine_tuned_model_checkpoint": checkpoint.get("endpoint") or "",
                "fine_tuning_job_id": ident,
                "step_number": step,
                "metrics": {"step": float(step)},
                "epoch": epoch,
            }
        )
    checkpoints.sort(key=lambda item: int(item["step_number"]), reverse=True)
    return checkpoints


def _project(raw: JSON) -> str:
    parts = str(raw.get("name", "")).split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "projects" else ""


def _trained_tokens(raw: JSON) -> int | None:
    stats = (raw.get("tuningDataStats") or {}).get("supervisedTuningDataStats") or {}
    return _integer(stats.get("totalBillableTokenCount"))


def _error(error: Any) -> JSON | None:
    if not isinstance(error, dict) or not error.get("message"):
        return None
    code = error.get("code")
    name = _RPC_CODES.get(code, str(code)) if isinstance(code, int) else str(code or "failed")
    return {"code": name, "message": str(error["message"]), "param": None}


def timestamp(value: Any) -> int | None:
    """An RFC 3339 time (``2024-05-01T12:00:00.123456Z``) as Unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # Python < 3.12 parses at most 6 fractional digits; Google sends up to 9.
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp())


def _integer(value: Any) -> int | None:
    # int64 fields arrive as JSON strings
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
