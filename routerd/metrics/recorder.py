"""The event subscriber that moves the metrics: one bus event in, a few cached children updated.

This runs synchronously inside :meth:`routerd.events.EventBus.emit`, i.e. on the request path, so
each event costs a handful of dict lookups and counter increments: label children are looked up once
per label set and cached (``labels()`` builds a key and validates on every call).

Deployment health follows the router's events between scrapes (a cooldown sets ``cooling_down`` and
its deadline; a state change sets the state) and is reconciled with the router's own health report on
every scrape (:meth:`MetricsRecorder.apply_health_report`): that report is authoritative, lists every
served deployment, and reflects transitions the router makes by the passage of time alone (a cooldown
expiring into ``half_open``), which emit no event.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from routerd.config.table import Deployment
from routerd.cost import request_cost
from routerd.events import (
    AttemptFinished,
    ConfigReloaded,
    CooldownStarted,
    DeploymentStateChanged,
    FallbackTaken,
    GuardrailsChecked,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from routerd.metrics.definitions import DEPLOYMENT_STATES, RouterdMetrics
from routerd.metrics.labels import OVERFLOW, LabelGuard
from routerd.metrics.lean import CounterChild as Counter
from routerd.metrics.lean import GaugeChild as Gauge
from routerd.metrics.lean import HistogramChild as Histogram

log = logging.getLogger("routerd.metrics")

HEALTHY, COOLING_DOWN, HALF_OPEN = DEPLOYMENT_STATES

# Rate-limit headroom headers: OpenAI and Azure OpenAI (and most OpenAI-compatible hosts), then Anthropic.
RATELIMIT_REQUESTS_HEADERS = ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")
RATELIMIT_TOKENS_HEADERS = ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining")

DeploymentLookup = Callable[[str], "Deployment | None"]


def _status_label(status: int) -> str:
    return str(status) if 0 <= status < 1000 else OVERFLOW


def _header_number(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    """The first of ``names`` present in ``headers`` (lower-case keys, as httpx gives them), as a number."""
    for name in names:
        raw = headers.get(name)
        if raw is not None:
            try:
                return float(raw)
            except ValueError:
                return None
    return None


class _RequestSeries:
    """Children for one (model_group, deployment, provider, endpoint) of the client-request metrics."""

    __slots__ = (
        "_cost",
        "_labels",
        "_m",
        "_status",
        "_tokens_in",
        "_tokens_out",
        "_ttft",
        "_unpriced",
        "duration",
        "overhead",
    )

    def __init__(self, m: RouterdMetrics, labels: tuple[str, str, str, str]) -> None:
        group, _, _, endpoint = labels
        self._m = m
        self._labels = labels
        self._status: dict[int, Counter] = {}
        self.duration: Histogram = m.request_duration.labels(group, endpoint)
        self.overhead: Histogram = m.overhead_duration.labels(group, endpoint)
        # created on first use, so a label set only shows the series it has data for
        self._ttft: Histogram | None = None
        self._tokens_in: Counter | None = None
        self._tokens_out: Counter | None = None
        self._cost: Counter | None = None
        self._unpriced: Counter | None = None

    def requests(self, status: int) -> Counter:
        child = self._status.get(status)
        if child is None:
            child = self._status[status] = self._m.requests.labels(*self._labels, _status_label(status))
        return child

    def ttft(self) -> Histogram:
        if self._ttft is None:
            self._ttft = self._m.ttft.labels(*self._labels)
        return self._ttft

    def tokens(self) -> tuple[Counter, Counter]:
        if self._tokens_in is None or self._tokens_out is None:
            self._tokens_in = self._m.tokens.labels(*self._labels[:3], "input")
            self._tokens_out = self._m.tokens.labels(*self._labels[:3], "output")
        return self._tokens_in, self._tokens_out

    def cost(self) -> Counter:
        if self._cost is None:
            self._cost = self._m.cost.labels(*self._labels[:3])
        return self._cost

    def unpriced(self) -> Counter:
        if self._unpriced is None:
            self._unpriced = self._m.unpriced.labels(*self._labels[:3])
        return self._unpriced


class _AttemptSeries:
    """Children for one (model_group, deployment, provider, endpoint) of the upstream-call metrics."""

    __slots__ = ("_labels", "_m", "_rl_requests", "_rl_tokens", "_status", "duration")

    def __init__(self, m: RouterdMetrics, labels: tuple[str, str, str, str]) -> None:
        self._m = m
        self._labels = labels
        self._status: dict[int, Counter] = {}
        self.duration: Histogram = m.upstream_duration.labels(*labels)
        self._rl_requests: Gauge | None = None
        self._rl_tokens: Gauge | None = None

    def requests(self, status: int) -> Counter:
        child = self._status.get(status)
        if child is None:
            child = self._status[status] = self._m.upstream_requests.labels(
                *self._labels, _status_label(status)
            )
        return child

    def ratelimit_requests(self) -> Gauge:
        if self._rl_requests is None:
            self._rl_requests = self._m.ratelimit_requests.labels(*self._labels[:3])
        return self._rl_requests

    def ratelimit_tokens(self) -> Gauge:
        if self._rl_tokens is None:
            self._rl_tokens = self._m.ratelimit_tokens.labels(*self._labels[:3])
        return self._rl_tokens


class _Track:
    """What the metrics know of one deployment's breaker, and its gauge children."""

    __slots__ = ("in_flight", "labels", "published", "remaining", "state", "state_gauges", "until")

    def __init__(self, m: RouterdMetrics, labels: tuple[str, str, str]) -> None:
        self.labels = labels  # model_group, deployment, provider (guarded)
        self.state = HEALTHY
        self.until: float | None = None  # cooling down until, on the recorder's clock
        self.published = ""  # the state last written to the gauges
        self.state_gauges = {state: m.deployment_state.labels(*labels, state) for state in DEPLOYMENT_STATES}
        self.remaining: Gauge = m.cooldown_remaining.labels(*labels)
        self.in_flight: Gauge = m.deployment_in_flight.labels(*labels)


class MetricsRecorder:
    """Subscribe an instance to the :class:`~routerd.events.EventBus`; it updates :class:`RouterdMetrics`.

    ``clock`` (monotonic seconds) times cooldowns between health reports; it need not be the router's,
    since cooldowns arrive as durations. ``deployment`` looks a deployment up by id, to price a request
    whose event carries no cost.
    """

    def __init__(
        self,
        metrics: RouterdMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        deployment: DeploymentLookup | None = None,
        max_label_values: int = 2000,
        max_wildcard_values: int = 100,
    ) -> None:
        self.metrics = metrics
        self._clock = clock
        self._deployment = deployment
        self._group = LabelGuard("model_group", max_label_values)
        self._deployment_id = LabelGuard("deployment", max_label_values)
        self._provider = LabelGuard("provider", 200)
        self._endpoint = LabelGuard("endpoint", 20)
        self._small = LabelGuard("reason/error", 500)  # error class names and reasons
        # key aliases and team ids come from the routing file: as many as it declares, up to the
        # general budget (they must not share the small budget of error names: 1,000 declared keys
        # would fold half of them into __other__)
        self._key_labels = LabelGuard("key_alias/team", max_label_values)
        # (key_alias, team) -> its spend, input-token and output-token children, looked up once
        self._key_series: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}
        # (guardrail, action, mode) -> its action counter and duration histogram
        self._guardrail_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        # Concrete models of wildcard groups are named by clients: they get a budget of their own, so
        # a client cannot crowd configured names out of theirs (nor grow series past it).
        self._wild_group = LabelGuard("model_group (wildcard models)", max_wildcard_values)
        self._wild_deployment = LabelGuard("deployment (wildcard models)", max_wildcard_values)
        self._requests: dict[tuple[str, str, str, str], _RequestSeries] = {}
        self._attempts: dict[tuple[str, str, str, str], _AttemptSeries] = {}
        self._in_flight: dict[str, Gauge] = {}
        self._open: dict[str, int] = {}  # request id -> requests started and not yet finished
        self._tracks: dict[str, _Track] = {}
        self._handlers: dict[type, Callable[[Any], None]] = {
            AttemptFinished: self._on_attempt,
            RequestFinished: self._on_request,
            RetryScheduled: self._on_retry,
            FallbackTaken: self._on_fallback,
            CooldownStarted: self._on_cooldown,
            DeploymentStateChanged: self._on_state,
            ConfigReloaded: self._on_reload,
            RequestStarted: self._on_started,
            GuardrailsChecked: self._on_guardrails,
        }
        self._on_reloaded: Callable[[], None] | None = None

    # -- the subscriber ---------------------------------------------------------------------------

    def __call__(self, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _labels4(
        self, group: str, deployment: str, provider: str, endpoint: str
    ) -> tuple[str, str, str, str]:
        group, deployment = self._names(group, deployment)
        return (group, deployment, self._provider(provider), self._endpoint(endpoint))

    def _names(self, group: str, deployment: str) -> tuple[str, str]:
        """The (model_group, deployment) label values, folded past their budgets."""
        lookup = self._deployment
        if lookup is not None and ":" in deployment and lookup(deployment) is None:
            # a concrete model of a wildcard group (its id is "<template id>:<model>")
            return self._wild_group(group), self._wild_deployment(deployment)
        return self._group(group), self._deployment_id(deployment)

    def _on_attempt(self, event: AttemptFinished) -> None:
        key = self._labels4(event.group, event.deployment_id, event.provider, event.endpoint)
        series = self._attempts.get(key)
        if series is None:
            series = self._attempts[key] = _AttemptSeries(self.metrics, key)
        series.requests(event.status).inc(event.calls)
        series.duration.observe(event.latency)
        headers = event.upstream_headers
        if headers:
            remaining = _header_number(headers, RATELIMIT_REQUESTS_HEADERS)
            if remaining is not None:
                series.ratelimit_requests().set(remaining)
            remaining = _header_number(headers, RATELIMIT_TOKENS_HEADERS)
            if remaining is not None:
                series.ratelimit_tokens().set(remaining)

    def _on_started(self, event: RequestStarted) -> None:
        self._open[event.request_id] = self._open.get(event.request_id, 0) + 1
        self._in_flight_child(event.endpoint).inc()

    def _in_flight_child(self, endpoint: str) -> Gauge:
        endpoint = self._endpoint(endpoint)
        child = self._in_flight.get(endpoint)
        if child is None:
            child = self._in_flight[endpoint] = self.metrics.in_flight.labels(endpoint)
        return child

    def _on_request(self, event: RequestFinished) -> None:
        # in flight: only requests whose start we saw (the SDK may report finishes without starts)
        opened = self._open.get(event.request_id)
        if opened is not None:
            if opened > 1:
                self._open[event.request_id] = opened - 1
            else:
                del self._open[event.request_id]
            self._in_flight_child(event.endpoint).dec()

        key = self._labels4(event.group, event.deployment_id, event.provider, event.endpoint)
        series = self._requests.get(key)
        if series is None:
            series = self._requests[key] = _RequestSeries(self.metrics, key)
        series.requests(event.status).inc()
        series.duration.observe(event.latency)
        series.overhead.observe(max(event.latency - event.upstream_latency, 0.0))
        if event.ttft is not None:
            series.ttft().observe(event.ttft)
        prompt, completion = event.prompt_tokens, event.completion_tokens
        if prompt or completion:
            tokens_in, tokens_out = series.tokens()
            tokens_in.inc(prompt)
            tokens_out.inc(completion)
            cost = event.cost if event.cost is not None else self._price(event)
            if cost is not None:
                series.cost().inc(cost)
            else:
                series.unpriced().inc()
        elif event.cost:
            series.cost().inc(event.cost)
        if event.key_alias or event.team or event.guardrails or event.cache is not None:
            self._on_gate(event)

    def _on_gate(self, event: RequestFinished) -> None:
        m = self.metrics
        if event.key_alias or event.team:
            spend, tokens_in, tokens_out = self._key_children(event.key_alias, event.team)
            if event.cost:
                spend.inc(event.cost)
            if event.prompt_tokens:
                tokens_in.inc(event.prompt_tokens)
            if event.completion_tokens:
                tokens_out.inc(event.completion_tokens)
        for run in event.guardrails:
            action, duration = self._guardrail_children(run.guardrail, run.action, run.mode)
            action.inc()
            duration.observe(run.seconds)
        if event.cache is not None:
            m.cache_requests.labels(self._endpoint(event.endpoint), event.cache).inc()
            if event.cache == "hit" and event.saved_cost:
                m.cache_saved.labels().inc(event.saved_cost)

    def _on_guardrails(self, event: GuardrailsChecked) -> None:
        for run in event.runs:
            action, duration = self._guardrail_children(run.guardrail, run.action, run.mode)
            action.inc()
            duration.observe(run.seconds)

    def _guardrail_children(self, guardrail: str, action: str, mode: str) -> tuple[Counter, Histogram]:
        """A guardrail's action counter and duration histogram for one action and mode (looked up once:
        every guarded call records one per guardrail and mode)."""
        children = self._guardrail_series.get((guardrail, action, mode))
        if children is None:
            m = self.metrics
            name = self._small(guardrail)
            children = (
                m.guardrail_actions.labels(name, action, mode),
                m.guardrail_duration.labels(name, mode),
            )
            if name != OVERFLOW:  # as for keys: a folded name keeps no entry of its own
                self._guardrail_series[(guardrail, action, mode)] = children
        return children

    def _key_children(self, key_alias: str, team: str) -> tuple[Counter, Counter, Counter]:
        """The children of one key's series (built once: this runs on every call of a client key)."""
        children = self._key_series.get((key_alias, team))
        if children is None:
            m = self.metrics
            labels = (self._key_labels(key_alias), self._key_labels(team))
            children = (
                m.key_spend.labels(*labels),
                m.key_tokens.labels(*labels, "input"),
                m.key_tokens.labels(*labels, "output"),
            )
            if OVERFLOW not in labels:  # the folded ones are looked up each time: no entry per value
                self._key_series[(key_alias, team)] = children
        return children

    def _price(self, event: RequestFinished) -> float | None:
        if self._deployment is None or not event.deployment_id:
            return None
        deployment = self._deployment(event.deployment_id)
        if deployment is None:
            return None
        return request_cost(deployment, event.prompt_tokens, event.completion_tokens)

    def _on_retry(self, event: RetryScheduled) -> None:
        self.metrics.retries.labels(
            *self._names(event.group, event.deployment_id), self._small(event.error)
        ).inc()

    def _on_fallback(self, event: FallbackTaken) -> None:
        self.metrics.fallbacks.labels(
            self._group(event.from_group),
            self._group(event.to_group),
            self._small(event.reason),
            self._small(event.result),
        ).inc()

    def _on_cooldown(self, event: CooldownStarted) -> None:
        track = self._track(event.deployment_id, event.group, event.provider)
        self.metrics.cooldowns.labels(*track.labels, self._small(event.reason)).inc()
        now = self._clock()
        # Kept on this recorder's clock as "now + duration", so the router may run on any clock.
        # Deadlines only move later, as in the router.
        until = now + max(event.duration, 0.0)
        if track.state != COOLING_DOWN or track.until is None or until > track.until:
            track.until = until
        track.state = COOLING_DOWN
        self._publish(track, now)

    def _on_state(self, event: DeploymentStateChanged) -> None:
        track = self._track(event.deployment_id, event.group, event.provider)
        state = event.state if event.state in DEPLOYMENT_STATES else HEALTHY
        track.state = state
        if state != COOLING_DOWN:
            track.until = None
        self._publish(track, self._clock())

    def _on_reload(self, event: ConfigReloaded) -> None:
        m = self.metrics
        m.config_reloads.labels(self._small(event.result)).inc()
        if event.result == "success":
            m.config_generation.set(event.generation)
            m.config_last_success.set(event.at)
            m.config_last_successful.set(1)
            if self._on_reloaded is not None:
                self._on_reloaded()
        elif event.result == "failure":
            m.config_last_successful.set(0)

    # -- configuration and deployment state -------------------------------------------------------

    def on_reloaded(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each successful reload (the lifespan re-reads the health report)."""
        self._on_reloaded = callback

    def set_config(self, generation: int, loaded_at: float, last_reload_ok: bool) -> None:
        """The configuration being served at startup (before any reload event)."""
        m = self.metrics
        m.config_generation.set(generation)
        m.config_last_success.set(loaded_at)
        m.config_last_successful.set(1 if last_reload_ok else 0)

    def apply_health_report(self, report: Mapping[str, Any]) -> None:
        """Adopt the router's view (:func:`routerd.routing.explain.health_report`).

        The report lists exactly the deployments being served, each with its effective state and
        remaining cooldown, so deployments a reload added appear (healthy) and those it removed are
        retired: a removed deployment that was cooling down must not keep an alert firing.
        """
        entries = report.get("deployments")
        if not isinstance(entries, list):
            return
        now = self._clock()
        seen: set[str] = set()
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            dep_id, state = entry.get("id"), entry.get("state")
            if not isinstance(dep_id, str) or state not in DEPLOYMENT_STATES:
                continue
            seen.add(dep_id)
            track = self._track(dep_id, str(entry.get("group", "")), str(entry.get("provider", "")))
            track.state = state
            remaining = entry.get("cooldown_remaining")
            track.until = None
            if state == COOLING_DOWN and isinstance(remaining, (int, float)) and remaining > 0:
                track.until = now + float(remaining)
            in_flight = entry.get("in_flight")
            if isinstance(in_flight, int):
                track.in_flight.set(in_flight)
        for dep_id in [d for d in self._tracks if d not in seen]:
            self._retire(dep_id)
        self.refresh()

    def refresh(self) -> None:
        """Re-publish every deployment's state and remaining cooldown as of now."""
        now = self._clock()
        for track in self._tracks.values():
            self._publish(track, now)

    def deployment_states(self) -> dict[str, str]:
        """Deployment id -> state as the gauges show it (for tests and reports)."""
        return {dep_id: track.state for dep_id, track in self._tracks.items()}

    def _track(self, dep_id: str, group: str, provider: str) -> _Track:
        track = self._tracks.get(dep_id)
        if track is None:
            labels = (*self._names(group, dep_id), self._provider(provider))
            track = _Track(self.metrics, labels)
            if labels[1] != OVERFLOW:  # no per-id records beyond the label budget either
                self._tracks[dep_id] = track
        return track

    def _publish(self, track: _Track, now: float) -> None:
        until = track.until
        if track.state == COOLING_DOWN and until is not None and now >= until:
            track.state, track.until, until = HALF_OPEN, None, None  # the router's effective_state rule
        if track.published != track.state:
            for state, gauge in track.state_gauges.items():
                gauge.set(1 if state == track.state else 0)
            track.published = track.state
        track.remaining.set(
            max(until - now, 0.0) if until is not None and track.state == COOLING_DOWN else 0.0
        )

    def _retire(self, dep_id: str) -> None:
        track = self._tracks.pop(dep_id)
        if _multiprocess():
            # prometheus_client cannot remove series from multiprocess files: zero them instead
            for gauge in track.state_gauges.values():
                gauge.set(0)
            track.remaining.set(0)
            track.in_flight.set(0)
            return
        m = self.metrics
        for state in DEPLOYMENT_STATES:
            m.deployment_state.remove(*track.labels, state)
        m.cooldown_remaining.remove(*track.labels)
        m.deployment_in_flight.remove(*track.labels)


def _multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ
