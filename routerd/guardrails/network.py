"""Guardrails that ask a service: a webhook (LiteLLM's generic guardrail API shape) and OpenAI moderation.

On streams (``during_call``) both check the text in segments of ``stream_check_chars`` characters:
see :mod:`routerd.guardrails.remote_stream`.

Both are bounded by a timeout and declare what happens when the service does not answer (or answers
something that is not a decision): ``fail_open: true`` lets the call through (counted as ``allow``, the
log line's reason saying the service was unavailable), the default fails the call with a 503. The HTTP call itself is injected
(:data:`Poster`, :data:`Moderator`), so these classes are pure decision logic over the answer.

Webhook contract (POST ``api_base``, JSON)::

    request:  {"texts": [...], "input_type": "request" | "response",
               "request_data": {"model": ..., "user": ..., "key_alias": ..., "team_id": ...},
               "additional_provider_specific_params": {...}}
    response: {"action": "NONE"}                                    allow
              {"action": "BLOCKED", "blocked_reason": "..."}        block (reason shown, capped)
              {"action": "GUARDRAIL_INTERVENED", "texts": [...]}    replace the texts (one per input)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from routerd.guardrails.config import STREAM_CHECK_CHARS
from routerd.guardrails.engine import ALLOW, BLOCK, MASK, UNAVAILABLE, Mode, Verdict

__all__ = ["ModerationGuardrail", "Moderator", "Poster", "WebhookGuardrail"]

Poster = Callable[[str, Mapping[str, str], Mapping[str, Any], float], Awaitable[tuple[int, Any]]]
"""POST JSON: (url, headers, body, timeout) -> (status, parsed JSON body or None)."""

Moderator = Callable[[str, Sequence[str], float], Awaitable[Mapping[str, Any]]]
"""Run a moderation: (model group, texts, timeout) -> the ``/v1/moderations`` response body."""

#: Longest block reason taken from a webhook's answer (it is shown to the client and logged).
MAX_REASON_CHARS = 300
#: Request fields passed to a webhook as ``request_data`` (never keys, never the body's other fields).
REQUEST_DATA_FIELDS = ("model", "user", "key_alias", "team_id", "endpoint")


def _clean(reason: Any) -> str:
    text = str(reason) if reason is not None else ""
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text[:MAX_REASON_CHARS] or "blocked by the guardrail service"


def _unreachable(fail_open: bool, why: str) -> Verdict:
    return (
        Verdict(ALLOW, f"service unavailable ({why}); fail-open") if fail_open else Verdict(UNAVAILABLE, why)
    )


@dataclass(frozen=True, slots=True)
class WebhookGuardrail:
    """``generic_guardrail_api``: ask an HTTP endpoint to allow, block or rewrite the texts."""

    name: str
    modes: frozenset[Mode]
    url: str
    poster: Poster = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold the service's key
    timeout: float = 5.0
    fail_open: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    default_on: bool = False
    # on streams: the text held per check (see routerd.guardrails.remote_stream)
    stream_check_chars: int = STREAM_CHECK_CHARS
    kind: ClassVar[str] = "generic_guardrail_api"

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Verdict:
        body = {
            "texts": list(texts),
            "input_type": stage,
            "request_data": {k: context[k] for k in REQUEST_DATA_FIELDS if context.get(k) is not None},
            "additional_provider_specific_params": dict(self.params),
        }
        try:
            status, answer = await asyncio.wait_for(
                self.poster(self.url, self.headers, body, self.timeout), self.timeout
            )
        except TimeoutError:
            return _unreachable(self.fail_open, f"no answer within {self.timeout:g} s")
        except Exception as exc:  # connection refused, reset, malformed HTTP: the service is unavailable
            return _unreachable(self.fail_open, type(exc).__name__)
        if status != 200 or not isinstance(answer, Mapping):
            return _unreachable(
                self.fail_open, f"HTTP {status}" if status != 200 else "answer is not a JSON object"
            )
        return self._verdict(answer, len(texts))

    def _verdict(self, answer: Mapping[str, Any], count: int) -> Verdict:
        action = str(answer.get("action", "")).upper()
        if action == "NONE":
            return Verdict(ALLOW)
        if action in ("BLOCKED", "BLOCK"):
            return Verdict(BLOCK, _clean(answer.get("blocked_reason")))
        if action == "GUARDRAIL_INTERVENED":
            texts = answer.get("texts")
            if isinstance(texts, list) and len(texts) == count and all(isinstance(t, str) for t in texts):
                return Verdict(MASK, "texts replaced by the guardrail service", tuple(texts))
            return _unreachable(self.fail_open, "GUARDRAIL_INTERVENED without one text per input")
        return _unreachable(self.fail_open, f"unknown action {action[:40]!r}")


@dataclass(frozen=True, slots=True)
class ModerationGuardrail:
    """``openai_moderation``: run the texts through a model group's ``/v1/moderations``; block when a
    result is flagged (in one of ``categories``, when given)."""

    name: str
    modes: frozenset[Mode]
    model: str
    moderator: Moderator = field(repr=False)
    categories: frozenset[str] = frozenset()
    timeout: float = 10.0
    fail_open: bool = False
    default_on: bool = False
    stream_check_chars: int = STREAM_CHECK_CHARS  # as for the webhook
    kind: ClassVar[str] = "openai_moderation"

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Verdict:
        try:
            answer = await asyncio.wait_for(
                self.moderator(self.model, list(texts), self.timeout), self.timeout
            )
        except TimeoutError:
            return _unreachable(self.fail_open, f"no answer within {self.timeout:g} s")
        except Exception as exc:
            return _unreachable(self.fail_open, type(exc).__name__)
        results = answer.get("results") if isinstance(answer, Mapping) else None
        if not isinstance(results, list):
            return _unreachable(self.fail_open, "moderation answer has no results")
        flagged: set[str] = set()
        for result in results:
            if not isinstance(result, Mapping) or not result.get("flagged"):
                continue
            categories = result.get("categories")
            hits = {k for k, v in categories.items() if v} if isinstance(categories, Mapping) else set()
            chosen = hits & self.categories if self.categories else hits or {"flagged"}
            flagged |= chosen
        if not flagged:
            return Verdict(ALLOW)
        return Verdict(BLOCK, f"flagged for {', '.join(sorted(flagged))}")
