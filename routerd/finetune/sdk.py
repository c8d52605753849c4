"""The files and fine-tuning operations as SDK functions, without a running gateway.

Each operation has an async form (``acreate_fine_tuning_job``) and a sync one (``create_fine_tuning_job``)
that runs the async form on a background loop. ``custom_llm_provider`` picks ``openai`` (default),
``azure`` or ``vertex_ai``; credentials come from keyword arguments, else the provider's environment
variables (``OPENAI_API_KEY``; ``AZURE_API_KEY`` / ``AZURE_API_BASE`` / ``AZURE_API_VERSION``;
``VERTEXAI_PROJECT`` / ``VERTEXAI_LOCATION`` and ``GOOGLE_APPLICATION_CREDENTIALS``)::

    job = routerd.create_fine_tuning_job(model="gpt-4o-mini-2024-07-18", training_file=file.id, suffix="support")
    job = routerd.retrieve_fine_tuning_job(job.id)
    if job.status == "succeeded":
        routerd.completion(model=job.fine_tuned_model, messages=[...])

Results are the ``openai`` package's types (``FileObject``, ``FineTuningJob``...), with attribute access;
lists are :class:`Page` objects. Errors are :mod:`routerd.errors` classes, the same the gateway answers,
raised as their SDK classes (which also subclass ``openai``'s; :mod:`routerd.sdk.errors`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import IO, Any, Generic, TypedDict, TypeVar

import httpx
from openai.types import FileDeleted, FileObject
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from pydantic import BaseModel
from typing_extensions import Unpack

from routerd.config.table import ProviderSettings
from routerd.finetune.providers import make_client, normalize_provider
from routerd.finetune.types import JSON, OPENAI, FileUpload, ProviderClient
from routerd.finetune.validation import file_list_query, job_request, page_query, purpose_value
from routerd.http import HttpClient, HttpxClient
from routerd.sdk.errors import raises_sdk_errors
from routerd.sdk.loop import background_loop, shared_http
from routerd.sdk.types import FileContent

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: what ``create_file`` takes: bytes, a path, a binary file object, or ``(filename, content[, content_type])``
FileInput = bytes | str | os.PathLike[str] | IO[bytes] | tuple[Any, ...]


class Page(BaseModel, Generic[M]):
    """One page of a list: ``data``, and the cursor fields to ask for the next one (``after=last_id``)."""

    object: str = "list"
    data: list[M]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


#: options that land in ``ProviderSettings.extra``
_EXTRA_OPTIONS = frozenset({"gcs_bucket_name", "gcs_api_base", "timeout"})


class ProviderOptions(TypedDict, total=False):
    """Keyword arguments every function takes; unset ones fall back to environment variables."""

    api_key: str
    api_base: str
    api_version: str
    organization: str
    vertex_project: str
    vertex_location: str
    vertex_credentials: str  # a service-account JSON document, or the path of one
    gcs_bucket_name: str  # Cloud Storage bucket vertex_ai files are stored in
    gcs_api_base: str  # Cloud Storage endpoint (default https://storage.googleapis.com)
    timeout: float
    http_client: httpx.AsyncClient  # your own client (proxies, certificates, test transports)


@raises_sdk_errors
async def _run(
    provider: str,
    options: ProviderOptions,
    operation: Callable[[ProviderClient], Awaitable[T]],
) -> T:
    settings = ProviderSettings(
        custom_llm_provider=normalize_provider(provider or OPENAI),
        api_key=options.get("api_key"),
        api_base=options.get("api_base"),
        api_version=options.get("api_version"),
        organization=options.get("organization"),
        vertex_project=options.get("vertex_project"),
        vertex_location=options.get("vertex_location"),
        vertex_credentials=options.get("vertex_credentials"),
        extra={key: value for key, value in options.items() if key in _EXTRA_OPTIONS and value is not None},
    )
    injected = options.get("http_client")
    # the SDK's per-event-loop client (shared with completion()): connections are reused across calls
    http: HttpClient = HttpxClient(injected, owned=False) if injected is not None else shared_http()
    return await operation(make_client(settings, http))


@raises_sdk_errors
def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an async form on the SDK's background loop (works inside a running event loop too)."""
    return background_loop.run(coroutine)


def _model(cls: type[M], body: Mapping[str, Any]) -> M:
    # construct, not validate: a provider's new status or field must not break a caller's script
    return cls.construct(**body)


def _page(cls: type[M], body: JSON) -> Page[M]:
    return Page[cls].model_construct(  # type: ignore[valid-type]
        object="list",
        data=[_model(cls, item) for item in body.get("data") or []],
        has_more=bool(body.get("has_more")),
        first_id=body.get("first_id"),
        last_id=body.get("last_id"),
    )


# --- files ---------------------------------------------------------------------------------------


async def _read_file(file: FileInput) -> tuple[str, bytes, str]:
    content_type = "application/octet-stream"
    if isinstance(file, tuple):
        filename, payload = str(file[0]), file[1]
        if len(file) > 2 and file[2]:
            content_type = str(file[2])
    else:
        filename, payload = "upload.jsonl", file
    if isinstance(payload, str | os.PathLike):
        path = Path(payload)
        if not isinstance(file, tuple):
            filename = path.name
        return filename, await asyncio.to_thread(path.read_bytes), content_type
    if isinstance(payload, bytes | bytearray | memoryview):
        return filename, bytes(payload), content_type
    if hasattr(payload, "read"):
        name = getattr(payload, "name", None)
        if not isinstance(file, tuple) and isinstance(name, str):
            filename = os.path.basename(name)
        data = await asyncio.to_thread(payload.read)
        return filename, data if isinstance(data, bytes) else str(data).encode(), content_type
    raise TypeError("file must be bytes, a path, a binary file object or a (filename, content) tuple")


async def acreate_file(
    file: FileInput,
    purpose: str = "fine-tune",
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> FileObject:
    """Upload a file; fine-tuning files (``purpose="fine-tune"``) are checked line by line first."""
    filename, content, content_type = await _read_file(file)
    upload = FileUpload(filename, content, purpose_value(purpose), content_type)

    async def operation(client: ProviderClient) -> JSON:
        return await client.create_file(upload)

    return _model(FileObject, await _run(custom_llm_provider, options, operation))


def create_file(
    file: FileInput,
    purpose: str = "fine-tune",
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> FileObject:
    """Sync form of :func:`acreate_file`."""
    return run_sync(acreate_file(file, purpose, custom_llm_provider, **options))


async def afile_list(
    purpose: str | None = None,
    limit: int | None = None,
    after: str | None = None,
    order: str | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FileObject]:
    """List stored files, newest first unless ``order="asc"``."""
    query = file_list_query({"purpose": purpose, "limit": limit, "after": after, "order": order})

    async def operation(client: ProviderClient) -> JSON:
        return await client.list_files(query)

    return _page(FileObject, await _run(custom_llm_provider, options, operation))


def file_list(
    purpose: str | None = None,
    limit: int | None = None,
    after: str | None = None,
    order: str | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FileObject]:
    """Sync form of :func:`afile_list`."""
    return run_sync(afile_list(purpose, limit, after, order, custom_llm_provider, **options))


async def afile_retrieve(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileObject:
    """One stored file's metadata."""

    async def operation(client: ProviderClient) -> JSON:
        return await client.retrieve_file(file_id)

    return _model(FileObject, await _run(custom_llm_provider, options, operation))


def file_retrieve(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileObject:
    """Sync form of :func:`afile_retrieve`."""
    return run_sync(afile_retrieve(file_id, custom_llm_provider, **options))


async def afile_delete(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileDeleted:
    """Delete a stored file."""

    async def operation(client: ProviderClient) -> JSON:
        return await client.delete_file(file_id)

    return _model(FileDeleted, await _run(custom_llm_provider, options, operation))


def file_delete(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileDeleted:
    """Sync form of :func:`afile_delete`."""
    return run_sync(afile_delete(file_id, custom_llm_provider, **options))


async def afile_content(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileContent:
    """A stored file's bytes, with ``.content`` / ``.text`` / ``.write_to_file()`` as LiteLLM returns them."""

    async def operation(client: ProviderClient) -> FileContent:
        return FileContent((await client.file_content(file_id)).content)

    return await _run(custom_llm_provider, options, operation)


def file_content(
    file_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FileContent:
    """Sync form of :func:`afile_content`."""
    return run_sync(afile_content(file_id, custom_llm_provider, **options))


# --- fine-tuning jobs ----------------------------------------------------------------------------


async def acreate_fine_tuning_job(
    model: str,
    training_file: str,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = None,
    validation_file: str | None = None,
    integrations: list[Any] | None = None,
    seed: int | None = None,
    custom_llm_provider: str = OPENAI,
    *,
    method: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    **options: Unpack[ProviderOptions],
) -> FineTuningJob:
    """Start a fine-tuning job on ``training_file`` (a file id, or a ``gs://`` URI for vertex_ai)."""
    fields = {
        "model": model,
        "training_file": training_file,
        "hyperparameters": dict(hyperparameters) if hyperparameters is not None else None,
        "suffix": suffix,
        "validation_file": validation_file,
        "integrations": integrations,
        "seed": seed,
        "method": dict(method) if method is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
    }
    job = job_request({key: value for key, value in fields.items() if value is not None})

    async def operation(client: ProviderClient) -> JSON:
        return await client.create_job(job)

    return _model(FineTuningJob, await _run(custom_llm_provider, options, operation))


def create_fine_tuning_job(
    model: str,
    training_file: str,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = None,
    validation_file: str | None = None,
    integrations: list[Any] | None = None,
    seed: int | None = None,
    custom_llm_provider: str = OPENAI,
    *,
    method: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    **options: Unpack[ProviderOptions],
) -> FineTuningJob:
    """Sync form of :func:`acreate_fine_tuning_job`."""
    return run_sync(
        acreate_fine_tuning_job(
            model,
            training_file,
            hyperparameters,
            suffix,
            validation_file,
            integrations,
            seed,
            custom_llm_provider,
            method=method,
            metadata=metadata,
            **options,
        )
    )


async def alist_fine_tuning_jobs(
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJob]:
    """Fine-tuning jobs, newest first; pass ``after=page.last_id`` for the next page."""
    page = page_query({"after": after, "limit": limit})

    async def operation(client: ProviderClient) -> JSON:
        return await client.list_jobs(page)

    return _page(FineTuningJob, await _run(custom_llm_provider, options, operation))


def list_fine_tuning_jobs(
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJob]:
    """Sync form of :func:`alist_fine_tuning_jobs`."""
    return run_sync(alist_fine_tuning_jobs(after, limit, custom_llm_provider, **options))


async def aretrieve_fine_tuning_job(
    fine_tuning_job_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FineTuningJob:
    """A fine-tuning job as it is now (``status``, ``fine_tuned_model`` once it succeeded)."""

    async def operation(client: ProviderClient) -> JSON:
        return await client.retrieve_job(fine_tuning_job_id)

    return _model(FineTuningJob, await _run(custom_llm_provider, options, operation))


def retrieve_fine_tuning_job(
    fine_tuning_job_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FineTuningJob:
    """Sync form of :func:`aretrieve_fine_tuning_job`."""
    return run_sync(aretrieve_fine_tuning_job(fine_tuning_job_id, custom_llm_provider, **options))


async def acancel_fine_tuning_job(
    fine_tuning_job_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FineTuningJob:
    """Cancel a fine-tuning job; answers the job with its new status."""

    async def operation(client: ProviderClient) -> JSON:
        return await client.cancel_job(fine_tuning_job_id)

    return _model(FineTuningJob, await _run(custom_llm_provider, options, operation))


def cancel_fine_tuning_job(
    fine_tuning_job_id: str, custom_llm_provider: str = OPENAI, **options: Unpack[ProviderOptions]
) -> FineTuningJob:
    """Sync form of :func:`acancel_fine_tuning_job`."""
    return run_sync(acancel_fine_tuning_job(fine_tuning_job_id, custom_llm_provider, **options))


async def alist_fine_tuning_events(
    fine_tuning_job_id: str,
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJobEvent]:
    """A job's events, newest first."""
    page = page_query({"after": after, "limit": limit})

    async def operation(client: ProviderClient) -> JSON:
        return await client.list_events(fine_tuning_job_id, page)

    return _page(FineTuningJobEvent, await _run(custom_llm_provider, options, operation))


def list_fine_tuning_events(
    fine_tuning_job_id: str,
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJobEvent]:
    """Sync form of :func:`alist_fine_tuning_events`."""
    return run_sync(
        alist_fine_tuning_events(fine_tuning_job_id, after, limit, custom_llm_provider, **options)
    )


async def alist_fine_tuning_checkpoints(
    fine_tuning_job_id: str,
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJobCheckpoint]:
    """A job's checkpoints, newest first."""
    page = page_query({"after": after, "limit": limit})

    async def operation(client: ProviderClient) -> JSON:
        return await client.list_checkpoints(fine_tuning_job_id, page)

    return _page(FineTuningJobCheckpoint, await _run(custom_llm_provider, options, operation))


def list_fine_tuning_checkpoints(
    fine_tuning_job_id: str,
    after: str | None = None,
    limit: int | None = None,
    custom_llm_provider: str = OPENAI,
    **options: Unpack[ProviderOptions],
) -> Page[FineTuningJobCheckpoint]:
    """Sync form of :func:`alist_fine_tuning_checkpoints`."""
    return run_sync(
        alist_fine_tuning_checkpoints(fine_tuning_job_id, after, limit, custom_llm_provider, **options)
    )
