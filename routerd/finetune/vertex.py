"""Vertex AI supervised tuning jobs, and training files in Cloud Storage, behind OpenAI's APIs.

Jobs: ``{api_base}/v1/projects/{project}/locations/{location}/tuningJobs`` (create, get, list,
``:cancel``), translated by :mod:`routerd.finetune.vertex_translate`. ``api_base`` defaults to
``https://{location}-aiplatform.googleapis.com``.

Files: Vertex has no Files API; it reads training data from ``gs://`` URIs. ``/v1/files`` with
``custom_llm_provider=vertex_ai`` therefore stores the file in the Cloud Storage bucket of the settings
entry (``gcs_bucket_name``) through the GCS JSON API, under ``{gcs_prefix}/{purpose}/{random}/{filename}``,
and answers an id that encodes the object's location (``file-<base64url(bucket/object)>``). Such an id,
or a ``gs://`` URI, is accepted as ``training_file`` / ``validation_file``. Fine-tuning files in
OpenAI's chat format are rewritten to Gemini's format on the way (:mod:`routerd.finetune.vertex_dataset`).

Listing files reads the whole prefix (up to :data:`MAX_LISTED_FILES` objects) to sort by creation time,
which GCS cannot do; listing jobs walks Vertex's pages to honour OpenAI's ``after`` cursor.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from routerd.config.table import ProviderSettings
from routerd.errors import APIError, AuthenticationError, BadRequestError
from routerd.finetune.jsonl import VERTEX_FORMATS, check_training_file
from routerd.finetune.types import (
    JSON,
    VERTEX_AI,
    FileContent,
    FileListQuery,
    FileUpload,
    JobRequest,
    PageQuery,
    list_page,
    slice_after,
)
from routerd.finetune.upstream import DEFAULT_TIMEOUT, Upstream, path
from routerd.finetune.vertex_dataset import to_vertex_jsonl
from routerd.finetune.vertex_translate import (
    dataset_uri,
    file_id_for,
    gcs_location,
    job_checkpoints,
    job_events,
    job_request_to_vertex,
    job_to_openai,
    timestamp,
)
from routerd.http import HttpClient, HttpResponse
from routerd.providers.google_auth import (
    CLOUD_PLATFORM_SCOPE,
    CredentialsTokenSource,
    StaticToken,
    TokenSource,
    credentials_loader,
    source_fingerprint,
)

DEFAULT_LOCATION = "us-central1"
DEFAULT_GCS_API_BASE = "https://storage.googleapis.com"
DEFAULT_GCS_PREFIX = "routerd-files"
#: pages of jobs read to find an ``after`` cursor before giving up
MAX_JOB_PAGES = 20
MAX_LISTED_FILES = 10_000
_GCS_PAGE = 1000
_JOB_PAGE = 100
FILE = "file"
JOB = "fine_tuning_job"
_SCOPES = (CLOUD_PLATFORM_SCOPE,)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_PURPOSE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class VertexClient:
    """Tuning jobs on Vertex AI and training files in a Cloud Storage bucket."""

    provider = VERTEX_AI

    def __init__(
        self,
        settings: ProviderSettings,
        http: HttpClient,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tokens: TokenSource | None = None,
    ) -> None:
        self._project = settings.vertex_project
        self._location = settings.vertex_location or DEFAULT_LOCATION
        default_base = f"https://{self._location}-aiplatform.googleapis.com"
        self._api_base = (settings.api_base or default_base).rstrip("/")
        extra: Mapping[str, Any] = settings.extra
        bucket = extra.get("gcs_bucket_name") or extra.get("gcs_bucket")
        self._bucket = str(bucket).removeprefix("gs://").strip("/") if bucket else None
        self._gcs = str(extra.get("gcs_api_base") or DEFAULT_GCS_API_BASE).rstrip("/")
        self._prefix = str(extra.get("gcs_prefix") or DEFAULT_GCS_PREFIX).strip("/")
        self._tokens = tokens or token_source(settings.api_key, settings.vertex_credentials)
        self._upstream = Upstream(http, self.provider, secrets=(settings.api_key or "",), timeout=timeout)

    async def _call(
        self, method: str, url: str, *, content_type: str | None = None, **kwargs: Any
    ) -> HttpResponse:
        headers = {"authorization": f"Bearer {await self._tokens.token()}"}
        if content_type is not None:
            headers["content-type"] = content_type
        try:
            return await self._upstream.call(method, url, headers=headers, **kwargs)
        except AuthenticationError:
            self._tokens.invalidate()  # a revoked or expired token: fetch a new one next time
            raise

    async def _call_json(self, method: str, url: str, **kwargs: Any) -> JSON:
        return self._upstream.json(await self._call(method, url, **kwargs))

    async def _jobs_url(self) -> str:
        """``.../projects/{project}/locations/{location}/tuningJobs``; the project defaults to the
        credentials' own."""
        project = self._project or await self._tokens.project_id()
        if not project:
            raise APIError(
                "routerd is misconfigured: the vertex_ai entry needs vertex_project",
                llm_provider=VERTEX_AI,
                code="provider_misconfigured",
            )
        return f"{self._api_base}/v1/projects/{project}/locations/{self._location}/tuningJobs"

    def _require_bucket(self) -> str:
        if not self._bucket:
            raise BadRequestError(
                "vertex_ai has no Files API: routerd stores files in Cloud Storage, and this gateway's "
                "vertex_ai entry names no bucket (gcs_bucket_name); pass gs:// URIs as training_file instead",
                llm_provider=VERTEX_AI,
                code="provider_not_configured",
                param="custom_llm_provider",
            )
        return self._bucket

    # --- files (Cloud Storage) -------------------------------------------------------------------

    async def create_file(self, upload: FileUpload) -> JSON:
        bucket = self._require_bucket()
        purpose = upload.purpose
        if not _PURPOSE.match(purpose):
            raise BadRequestError(f"invalid purpose {purpose!r}", param="purpose", code="invalid_value")
        content = upload.content
        if purpose == "fine-tune":
            content = to_vertex_jsonl(check_training_file(content, VERTEX_FORMATS), content)
        filename = _safe_filename(upload.filename)
        name = f"{self._prefix}/{purpose}/{uuid.uuid4().hex}/{filename}"
        raw = await self._call_json(
            "POST",
            f"{self._gcs}/upload/storage/v1/b/{path(bucket)}/o",
            params={"uploadType": "media", "name": name},
            content=content,
            content_type="application/jsonl" if purpose == "fine-tune" else upload.content_type,
        )
        return self._file(raw, bucket)

    async def list_files(self, query: FileListQuery) -> JSON:
        bucket = self._require_bucket()
        prefix = f"{self._prefix}/{query.purpose}/" if query.purpose else f"{self._prefix}/"
        objects: list[JSON] = []
        token: str | None = None
        while len(objects) < MAX_LISTED_FILES:
            raw = await self._call_json(
                "GET",
                f"{self._gcs}/storage/v1/b/{path(bucket)}/o",
                params={"prefix": prefix, "maxResults": _GCS_PAGE, "pageToken": token},
            )
            objects.extend(item for item in raw.get("items") or [] if isinstance(item, dict))
            token = raw.get("nextPageToken")
            if not token:
                break
        files = [self._file(item, bucket) for item in objects]
        files.sort(key=lambda f: (f["created_at"], f["id"]), reverse=query.order != "asc")
        return slice_after(files, PageQuery(query.after, query.limit), default_limit=10_000)

    def _object_url(self, file_id: str) -> tuple[str, str]:
        location = gcs_location(file_id)
        if location is None:
            raise self._upstream.not_found(f"no vertex_ai file {file_id!r}: not an id routerd issued", FILE)
        bucket, name = location
        return bucket, f"{self._gcs}/storage/v1/b/{path(bucket)}/o/{path(name)}"

    async def retrieve_file(self, file_id: str) -> JSON:
        bucket, url = self._object_url(file_id)
        raw = await self._call_json("GET", url, missing=FILE)
        return self._file(raw, bucket)

    async def delete_file(self, file_id: str) -> JSON:
        _, url = self._object_url(file_id)
        await self._call("DELETE", url, missing=FILE)
        return {"id": file_id, "object": "file", "deleted": True}

    async def file_content(self, file_id: str) -> FileContent:
        _, url = self._object_url(file_id)
        response = await self._call("GET", url, params={"alt": "media"}, missing=FILE)
        return FileContent(response.content, response.headers.get("content-type", "application/octet-stream"))

    def _file(self, raw: JSON, bucket: str) -> JSON:
        name = str(raw.get("name", ""))
        relative = name.removeprefix(f"{self._prefix}/").split("/")
        purpose = relative[0] if len(relative) >= 3 else "fine-tune"
        size = raw.get("size")
        return {
            "id": file_id_for(str(raw.get("bucket") or bucket), name),
            "object": "file",
            "bytes": int(size) if isinstance(size, str | int) and str(size).isdigit() else 0,
            "created_at": timestamp(raw.get("timeCreated")) or 0,
            "filename": name.rsplit("/", 1)[-1],
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }

    # --- tuning jobs -----------------------------------------------------------------------------

    async def create_job(self, job: JobRequest) -> JSON:
        training = _dataset(job.training_file, "training_file")
        validation = _dataset(job.validation_file, "validation_file") if job.validation_file else None
        body = job_request_to_vertex(job, training, validation)
        raw = await self._call_json("POST", await self._jobs_url(), json=body)
        return job_to_openai(raw)

    async def list_jobs(self, page: PageQuery) -> JSON:
        url = await self._jobs_url()
        limit = page.limit if page.limit is not None else 20
        found_after = page.after is None
        selected: list[JSON] = []
        token: str | None = None
        for _ in range(MAX_JOB_PAGES):
            raw = await self._call_json("GET", url, params={"pageSize": _JOB_PAGE, "pageToken": token})
            for item in raw.get("tuningJobs") or []:
                job = job_to_openai(item)
                if not found_after:
                    found_after = job["id"] == page.after
                    continue
                if len(selected) == limit:
                    return list_page(selected, True)
                selected.append(job)
            token = raw.get("nextPageToken")
            if not token:
                break
        return list_page(selected, bool(token) and found_after)

    async def _get_job(self, job_id: str) -> JSON:
        return await self._call_json("GET", await self._job_url(job_id), missing=JOB)

    async def _job_url(self, job_id: str) -> str:
        if not (job_id.isascii() and job_id.isdigit()):
            raise self._upstream.not_found(
                f"no vertex_ai fine-tuning job {job_id!r} (Vertex AI job ids are numbers)", JOB
            )
        return f"{await self._jobs_url()}/{path(job_id)}"

    async def retrieve_job(self, job_id: str) -> JSON:
        return job_to_openai(await self._get_job(job_id))

    async def cancel_job(self, job_id: str) -> JSON:
        await self._call("POST", f"{await self._job_url(job_id)}:cancel", json={}, missing=JOB)
        # Vertex's cancel answers an empty body; the job as it now is is what OpenAI's cancel returns.
        return job_to_openai(await self._get_job(job_id))

    async def list_events(self, job_id: str, page: PageQuery) -> JSON:
        return slice_after(job_events(await self._get_job(job_id)), page, default_limit=20)

    async def list_checkpoints(self, job_id: str, page: PageQuery) -> JSON:
        return slice_after(job_checkpoints(await self._get_job(job_id)), page, default_limit=10)


def _dataset(file_ref: str, param: str) -> str:
    uri = dataset_uri(file_ref)
    if uri is None:
        raise BadRequestError(
            f"vertex_ai reads training data from Cloud Storage: '{param}' must be a gs:// URI or a file id "
            f"from /v1/files uploaded with custom_llm_provider=vertex_ai, got {file_ref!r}",
            llm_provider=VERTEX_AI,
            param=param,
            code="invalid_value",
        )
    return uri


def _safe_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip("._") or "upload.jsonl"
    return cleaned[:200]


_SOURCES: dict[str, CredentialsTokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(access_token: str | None, credentials: str | None) -> TokenSource:
    """The token source of one settings entry. Sources are shared per credentials, process-wide: clients
    are built per request, and tokens must outlive them (and config reloads that change nothing)."""
    if access_token:
        return StaticToken(access_token)
    key = source_fingerprint(credentials, _SCOPES)
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = CredentialsTokenSource(credentials_loader(credentials, _SCOPES), provider=VERTEX_AI)
            _SOURCES[key] = source
        return source
