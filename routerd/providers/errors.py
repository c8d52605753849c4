"""Translating upstream failures into routerd's exception tree, shared by every adapter.

An upstream answers an error in one of many shapes: OpenAI's ``{"error": {"message", "type", "code"}}``,
Azure's variant of it (``code`` as a string status, ``innererror`` for content filtering), vLLM's
top-level ``{"object": "error", "message", ...}``, FastAPI's ``{"detail": ...}``, or a plain-text / HTML
page from a proxy in between. :class:`ErrorContext` turns any of them into the matching
:mod:`routerd.errors` class, carrying the provider, model, deployment id, the upstream status and the
delay the upstream asked for (``retry-after-ms`` / ``Retry-After``).

The class is chosen by HTTP status (:func:`routerd.errors.error_for_status`) and refined by the
error ``code`` the upstream gave. Upstream messages are bounded in length and scrubbed of anything
that looks like a credential: OpenAI's 401 message, for one, echoes part of the key it was sent.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.errors import (
    APIConnectionError,
    BadGatewayError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    OpenAIError,
    error_for_status,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_RETRY_AFTER",
    "MIN_SECRET_FRAGMENT",
    "ErrorContext",
    "parse_retry_after",
    "redact",
    "scrub",
]

#: upstream messages longer than this are cut (a proxy's HTML error page can be megabytes)
MAX_MESSAGE_CHARS = 1000
#: the longest wait an upstream may ask for, in seconds: ``Retry-After`` (and ``retry-after-ms``,
#: Google's ``retryDelay``) beyond it is cut to it, both for routerd's own back-off and for the
#: ``Retry-After`` relayed to clients. It matches the back-off's bound (``routing/backoff.py``).
MAX_RETRY_AFTER = 300.0
#: a run of this many consecutive characters of a deployment's key (or longer) found in an upstream
#: error is masked, so a key the upstream cut, masked in the middle or embedded in a longer token does
#: not leak either. Shorter runs are too likely to be ordinary words to mask.
MIN_SECRET_FRAGMENT = 8
# text longer than this is cut before it is scrubbed, so scrubbing a hostile body stays linear and small
_MAX_SCRUB_CHARS = MAX_MESSAGE_CHARS * 4

_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded", "string_above_max_length"})
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "responsibleaipolicyviolation"})

# Servers that report an overlong prompt without a code (vLLM, llama.cpp, TGI) only say so in the
# message. Matching text is limited to translating a 400 at this boundary; the router decides by class.
_CONTEXT_MESSAGE = re.compile(
    r"maximum context length|context length|context window|prompt is too long|too many tokens", re.I
)

# In-band (streamed) errors have no HTTP status of their own; their ``type`` says what they are.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "badrequesterror": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "api_error": 500,
    "service_unavailable": 503,
    "overloaded_error": 529,
    "timeout": 504,
}

# Credentials that upstream messages are known to echo (sometimes partly masked): OpenAI-style
# ``sk-...`` keys, Google ``AIza...`` keys, bearer tokens.
_SECRET_PATTERNS = re.compile(
    r"(?:\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{4,}|\bAIza[0-9A-Za-z_\-]{10,}|(?i:bearer)\s+[A-Za-z0-9_\-.=*]{8,})"
)
_WHITESPACE = re.compile(r"\s+")
_HTML_TAG = re.compile(r"<[^>]{0,200}>")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with the given secrets, and anything shaped like an API key, replaced by ``***``.

    A secret is masked whole, and so is any run of :data:`MIN_SECRET_FRAGMENT` or more of its
    consecutive characters (a key the upstream cut or embedded in a longer string).
    """
    secrets = tuple(secret for secret in secrets if secret and len(secret) >= 4)
    for secret in secrets:
        text = text.replace(secret, "***")
    # key-shaped tokens first: a fragment masked first could hide the prefix that identifies them
    text = _SECRET_PATTERNS.sub("***", text)
    for secret in secrets:
        if len(secret) >= MIN_SECRET_FRAGMENT:
            text = _mask_fragments(text, secret)
    return text


def _mask_fragments(text: str, secret: str) -> str:
    # every window of MIN_SECRET_FRAGMENT characters that occurs in the secret marks its span; runs of
    # marked characters become one "***". Linear in len(text) (a set lookup per position).
    width = MIN_SECRET_FRAGMENT
    if len(text) < width:
        return text
    grams = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    masked = [False] * len(text)
    found = False
    for i in range(len(text) - width + 1):
        if text[i : i + width] in grams:
            masked[i : i + width] = [True] * width
            found = True
    if not found:
        return text
    out: list[str] = []
    for i, char in enumerate(text):
        if not masked[i]:
            out.append(char)
        elif i == 0 or not masked[i - 1]:
            out.append("***")
    return "".join(out)


def scrub(value: Any, secrets: tuple[str, ...] = (), limit: int = MAX_MESSAGE_CHARS) -> Any:
    """``value`` with every string in it (nested in lists and mappings too) redacted and bounded.

    Used on every field of an upstream error before it can reach a client or a log.
    """
    if isinstance(value, str):
        text = redact(value[:_MAX_SCRUB_CHARS], secrets)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    if isinstance(value, Mapping):
        return {scrub(k, secrets, limit): scrub(v, secrets, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets, limit) for item in value]
    return value


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the upstream asked us to wait, or None; never more than :data:`MAX_RETRY_AFTER`.

    ``retry-after-ms`` (OpenAI, Azure) is preferred for its precision; ``Retry-After`` may be seconds
    or an HTTP date, which is taken relative to ``now`` (wall-clock seconds, injectable for tests).
    Values that are not a finite number or a date (``nan``, ``inf``, negative, garbage) are ignored;
    a date in the past means "now" (0). ``headers`` must have lower-cased names (routerd's clients
    guarantee it).
    """
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return cap_retry_after(millis / 1000.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    seconds = _finite(raw)
    if seconds is not None:
        return cap_retry_after(seconds)
    if len(raw) > 64:  # longer than any HTTP date: not worth parsing
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    reference = time.time() if now is None else now
    try:
        delay = when.timestamp() - reference
    except (OverflowError, OSError, ValueError):
        return None
    return cap_retry_after(max(0.0, delay))


def cap_retry_after(seconds: float | None) -> float | None:
    """``seconds`` within ``[0, MAX_RETRY_AFTER]``; None for None or a value that is not finite."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _finite(raw: str | None) -> float | None:
    # a non-negative finite number, or None; "inf", "nan", "-3", "1e999" and garbage are None
    if not raw or len(raw) > 32:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Who an error is about: built once per deployment (adapters keep it in their prepared state)."""

    provider: str
    model: str
    deployment_id: str = ""
    # this deployment's credentials, scrubbed from any upstream message
    secrets: tuple[str, ...] = ()
    # wall clock for HTTP-date Retry-After values; injectable for tests
    wall_clock: Callable[[], float] = time.time

    def make(
        self,
        cls: type[OpenAIError],
        message: str,
        *,
        upstream_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> OpenAIError:
        """An instance of ``cls`` annotated with this context.

        Every text field is scrubbed of this deployment's credentials here, whoever built it: the
        upstream may echo its key in the message, the ``code`` or the ``param``.
        """
        return cls(
            redact(message, self.secrets),
            llm_provider=self.provider,
            model=self.model,
            deployment_id=self.deployment_id or None,
            upstream_status=upstream_status,
            code=self._clean(code) if code is not None else None,
            param=self._clean(param) if param is not None else None,
            retry_after=cap_retry_after(retry_after),
        )

    def annotate(self, exc: OpenAIError) -> OpenAIError:
        """Fill in who ``exc`` is about when the raiser (e.g. the transport) did not know."""
        if exc.llm_provider is None:
            exc.llm_provider = self.provider
        if exc.model is None:
            exc.model = self.model
        if exc.deployment_id is None and self.deployment_id:
            exc.deployment_id = self.deployment_id
        return exc

    def from_response(self, status: int, headers: Mapping[str, str], content: bytes) -> OpenAIError:
        """The error for a non-2xx upstream answer (``headers`` lower-cased)."""
        retry_after = parse_retry_after(headers, self.wall_clock())
        try:
            payload = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            return self.from_payload(payload, status=status, retry_after=retry_after)
        text = _plain_text(content)
        message = text or f"upstream answered HTTP {status} with an empty body"
        return self.make(
            error_for_status(status),
            self._clean(message),
            upstream_status=status,
            retry_after=retry_after,
        )

    def from_payload(
        self, payload: Mapping[str, Any], *, status: int | None = None, retry_after: float | None = None
    ) -> OpenAIError:
        """The error described by a JSON error body, or by an in-band ``{"error": ...}`` stream event.

        Without an HTTP status (in-band errors) the status comes from the error's numeric ``code``
        or its ``type``; an unknown one is treated as an upstream server error.
        """
        error = payload.get("error")
        if isinstance(error, Mapping):
            details: Mapping[str, Any] = error
        elif isinstance(error, str):
            details = {"message": error, "type": payload.get("type"), "code": payload.get("code")}
        else:
            details = payload
        message = details.get("message")
        if not isinstance(message, str) or not message:
            detail = payload.get("detail")
            message = _stringify(detail) if detail else ""
        raw_code = details.get("code")
        error_type = details.get("type")
        if status is None:
            status = _status_from_details(raw_code, error_type)
        code = raw_code if isinstance(raw_code, str) and not raw_code.isdigit() else None
        param = details.get("param") if isinstance(details.get("param"), str) else None
        cls = _refine(error_for_status(status), status, code, details, message)
        if not message:
            message = f"upstream answered HTTP {status}"
        return self.make(
            cls,
            self._clean(message),
            upstream_status=status,
            code=code,
            param=param,
            retry_after=retry_after,
        )

    def bad_gateway(self, message: str, *, upstream_status: int | None = None) -> OpenAIError:
        """An upstream that answered something routerd cannot read."""
        return self.make(BadGatewayError, message, upstream_status=upstream_status)

    def stream_cut(self, chunks_seen: int) -> OpenAIError:
        """An upstream stream that ended (or dropped) before it was complete."""
        return self.make(
            APIConnectionError,
            f"upstream stream ended unexpectedly after {chunks_seen} chunk(s)",
        )

    def _clean(self, message: str) -> str:
        cleaned: str = scrub(message, self.secrets)
        return cleaned


def _refine(
    cls: type[OpenAIError], status: int, code: str | None, details: Mapping[str, Any], message: str
) -> type[OpenAIError]:
    if not 400 <= status < 500:
        return cls
    lowered = code.lower() if code else ""
    inner = details.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, Mapping) else None
    if lowered in _POLICY_CODES or (isinstance(inner_code, str) and inner_code.lower() in _POLICY_CODES):
        return ContentPolicyViolationError
    if lowered in _CONTEXT_CODES:
        return ContextWindowExceededError
    if status == 400 and not lowered and message and _CONTEXT_MESSAGE.search(message):
        return ContextWindowExceededError
    return cls


def _status_from_details(code: Any, error_type: Any) -> int:
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isascii() and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)
    if isinstance(error_type, str):
        return _STATUS_BY_TYPE.get(error_type.lower(), 500)
    return 500


def _plain_text(content: bytes) -> str:
    text = content[: MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
    if "<" in text:  # an HTML error page from a proxy: keep its words, not its markup
        text = _HTML_TAG.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)
