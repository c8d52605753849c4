"""OpenAI's Files API: ``/v1/files`` create, list, retrieve, delete and ``/{file_id}/content``.

The provider comes from ``custom_llm_provider`` (form field, query string or ``custom-llm-provider``
header; default ``openai``) and must have a ``files_settings`` entry. Fine-tuning uploads
(``purpose=fine-tune``) are checked line by line before anything is sent upstream.

The master key may do everything. A client key may upload batch input files (``purpose=batch``, no
``custom_llm_provider``) and read or delete its own uploads, and fetch the output and error files of
its gateway batches (from the deployment that ran them, the output's answers checked by the batch's
post_call guardrails; see :mod:`routerd.server.batch_gateway`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from routerd.errors import BadRequestError, NotFoundError, RequestTooLargeError
from routerd.finetune.serving import PROVIDER_FIELD, PROVIDER_HEADER, ManagementCall, handle
from routerd.finetune.types import FILES, FileUpload
from routerd.finetune.validation import file_list_query, purpose_value
from routerd.server import batch_gateway
from routerd.server.batch_registry import GatewayBatch

Work = Callable[[ManagementCall], Awaitable[Any]]
OutputWork = Callable[[ManagementCall, GatewayBatch], Awaitable[Any]]

_MAX_FORM_FIELDS = 20
_MAX_FIELD_BYTES = 64 * 1024


async def read_form(request: Request, limit: int, *, max_files: int = 1) -> FormData:
    """The multipart form, refusing a body over ``limit`` bytes as it streams in (and by its header)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequestError(
            "upload a file as multipart/form-data with fields 'file' and 'purpose'",
            code="invalid_request_body",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"upload of {declared} bytes exceeds the {limit}-byte limit")
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestTooLargeError(f"upload exceeds the {limit}-byte limit")
        return message

    counted = Request(request.scope, counting_receive)
    try:
        return await counted.form(
            max_files=max_files, max_fields=_MAX_FORM_FIELDS, max_part_size=_MAX_FIELD_BYTES
        )
    except HTTPException as exc:  # malformed multipart
        raise BadRequestError(
            f"malformed multipart body: {exc.detail}", code="invalid_request_body"
        ) from None


async def _upload(form: FormData) -> FileUpload:
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise BadRequestError(
            "missing required file field 'file'", param="file", code="missing_required_parameter"
        )
    content = await file.read()
    return FileUpload(
        filename=file.filename or "upload.jsonl",
        content=content,
        purpose=purpose_value(form.get("purpose")),
        content_type=file.content_type or "application/octet-stream",
    )


async def create_file(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        caller = batch_gateway.caller_of(call.state, request.headers)
        form = await read_form(request, call.state.max_body_bytes)
        try:
            named = _named(request, form.get(PROVIDER_FIELD))
            if not caller.admin and (named is not None or form.get("purpose") != "batch"):
                batch_gateway.require_admin(caller, "uploading a file other than a gateway batch input")
            provider = call.choose_provider(named)
            client = call.client(provider)
            upload = await _upload(form)
        finally:
            await form.close()
        created = await client.create_file(upload)
        if upload.purpose == "batch" and named is None and isinstance(created.get("id"), str):
            await batch_gateway.registry(call.state).add_file(created["id"], caller.owner)
        return created

    return await handle(request, FILES, "create", work, keyed=True)


def _named(request: Request, from_form: Any = None) -> Any:
    raw = from_form if isinstance(from_form, str) and from_form else None
    return raw or request.query_params.get(PROVIDER_FIELD) or request.headers.get(PROVIDER_HEADER) or None


async def list_files(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        caller = batch_gateway.caller_of(call.state, request.headers)
        batch_gateway.require_admin(caller, "listing files")
        query = file_list_query(request.query_params)
        return await call.client(call.choose_provider()).list_files(query)

    return await handle(request, FILES, "list", work, keyed=True)


async def _file_work(
    request: Request, operation: str, own: Work, output: OutputWork | None = None
) -> Response:
    """A file operation: on a gateway batch's output or error file (``output``, from its deployment),
    or on an uploaded file (``own``; a client key only on its own uploads, through the gateway)."""

    async def work(call: ManagementCall) -> Any:
        caller = batch_gateway.caller_of(call.state, request.headers)
        file_id = request.path_params["file_id"]
        named = _named(request)
        if named is None and output is not None:
            batch = await batch_gateway.batch_of_file(call.state, file_id, caller)
            if batch is not None:
                return await output(call, batch)
        if not caller.admin:
            if named is not None:
                batch_gateway.require_admin(caller, "a provider-level file call (custom_llm_provider)")
            if await batch_gateway.registry(call.state).file_owner(file_id) != caller.owner:
                raise NotFoundError(
                    f"No such File object: {file_id[:128]}", param="file_id", code="file_not_found"
                )
        return await own(call)

    return await handle(request, FILES, operation, work, keyed=True)


async def retrieve_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]

    async def own(call: ManagementCall) -> Any:
        return await call.client(call.choose_provider()).retrieve_file(file_id)

    async def output(call: ManagementCall, batch: GatewayBatch) -> Any:
        return await batch_gateway.output_file(call, batch, file_id)

    return await _file_work(request, "retrieve", own, output)


async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]

    async def own(call: ManagementCall) -> Any:
        deleted = await call.client(call.choose_provider()).delete_file(file_id)
        await batch_gateway.registry(call.state).forget_file(file_id)
        return deleted

    return await _file_work(request, "delete", own)


async def file_content(request: Request) -> Response:
    file_id = request.path_params["file_id"]

    async def own(call: ManagementCall) -> Any:
        content = await call.client(call.choose_provider()).file_content(file_id)
        return Response(content.content, media_type=content.content_type)

    async def output(call: ManagementCall, batch: GatewayBatch) -> Any:
        content = await batch_gateway.output_content(call, batch, file_id)
        return Response(content.content, media_type=content.content_type)

    return await _file_work(request, "content", own, output)


def files_routes() -> list[BaseRoute]:
    """The Files API routes, each with and without the ``/v1`` prefix."""
    routes: list[BaseRoute] = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/files", create_file, methods=["POST"]),
            Route(f"{prefix}/files", list_files, methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", retrieve_file, methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", delete_file, methods=["DELETE"]),
            Route(f"{prefix}/files/{{file_id}}/content", file_content, methods=["GET"]),
        ]
    return routes
