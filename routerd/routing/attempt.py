"""One upstream attempt: call the adapter, account for the outcome, relay streams.

This is where the router touches I/O and where every attempt is accounted exactly once, whatever
happens: in-flight counts, the usage window, latency averages, the breaker (and its events), and one
:class:`~routerd.events.AttemptFinished`. For streams the accounting runs when the relayed stream
ends, fails, or is closed early by the client; closing the relay closes the adapter's generator, which
closes the upstream connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routerd.config.table import Deployment, RouterPolicy, RoutingTable
from routerd.errors import APIError, BadGatewayError, Timeout
from routerd.events import AttemptFinished, CooldownStarted, DeploymentStateChanged, EventBus
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, Adapter, UpstreamRequest, UpstreamResponse
from routerd.routing.health import (
    HEALTHY,
    Breaker,
    BreakerState,
    CooldownRules,
    DeploymentHealth,
    ErrorKind,
    begin_probe,
    classify,
    on_failure,
    on_success,
    release_probe,
)
from routerd.routing.options import RequestOptions
from routerd.routing.plan import Candidate, GroupPlan, Pick
from routerd.routing.relay import StreamRelay, close_iterator
from routerd.routing.strategies import Strategy
from routerd.routing.types import CallResult, RoutingInfo
from routerd.state import HealthStore
from routerd.transport import HttpClient

__all__ = ["AttemptRunner", "Call", "PreparedGroup", "TableView"]

log = logging.getLogger("routerd.router")

JSON = dict[str, Any]

# endpoint -> (adapter method for a complete answer, adapter method for a stream or None)
ENDPOINT_METHODS: Mapping[str, tuple[str, str | None]] = {
    CHAT: ("chat", "chat_stream"),
    COMPLETIONS: ("completion", "completion_stream"),
    EMBEDDINGS: ("embedding", None),
}


@dataclass(frozen=True, slots=True)
class PreparedGroup:
    """A group ready to route: the pure plan plus what only the executor needs, per candidate."""

    plan: GroupPlan
    adapters: tuple[Adapter, ...]
    timeouts: tuple[float, ...]  # per-attempt timeout for complete answers
    stream_timeouts: tuple[float, ...]  # per-attempt timeout to the first chunk
    drop_params: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class TableView:
    """Everything derived from one routing table, swapped with it in one assignment."""

    table: RoutingTable
    policy: RouterPolicy
    strategy: Strategy
    rules: CooldownRules
    alpha: float  # EWMA weight for latency samples
    groups: dict[str, PreparedGroup] = field(default_factory=dict)  # by requested name
    wildcards: dict[str, PreparedGroup] = field(default_factory=dict)  # concrete wildcard models, bounded


@dataclass(slots=True)
class Call:
    """One client call as it moves through groups and attempts."""

    view: TableView
    endpoint: str
    body: JSON
    options: RequestOptions
    stream: bool
    deadline: float
    limit: float  # the call's total timeout, for messages
    request_id: str
    extra_headers: Mapping[str, str]
    info: RoutingInfo
    root: str = ""  # the group the client asked for
    tried: list[str] = field(default_factory=list)  # group names tried (and requested names)
    tokens: int = -1  # estimated prompt tokens; -1 until counted


class AttemptRunner:
    """Runs attempts against adapters and keeps the health records and events in step."""

    def __init__(
        self,
        http: HttpClient,
        store: HealthStore,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self._http = http
        self._store = store
        self._events = events
        self._clock = clock

    # --- breaker bookkeeping -----------------------------------------------------------------------

    def set_breaker(self, dep: Deployment, record: DeploymentHealth, new: Breaker, now: float) -> None:
        """Store a breaker transition and emit what changed."""
        old = record.breaker
        if new is old:
            return
        self._store.set_breaker(dep.id, record, new)
        if new.state is BreakerState.COOLING_DOWN and (
            old.state is not BreakerState.COOLING_DOWN or new.until > old.until
        ):
            self._events.emit(
                CooldownStarted(dep.id, dep.group, dep.provider, new.reason, new.until - now, new.until)
            )
        if new.state is not old.state:
            self._events.emit(DeploymentStateChanged(dep.id, dep.group, dep.provider, new.state.value))

    # --- one attempt ---------------------------------------------------------------------------------

    async def run(self, call: Call, group: PreparedGroup, choice: Pick) -> CallResult:
        """Call the chosen deployment. Raises a routerd error (already accounted) on failure."""
        candidate, record = choice.candidate, choice.record
        dep = candidate.deployment
        i = candidate.index
        info = call.info
        info.attempts += 1
        info.group = group.plan.name
        info.deployment_id = dep.id
        info.provider = dep.provider
        start = self._clock()
        limit = group.stream_timeouts[i] if call.stream else group.timeouts[i]
        timeout = max(min(limit, call.deadline - start), 0.001)
        # Nothing below awaits before the call is counted: "check capacity, then count" is atomic.
        if choice.probe:
            self.set_breaker(dep, record, begin_probe(record.breaker, start, timeout), start)
        record.in_flight += 1
        tokens = max(call.tokens, 0)
        stamp = record.usage.add(start, tokens)
        request = UpstreamRequest(
            deployment=dep,
            body=call.body,
            timeout=timeout,
            extra_headers=call.extra_headers,
            drop_params=group.drop_params[i],
            request_id=call.request_id,
        )
        adapter = group.adapters[i]
        method, stream_method = ENDPOINT_METHODS[call.endpoint]
        iterator: AsyncIterator[JSON] | None = None
        # The attempt's deadline is enforced by the adapter and its HTTP client (request.timeout), not
        # by an asyncio.timeout here: that would cost ~10 us per call to duplicate the transport's.
        try:
            if call.stream and stream_method is not None:
                iterator = getattr(adapter, stream_method)(self._http, request)
                first = await anext(iterator)
            else:
                response: UpstreamResponse = await getattr(adapter, method)(self._http, request)
        except BaseException as exc:
            if iterator is not None:
                await close_iterator(iterator)
            error = self._as_api_error(exc, dep, timeout)
            if error is None:  # cancelled: the client went away mid-attempt
                self._abandon(dep, record)
                raise
            self._fail(call, candidate, record, start, error, stream=call.stream)
            if error is exc:
                raise
            raise error from exc
        if iterator is None:
            return self._succeed(call, candidate, record, stamp, start, response)
        now = self._clock()
        ttft = now - start
        info.ttft = ttft
        info.upstream_latency += ttft
        if record.breaker is not HEALTHY:
            # The first chunk proves the deployment answers: a half-open probe succeeded now, not
            # when a possibly long stream ends.
            self.set_breaker(dep, record, on_success(record.breaker, now), now)

        def on_end(relay: StreamRelay, error: APIError | None, finished: bool) -> None:
            self._end_stream(call, candidate, record, stamp, start, ttft, relay, error, finished)

        return CallResult(deployment=dep, info=info, stream=StreamRelay(iterator, first, dep, on_end))

    def _as_api_error(self, exc: BaseException, dep: Deployment, timeout: float) -> APIError | None:
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, StopAsyncIteration):
            return BadGatewayError(
                "the upstream ended the stream before sending anything",
                llm_provider=dep.provider,
                model=dep.model,
                deployment_id=dep.id,
            )
        if isinstance(exc, TimeoutError):
            return Timeout(
                f"the upstream did not answer within {timeout:.3g}s",
                llm_provider=dep.provider,
                model=dep.model,
                deployment_id=dep.id,
            )
        if isinstance(exc, Exception):
            # An adapter bug, not an upstream failure: not retried, does not cool the deployment.
            log.error("provider adapter %r failed on deployment %s", dep.provider, dep.id, exc_info=exc)
            return APIError(
                f"internal error in the {dep.provider} adapter ({type(exc).__name__})",
                llm_provider=dep.provider,
                model=dep.model,
                deployment_id=dep.id,
            )
        return None  # CancelledError, KeyboardInterrupt, ...

    # --- outcomes ------------------------------------------------------------------------------------

    def _succeed(
        self,
        call: Call,
        candidate: Candidate,
        record: DeploymentHealth,
        stamp: int,
        start: float,
        response: UpstreamResponse,
    ) -> CallResult:
        now = self._clock()
        latency = now - start
        dep = candidate.deployment
        record.in_flight -= 1
        prompt_tokens, completion_tokens = _usage(response.body.get("usage"))
        record.observe_success(now, latency, completion_tokens, None, call.view.alpha)
        if prompt_tokens or completion_tokens:
            record.usage.adjust(now, stamp, prompt_tokens + completion_tokens - max(call.tokens, 0))
        if record.breaker is not HEALTHY:
            self.set_breaker(dep, record, on_success(record.breaker, now), now)
        info = call.info
        info.upstream_latency += latency
        self._events.emit(
            AttemptFinished(
                request_id=call.request_id,
                group=dep.group,
                deployment_id=dep.id,
                provider=dep.provider,
                endpoint=call.endpoint,
                stream=False,
                ok=True,
                status=200,
                error=None,
                latency=latency,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                upstream_headers=response.headers,
            )
        )
        return CallResult(deployment=dep, info=info, response=response)

    def _fail(
        self,
        call: Call,
        candidate: Candidate,
        record: DeploymentHealth,
        start: float,
        error: APIError,
        *,
        stream: bool,
        ttft: float | None = None,
        completion_tokens: int = 0,
    ) -> None:
        now = self._clock()
        elapsed = now - start
        dep = candidate.deployment
        view = call.view
        record.in_flight -= 1
        failure = classify(error)
        record.observe_failure(now, elapsed, failure.reason, failure.cools_down, view.alpha)
        cooldown_time = dep.cooldown_time if dep.cooldown_time is not None else view.rules.cooldown_time
        breaker = on_failure(record.breaker, now, failure, view.rules, cooldown_time)
        if breaker is not record.breaker:
            if breaker.state is BreakerState.COOLING_DOWN and failure.kind is ErrorKind.AUTHENTICATION:
                log.error(
                    "deployment %s (group %s, provider %s, model %s) answered %s: it is misconfigured "
                    "(check its api_key, api_base and model); cooling it down for %.0fs",
                    dep.id,
                    dep.group,
                    dep.provider,
                    dep.model,
                    error.upstream_status or error.status_code,
                    breaker.until - now,
                )
            elif breaker.state is BreakerState.COOLING_DOWN:
                log.warning(
                    "deployment %s (group %s) cooling down for %.1fs after %s",
                    dep.id,
                    dep.group,
                    breaker.until - now,
                    failure.reason,
                )
            self.set_breaker(dep, record, breaker, now)
        # Errors leave here carrying where they happened, for logs and the client's message.
        if error.deployment_id is None:
            error.deployment_id = dep.id
        if error.llm_provider is None:
            error.llm_provider = dep.provider
        info = call.info
        info.upstream_latency += elapsed if ttft is None else elapsed - ttft
        self._events.emit(
            AttemptFinished(
                request_id=call.request_id,
                group=dep.group,
                deployment_id=dep.id,
                provider=dep.provider,
                endpoint=call.endpoint,
                stream=stream,
                ok=False,
                status=error.upstream_status or error.status_code,
                error=type(error).__name__,
                latency=elapsed,
                ttft=ttft,
                completion_tokens=completion_tokens,
            )
        )

    def _abandon(self, dep: Deployment, record: DeploymentHealth) -> None:
        """The attempt was cancelled before an answer: undo in-flight, free the probe slot."""
        record.in_flight -= 1
        if record.breaker.state is BreakerState.HALF_OPEN:
            self.set_breaker(dep, record, release_probe(record.breaker), self._clock())

    # --- streams -------------------------------------------------------------------------------------

    def _end_stream(
        self,
        call: Call,
        candidate: Candidate,
        record: DeploymentHealth,
        stamp: int,
        start: float,
        ttft: float,
        relay: StreamRelay,
        error: APIError | None,
        finished: bool,
    ) -> None:
        """Account for a relayed stream once it ended, failed, or was closed by the reader."""
        prompt_tokens, completion_tokens = _usage(relay.usage)
        if not completion_tokens:
            completion_tokens = relay.chunks  # about one token per chunk when the upstream sent no usage
        if error is not None:
            self._fail(
                call,
                candidate,
                record,
                start,
                error,
                stream=True,
                ttft=ttft,
                completion_tokens=completion_tokens,
            )
            return
        now = self._clock()
        latency = now - start
        dep = candidate.deployment
        record.in_flight -= 1
        if finished:
            record.observe_success(now, latency, completion_tokens, ttft, call.view.alpha)
        if prompt_tokens or completion_tokens:
            record.usage.adjust(now, stamp, prompt_tokens + completion_tokens - max(call.tokens, 0))
        if record.breaker is not HEALTHY:
            # A stream closed early by the client still proved the deployment answers.
            self.set_breaker(dep, record, on_success(record.breaker, now), now)
        call.info.upstream_latency += latency - ttft
        self._events.emit(
            AttemptFinished(
                request_id=call.request_id,
                group=dep.group,
                deployment_id=dep.id,
                provider=dep.provider,
                endpoint=call.endpoint,
                stream=True,
                ok=True,
                status=200,
                error=None,
                latency=latency,
                ttft=ttft,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )


def _usage(usage: Any) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) from an OpenAI ``usage`` object; zeros when absent."""
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)
