"""The router: the one object that turns routing decisions into upstream calls.

:class:`Router` holds the current :class:`~routerd.config.table.RoutingTable` (swapped atomically by
:meth:`Router.publish`) and a :class:`~routerd.state.HealthStore`. For every call it resolves the model
to a group, then loops: ask the pure planner (:func:`routerd.routing.plan.pick`) for a deployment, run
one attempt (:class:`~routerd.routing.attempt.AttemptRunner`), and on failure consult the pure recovery
rules (:mod:`routerd.routing.recovery`) to retry (re-routing with no sleep, else after a jittered
backoff) or to fall back to another group. Time, sleep and randomness are injected.

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
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from routerd.events import EventBus, FallbackTaken, RetryScheduled
from routerd.providers.base import EMBEDDINGS, Adapter, get_adapter
from routerd.routing.attempt import ENDPOINT_METHODS, AttemptRunner, Call, PreparedGroup, TableView
from routerd.routing.backoff import retry_delay
from routerd.routing.explain import explain_group, health_entry
from routerd.routing.health import CooldownRules, DeploymentHealth, effective_state
from routerd.routing.options import split_request
from routerd.routing.plan import Blocked, Pick, build_group_plan, pick
from routerd.routing.recovery import CONTEXT_WINDOW, ERROR, fallback_reason, next_fallback, retries_allowed
from routerd.routing.strategies import latency_alpha, make_strategy
from routerd.routing.types import CallResult, RoutingInfo
from routerd.state import HealthStore, MemoryHealthStore
from routerd.tokens import count_request_tokens
from routerd.transport import HttpClient, default_client

__all__ = ["Router"]

log = logging.getLogger("routerd.router")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# Concrete models served through wildcard groups are prepared on first use and cached per table;
# clients choose those names, so the cache is bounded.
_MAX_WILDCARD_MODELS = 1024
# While a half-open deployment's single probe is in flight, waiters re-check this often.
_PROBE_POLL = 0.25
_MOCK_ERRORS: Mapping[str, type[APIError]] = {
    "InternalServerError": InternalServerError,
    "ContextWindowExceededError": ContextWindowExceededError,
    "ContentPolicyViolationError": ContentPolicyViolationError,
    "RateLimitError": RateLimitError,
}


class Router:
    """Routes OpenAI-shaped calls over a routing table; the server and the SDK both use this."""

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
    ) -> None:
        self._owns_http = http is None
        self._http: HttpClient = http if http is not None else default_client()
        self._store: HealthStore = state if state is not None else MemoryHealthStore()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._events = events if events is not None else EventBus()
        self._runner = AttemptRunner(self._http, self._store, self._events, clock)
        self._view = _make_view(table)

    # --- table ---------------------------------------------------------------------------------------

    @property
    def table(self) -> RoutingTable:
        """The routing table new calls use."""
        return self._view.table

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def state(self) -> HealthStore:
        return self._store

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
    ) -> CallResult:
        """Route one call. ``endpoint`` is ``"chat"``, ``"completions"`` or ``"embeddings"``.

        ``body`` is the client's parsed OpenAI request; router-only keys (``num_retries``,
        ``fallbacks``, ...) are honoured and removed before an adapter sees it. ``timeout`` (else
        the body's ``timeout``, else ``router_settings.timeout``) bounds the whole call, retries and
        fallbacks included. A stream is returned once its first chunk has arrived, so failover happens
        before anything reaches the client.

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
            if timeout is None:
                timeout = options.timeout if options.timeout is not None else view.policy.timeout
            call = Call(
                view=view,
                endpoint=endpoint,
                body=body,
                options=options,
                stream=endpoint != EMBEDDINGS and bool(body.get("stream")),
                deadline=self._clock() + timeout,
                limit=timeout,
                request_id=request_id,
                extra_headers=extra_headers if extra_headers is not None else _NO_HEADERS,
                info=info,
            )
            return await self._route(call, model)
        except APIError as exc:
            exc.routing = info
            raise

    async def _route(self, call: Call, model: str) -> CallResult:
        group = self._resolve(call.view, model)
        if group is None:
            raise NotFoundError(
                f"model '{model}' is not served by this router; GET /v1/models lists the available models",
                model=model,
                param="model",
                code="model_not_found",
            )
        name = group.plan.name
        call.root = name
        call.tried.append(model)
        if name != model:
            call.tried.append(name)
        info = call.info
        info.group = name
        info.tried_groups.append(name)
        came_from: tuple[str, str] | None = None  # (previous group, reason) when this group is a fallback
        while True:
            try:
                result = await self._run_group(call, group, first=came_from is None)
            except APIError as exc:
                if came_from is not None:
                    self._events.emit(FallbackTaken(came_from[0], group.plan.name, came_from[1], "failure"))
                target = self._next_group(call, fallback_reason(exc), commit=True)
                if target is None or self._clock() >= call.deadline:
                    raise
                came_from = (group.plan.name, target[1])
                group = target[0]
                info.fallbacks += 1
                info.group = group.plan.name
                info.tried_groups.append(group.plan.name)
                continue
            if came_from is not None:
                self._events.emit(FallbackTaken(came_from[0], group.plan.name, came_from[1], "success"))
            return result

    def _next_group(
        self, call: Call, reason: str | None, *, commit: bool
    ) -> tuple[PreparedGroup, str] | None:
        """The next fallback group that exists. ``commit`` records it as tried; otherwise only peeks."""
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
            group = self._resolve(view, name)
            if group is None:
                log.warning("fallback target '%s' of '%s' is not a model group; skipped", name, call.root)
                continue
            if group.plan.name != name:
                if group.plan.name in tried:
                    continue  # an alias of a group already tried
                tried.append(group.plan.name)
            return group, why

    async def _run_group(self, call: Call, group: PreparedGroup, *, first: bool) -> CallResult:
        """Attempts against one group with its own retry budget; raises when the group gives up."""
        view = call.view
        policy = view.policy
        plan = group.plan
        options = call.options
        if first and options.mock_failure is not None:
            raise _MOCK_ERRORS[options.mock_failure](
                f"simulated {options.mock_failure} for '{plan.name}' (mock_testing_* in the request)",
                model=plan.name,
            )
        record_of = self._store.record
        records = [record_of(c.deployment.id) for c in plan.candidates]
        if plan.needs_tokens and call.tokens < 0:
            call.tokens = count_request_tokens(call.endpoint, call.body)
        tokens = max(call.tokens, 0)
        budget = plan.num_retries if plan.num_retries is not None else policy.num_retries
        retries = 0  # retry budget spent (counted at the failure that asks for the retry)
        exclude: set[str] = set()  # deployments that failed this call in this group
        last: APIError | None = None
        last_id = ""
        retry_pending = False  # the next attempt is a retry (counted in RoutingInfo when it starts)
        retry_announced = False  # RetryScheduled already emitted for it (when it needed a backoff)
        check_size = True
        while True:
            now = self._clock()
            if now >= call.deadline:
                if last is not None:
                    raise last
                raise Timeout(
                    f"the call's {call.limit:g}s timeout passed before a deployment of '{plan.name}' answered",
                    model=plan.name,
                )
            choice = pick(
                plan,
                records,
                view.strategy,
                now=now,
                rng=self._rng,
                tokens=tokens,
                stream=call.stream,
                exclude=exclude,
                check_size=check_size,
            )
            if isinstance(choice, Pick):
                if retry_pending and last is not None:
                    call.info.retries += 1
                    if not retry_announced:  # re-routed to another deployment: no sleep
                        self._events.emit(RetryScheduled(plan.name, last_id, type(last).__name__, 0.0))
                    retry_pending = retry_announced = False
                try:
                    return await self._runner.run(call, group, choice)
                except APIError as exc:
                    if retries >= retries_allowed(exc, budget, policy.retry_policy, options.num_retries):
                        raise
                    retries += 1
                    last, last_id = exc, choice.candidate.deployment.id
                    exclude.add(last_id)
                    retry_pending = True
                    continue
            if choice.too_large and not exclude:
                if self._next_group(call, CONTEXT_WINDOW, commit=False) is not None:
                    raise _context_window_error(plan.name, plan.candidates, tokens)
                # Nowhere bigger to go: the estimate may be pessimistic, so let the upstream judge.
                check_size = False
                continue
            if last is not None and exclude:
                # Every deployment not yet tried is unavailable: retry the same set after a backoff,
                # unless a fallback group can take the call right away, or the error said that
                # deployment is misconfigured (401/403/404: retrying it cannot help).
                if not last.retryable or self._next_group(call, fallback_reason(last), commit=False):
                    raise last
                delay = retry_delay(
                    retries,
                    base=policy.backoff_base,
                    cap=policy.backoff_cap,
                    rng=self._rng,
                    retry_after=last.retry_after,
                    minimum=policy.retry_after,
                    max_retry_after=policy.max_cooldown_time,
                )
                if now + delay >= call.deadline:
                    raise last
                self._events.emit(RetryScheduled(plan.name, last_id, type(last).__name__, delay))
                retry_announced = True
                await self._sleep(delay)
                exclude.clear()
                continue
            if choice.cooling and self._next_group(call, ERROR, commit=False) is None:
                # Everything is cooling down and nowhere else to go: wait for the first to return
                # when that fits the deadline.
                wake = min(choice.until, now + _PROBE_POLL) if choice.probing else choice.until
                if wake < call.deadline:
                    await self._sleep(wake - now)
                    continue
            error = _unavailable(plan.name, choice, now)
            if last is not None:
                raise error from last
            raise error

    # --- resolution ----------------------------------------------------------------------------------

    def _resolve(self, view: TableView, model: str) -> PreparedGroup | None:
        prepared = view.groups.get(model) or view.wildcards.get(model)
        if prepared is not None:
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
        if len(view.wildcards) >= _MAX_WILDCARD_MODELS:
            view.wildcards.pop(next(iter(view.wildcards)))
        view.wildcards[model] = prepared
        return prepared

    # --- reports -------------------------------------------------------------------------------------

    def explain(self, model: str, *, samples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Why calls for ``model`` go where they go, without calling any provider.

        The candidates in order with weight, tier, health, cooldown remaining and window usage, and the
        distribution of ``samples`` simulated picks (seeded with ``seed``) under the current health.
        See :func:`routerd.routing.explain.format_explain` for the text rendering.
        """
        view = self._view
        group = self._resolve(view, model)
        if group is None:
            raise NotFoundError(
                f"model '{model}' is not served by this router; GET /v1/models lists the available models",
                model=model,
                param="model",
                code="model_not_found",
            )
        records = [self._peek(c.deployment.id) for c in group.plan.candidates]
        return explain_group(
            model=model,
            plan=group.plan,
            records=records,
            view=view,
            now=self._clock(),
            samples=samples,
            seed=seed,
        )

    def health_report(self) -> dict[str, Any]:
        """Per-deployment health for ``GET /health``: state, cooldowns, usage. No secrets."""
        view = self._view
        now = self._clock()
        entries = []
        counts = {"healthy": 0, "cooling_down": 0, "half_open": 0}
        seen: set[str] = set()
        deployments: list[Deployment] = []
        for group in view.table.groups.values():
            deployments.extend(group.deployments)
        for prepared in list(view.wildcards.values()):
            deployments.extend(c.deployment for c in prepared.plan.candidates)
        for dep in deployments:
            if dep.id in seen:
                continue
            seen.add(dep.id)
            record = self._peek(dep.id)
            entry = health_entry(dep, record, now)
            counts[effective_state(record.breaker, now).value] += 1
            entries.append(entry)
        return {"table": view.table.content_hash, "counts": counts, "deployments": entries}

    def _peek(self, deployment_id: str) -> DeploymentHealth:
        # Reports must not create records for deployments that never took a call.
        record = self._store.get(deployment_id)
        return record if record is not None else DeploymentHealth()

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


def _unavailable(group: str, blocked: Blocked, now: float) -> APIError:
    if blocked.rate_limited and not blocked.cooling:
        wait = blocked.limit_until - now
        return RateLimitError(
            f"every deployment of '{group}' is at its rpm/tpm limit; capacity frees in {wait:.1f}s",
            model=group,
            retry_after=wait,
        )
    wait = blocked.until - now
    retry_after = wait if wait != float("inf") else None
    when = f"; the first returns in {wait:.1f}s" if retry_after is not None else ""
    return ServiceUnavailableError(
        f"no deployment of '{group}' can take the call: all are cooling down after errors{when}",
        model=group,
        retry_after=retry_after,
    )


def _context_window_error(group: str, candidates: Sequence[Any], tokens: int) -> ContextWindowExceededError:
    largest = max((c.max_input_tokens or 0) for c in candidates)
    return ContextWindowExceededError(
        f"the prompt (about {tokens} tokens) is larger than every deployment of '{group}' accepts "
        f"(largest max_input_tokens: {largest})",
        model=group,
        param="messages",
    )
