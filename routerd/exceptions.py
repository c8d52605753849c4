"""The exception classes under LiteLLM's ``litellm.exceptions`` path.

They are the classes the SDK raises (``routerd.RateLimitError`` ...: :mod:`routerd.errors` classes that
also subclass ``openai``'s, see :mod:`routerd.sdk.errors`), built on first access like ``routerd``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routerd.errors import (
        APIConnectionError,
        APIError,
        AuthenticationError,
        BadGatewayError,
        BadRequestError,
        ContentPolicyViolationError,
        ContextWindowExceededError,
        InternalServerError,
        NotFoundError,
        OpenAIError,
        PermissionDeniedError,
        RateLimitError,
        RequestTooLargeError,
        RouterdError,
        ServiceUnavailableError,
        Timeout,
        UnprocessableEntityError,
        UnsupportedParamsError,
    )

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
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
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'routerd.exceptions' has no attribute {name!r}")
    from routerd.sdk.errors import exported

    value = exported(name)
    globals()[name] = value
    return value
