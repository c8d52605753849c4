"""OpenAI's Files API: ``/v1/files`` create, list, retrieve, delete and ``/{file_id}/content``.

The provider comes from ``custom_llm_provider`` (form field, query string or ``custom-llm-provider``
header; default ``openai``) and must have a ``files_settings`` entry. Fine-tuning uploads
(``purpose=fine-tune``) are checked line by line before anything is sent upstream.
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

from routerd.errors import BadRequestError, RequestTooLargeError
from routerd.finetune.serving import PROVIDER_FIELD, ManagementCall, handle
from routerd.finetune.types import FILES, FileUpload
from routerd.finetune.validation import file_list_query, purpose_value

Work = Callable[[ManagementCall], Awaitable[Any]]

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
        form = await read_form(request, call.state.max_body_bytes)
        try:
            provider = call.choose_provider(form.get(PROVIDER_FIELD))
            client = call.client(provider)
            upload = await _upload(form)
        finally:
            await form.close()
        return await client.create_file(upload)

    return await handle(request, FILES, "create", work)


async def list_files(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        query = file_list_query(request.query_params)
        return await call.client(call.choose_provider()).list_files(query)

    return await handle(request, FILES, "list", work)


async def retrieve_file(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        return await call.client(call.choose_provider()).retrieve_file(request.path_params["file_id"])

    return await handle(request, FILES, "retrieve", work)


async def delete_file(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        return await call.client(call.choose_provider()).delete_file(request.path_params["file_id"])

    return await handle(request, FILES, "delete", work)


async def file_content(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        client = call.client(call.choose_provider())
        content = await client.file_content(request.path_params["file_id"])
        return Response(content.content, media_type=content.content_type)

    return await handle(request, FILES, "content", work)


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
