"""Master-key authentication: ``Authorization: Bearer <key>`` or ``api-key: <key>``."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from routerd.errors import AuthenticationError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent, from either header OpenAI clients use (``headers``: lower-case names)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    api_key = headers.get("api-key") or headers.get("x-api-key")
    return api_key.strip() if api_key else None


def require_key(headers: Mapping[str, str], master_key: str | None) -> None:
    """Raise 401 unless ``headers`` carry ``master_key``; with no key configured everything passes."""
    if master_key is None:
        return
    key = presented_key(headers)
    # compare_digest takes constant time in the length of the expected key, so a timing probe learns
    # nothing about how much of a guess was right.
    if key is None or not hmac.compare_digest(key.encode(), master_key.encode()):
        raise AuthenticationError(
            "invalid or missing API key: send the routerd master key as 'Authorization: Bearer <key>'",
            code="invalid_api_key",
        )
