"""The one place errors become HTTP responses, in OpenAI's ``{"error": {...}}`` shape."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from routerd.errors import AuthenticationError, InternalServerError, OpenAIError, PermissionDeniedError

log = logging.getLogger("routerd.server")


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """The HTTP answer for ``exc``; unexpected exceptions become a 500 that reveals nothing internal."""
    if not isinstance(exc, OpenAIError):
        log.exception("unhandled error", exc_info=exc)
        exc = InternalServerError("routerd hit an internal error; see its log for details")
    body = exc.to_dict()
    if isinstance(exc, AuthenticationError | PermissionDeniedError) and exc.upstream_status is not None:
        body["error"].update(_upstream_credentials(exc))
    all_headers = {**exc.response_headers(), **(headers or {})}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, headers=all_headers, media_type="application/json"
    )


def _upstream_credentials(exc: OpenAIError) -> dict[str, str]:
    # The client's own key was fine: an upstream refused the gateway's credentials for one of its
    # deployments. Said plainly, so nobody rotates the wrong key.
    where = f"deployment {exc.deployment_id}" if exc.deployment_id else "a deployment"
    return {
        "message": f"upstream {exc.llm_provider or 'provider'} refused the credentials routerd has for {where}: "
        f"{exc.message}",
        "code": "upstream_authentication_error",
    }


def sse_error_event(exc: BaseException) -> bytes:
    """An in-band SSE error event, for failures after a stream's first byte went out."""
    body: dict[str, Any]
    if isinstance(exc, OpenAIError):
        body = exc.to_dict()
        body["error"]["status_code"] = exc.status_code
    else:
        log.exception("unhandled error in stream", exc_info=exc)
        body = InternalServerError("stream interrupted by an internal error").to_dict()
    return b"data: " + orjson.dumps(body) + b"\n\n"
