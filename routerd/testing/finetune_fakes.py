"""Stateful fake files and fine-tuning upstreams: OpenAI, Azure OpenAI, Vertex AI (+ Cloud Storage).

Each is a real HTTP server on ``127.0.0.1`` (a subclass of the chat fakes, so the model a job produces
can then be called through the same server) that keeps files and jobs in memory, speaks the
provider's wire format (paths, authentication, shapes, statuses, error bodies) and refuses what the
provider refuses: unknown request fields, missing ``api-version``, training files that do not exist,
cancelling a finished job. Scripted replies (``enqueue(Reply.error(...))``) answer these routes too.
Jobs never move on their own; tests drive them with :meth:`set_running`,
:meth:`succeed` and :meth:`fail`, so nothing depends on timing::

    async with FakeOpenAIFineTuning(api_key="sk-test") as fake:
        ... upload a file and create a job through routerd ...
        model = fake.succeed(job_id)  # "ft:gpt-4o-mini:fake-org:my-suffix:abc123"
        ... the fake now answers chat completions for ``model`` ...

Time is a counter (one second per event from :data:`EPOCH`), so ``created_at`` orders are exact.
"""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from routerd.testing.gemini_fake import FakeGemini, error_body
from routerd.testing.openai_fake import FakeAzureOpenAI, FakeOpenAI, json_response, raw_response

__all__ = [
    "EPOCH",
    "FakeAzureFineTuning",
    "FakeOpenAIFineTuning",
    "FakeVertexFineTuning",
    "StoredFile",
    "parse_multipart",
]

JSON = dict[str, Any]
EPOCH = 1_700_000_000
_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_JOB_FIELDS = frozenset(
    {
        "model",
        "training_file",
        "hyperparameters",
        "suffix",
        "validation_file",
        "integrations",
        "seed",
        "method",
        "metadata",
    }
)


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes = field(repr=False)
    created_at: int


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """``(fields, files)`` of a multipart/form-data body; files map to ``(filename, bytes)``."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode()
    return fields, files


def _page(items: list[JSON], after: str | None, limit: int) -> tuple[list[JSON], bool]:
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    return items[start : start + limit], start + limit < len(items)


def _limit(request: web.Request, default: int) -> int:
    raw = request.query.get("limit") or request.query.get("pageSize") or ""
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


class _Book:
    """Files, jobs, events and checkpoints, in creation order, with a counter clock."""

    def __init__(self) -> None:
        self.now = EPOCH
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, JSON] = {}
        self.events: dict[str, list[JSON]] = {}
        self.checkpoints: dict[str, list[JSON]] = {}

    def tick(self) -> int:
        self.now += 1
        return self.now

    def add_file(self, file_id: str, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(file_id, filename, purpose, content, self.tick())
        self.files[file_id] = stored
        return stored

    def event(self, job_id: str, message: str, level: str = "info") -> None:
        events = self.events.setdefault(job_id, [])
        events.insert(
            0,
            {
                "id": f"ftevent-{uuid.uuid4().hex[:24]}",
                "object": "fine_tuning.job.event",
                "created_at": self.tick(),
                "level": level,
                "message": message,
                "type": "message",
                "data": {},
            },
        )

    def newest_first(self, values: list[JSON]) -> list[JSON]:
        return sorted(values, key=lambda item: (item["created_at"], item["id"]), reverse=True)


# --- OpenAI --------------------------------------------------------------------------------------


class FakeOpenAIFineTuning(FakeOpenAI):
    """OpenAI's ``/v1/files`` and ``/v1/fine_tuning/jobs``, on top of :class:`FakeOpenAI`'s chat.

    Chat completions for an ``ft:`` model are refused (404 ``model_not_found``) until a job produced
    it with :meth:`succeed`.
    """

    organization = "fake-org"
    #: where the files and fine-tuning routes live (Azure: ``/openai``)
    files_prefix = "/v1"

    def __init__(self, **kwargs: Any) -> None:
        self.book = _Book()
        self.batches: dict[str, JSON] = {}
        super().__init__(**kwargs)

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(), *self.management_routes()]

    def management_routes(self) -> list[web.RouteDef]:
        files, jobs = f"{self.files_prefix}/files", f"{self.files_prefix}/fine_tuning/jobs"
        return [
            web.post(files, self._create_file),
            web.get(files, self._list_files),
            web.get(f"{files}/{{file_id}}", self._retrieve_file),
            web.delete(f"{files}/{{file_id}}", self._delete_file),
            web.get(f"{files}/{{file_id}}/content", self._file_content),
            web.post(jobs, self._create_job),
            web.get(jobs, self._list_jobs),
            web.get(f"{jobs}/{{job_id}}", self._retrieve_job),
            web.post(f"{jobs}/{{job_id}}/cancel", self._cancel_job),
            web.get(f"{jobs}/{{job_id}}/events", self._list_events),
            web.get(f"{jobs}/{{job_id}}/checkpoints", self._list_checkpoints),
            web.post(f"{self.files_prefix}/batches", self._create_batch),
            web.get(f"{self.files_prefix}/batches", self._list_batches),
            web.get(f"{self.files_prefix}/batches/{{batch_id}}", self._retrieve_batch),
            web.post(f"{self.files_prefix}/batches/{{batch_id}}/cancel", self._cancel_batch),
        ]

    # --- batches -----------------------------------------------------------------------------------

    async def _create_batch(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        body = recorded.json if isinstance(recorded.json, dict) else {}
        if body.get("input_file_id") not in self.book.files:
            return self.error(
                400, f"invalid input_file_id: {body.get('input_file_id')}", param="input_file_id"
            )
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        created = self.book.tick()
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": created,
            "expires_at": created + 86400,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch_id] = batch
        return json_response(batch)

    def complete_batch(self, batch_id: str, usage: tuple[int, int] = (10, 5)) -> JSON:
        """Run a batch at once: one answer per input line (a chat completion, or an embedding list,
        each reporting ``usage``) in a new output file, and the batch ``completed``."""
        batch = self.batches[batch_id]
        lines = [
            orjson.loads(raw)
            for raw in self.book.files[batch["input_file_id"]].content.splitlines()
            if raw.strip()
        ]
        prompt, completion = usage
        out = []
        for line in lines:
            model = line["body"].get("model")
            body: JSON = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
            response = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": body}
            out.append(
                {
                    "id": f"batch_req_{uuid.uuid4().hex[:12]}",
                    "custom_id": line["custom_id"],
                    "response": response,
                    "error": None,
                }
            )
        output = self.book.add_file(
            self.new_file_id(),
            "batch_output.jsonl",
            "batch_output",
            b"".join(orjson.dumps(o) + b"\n" for o in out),
        )
        batch.update(
            status="completed",
            output_file_id=output.id,
            completed_at=self.book.tick(),
            request_counts={"total": len(lines), "completed": len(lines), "failed": 0},
        )
        return batch

    async def _list_batches(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        items = self.book.newest_first(list(self.batches.values()))
        data, has_more = _page(items, request.query.get("after"), _limit(request, 20))
        return json_response({"object": "list", "data": data, "has_more": has_more})

    async def _retrieve_batch(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return self.error(404, f"No batch found with id '{request.match_info['batch_id']}'.")
        return json_response(batch)

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return self.error(404, f"No batch found with id '{request.match_info['batch_id']}'.")
        batch.update(status="cancelling", cancelled_at=self.book.tick())
        return json_response(batch)

    # --- wire-format hooks (Azure overrides) ----------------------------------------------------

    def error(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> web.Response:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return json_response(
            {"error": {"message": message, "type": kind, "param": param, "code": code}}, status
        )

    def missing_file(self, file_id: str) -> web.Response:
        return self.error(404, f"No such File object: {file_id}", param="id")

    def missing_job(self, job_id: str) -> web.Response:
        return self.error(
            404, f"Could not find fine tune: {job_id}", code="fine_tune_not_found", param="fine_tune_id"
        )

    def file_object(self, stored: StoredFile) -> JSON:
        return {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.content),
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }

    def job_view(self, job: JSON) -> JSON:
        return dict(job)

    def new_file_id(self) -> str:
        return f"file-{uuid.uuid4().hex[:24]}"

    def new_job(self, body: JSON) -> JSON:
        given = body.get("hyperparameters") or {}
        hyperparameters = {
            key: given.get(key, "auto") for key in ("batch_size", "learning_rate_multiplier", "n_epochs")
        }
        return {
            "id": f"ftjob-{uuid.uuid4().hex[:24]}",
            "object": "fine_tuning.job",
            "model": body["model"],
            "created_at": self.book.tick(),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": self.organization,
            "result_files": [],
            "status": "validating_files",
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "hyperparameters": hyperparameters,
            "trained_tokens": None,
            "error": None,
            "seed": body.get("seed", 42),
            "estimated_finish": None,
            "integrations": body.get("integrations"),
            "user_provided_suffix": body.get("suffix"),
            "metadata": body.get("metadata"),
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        }

    def fine_tuned_name(self, job: JSON) -> str:
        return (
            f"ft:{job['model']}:{self.organization}:{job.get('user_provided_suffix') or ''}:{job['id'][-8:]}"
        )

    def status_after(self, event: str) -> str:
        """The status the provider shows for ``event`` (queued, running, succeeded, failed, cancelled)."""
        return event

    def check_call(self, request: web.Request, endpoint: str) -> web.Response | None:
        denied = super().check_call(request, endpoint)
        if denied is not None:
            return denied
        body = self.requests[-1].json if self.requests else None
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model.startswith("ft:") and model not in self.models:
            return self.error(
                404, f"The model `{model}` does not exist", code="model_not_found", param="model"
            )
        return None

    # --- test controls ----------------------------------------------------------------------------

    def set_running(self, job_id: str) -> None:
        """Move a job to running."""
        self._set_status(job_id, "running")
        self.book.event(job_id, "Fine-tuning job started")

    def succeed(self, job_id: str, trained_tokens: int = 4096) -> str:
        """Finish a job successfully; returns the fine-tuned model's name, which chat now answers."""
        job = self.book.jobs[job_id]
        name = self.fine_tuned_name(job)
        results = self.book.add_file(
            self.new_file_id(), "step_metrics.csv", "fine-tune-results", b"step,loss\n"
        )
        self._set_status(job_id, "succeeded")
        job.update(
            fine_tuned_model=name,
            finished_at=self.book.tick(),
            trained_tokens=trained_tokens,
            result_files=[results.id],
        )
        self.book.checkpoints[job_id] = [
            {
                "id": f"ftckpt-{uuid.uuid4().hex[:24]}",
                "object": "fine_tuning.job.checkpoint",
                "created_at": self.book.tick(),
                "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{step}",
                "fine_tuning_job_id": job_id,
                "step_number": step,
                "metrics": {"step": float(step), "train_loss": 1.0 / step},
            }
            for step in (10, 20, 30)
        ][::-1]
        self.book.event(job_id, f"New fine-tuned model created: {name}")
        self.book.event(job_id, "The job has successfully completed")
        self.models.append(name)
        return name

    def fail(self, job_id: str, message: str = "training file has too few examples") -> None:
        job = self.book.jobs[job_id]
        self._set_status(job_id, "failed")
        job.update(
            finished_at=self.book.tick(),
            error={"code": "invalid_training_file", "message": message, "param": "training_file"},
        )
        self.book.event(job_id, f"Job failed: {message}", "error")

    def _set_status(self, job_id: str, event: str) -> None:
        self.book.jobs[job_id]["status"] = self.status_after(event)

    # --- files ------------------------------------------------------------------------------------

    def _guard(self, request: web.Request) -> web.Response | None:
        """A scripted reply (:meth:`enqueue`) wins; then the provider's access checks."""
        reply = self.next_reply(request.path)
        if reply is not None and (reply.json is not None or reply.body is not None or reply.status >= 300):
            return raw_response(reply)
        return self.check_access(request)

    def check_access(self, request: web.Request) -> web.Response | None:
        return self.check_auth(request)

    async def _create_file(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        fields, files = parse_multipart(request.headers.get("content-type", ""), recorded.body)
        unknown = sorted(set(fields) - {"purpose", "expires_after"})
        if unknown:
            return self.error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        if "file" not in files or not fields.get("purpose"):
            return self.error(400, "'file' and 'purpose' are required", param="file")
        filename, content = files["file"]
        stored = self.book.add_file(self.new_file_id(), filename, fields["purpose"], content)
        return json_response(self.file_object(stored))

    async def _list_files(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        purpose = request.query.get("purpose")
        items = [self.file_object(f) for f in self.book.files.values() if purpose in (None, f.purpose)]
        items = self.book.newest_first(items)
        if request.query.get("order") == "asc":
            items.reverse()
        data, has_more = _page(items, request.query.get("after"), _limit(request, 10_000))
        return json_response({"object": "list", "data": data, "has_more": has_more})

    async def _retrieve_file(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        stored = self.book.files.get(request.match_info["file_id"])
        if stored is None:
            return self.missing_file(request.match_info["file_id"])
        return json_response(self.file_object(stored))

    async def _delete_file(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        file_id = request.match_info["file_id"]
        if self.book.files.pop(file_id, None) is None:
            return self.missing_file(file_id)
        return json_response({"id": file_id, "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        stored = self.book.files.get(request.match_info["file_id"])
        if stored is None:
            return self.missing_file(request.match_info["file_id"])
        return web.Response(body=stored.content, content_type="application/octet-stream")

    # --- jobs -------------------------------------------------------------------------------------

    async def _create_job(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        body = recorded.json
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request.")
        unknown = sorted(set(body) - _JOB_FIELDS)
        if unknown:
            return self.error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        if not isinstance(body.get("model"), str):
            return self.error(400, "Missing required parameter: 'model'.", param="model")
        for param in ("training_file", "validation_file"):
            file_id = body.get(param)
            if file_id is None and param == "validation_file":
                continue
            if file_id not in self.book.files:
                return self.error(400, f"invalid {param}: {file_id}", code="invalid_file", param=param)
        job = self.new_job(body)
        self.book.jobs[job["id"]] = job
        self.book.event(job["id"], f"Created fine-tuning job: {job['id']}")
        self.book.event(job["id"], f"Validating training file: {body['training_file']}")
        return json_response(self.job_view(job))

    async def _list_jobs(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        items = self.book.newest_first([self.job_view(job) for job in self.book.jobs.values()])
        data, has_more = _page(items, request.query.get("after"), _limit(request, 20))
        return json_response({"object": "list", "data": data, "has_more": has_more})

    async def _find_job(self, request: web.Request) -> JSON | web.Response:
        """The job a request names, or the response refusing the request."""
        await self.record(request)
        denied = self._guard(request)
        if denied is not None:
            return denied
        job = self.book.jobs.get(request.match_info["job_id"])
        return job if job is not None else self.missing_job(request.match_info["job_id"])

    async def _retrieve_job(self, request: web.Request) -> web.Response:
        job = await self._find_job(request)
        return job if isinstance(job, web.Response) else json_response(self.job_view(job))

    async def _cancel_job(self, request: web.Request) -> web.Response:
        job = await self._find_job(request)
        if isinstance(job, web.Response):
            return job
        if self._terminal(job):
            return self.error(400, f"Job {job['id']} has already finished and cannot be cancelled.")
        self._set_status(job["id"], "cancelled")
        job["finished_at"] = self.book.tick()
        self.book.event(job["id"], "Fine-tuning job cancelled", "warn")
        return json_response(self.job_view(job))

    def _terminal(self, job: JSON) -> bool:
        return job["status"] in {self.status_after(status) for status in _TERMINAL}

    async def _list_events(self, request: web.Request) -> web.Response:
        job = await self._find_job(request)
        if isinstance(job, web.Response):
            return job
        events = self.book.events.get(job["id"], [])
        data, has_more = _page(events, request.query.get("after"), _limit(request, 20))
        return json_response({"object": "list", "data": data, "has_more": has_more})

    async def _list_checkpoints(self, request: web.Request) -> web.Response:
        job = await self._find_job(request)
        if isinstance(job, web.Response):
            return job
        checkpoints = self.book.checkpoints.get(job["id"], [])
        data, has_more = _page(checkpoints, request.query.get("after"), _limit(request, 10))
        body: JSON = {"object": "list", "data": data, "has_more": has_more}
        if data:
            body.update(first_id=data[0]["id"], last_id=data[-1]["id"])
        return json_response(body)


# --- Azure OpenAI --------------------------------------------------------------------------------

_AZURE_STATUS = {
    "queued": "pending",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


class FakeAzureFineTuning(FakeOpenAIFineTuning, FakeAzureOpenAI):
    """Azure OpenAI's ``/openai/files`` and ``/openai/fine_tuning/jobs`` (``api-version`` + ``api-key``).

    Azure's own shapes: files start ``pending`` and read ``processed`` afterwards, jobs go
    ``pending`` -> ``running`` -> ``succeeded``, an empty ``error`` object on every job, no
    ``organization_id``, fine-tuned models named ``{model}.ft-{id}-{suffix}``. Chat works only for
    deployments added with :meth:`deploy` (Azure serves a fine-tuned model once it is deployed).
    """

    files_prefix = "/openai"

    def __init__(self, **kwargs: Any) -> None:
        self.processed_files: set[str] = set()
        super().__init__(deployments=(), **kwargs)

    def deploy(self, deployment: str) -> None:
        """Make ``deployment`` (a fine-tuned model deployed under that name) answer chat completions."""
        assert self.deployments is not None
        self.deployments.add(deployment)

    def check_call(self, request: web.Request, endpoint: str) -> web.Response | None:
        return FakeAzureOpenAI.check_call(self, request, endpoint)

    def check_access(self, request: web.Request) -> web.Response | None:
        if "api-version" not in request.query:
            return json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
        return self.check_auth(request)

    def error(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> web.Response:
        azure_code = {400: "invalidPayload", 404: "NotFound"}.get(status, str(status))
        return json_response({"error": {"code": azure_code, "message": message, "target": param}}, status)

    def missing_file(self, file_id: str) -> web.Response:
        return self.error(404, f"File with id={file_id} was not found.")

    def missing_job(self, job_id: str) -> web.Response:
        return self.error(404, f"The specified fine-tuning job '{job_id}' was not found.")

    def new_file_id(self) -> str:
        return f"file-{uuid.uuid4().hex}"

    def file_object(self, stored: StoredFile) -> JSON:
        view = {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.content),
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "status": "processed" if stored.id in self.processed_files else "pending",
        }
        self.processed_files.add(stored.id)  # Azure processes an upload shortly after accepting it
        return view

    def new_job(self, body: JSON) -> JSON:
        job = super().new_job(body)
        job["id"] = f"ftjob-{uuid.uuid4().hex}"
        job["status"] = "pending"
        job["hyperparameters"] = {k: v for k, v in (body.get("hyperparameters") or {}).items()}
        job["seed"] = body.get("seed", 123)
        job["suffix"] = job.pop("user_provided_suffix")
        for key in ("organization_id", "method", "metadata", "result_files"):
            job.pop(key)
        job["error"] = {}
        return job

    def job_view(self, job: JSON) -> JSON:
        return {**job, "result_files": job.get("result_files")}

    def status_after(self, event: str) -> str:
        return _AZURE_STATUS[event]

    def fine_tuned_name(self, job: JSON) -> str:
        suffix = f"-{job['suffix']}" if job.get("suffix") else ""
        return f"{job['model']}.ft-{job['id'].removeprefix('ftjob-')}{suffix}"

    def fail(self, job_id: str, message: str = "training file has too few examples") -> None:
        super().fail(job_id, message)
        self.book.jobs[job_id]["error"] = {"code": "invalidTrainingFile", "message": message}


# --- Vertex AI + Cloud Storage -------------------------------------------------------------------

_TUNING_FIELDS = frozenset(
    {"baseModel", "supervisedTuningSpec", "tunedModelDisplayName", "description", "labels"}
)
_SPEC_FIELDS = frozenset(
    {"trainingDatasetUri", "validationDatasetUri", "hyperParameters", "exportLastCheckpointOnly"}
)
_HYPER_FIELDS = frozenset({"epochCount", "learningRateMultiplier", "adapterSize"})
_VERTEX_TERMINAL = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"})


def rfc3339(seconds: int) -> str:
    """Google's timestamp format, with nanoseconds as the API sends them."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


class FakeVertexFineTuning(FakeGemini):
    """Vertex AI tuning jobs and the Cloud Storage JSON API, on top of :class:`FakeGemini`.

    * ``POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=...``; ``GET`` (list, metadata,
      ``?alt=media``) and ``DELETE`` under ``/storage/v1/b/{bucket}/o``. Only ``buckets`` exist.
    * ``/v1/projects/{project}/locations/{location}/tuningJobs`` create / list / get / ``:cancel``.
      The training dataset must be an existing ``gs://`` object whose lines are Gemini examples.
    * Tuned endpoints answer ``generateContent`` once their job :meth:`succeed` ed.

    Authentication is a bearer token from ``tokens`` (share :class:`FakeGoogleToken`'s ``issued``).
    """

    def __init__(
        self,
        *,
        project: str = "fake-project",
        location: str = "us-central1",
        buckets: tuple[str, ...] = ("routerd-test",),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.location = location
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], JSON] = {}
        self.contents: dict[tuple[str, str], bytes] = {}
        self.jobs: dict[str, JSON] = {}
        self.tuned_endpoints: set[str] = set()
        self.now = EPOCH
        self._next_id = 7_000_000_000_000_000_000

    def routes(self) -> list[web.RouteDef]:
        jobs = "/v1/projects/{project}/locations/{location}/tuningJobs"
        return [
            web.post("/upload/storage/v1/b/{bucket}/o", self._upload),
            web.get("/storage/v1/b/{bucket}/o", self._list_objects),
            web.get("/storage/v1/b/{bucket}/o/{name:.+}", self._get_object),
            web.delete("/storage/v1/b/{bucket}/o/{name:.+}", self._delete_object),
            web.post(jobs, self._create_job),
            web.get(jobs, self._list_jobs),
            web.get(f"{jobs}/{{job}}", self._get_job),
            web.post(f"{jobs}/{{action}}", self._job_action),
            *super().routes(),
        ]

    def tick(self) -> int:
        self.now += 1
        return self.now

    def _job_name(self, job_id: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/tuningJobs/{job_id}"

    @property
    def jobs_prefix(self) -> str:
        return f"/v1/projects/{self.project}/locations/{self.location}/tuningJobs"

    # --- test controls ----------------------------------------------------------------------------

    def set_running(self, job_id: str) -> None:
        job = self.jobs[job_id]
        job.update(state="JOB_STATE_RUNNING", startTime=rfc3339(self.tick()), updateTime=rfc3339(self.now))

    def succeed(self, job_id: str, billable_tokens: int = 5000) -> str:
        """Finish a job; returns its tuned endpoint's resource name, which now answers generateContent."""
        job = self.jobs[job_id]
        number = str(9_000_000_000 + len(self.tuned_endpoints))
        endpoint = f"projects/{self.project}/locations/{self.location}/endpoints/{number}"
        end = self.tick()
        job.update(
            state="JOB_STATE_SUCCEEDED",
            endTime=rfc3339(end),
            updateTime=rfc3339(end),
            tunedModel={
                "model": f"projects/{self.project}/locations/{self.location}/models/{number}@1",
                "endpoint": endpoint,
                "checkpoints": [
                    {"checkpointId": str(i), "epoch": str(i), "step": str(10 * i), "endpoint": endpoint}
                    for i in (1, 2)
                ],
            },
            tuningDataStats={
                "supervisedTuningDataStats": {
                    "totalBillableTokenCount": str(billable_tokens),
                    "tuningDatasetExampleCount": "10",
                }
            },
        )
        self.tuned_endpoints.add(number)
        return endpoint

    def fail(self, job_id: str, message: str = "Training data is malformed.") -> None:
        end = self.tick()
        self.jobs[job_id].update(
            state="JOB_STATE_FAILED", endTime=rfc3339(end), error={"code": 3, "message": message}
        )

    # --- auth and errors -------------------------------------------------------------------------

    def _denied(self, request: web.Request) -> web.Response | None:
        return self._check_token(request)

    @staticmethod
    def _gcs_error(status: int, message: str) -> web.Response:
        return json_response(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"message": message, "reason": "notFound"}],
                }
            },
            status,
        )

    @staticmethod
    def _rpc_error(status: int, google_status: str, message: str) -> web.Response:
        return json_response(error_body(status, google_status, message), status)

    # --- Cloud Storage ---------------------------------------------------------------------------

    def _object_resource(self, bucket: str, name: str) -> JSON:
        return self.objects[(bucket, name)]

    async def _upload(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self._denied(request)
        if denied is not None:
            return denied
        bucket = request.match_info["bucket"]
        name = request.query.get("name")
        if request.query.get("uploadType") != "media" or not name:
            return self._gcs_error(400, "uploadType=media and name are required")
        if bucket not in self.buckets:
            return self._gcs_error(404, "The specified bucket does not exist.")
        created = rfc3339(self.tick())
        self.objects[(bucket, name)] = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{self.now}",
            "name": name,
            "bucket": bucket,
            "generation": str(self.now),
            "contentType": request.headers.get("content-type", "application/octet-stream"),
            "size": str(len(recorded.body)),
            "timeCreated": created,
            "updated": created,
        }
        self.contents[(bucket, name)] = recorded.body
        return json_response(self.objects[(bucket, name)])

    async def _list_objects(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request)
        if denied is not None:
            return denied
        bucket = request.match_info["bucket"]
        if bucket not in self.buckets:
            return self._gcs_error(404, "The specified bucket does not exist.")
        prefix = request.query.get("prefix", "")
        names = sorted(name for (b, name) in self.objects if b == bucket and name.startswith(prefix))
        start = int(request.query.get("pageToken") or 0)
        size = int(request.query.get("maxResults") or 1000)
        selected = names[start : start + size]
        body: JSON = {"kind": "storage#objects", "items": [self.objects[(bucket, n)] for n in selected]}
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return json_response(body)

    def _object_key(self, request: web.Request) -> tuple[str, str]:
        # The object name is one percent-encoded path segment; read it from the raw path so an encoded
        # "/" stays part of the name whatever the router decodes.
        raw_tail = request.raw_path.split("?", 1)[0].split("/o/", 1)[1]
        return request.match_info["bucket"], unquote(raw_tail)

    async def _get_object(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request)
        if denied is not None:
            return denied
        key = self._object_key(request)
        if key not in self.objects:
            return self._gcs_error(404, f"No such object: {key[0]}/{key[1]}")
        if request.query.get("alt") == "media":
            return web.Response(
                body=self.contents[key], content_type=self.objects[key]["contentType"].split(";")[0]
            )
        return json_response(self.objects[key])

    async def _delete_object(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request)
        if denied is not None:
            return denied
        key = self._object_key(request)
        if self.objects.pop(key, None) is None:
            return self._gcs_error(404, f"No such object: {key[0]}/{key[1]}")
        self.contents.pop(key, None)
        return web.Response(status=204)

    # --- tuning jobs -----------------------------------------------------------------------------

    def _check_scope(self, request: web.Request) -> web.Response | None:
        if (request.match_info["project"], request.match_info["location"]) != (self.project, self.location):
            return self._rpc_error(404, "NOT_FOUND", f"Project or location not found: {request.path}")
        return None

    def _check_dataset(self, uri: Any, field_name: str) -> str | None:
        if not isinstance(uri, str) or not uri.startswith("gs://"):
            return f"{field_name} must be a Cloud Storage URI (gs://...)"
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        content = self.contents.get((bucket, name))
        if content is None:
            return f"{field_name} {uri} does not exist"
        for number, line in enumerate(content.splitlines(), start=1):
            if line.strip() and "contents" not in orjson.loads(line):
                return f"{field_name} line {number} is not a Gemini tuning example"
        return None

    async def _create_job(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self._denied(request) or self._check_scope(request)
        if denied is not None:
            return denied
        body = recorded.json
        if not isinstance(body, dict):
            return self._rpc_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        spec = body.get("supervisedTuningSpec")
        unknown = (
            sorted(set(body) - _TUNING_FIELDS)
            or sorted(set(spec or {}) - _SPEC_FIELDS)
            or sorted(set((spec or {}).get("hyperParameters") or {}) - _HYPER_FIELDS)
        )
        if unknown:
            return self._rpc_error(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
            )
        if not isinstance(body.get("baseModel"), str) or not isinstance(spec, dict):
            return self._rpc_error(
                400, "INVALID_ARGUMENT", "baseModel and supervisedTuningSpec are required."
            )
        problem = self._check_dataset(spec.get("trainingDatasetUri"), "trainingDatasetUri")
        if problem is None and spec.get("validationDatasetUri") is not None:
            problem = self._check_dataset(spec["validationDatasetUri"], "validationDatasetUri")
        if problem is not None:
            return self._rpc_error(400, "INVALID_ARGUMENT", problem)
        self._next_id += 1
        job_id = str(self._next_id)
        stored_spec = dict(spec)
        if "hyperParameters" in spec:  # int64 fields come back as strings, as the real API sends them
            params = dict(spec["hyperParameters"])
            if "epochCount" in params:
                params["epochCount"] = str(params["epochCount"])
            stored_spec["hyperParameters"] = params
        created = rfc3339(self.tick())
        job = {
            "name": self._job_name(job_id),
            "tunedModelDisplayName": body.get("tunedModelDisplayName", f"{body['baseModel']}-tuned"),
            "baseModel": body["baseModel"],
            "supervisedTuningSpec": stored_spec,
            "state": "JOB_STATE_PENDING",
            "createTime": created,
            "updateTime": created,
        }
        self.jobs[job_id] = job
        return json_response(job)

    async def _list_jobs(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request) or self._check_scope(request)
        if denied is not None:
            return denied
        ordered = [self._settled(job_id) for job_id in sorted(self.jobs, reverse=True)]
        start = int(request.query.get("pageToken") or 0)
        size = _limit(request, 100)
        body: JSON = {"tuningJobs": ordered[start : start + size]}
        if start + size < len(ordered):
            body["nextPageToken"] = str(start + size)
        return json_response(body)

    def _settled(self, job_id: str) -> JSON:
        job = self.jobs[job_id]
        if job["state"] == "JOB_STATE_CANCELLING":  # Vertex finishes a cancel asynchronously
            end = rfc3339(self.tick())
            job.update(state="JOB_STATE_CANCELLED", endTime=end, updateTime=end)
        return job

    async def _get_job(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request) or self._check_scope(request)
        if denied is not None:
            return denied
        job_id = request.match_info["job"]
        if job_id not in self.jobs:
            return self._rpc_error(
                404, "NOT_FOUND", f'The TuningJob "{self._job_name(job_id)}" does not exist.'
            )
        return json_response(self._settled(job_id))

    async def _job_action(self, request: web.Request) -> web.Response:
        await self.record(request)
        denied = self._denied(request) or self._check_scope(request)
        if denied is not None:
            return denied
        job_id, _, action = request.match_info["action"].partition(":")
        if action != "cancel":
            return self._rpc_error(404, "NOT_FOUND", f"{request.path} is not found")
        job = self.jobs.get(job_id)
        if job is None:
            return self._rpc_error(
                404, "NOT_FOUND", f'The TuningJob "{self._job_name(job_id)}" does not exist.'
            )
        if job["state"] in _VERTEX_TERMINAL:
            return self._rpc_error(
                400, "FAILED_PRECONDITION", f"Cannot cancel TuningJob in state {job['state']}."
            )
        job.update(state="JOB_STATE_CANCELLING", updateTime=rfc3339(self.tick()))
        return json_response({})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # Tuned endpoints exist only once their job succeeded.
        marker = "/endpoints/"
        if marker in request.path:
            endpoint = request.path.split(marker, 1)[1].split(":", 1)[0]
            if endpoint not in self.tuned_endpoints:
                await self.record(request)
                return self._rpc_error(404, "NOT_FOUND", f"Endpoint {endpoint} is not found.")
        return await super()._dispatch(request)
