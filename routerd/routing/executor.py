"""The call router: the one object that turns routing decisions into upstream calls.

:class:`CallRouter` (the core of both the daemon and the SDK's ``routerd.Router``) holds the current
:class:`~routerd.config.table.RoutingTable` (swapped atomically by :meth:`CallRouter.publish`) and a
:class:`~routerd.state.HealthStore`. For every call it resolves the model to a group and drives the
group's attempts: it asks the pure planner (:func:`routerd.routing.plan.pick`) for a deployment, the pure
retry policy (:func:`routerd.routing.policy.step`) what to do next (attempt, pick again, sleep, give up),
and runs one attempt at a time (:class:`~routerd.routing.attempt.Attempt`). When a group gives up, the
pure recovery rules (:mod:`routerd.routing.recovery`) choose the fallback group. Time, sleep and
randomness are injected. Reports over the router's state (``explain``, ``/health``) live in
:mod:`routerd.routing.explain`.

A call keeps the table snapshot it started with: a reload never changes a request in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from routerd.config.table import Deployment, RoutingTable, wildcard_deployments
from routerd.errors import (
    APIError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    RateLimitError,
)
from routerd.events import EventBus, FallbackTaken
from routerd.http import HttpClient, default_client
from routerd.providers.base import CHAT, COMPLETIONS, Adapter, get_adapter
from routerd.providers.textcompat import prompt_count
from routerd.routing.attempt import (
    ENDPOINT_METHODS,
    AttemptRunner,
    AttemptTracer,
    Call,
    PreparedGroup,
    TableView,
)
from routerd.routing.health import CooldownRules, DeploymentHealth
from routerd.routing.limits import DEFAULT_LIMITS, CallLimits
from routerd.routing.options import RequestOptions, split_request
from routerd.routing.plan import GroupPlan, Pick, build_group_plan, pick
from routerd.routing.policy import (
    EXPIRED,
    INITIAL,
    NO_SIZE_CHECK,
    Attempt,
    Command,
    Failed,
    GiveUp,
    GroupRules,
    GroupState,
    Outcome,
    Sleep,
    step,
)
from routerd.routing.recovery import fallback_reason, next_fallback
from routerd.routing.strategies import latency_alpha, make_strategy
from routerd.routing.types import CallResult, NativeCall, RoutingInfo
from routerd.state import HealthStore, MemoryHealthStore
from routerd.tokens import count_request_tokens

__all__ = ["CallRouter"]

log = logging.getLogger("routerd.router")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_STREAMABLE = frozenset({CHAT, COMPLETIONS})  # endpoints whose answers can be streamed
_MOCK_ERRORS: Mapping[str, type[OpenAIError]] = {
    "InternalServerError": InternalServerError,
    "ContextWindowExceededError": ContextWindowExceededError,
    "ContentPolicyViolationError": ContentPolicyViolationError,
    "RateLimitError": RateLimitError,
}


class CallRouter:
    """Routes OpenAI-shaped calls over a routing table; the server and the SDK both use this.

    (The SDK's user-facing ``routerd.Router`` wraps one of these.)
    """

    def __init__(
        self,
        table: RoutingTable,
        *,
        http: HttpClient | None = None,
        state: HealthStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        events: EventBus | None = None,
        limits: CallLimits = DEFAULT_LIMITS,
    ) -> None:
        self._owns_http = http is None
        self._http: HttpClient = http if http is not None else default_client()
        self._store: HealthStore = state if state is not None else MemoryHealthStore()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._events = events if events is not None else EventBus()
        self._limits = limits
        self._runner = AttemptRunner(self._http, self._store, self._events, clock, limits)
        self._view = _make_view(table)

    # --- table and state -----------------------------------------------------------------------------

    @property
    def table(self) -> RoutingTable:
        """The routing table new calls use."""
        return self._view.table

    @property
    def view(self) -> TableView:
        """The current table with everything derived from it (for reports)."""
        return self._view

    @property
    def http(self) -> HttpClient:
        """The HTTP client upstream calls go through (health checks use it too)."""
        return self._http

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def state(self) -> HealthStore:
        return self._store

    @property
    def limits(self) -> CallLimits:
        return self._limits

    def now(self) -> float:
        """The router's clock (injected; monotonic seconds)."""
        return self._clock()

    def publish(self, table: RoutingTable) -> None:
        """Make ``table`` current with one reference assignment.

        Health state of deployment ids still present carries over; removed ids' state is dropped.
        Raises ValueError (and keeps the old table) when the policy names an unknown strategy.
        """
        view = _make_view(table)  # everything that can fail happens before the swap
        previous = self._view.table
        self._view = view
        self._retire_upstreams(previous, table)
        exact: set[str] = set(table.deployments)
        wildcard_prefixes: list[str] = []
        for group in table.groups.values():
            exact.update(dep.id for dep in group.deployments)
        for group in table.wildcard_groups:
            wildcard_prefixes.extend(f"{dep.id}:" for dep in group.deployments)
        prefixes = tuple(wildcard_prefixes)
        self._store.retain(lambda dep_id: dep_id in exact or (bool(prefixes) and dep_id.startswith(prefixes)))

    def _retire_upstreams(self, old: RoutingTable, new: RoutingTable) -> None:
        """Let the HTTP client stop pooling connections to upstreams only removed deployments used."""
        retire = getattr(self._http, "retire_origins", None)
        if retire is None:
            return
        kept = {dep.api_base for dep in new.deployments.values() if dep.api_base}
        removed = {dep.api_base for dep in old.deployments.values() if dep.api_base} - kept
        if removed:
            retire(removed, kept)

    # --- calls ---------------------------------------------------------------------------------------

    async def call(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        request_id: str = "",
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        native: NativeCall | None = None,
        tracer: AttemptTracer | None = None,
    ) -> CallResult:
        """Route one call. ``endpoint`` is ``"chat"``, ``"completions"`` or ``"embeddings"``.

        ``native`` (a chat call only) is the same request in a provider's own API: deployments whose
        adapter speaks it get it as it is, the others ``body``; the result says which (``native``).

        ``body`` is the client's parsed OpenAI request; router-only keys (``num_retries``,
        ``fallbacks``, ...) are honoured and removed before an adapter sees it. ``timeout`` (else
        the body's ``timeout``, else ``router_settings.timeout``) bounds the whole call, retries and
        fallbacks included; a client's ``timeout`` and ``num_retries`` are capped by the router's
        :class:`~routerd.routing.limits.CallLimits`. A stream is returned once its first chunk has
        arrived, so failover happens before anything reaches the client.

        ``tracer`` is told when each upstream attempt starts (its headers go on that attempt's request)
        and ends: tracing callbacks' attempt spans.

        Cancelling the calling task stops the call at once (no further retry, sleep or fallback).
        Raises :mod:`routerd.errors` classes; each carries ``routing`` (a :class:`RoutingInfo`).
        """
        if endpoint not in ENDPOINT_METHODS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINT_METHODS)}")
        view = self._view
        info = RoutingInfo()
        try:
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise BadRequestError(
                    "'model' is required: one of the models listed by GET /v1/models", param="model"
                )
            body, options = split_request(body)
            options = _capped(options, self._limits)
            fanout = 1
            if endpoint == COMPLETIONS:
                fanout = _check_prompts(body, self._limits.max_prompts)
            if timeout is None:
                timeout = options.timeout if options.timeout is not None else view.policy.timeout
            call = Call(
                view=view,
                endpoint=endpoint,
                body=body,
                options=options,
                stream=endpoint in _STREAMABLE and bool(body.get("stream")),
                deadline=self._clock() + timeout,
                limit=timeout,
                request_id=request_id,
                extra_headers=extra_headers if extra_headers is not None else _NO_HEADERS,
                info=info,
                fanout=fanout,
                native=native,
                tracer=tracer,
            )
            return await self._route(call, model)
        except OpenAIError as exc:
            exc.routing = info
            raise

    async def _route(self, call: Call, model: str) -> CallResult:
        """Run the requested group, then fallback groups while the recovery rules name one."""
        group = self.resolve(model, call.view)
        if group is None:
            raise _not_served(model)
        call.root = name = group.plan.name
        call.tried.append(model)
        if name != model:
            call.tried.append(name)
        call.info.entered(name, fallback=False)
        came_from: tuple[str, str] | None = None  # (previous group, reason) when this group is a fallback
        while True:
            try:
                result = await self._run_group(call, group, first=came_from is None)
            except OpenAIError as exc:
                if came_from is not None:
                    self._events.emit(FallbackTaken(came_from[0], group.plan.name, came_from[1], "failure"))
                target = self._next_group(call, fallback_reason(exc), commit=True)
                if target is None or self._clock() >= call.deadline:
                    raise
                came_from = (group.plan.name, target[1])
                group = target[0]
                call.info.entered(group.plan.name, fallback=True)
                replaced = call.options.body_for(target[2], call.body)
                if replaced is not call.body:
                    call.body, call.tokens = replaced, -1  # a new prompt: count it again
                continue
            if came_from is not None:
                self._events.emit(FallbackTaken(came_from[0], group.plan.name, came_from[1], "success"))
            return result

    def _next_group(
        self, call: Call, reason: str | None, *, commit: bool
    ) -> tuple[PreparedGroup, str, str] | None:
        """The next fallback group that exists, why, and the name it was given by. ``commit`` records it
        as tried; otherwise only peeks."""
        if reason is None:
            return None
        view = call.view
        tried = call.tried if commit else list(call.tried)
        while True:
            target = next_fallback(view.policy, call.options, call.root, reason, tried, call.info.fallbacks)
            if target is None:
                return None
            name, why = target
            tried.append(name)
            group = self.resolve(name, view)
            if group is None:
                log.warning("fallback target '%s' of '%s' is not a model group; skipped", name, call.root)
                continue
            if group.plan.name != name:
                if group.plan.name in tried:
                    continue  # an alias of a group already tried
                tried.append(group.plan.name)
            return group, why, name

    async def _run_group(self, call: Call, group: PreparedGroup, *, first: bool) -> CallResult:
        """Drive one group's attempts by the pure policy (:func:`~routerd.routing.policy.step`)."""
        plan = group.plan
        if first and call.options.mock_failure is not None:
            raise _mock_failure(call.options.mock_failure, plan.name)
        record_of = self._store.record
        records = [record_of(c.deployment.id) for c in plan.candidates]
        if plan.needs_tokens and call.tokens < 0:
            call.tokens = count_request_tokens(call.endpoint, call.body)
        rules = _group_rules(call, plan)

        def decide(state: GroupState, outcome: Outcome, now: float) -> tuple[GroupState, Command]:
            return step(state, outcome, now, rules, fallback_open=fallback_open, rng=self._rng)

        def fallback_open(reason: str | None) -> bool:
            return self._next_group(call, reason, commit=False) is not None

        # LiteLLM filters by context window before the call only with enable_pre_call_checks; without
        # it the upstream judges (and a context-window error still reaches context_window_fallbacks)
        state = INITIAL if call.view.policy.enable_pre_call_checks else NO_SIZE_CHECK
        gate = self._store.gate  # a shared store's exact limit check (one round trip), or None
        while True:
            now = self._clock()
            outcome = self._outcome(call, plan, records, state, now)
            if (
                gate is not None
                and isinstance(outcome, Pick)
                and not await gate(outcome, max(call.tokens, 0), call.fanout, now)
            ):
                gate = self._store.gate  # refused: the store marked the record (limit, or a peer probes)
                continue
            state, command = decide(state, outcome, now)
            if isinstance(command, Attempt):
                try:
                    return await self._attempt(call, group, command)
                except OpenAIError as exc:
                    failed = Failed(exc, command.pick.candidate.deployment.id)
                state, command = decide(state, failed, now)  # never another Attempt: re-pick or give up
            await self._obey(command)

    def _outcome(
        self, call: Call, plan: GroupPlan, records: list[DeploymentHealth], state: GroupState, now: float
    ) -> Outcome:
        """What the planner says now (or that the call's deadline has passed)."""
        if now >= call.deadline:
            return EXPIRED
        return pick(
            plan,
            records,
            call.view.strategy,
            now=now,
            rng=self._rng,
            tokens=max(call.tokens, 0),
            stream=call.stream,
            exclude=state.exclude,
            check_size=state.check_size,
            calls=call.fanout,
        )

    async def _attempt(self, call: Call, group: PreparedGroup, command: Attempt) -> CallResult:
        if command.retry:
            call.info.retried()
        if command.announce is not None:
            self._events.emit(command.announce)
        return await self._runner.run(call, group, command.pick)

    async def _obey(self, command: Command) -> None:
        """Carry out a command that is not an attempt: sleep, give up (raise), or nothing (re-pick)."""
        if isinstance(command, Sleep):
            if command.announce is not None:
                self._events.emit(command.announce)
            await self._sleep(command.seconds)
        elif isinstance(command, GiveUp):
            if command.cause is not None and command.cause is not command.error:
                raise command.error from command.cause
            raise command.error

    # --- resolution ----------------------------------------------------------------------------------

    def resolve(self, model: str, view: TableView | None = None) -> PreparedGroup | None:
        """The prepared group serving ``model`` in ``view`` (default: the current one), or None.

        Concrete models of wildcard groups are prepared on first use and kept, least recently used
        first out, up to ``limits.max_wildcard_models``; an evicted model's health records go with it.
        """
        view = view if view is not None else self._view
        prepared = view.groups.get(model)
        if prepared is not None:
            return prepared
        wildcards = view.wildcards
        prepared = wildcards.pop(model, None)
        if prepared is not None:
            wildcards[model] = prepared  # most recently used last
            return prepared
        table = view.table
        group = table.resolve(model)
        if group is None:
            return None
        if not group.is_wildcard:
            prepared = view.groups.get(group.name)
            if prepared is None:
                prepared = _prepare(view, group.name, group.deployments, reprepare=False)
                view.groups[group.name] = prepared
            view.groups[model] = prepared  # aliases are finite: cache them too
            return prepared
        requested = table.aliases.get(model, model)
        prepared = _prepare(view, requested, wildcard_deployments(group, requested), reprepare=True)
        while len(wildcards) >= self._limits.max_wildcard_models:
            self._evict(wildcards.pop(next(iter(wildcards))))
        for candidate in prepared.plan.candidates:
            record = self._store.get(candidate.deployment.id)
            if record is not None:
                record.evicted = False  # back before its last call ended: keep its health
        wildcards[model] = prepared
        return prepared

    def _evict(self, prepared: PreparedGroup) -> None:
        """Forget an evicted wildcard model's health records.

        A record with calls in flight is marked instead and forgotten when its last call ends
        (:meth:`AttemptRunner.forget_evicted`).
        """
        gone: set[str] = set()
        for candidate in prepared.plan.candidates:
            dep_id = candidate.deployment.id
            record = self._store.get(dep_id)
            if record is None:
                continue
            if record.in_flight > 0:
                record.evicted = True
            else:
                gone.add(dep_id)
        if gone:
            self._store.retain(lambda dep_id: dep_id not in gone)

    async def aclose(self) -> None:
        """Close the HTTP client (when the router created it) and the health store."""
        try:
            if self._owns_http:
                await self._http.aclose()
        finally:
            await self._store.aclose()


# --- helpers ---------------------------------------------------------------------------------------


def _make_view(table: RoutingTable) -> TableView:
    policy = table.policy
    return TableView(
        table=table,
        policy=policy,
        strategy=make_strategy(policy.routing_strategy, policy.routing_strategy_args),
        rules=CooldownRules.from_policy(policy),
        alpha=latency_alpha(policy.routing_strategy_args),
    )


def _prepare(
    view: TableView, name: str, deployments: Sequence[Deployment], *, reprepare: bool
) -> PreparedGroup:
    policy = view.policy
    adapters: list[Adapter] = []
    prepared: list[Deployment] = []
    for dep in deployments:
        try:
            adapter = get_adapter(dep.provider)
        except KeyError:
            raise APIError(
                f"deployment {dep.id} of '{dep.group}' names provider '{dep.provider}', which routerd does not have",
                llm_provider=dep.provider,
                deployment_id=dep.id,
            ) from None
        if reprepare or dep.prepared is None:
            dep = replace(dep, prepared=adapter.prepare(dep))
        adapters.append(adapter)
        prepared.append(dep)
    return PreparedGroup(
        plan=build_group_plan(name, prepared),
        adapters=tuple(adapters),
        timeouts=tuple(_first(d.timeout, policy.timeout) for d in prepared),
        stream_timeouts=tuple(
            _first(d.stream_timeout, policy.stream_timeout, d.timeout, policy.timeout) for d in prepared
        ),
        drop_params=tuple(
            d.drop_params if d.drop_params is not None else policy.drop_params for d in prepared
        ),
    )


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no timeout configured")  # RouterPolicy.timeout always has a value


def _mock_failure(name: str, group: str) -> OpenAIError:
    return _MOCK_ERRORS[name](f"simulated {name} for '{group}' (mock_testing_* in the request)", model=group)


def _group_rules(call: Call, plan: GroupPlan) -> GroupRules:
    policy = call.view.policy
    return GroupRules(
        plan=plan,
        deadline=call.deadline,
        limit=call.limit,
        budget=plan.num_retries if plan.num_retries is not None else policy.num_retries,
        retry_policy=policy.retry_policy,
        request_retries=call.options.num_retries,
        backoff_base=policy.backoff_base,
        backoff_cap=policy.backoff_cap,
        retry_after=policy.retry_after,
        max_retry_after=policy.max_cooldown_time,
        tokens=max(call.tokens, 0),
    )


def _capped(options: RequestOptions, limits: CallLimits) -> RequestOptions:
    """A client's ``num_retries`` and ``timeout`` cut to the router's limits (they are client-chosen)."""
    retries, timeout = options.num_retries, options.timeout
    if (retries is None or retries <= limits.max_num_retries) and (
        timeout is None or timeout <= limits.max_timeout
    ):
        return options
    return replace(
        options,
        num_retries=None if retries is None else min(retries, limits.max_num_retries),
        timeout=None if timeout is None else min(timeout, limits.max_timeout),
    )


def _check_prompts(body: Mapping[str, Any], most: int) -> int:
    """How many prompts a ``/v1/completions`` body lists; more than ``most`` is refused (400) at once."""
    count = prompt_count(body)
    if count > most:
        prompts = body["prompt"]
        raise BadRequestError(
            f"'prompt' lists {len(prompts)} prompts; this gateway accepts at most {most} per request "
            "(ROUTERD_MAX_PROMPTS): split the request",
            param="prompt",
            code="too_many_prompts",
        )
    return count


def _not_served(model: str) -> NotFoundError:
    return NotFoundError(
        f"model '{model}' is not served by this router; GET /v1/models lists the available models",
        model=model,
        param="model",
        code="model_not_found",
    )
