"""One upstream attempt: call the adapter, account for the outcome, relay streams.

This is where the router touches I/O and where every attempt is accounted exactly once, whatever
happens: in-flight counts, the usage window, latency averages, the breaker (and its events), and one
:class:`~routerd.events.AttemptFinished`. For streams the accounting runs when the relayed stream
ends, fails, or is closed early by the client; closing the relay closes the adapter's generator, which
closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from routerd.config.table import Deployment, RouterPolicy, RoutingTable
from routerd.errors import APIError, BadGatewayError, OpenAIError, RateLimitError, Timeout
from routerd.events import AttemptFinished, CooldownStarted, DeploymentStateChanged, EventBus
from routerd.http import HttpClient
from routerd.providers.answers import malformed
from routerd.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    IMAGE_EDITS,
    IMAGES,
    MODERATIONS,
    RERANK,
    SPEECH,
    TRANSCRIPTIONS,
    Adapter,
    UpstreamRequest,
    UpstreamResponse,
    speaks_natively,
)
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
from routerd.routing.limits import DEFAULT_LIMITS, CallLimits
from routerd.routing.options import RequestOptions
from routerd.routing.plan import GroupPlan, Pick
from routerd.routing.relay import StreamRelay, StreamTimer, close_iterator
from routerd.routing.strategies import Strategy
from routerd.routing.types import CallResult, NativeCall, RoutingInfo
from routerd.state import HealthStore

__all__ = ["Attempt", "AttemptRunner", "Call", "PreparedGroup", "TableView", "locate", "upstream_calls"]

log = logging.getLogger("routerd.router")

JSON = dict[str, Any]
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# endpoint -> (adapter method for a complete answer, adapter method for a stream or None)
ENDPOINT_METHODS: Mapping[str, tuple[str, str | None]] = {
    CHAT: ("chat", "chat_stream"),
    COMPLETIONS: ("completion", "completion_stream"),
    EMBEDDINGS: ("embedding", None),
    MODERATIONS: ("moderation", None),
    IMAGES: ("image_generation", None),
    RERANK: ("rerank", None),
    SPEECH: ("speech", None),
    TRANSCRIPTIONS: ("transcription", None),
    IMAGE_EDITS: ("image_edit", None),
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


class AttemptTracer(Protocol):
    """Follows the upstream attempts of one call (OpenTelemetry's attempt spans): told when each
    starts, it returns headers for that attempt's upstream request (``traceparent``); told when it
    ends with its :class:`~routerd.events.AttemptFinished`. Attempts of one call never overlap."""

    def attempt_started(self, deployment: Deployment) -> Mapping[str, str]: ...

    def attempt_finished(self, event: AttemptFinished) -> None: ...


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
    fanout: int = 1  # prompts of a /v1/completions request (upstream calls when served through chat)
    native: NativeCall | None = None  # the request in a provider's own API, for adapters that speak it
    tracer: AttemptTracer | None = None  # told of every attempt (tracing callbacks); None: nobody listens


class AttemptRunner:
    """Starts attempts against adapters; each :class:`Attempt` then accounts for itself."""

    def __init__(
        self,
        http: HttpClient,
        store: HealthStore,
        events: EventBus,
        clock: Callable[[], float],
        limits: CallLimits = DEFAULT_LIMITS,
    ) -> None:
        self._http = http
        self._store = store
        self._events = events
        self.clock = clock
        self.limits = limits

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

    def forget_evicted(self, dep: Deployment, record: DeploymentHealth) -> None:
        """The last call on a deployment of an evicted wildcard model ended: forget its health now."""
        if record.in_flight == 0 and self._store.get(dep.id) is record:
            self._store.retain(lambda dep_id: dep_id != dep.id)

    async def run(self, call: Call, group: PreparedGroup, choice: Pick) -> CallResult:
        """Call the chosen deployment. Raises a routerd error (already accounted) on failure."""
        candidate = choice.candidate
        i = candidate.index
        adapter = group.adapters[i]
        calls = upstream_calls(adapter, candidate.deployment, call.endpoint, call.body)
        start = self.clock()
        limit = group.stream_timeouts[i] if call.stream else group.timeouts[i]
        timeout = max(min(limit, call.deadline - start), 0.001)
        # Nothing below awaits before the call is counted: "check capacity, then count" is atomic.
        attempt = Attempt(self, call, group.plan.name, choice, start, calls, timeout)
        native = call.native
        body, headers = call.body, call.extra_headers
        is_native = native is not None and speaks_natively(adapter, candidate.deployment, native.api)
        method: str
        stream_method: str | None
        if is_native:
            assert native is not None
            # the adapter's native methods are named after the API: messages / messages_stream
            method, stream_method = native.api, f"{native.api}_stream"
            body, headers = native.body, {**headers, **native.headers}
        else:
            method, stream_method = ENDPOINT_METHODS[call.endpoint]
        if call.tracer is not None:
            headers = {**headers, **_traced(call.tracer, candidate.deployment)}
        request = UpstreamRequest(
            deployment=candidate.deployment,
            body=body,
            timeout=timeout,
            extra_headers=headers,
            drop_params=group.drop_params[i],
            request_id=call.request_id,
            concurrency=self.limits.prompt_concurrency,
        )
        problem: str | None = None
        if call.options.mock_attempt_failure is not None and call.info.fallbacks == 0:
            # the requested group's attempts fail like real ones (retried, counted); fallbacks serve
            raise attempt.failed(_simulated(call.options.mock_attempt_failure, candidate.deployment))
        try:
            if call.stream and stream_method is not None:
                iterator: AsyncIterator[JSON] = getattr(adapter, stream_method)(self._http, request)
            else:
                response: UpstreamResponse = await self._complete(
                    getattr(adapter, method), request, candidate.deployment.max_retries or 0, call.deadline
                )
                # a native answer's shape is checked by the adapter that speaks its API
                problem = None if is_native else malformed(call.endpoint, response.body)
        except BaseException as exc:
            raise attempt.failed(exc)  # noqa: B904 -- failed() chains it (or returns exc itself)
        if call.stream and stream_method is not None:
            result = await attempt.stream(iterator, native=is_native)
        elif problem is not None:
            raise attempt.failed(attempt.bad_answer(problem))
        else:
            result = attempt.succeed(response)
        result.native = is_native
        return result

    def emit(self, event: AttemptFinished) -> None:
        self._events.emit(event)

    async def _complete(
        self,
        send: Callable[[HttpClient, UpstreamRequest], Awaitable[UpstreamResponse]],
        request: UpstreamRequest,
        retries: int,
        deadline: float,
    ) -> UpstreamResponse:
        """One complete (non-streamed) call, repeated on the same deployment up to ``retries`` times
        on a retryable error: ``litellm_params.max_retries``, LiteLLM's client-level retries of one
        HTTP call, below the router's own retries (which move to another deployment and count
        failures). These repeats are immediate and stay inside the attempt's timeout."""
        for left in range(retries, -1, -1):
            try:
                return await send(self._http, request)
            except OpenAIError as exc:
                if left == 0 or not exc.retryable or self.clock() >= deadline:
                    raise
        raise AssertionError("unreachable: the last try raises or returns")


def _traced(tracer: AttemptTracer, dep: Deployment) -> Mapping[str, str]:
    """The tracer's headers for an attempt; a failing tracer never fails the call."""
    try:
        return tracer.attempt_started(dep)
    except Exception:
        log.exception("attempt tracer failed when an attempt started on deployment %s", dep.id)
        return _NO_HEADERS


def _simulated(name: str, dep: Deployment) -> OpenAIError:
    """The failure a ``mock_testing_rate_limit_error`` / ``mock_timeout`` request asks every attempt for."""
    error_class: type[OpenAIError] = Timeout if name == "Timeout" else RateLimitError
    return error_class(
        f"simulated {name} on deployment {dep.id} (mock_testing_rate_limit_error / mock_timeout in the "
        "request)",
        llm_provider=dep.provider,
        model=dep.model,
        deployment_id=dep.id,
    )


class Attempt:
    """One attempt on one deployment: counts itself in, and accounts for its outcome exactly once.

    In-flight counts, the usage window, latency averages, the breaker (and its events), the call's
    :class:`RoutingInfo` and one :class:`~routerd.events.AttemptFinished` are all updated here.
    """

    __slots__ = ("_call", "_calls", "_dep", "_group", "_record", "_runner", "_stamp", "_start", "_timeout")

    def __init__(
        self,
        runner: AttemptRunner,
        call: Call,
        group: str,
        choice: Pick,
        start: float,
        calls: int,
        timeout: float,
    ) -> None:
        self._runner = runner
        self._call = call
        self._group = group
        self._dep = dep = choice.candidate.deployment
        self._record = record = choice.record
        self._start = start
        self._calls = calls
        self._timeout = timeout
        call.info.started(group, dep, calls)
        if choice.probe:
            runner.set_breaker(dep, record, begin_probe(record.breaker, start, timeout), start)
        record.in_flight += 1
        self._stamp = record.usage.add(start, max(call.tokens, 0), requests=calls)

    # --- complete answers ----------------------------------------------------------------------------

    def succeed(self, response: UpstreamResponse) -> CallResult:
        """A complete answer arrived (and had the right shape)."""
        now = self._runner.clock()
        latency = now - self._start
        prompt_tokens, completion_tokens = _usage(response.body.get("usage"))
        self._record.observe_success(now, latency, completion_tokens, None, self._call.view.alpha)
        self._release_ok(now, prompt_tokens, completion_tokens)
        self._call.info.waited(latency)
        self._finished(
            latency,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            headers=response.headers,
        )
        return CallResult(deployment=self._dep, info=self._call.info, response=response)

    def failed(
        self, exc: BaseException, *, ttft: float | None = None, completion_tokens: int = 0
    ) -> BaseException:
        """Account for ``exc`` raised by the adapter; returns what the caller should raise.

        A cancellation (the client went away) only releases what the attempt holds and is returned
        as is: it must reach the caller's task, never become a retry.
        """
        error = self._as_api_error(exc)
        if error is None:
            self.abandon()
            return exc
        self._fail(error, ttft=ttft, completion_tokens=completion_tokens)
        if error is not exc:
            error.__cause__ = exc
        return error

    def bad_answer(self, problem: str) -> OpenAIError:
        """The error for an answer of the wrong shape: the upstream's fault, retried elsewhere."""
        dep = self._dep
        return BadGatewayError(
            f"the upstream answered 200 with a malformed body: {problem}",
            llm_provider=dep.provider,
            model=dep.model,
            deployment_id=dep.id,
        )

    def abandon(self) -> None:
        """The attempt was cancelled before an answer: undo in-flight, free the probe slot."""
        record = self._record
        record.in_flight -= 1
        if record.breaker.state is BreakerState.HALF_OPEN:
            self._runner.set_breaker(self._dep, record, release_probe(record.breaker), self._runner.clock())
        if record.evicted:
            self._runner.forget_evicted(self._dep, record)

    # --- streams -------------------------------------------------------------------------------------

    async def stream(self, iterator: AsyncIterator[JSON], *, native: bool = False) -> CallResult:
        """Wait for the first chunk (bounded in total, not only per read), then hand out the relay."""
        # The adapter's timeout is per read: an upstream dripping bytes or ``: ping`` comments
        # would reset it forever. The first content chunk must come within the attempt's timeout,
        # bounded by the stream's one timer, which the relay then keeps for the stream's duration.
        loop = asyncio.get_running_loop()
        timer = StreamTimer(loop, loop.time() + self._timeout, asyncio.current_task())
        try:
            first = await anext(iterator)
        except BaseException as exc:
            timer.cancel()
            if timer.timed_out(exc):
                timeout = TimeoutError()
                timeout.__cause__ = exc
                exc = timeout
            await close_iterator(iterator)
            raise self.failed(exc)  # noqa: B904 -- failed() chains it (or returns exc itself)
        runner = self._runner
        now = runner.clock()
        ttft = now - self._start
        self._call.info.first_chunk(ttft)
        record = self._record
        if record.breaker is not HEALTHY:
            # The first chunk proves the deployment answers: a half-open probe succeeded now, not
            # when a possibly long stream ends.
            runner.set_breaker(self._dep, record, on_success(record.breaker, now), now)

        def on_end(relay: StreamRelay, error: OpenAIError | None, finished: bool) -> None:
            self._end_stream(ttft, relay, error, finished)

        options = self._call.body.get("stream_options")
        # native events are the client's own API: nothing in them is routerd's to hide
        wants_usage = native or (isinstance(options, dict) and bool(options.get("include_usage")))
        relay = StreamRelay(
            iterator,
            first,
            self._dep,
            on_end,
            runner.limits.max_stream_duration,
            strip_usage=not wants_usage,
            timer=timer,
        )
        return CallResult(deployment=self._dep, info=self._call.info, stream=relay)

    def _end_stream(self, ttft: float, relay: StreamRelay, error: OpenAIError | None, finished: bool) -> None:
        """Account for a relayed stream once it ended, failed, or was closed by the reader."""
        prompt_tokens, completion_tokens = _usage(relay.usage)
        if not completion_tokens:
            completion_tokens = relay.chunks  # about one token per chunk when the upstream sent no usage
        if error is not None:
            self._fail(error, ttft=ttft, completion_tokens=completion_tokens)
            return
        now = self._runner.clock()
        latency = now - self._start
        if finished:
            self._record.observe_success(now, latency, completion_tokens, ttft, self._call.view.alpha)
        # A stream closed early by the client still proved the deployment answers.
        self._release_ok(now, prompt_tokens, completion_tokens)
        self._call.info.waited(latency - ttft)
        self._finished(latency, ttft=ttft, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    # --- accounting ----------------------------------------------------------------------------------

    def _release_ok(self, now: float, prompt_tokens: int, completion_tokens: int) -> None:
        record = self._record
        record.in_flight -= 1
        if prompt_tokens or completion_tokens:
            record.usage.adjust(
                now, self._stamp, prompt_tokens + completion_tokens - max(self._call.tokens, 0)
            )
        if record.breaker is not HEALTHY:
            self._runner.set_breaker(self._dep, record, on_success(record.breaker, now), now)
        if record.evicted:
            self._runner.forget_evicted(self._dep, record)

    def _fail(self, error: OpenAIError, *, ttft: float | None = None, completion_tokens: int = 0) -> None:
        runner = self._runner
        now = runner.clock()
        elapsed = now - self._start
        dep, record, view = self._dep, self._record, self._call.view
        record.in_flight -= 1
        failure = classify(error)
        record.observe_failure(now, elapsed, failure.reason, failure.cools_down, view.alpha)
        cooldown_time = dep.cooldown_time if dep.cooldown_time is not None else view.rules.cooldown_time
        breaker = on_failure(record.breaker, now, failure, view.rules, cooldown_time)
        if breaker is not record.breaker:
            _log_cooldown(dep, breaker, failure.kind, failure.reason, error, now)
            runner.set_breaker(dep, record, breaker, now)
        locate(error, dep)
        self._call.info.waited(elapsed if ttft is None else elapsed - ttft)
        self._finished(
            elapsed,
            error=error,
            ttft=ttft,
            completion_tokens=completion_tokens,
        )
        if record.evicted:
            runner.forget_evicted(dep, record)

    def _finished(
        self,
        latency: float,
        *,
        error: OpenAIError | None = None,
        ttft: float | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The one place an attempt's :class:`AttemptFinished` is built."""
        call, dep = self._call, self._dep
        event = AttemptFinished(
            request_id=call.request_id,
            group=dep.group,
            deployment_id=dep.id,
            provider=dep.provider,
            endpoint=call.endpoint,
            stream=call.stream,
            ok=error is None,
            status=200 if error is None else (error.upstream_status or error.status_code),
            error=None if error is None else type(error).__name__,
            latency=latency,
            ttft=ttft,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            upstream_headers=headers if headers is not None else _NO_HEADERS,
            calls=self._calls,
        )
        self._runner.emit(event)
        if call.tracer is not None:
            try:
                call.tracer.attempt_finished(event)
            except Exception:
                log.exception("attempt tracer failed when an attempt ended on deployment %s", dep.id)

    def _as_api_error(self, exc: BaseException) -> OpenAIError | None:
        dep = self._dep
        if isinstance(exc, OpenAIError):
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
                f"the upstream did not answer within {self._timeout:.3g}s",
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


def locate(error: OpenAIError, dep: Deployment) -> None:
    """Errors leave an attempt carrying where they happened, for logs and the client's message."""
    if error.deployment_id is None:
        error.deployment_id = dep.id
    if error.llm_provider is None:
        error.llm_provider = dep.provider


def upstream_calls(adapter: Adapter, dep: Deployment, endpoint: str, body: Mapping[str, Any]) -> int:
    """How many upstream calls one attempt makes (a text completion served through chat: one per prompt)."""
    if endpoint != COMPLETIONS:
        return 1
    count: Callable[[Deployment, Mapping[str, Any]], int] | None = getattr(adapter, "completion_calls", None)
    return count(dep, body) if count is not None else 1


def _log_cooldown(
    dep: Deployment, breaker: Breaker, kind: ErrorKind, reason: str, error: OpenAIError, now: float
) -> None:
    if breaker.state is not BreakerState.COOLING_DOWN:
        return
    if kind is ErrorKind.AUTHENTICATION:
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
    else:
        log.warning(
            "deployment %s (group %s) cooling down for %.1fs after %s",
            dep.id,
            dep.group,
            breaker.until - now,
            reason,
        )


def _usage(usage: Any) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) from an OpenAI ``usage`` object; zeros when absent."""
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if prompt is None and completion is None:  # a native answer: Anthropic's and Responses' names
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    return (prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)
