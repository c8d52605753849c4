"""Small event records the router and server emit, and the bus subscribers listen on.

Instrumentation (metrics, the per-request log line, cost) subscribes here instead of being called
from the request path: the executor only builds a record and hands it to :meth:`EventBus.emit`.
A subscriber that raises is logged and skipped; it never fails a request.

Subscribers must treat events as read-only. They are not ``frozen`` dataclasses because a frozen
dataclass sets each field through ``object.__setattr__``: four times slower to build, about 4 us
for a :class:`RequestFinished`, and several events are built for every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("routerd.events")


@dataclass(slots=True)
class AttemptFinished:
    """One upstream call ended (success or failure)."""

    request_id: str
    group: str
    deployment_id: str
    provider: str
    endpoint: str  # "chat" | "completions" | "embeddings"
    stream: bool
    ok: bool
    status: int  # upstream status, or routerd's status for transport errors
    error: str | None  # error class name
    latency: float  # seconds, upstream call (to the end of the body or stream)
    ttft: float | None = None  # seconds to first chunk, streams only
    prompt_tokens: int = 0
    completion_tokens: int = 0
    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    calls: int = 1  # upstream calls this attempt made (a text completion through chat: one per prompt)


@dataclass(slots=True)
class RetryScheduled:
    group: str
    deployment_id: str
    error: str
    delay: float  # seconds slept before the retry (0 when re-routed to another deployment)


@dataclass(slots=True)
class FallbackTaken:
    from_group: str
    to_group: str
    reason: str  # "error" | "context_window" | "content_policy" | "default"
    result: str  # "success" | "failure"


@dataclass(slots=True)
class CooldownStarted:
    deployment_id: str
    group: str
    provider: str
    reason: str  # error class name, or "retry_after"
    duration: float
    until: float  # monotonic clock


@dataclass(slots=True)
class DeploymentStateChanged:
    deployment_id: str
    group: str
    provider: str
    state: str  # "healthy" | "cooling_down" | "half_open"


@dataclass(slots=True)
class RequestStarted:
    """A client request arrived; emitted by the server before anything can fail, and paired with the
    :class:`RequestFinished` of the same ``request_id`` (the in-flight gauge counts the difference)."""

    request_id: str
    endpoint: str


@dataclass(slots=True)
class RequestFinished:
    """One client request ended; emitted by the server (or the SDK) once per request."""

    request_id: str
    endpoint: str
    model: str  # what the client asked for
    group: str  # the group that answered, or was last tried
    deployment_id: str
    provider: str
    status: int
    stream: bool
    attempts: int
    retries: int
    fallbacks: int
    latency: float  # whole request, seconds
    upstream_latency: float  # sum of upstream call time
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    error: str | None = None
    # the gate (routerd.server.gate): who called, the cache's verdict, what the guardrails did
    key_alias: str = ""
    team: str = ""
    end_user: str = ""
    cache: str | None = None  # "hit" | "miss" | None (not consulted)
    saved_cost: float | None = None  # a cache hit: what the answer cost when it was fetched
    guardrails: tuple[Any, ...] = ()  # routerd.guardrails.engine.GuardrailRun records
    estimated_tokens: bool = False  # no usage came back: tokens were counted from the text


@dataclass(slots=True)
class ManagementRequest:
    """One request to the files or fine-tuning API ended; emitted by the server once per request."""

    request_id: str
    api: str  # "files" | "fine_tuning"
    # "create" | "list" | "retrieve" | "delete" | "content" | "cancel" | "events" | "checkpoints"
    operation: str
    provider: str  # "openai" | "azure" | "vertex_ai"; "" when the request failed before one was chosen
    status: int  # the HTTP status routerd answered with
    latency: float  # seconds, whole request
    error: str | None = None  # error class name


@dataclass(slots=True)
class GuardrailsChecked:
    """Guardrails ran outside a call (a gateway batch's input lines, its output file's answers): counted
    like a call's (``routerd_guardrail_actions_total``), without a request of their own."""

    runs: tuple[Any, ...]  # routerd.guardrails.engine.GuardrailRun records, one per guardrail and line


@dataclass(slots=True)
class ConfigReloaded:
    result: str  # "success" | "failure"
    generation: int
    content_hash: str
    at: float  # wall clock
    error: str | None = None


Subscriber = Callable[[Any], None]


class EventBus:
    """Synchronous fan-out to subscribers."""

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers = (*self._subscribers, subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

    def emit(self, event: Any) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not fail requests
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
