"""What the files and fine-tuning operations take and give, independent of the provider behind them.

Requests are small frozen records built once from the client's input (HTTP body, form or SDK arguments)
after validation. Responses are plain dicts in OpenAI's shapes (``file``, ``fine_tuning.job``,
``fine_tuning.job.event``, ``fine_tuning.job.checkpoint`` and ``list`` pages), whatever the provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

JSON = dict[str, Any]

OPENAI = "openai"
AZURE = "azure"
VERTEX_AI = "vertex_ai"
#: providers the files and fine-tuning endpoints speak to, in the order error messages list them
PROVIDERS: tuple[str, ...] = (OPENAI, AZURE, VERTEX_AI)

FILES = "files"
FINE_TUNING = "fine_tuning"
#: the config key holding each API's provider entries
SETTINGS_KEY = {FILES: "files_settings", FINE_TUNING: "finetune_settings"}

#: OpenAI allows a fine-tuned model name suffix of at most this many characters
MAX_SUFFIX_CHARS = 18

Auto = Literal["auto"]


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A file to store upstream: its name, bytes and OpenAI ``purpose``."""

    filename: str
    content: bytes = field(repr=False)
    purpose: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class FileContent:
    """A stored file's bytes, as ``/files/{id}/content`` returns them."""

    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class FileListQuery:
    purpose: str | None = None
    limit: int | None = None
    after: str | None = None
    order: Literal["asc", "desc"] | None = None


@dataclass(frozen=True, slots=True)
class PageQuery:
    """``after`` / ``limit`` cursor paging of jobs, events and checkpoints."""

    after: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    """Supervised hyperparameters; ``None`` means the client did not set it (the provider decides)."""

    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    n_epochs: int | Auto | None = None
    # Vertex AI's LoRA adapter size (1, 4, 8, 16); not an OpenAI hyperparameter
    adapter_size: int | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated ``POST /fine_tuning/jobs`` body.

    ``body`` is the client's body minus routerd's own keys: OpenAI and Azure receive it as is, so fields
    routerd does not know yet still reach them. Vertex AI is built from the typed fields.
    """

    model: str
    training_file: str
    body: Mapping[str, Any] = field(repr=False)
    hyperparameters: Hyperparameters = Hyperparameters()
    suffix: str | None = None
    validation_file: str | None = None
    integrations: Sequence[Any] | None = None
    seed: int | None = None
    method: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None


class FilesAPI(Protocol):
    """OpenAI's Files API, spoken to one provider."""

    provider: str

    async def create_file(self, upload: FileUpload) -> JSON: ...

    async def list_files(self, query: FileListQuery) -> JSON: ...

    async def retrieve_file(self, file_id: str) -> JSON: ...

    async def delete_file(self, file_id: str) -> JSON: ...

    async def file_content(self, file_id: str) -> FileContent: ...


class FineTuningAPI(Protocol):
    """OpenAI's fine-tuning jobs API, spoken to one provider."""

    provider: str

    async def create_job(self, job: JobRequest) -> JSON: ...

    async def list_jobs(self, page: PageQuery) -> JSON: ...

    async def retrieve_job(self, job_id: str) -> JSON: ...

    async def cancel_job(self, job_id: str) -> JSON: ...

    async def list_events(self, job_id: str, page: PageQuery) -> JSON: ...

    async def list_checkpoints(self, job_id: str, page: PageQuery) -> JSON: ...


class ProviderClient(FilesAPI, FineTuningAPI, Protocol):
    """Both APIs: every provider client implements the two."""


def list_page(data: list[JSON], has_more: bool) -> JSON:
    """An OpenAI ``list`` object with cursor fields."""
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
    }


def slice_after(items: list[JSON], page: PageQuery, default_limit: int) -> JSON:
    """Cursor paging over an already ordered list: the items after ``page.after``, at most ``limit``.

    An ``after`` that is not in the list yields an empty page rather than restarting from the top, so a
    client paging through a list that changed cannot loop forever.
    """
    start = 0
    if page.after is not None:
        ids = [item.get("id") for item in items]
        start = ids.index(page.after) + 1 if page.after in ids else len(items)
    limit = page.limit if page.limit is not None else default_limit
    selected = items[start : start + limit]
    return list_page(selected, start + limit < len(items))
