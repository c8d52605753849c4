"""OpenAI's Files and fine-tuning APIs: routerd's reference shapes, so answers pass through unchanged.

Request bodies are forwarded as the client sent them (minus routerd's own keys), so parameters OpenAI adds
later reach it without a routerd release. :class:`OpenAIClient` is also the base of the Azure client,
which differs in URLs, authentication and the shapes it answers with (see :mod:`routerd.finetune.azure`).
"""

from __future__ import annotations

from typing import Any

from routerd.config.table import ProviderSettings
from routerd.finetune.jsonl import OPENAI_FORMATS, check_training_file
from routerd.finetune.types import (
    JSON,
    OPENAI,
    FileContent,
    FileListQuery,
    FileUpload,
    JobRequest,
    PageQuery,
    list_page,
)
from routerd.finetune.upstream import DEFAULT_TIMEOUT, Upstream, path
from routerd.http import HttpClient

DEFAULT_API_BASE = "https://api.openai.com/v1"
FILE = "file"
JOB = "fine_tuning_job"


class OpenAIClient:
    """Files and fine-tuning jobs on OpenAI (or any server speaking its API at ``api_base``)."""

    provider = OPENAI

    def __init__(
        self, settings: ProviderSettings, http: HttpClient, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._base = self._api_base(settings)
        self._headers = self._auth_headers(settings)
        self._params = self._query(settings)
        self._upstream = Upstream(http, self.provider, secrets=(settings.api_key or "",), timeout=timeout)

    # --- what subclasses (Azure) change ---------------------------------------------------------

    def _api_base(self, settings: ProviderSettings) -> str:
        return (settings.api_base or DEFAULT_API_BASE).rstrip("/")

    def _auth_headers(self, settings: ProviderSettings) -> dict[str, str]:
        headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        if settings.organization:
            headers["openai-organization"] = settings.organization
        return headers

    def _query(self, settings: ProviderSettings) -> dict[str, str]:
        return {}

    def _file(self, raw: JSON) -> JSON:
        return raw

    def _job(self, raw: JSON) -> JSON:
        return raw

    def _event(self, raw: JSON) -> JSON:
        return raw

    def _checkpoint(self, raw: JSON) -> JSON:
        return raw

    # --- plumbing --------------------------------------------------------------------------------

    def _url(self, *segments: str) -> str:
        return f"{self._base}/{path(*segments)}"

    async def _get(self, url: str, params: dict[str, Any] | None = None, missing: str = "") -> JSON:
        return await self._upstream.call_json(
            "GET", url, headers=self._headers, params={**self._params, **(params or {})}, missing=missing
        )

    async def _post(self, url: str, body: Any, missing: str = "") -> JSON:
        return await self._upstream.call_json(
            "POST", url, headers=self._headers, params=self._params, json=body, missing=missing
        )

    def _page(self, raw: JSON, convert: Any) -> JSON:
        data = [convert(item) for item in raw.get("data") or [] if isinstance(item, dict)]
        page = list_page(data, bool(raw.get("has_more", False)))
        # keep OpenAI's own cursor fields when it sent them
        for key in ("first_id", "last_id"):
            if key in raw:
                page[key] = raw[key]
        return page

    # --- files -----------------------------------------------------------------------------------

    async def create_file(self, upload: FileUpload) -> JSON:
        if upload.purpose == "fine-tune":
            check_training_file(upload.content, OPENAI_FORMATS)
        response = await self._upstream.call(
            "POST",
            self._url("files"),
            headers=self._headers,
            params=self._params,
            files={"file": (upload.filename, upload.content, upload.content_type)},
            data={"purpose": upload.purpose},
        )
        return self._file(self._upstream.json(response))

    async def list_files(self, query: FileListQuery) -> JSON:
        params = {"purpose": query.purpose, "limit": query.limit, "after": query.after, "order": query.order}
        return self._page(await self._get(self._url("files"), params), self._file)

    async def retrieve_file(self, file_id: str) -> JSON:
        return self._file(await self._get(self._url("files", file_id), missing=FILE))

    async def delete_file(self, file_id: str) -> JSON:
        raw = await self._upstream.call_json(
            "DELETE", self._url("files", file_id), headers=self._headers, params=self._params, missing=FILE
        )
        return {"id": raw.get("id", file_id), "object": "file", "deleted": bool(raw.get("deleted", True))}

    async def file_content(self, file_id: str) -> FileContent:
        response = await self._upstream.call(
            "GET",
            self._url("files", file_id, "content"),
            headers=self._headers,
            params=self._params,
            missing=FILE,
        )
        content_type = response.headers.get("content-type", "application/octet-stream")
        return FileContent(response.content, content_type)

    # --- fine-tuning jobs ------------------------------------------------------------------------

    async def create_job(self, job: JobRequest) -> JSON:
        return self._job(await self._post(self._url("fine_tuning", "jobs"), dict(job.body)))

    async def list_jobs(self, page: PageQuery) -> JSON:
        params = {"after": page.after, "limit": page.limit}
        return self._page(await self._get(self._url("fine_tuning", "jobs"), params), self._job)

    async def retrieve_job(self, job_id: str) -> JSON:
        return self._job(await self._get(self._url("fine_tuning", "jobs", job_id), missing=JOB))

    async def cancel_job(self, job_id: str) -> JSON:
        return self._job(
            await self._post(self._url("fine_tuning", "jobs", job_id, "cancel"), None, missing=JOB)
        )

    async def list_events(self, job_id: str, page: PageQuery) -> JSON:
        params = {"after": page.after, "limit": page.limit}
        raw = await self._get(self._url("fine_tuning", "jobs", job_id, "events"), params, missing=JOB)
        return self._page(raw, self._event)

    # --- batches (OpenAI's Batch API; Azure serves it under /openai/batches) ------------------------

    async def create_batch(self, body: JSON) -> JSON:
        return await self._post(self._url("batches"), body)

    async def list_batches(self, page: PageQuery) -> JSON:
        params = {"after": page.after, "limit": page.limit}
        return self._page(await self._get(self._url("batches"), params), dict)

    async def retrieve_batch(self, batch_id: str) -> JSON:
        return await self._get(self._url("batches", batch_id), missing="batch")

    async def cancel_batch(self, batch_id: str) -> JSON:
        return await self._post(self._url("batches", batch_id, "cancel"), None, missing="batch")

    async def list_checkpoints(self, job_id: str, page: PageQuery) -> JSON:
        params = {"after": page.after, "limit": page.limit}
        raw = await self._get(self._url("fine_tuning", "jobs", job_id, "checkpoints"), params, missing=JOB)
        return self._page(raw, self._checkpoint)
