"""routerd's one exception tree.

Every error a client can see is an :class:`OpenAIError` (an error in OpenAI's shape). Each class knows the HTTP status routerd answers
with, the OpenAI error ``type`` and ``code`` it carries, whether the router may retry it on another
deployment (``retryable``), and whether it counts against the deployment that raised it (``cools_down``).
Retryability is decided by class, never by matching message strings.

The classes here do not depend on the ``openai`` package, so the daemon and ``routerd check`` never
import it. The SDK raises the same errors as classes that also subclass ``openai``'s matching
exceptions (built on first use by :mod:`routerd.sdk.errors`, and exported as ``routerd.RateLimitError``
etc.), so code written as ``except openai.RateLimitError`` keeps working against routerd's SDK and
``except routerd.errors.RateLimitError`` catches both. In the tree below, ``(openai.X)`` is that SDK
parent::

    RouterdError
    ├── ConfigError                      a routing file that does not load/validate/compile
    └── OpenAIError (openai.APIError)            500 api_error   the base routerd's own code catches
        ├── APIError (openai.APIError)                    500 api_error   the generic error, LiteLLM's APIError
        ├── BadRequestError (openai.BadRequestError)       400 invalid_request_error
        │   ├── ContextWindowExceededError                 400 code=context_length_exceeded
        │   ├── ContentPolicyViolationError                400 code=content_policy_violation
        │   └── UnsupportedParamsError                     400 code=unsupported_parameter
        ├── MethodNotAllowedError                          405
        ├── RequestTooLargeError                           413
        ├── UnprocessableEntityError (openai.Unprocessable) 422
        ├── AuthenticationError (openai.AuthenticationError)      401  cools down (upstream: misconfigured)
        ├── PermissionDeniedError (openai.PermissionDeniedError)  403  cools down
        ├── NotFoundError (openai.NotFoundError)                  404  cools down when upstream
        ├── RateLimitError (openai.RateLimitError)                429  retryable, cools down
        ├── InternalServerError (openai.InternalServerError)      500  retryable, cools down
        │   ├── BadGatewayError                                   502  upstream 5xx / garbage
        │   └── ServiceUnavailableError                           503  retryable, cools down
        ├── APIConnectionError (openai.APIConnectionError)        502  retryable, cools down
        │   └── Timeout (openai.APITimeoutError)                  504  retryable, cools down

As in LiteLLM, :class:`APIError` is the generic 500-ish error, a *sibling* of :class:`RateLimitError`,
:class:`BadRequestError`, ... : ``except routerd.APIError`` placed first does not catch a rate limit.
routerd's own code catches their common base, :class:`OpenAIError`; SDK users catch every one of
them with ``except openai.APIError`` (or ``except routerd.OpenAIError``), as with LiteLLM.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ConfigError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "MethodNotAllowedError",
    "NotFoundError",
    "OpenAIError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RouterdError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "error_for_request_status",
    "error_for_status",
]

_ROUTERD_URL = "http://routerd.invalid/"


def _httpx_module() -> Any:
    """The HTTP library whose ``Request``/``Response`` ``openai``'s exceptions carry: ``httpx2`` from
    openai 3 on, ``httpx`` before (routerd supports both, see docs/sdk.md); ``httpx2`` when openai
    is not loaded (the daemon), ``httpx`` when ``httpx2`` is not installed."""
    openai = sys.modules.get("openai")
    major = str(getattr(openai, "__version__", "3")).split(".", 1)[0]
    if major not in {"0", "1", "2"}:
        try:
            import httpx2

            return httpx2
        except ImportError:
            pass
    import httpx

    return httpx


class RouterdError(Exception):
    """Root of everything routerd raises on purpose."""


class ConfigError(RouterdError):
    """A routing file that failed to load, validate or compile.

    ``issues`` holds every problem found (objects with ``file``, ``line``, ``col``, ``path``,
    ``message``); ``str()`` renders them one per line as ``file:line:col: yaml.path: message``.
    """

    def __init__(self, issues: list[Any]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues) or "invalid configuration")


class OpenAIError(RouterdError):
    """An error in OpenAI's shape: the base of every API error. Subclasses set the status, type, code
    and retry semantics; raise :class:`APIError` for a generic error, never this base itself.

    Building one costs what a plain exception costs: the OpenAI body and the ``httpx2`` request and
    response that ``openai``'s exceptions carry are built only when read (``body``, ``request``,
    ``response``), which is rare; errors raised and caught between retries never build them.
    """

    status_code: int = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    cools_down: ClassVar[bool] = False
    request_id: str | None
    # How the call was routed (a routerd.routing.types.RoutingInfo), attached by the router to errors it
    # raises so the server can still set x-routerd-* headers on error responses.
    routing: Any = None
    # LiteLLM's attributes, filled in on errors the SDK raises (routerd.sdk.engine.sdk_error)
    litellm_debug_info: str | None = None
    num_retries: int | None = None
    max_retries: int | None = None

    def __init__(
        self,
        message: str,
        *,
        llm_provider: str | None = None,
        model: str | None = None,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        deployment_id: str | None = None,
        upstream_status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # openai's constructors want a live httpx2 response; routerd errors may come from no response
        # at all (a refused connection, our own validation), so the attributes are set directly.
        Exception.__init__(self, message)
        self._request: httpx2.Request | None = None
        self._response: httpx2.Response | None = None
        if status_code is not None:
            self.status_code = status_code
        self.message = message
        self.llm_provider = llm_provider
        self.model = model
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.deployment_id = deployment_id
        self.upstream_status = upstream_status
        self.headers = dict(headers or {})
        self.request_id: str | None = None

    @property
    def type(self) -> str:
        """OpenAI's error ``type``: the class's :attr:`error_type` (one attribute, never two)."""
        return self.error_type

    @property
    def body(self) -> dict[str, Any]:
        """The ``error`` object of :meth:`to_dict` (what ``openai``'s exceptions call ``body``)."""
        error: dict[str, Any] = self.to_dict()["error"]
        return error

    @property
    def request(self) -> httpx2.Request:
        """A placeholder request (``httpx2``'s, or ``httpx``'s under openai < 3) for code that reads
        ``openai``'s attribute; built on use."""
        request: httpx2.Request | None = getattr(self, "_request", None)  # None too on a copy
        if request is None:
            request = self._request = _httpx_module().Request("POST", _ROUTERD_URL)
        return request

    @property
    def response(self) -> httpx2.Response:
        """A response with this error's status (``httpx2``'s, or ``httpx``'s under openai < 3), for
        ``openai``'s attribute; built on use."""
        response: httpx2.Response | None = getattr(self, "_response", None)
        if response is None:
            response = self._response = _httpx_module().Response(self.status_code, request=self.request)
        return response

    def __str__(self) -> str:
        prefix = f"routerd.{type(self).__name__}"
        where = "".join(
            f" {name}={value}"
            for name, value in (("provider", self.llm_provider), ("model", self.model))
            if value
        )
        return f"{prefix}:{where} {self.message}" if where else f"{prefix}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response_headers(self) -> dict[str, str]:
        """Headers the HTTP answer carries: ``Retry-After`` when we know when to come back."""
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, int(self.retry_after + 0.999)))
        return headers


class APIError(OpenAIError):
    """The generic error (500, ``api_error``): a failure no more specific class describes.

    LiteLLM's ``APIError``: a sibling of :class:`RateLimitError` and the others, not their base.
    """


class BadRequestError(OpenAIError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextWindowExceededError(BadRequestError):
    default_code = "context_length_exceeded"


class ContentPolicyViolationError(BadRequestError):
    default_code = "content_policy_violation"


class UnsupportedParamsError(BadRequestError):
    default_code = "unsupported_parameter"


class MethodNotAllowedError(OpenAIError):
    """A route that exists, called with a method it does not serve (``GET /v1/chat/completions``)."""

    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTooLargeError(OpenAIError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnprocessableEntityError(OpenAIError):
    status_code = 422
    error_type = "invalid_request_error"


class AuthenticationError(OpenAIError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"
    cools_down = True


class PermissionDeniedError(OpenAIError):
    status_code = 403
    error_type = "permission_error"
    cools_down = True


class NotFoundError(OpenAIError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"
    cools_down = True


class RateLimitError(OpenAIError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True
    cools_down = True


class InternalServerError(OpenAIError):
    status_code = 500
    error_type = "api_error"
    retryable = True
    cools_down = True


class BadGatewayError(InternalServerError):
    status_code = 502
    default_code = "upstream_error"


class ServiceUnavailableError(InternalServerError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class APIConnectionError(OpenAIError):
    status_code = 502
    error_type = "api_connection_error"
    default_code = "upstream_connection_error"
    retryable = True
    cools_down = True


class Timeout(APIConnectionError):
    status_code = 504
    error_type = "timeout"
    default_code = "upstream_timeout"


# Upstream statuses that have a class of their own; the rest of 4xx are bad requests, the rest of 5xx
# bad gateways.
_BY_STATUS: dict[int, type[OpenAIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: Timeout,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: Timeout,
    529: ServiceUnavailableError,  # Anthropic's "overloaded"
}


def error_for_status(status: int) -> type[OpenAIError]:
    """The error class for an upstream HTTP status (see :func:`error_for_request_status` for ours)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return BadRequestError
    return BadGatewayError


def error_for_request_status(status: int) -> type[OpenAIError]:
    """The error class for a status routerd answers a client's malformed request with (a 4xx from
    the HTTP layer: no route, wrong method, body too large, ...), each with its OpenAI ``type``."""
    if status == 405:
        return MethodNotAllowedError
    if status == 408:
        return BadRequestError  # the client was too slow sending: its request, not an upstream timeout
    return error_for_status(status) if 400 <= status < 500 else InternalServerError
