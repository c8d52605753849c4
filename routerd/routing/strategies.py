"""Routing strategies: which of the eligible deployments gets the next call.

A strategy only ranks. The plan (:mod:`routerd.routing.plan`) has already removed deployments that are
cooling down, at their rpm/tpm limit, too small for the prompt, or in a higher ``order`` tier, so a
strategy sees a non-empty list of deployments that could all take the call. Strategies are pure: they
read the health records and draw from the injected ``random.Random``; they never change state.

Names follow ``router_settings.routing_strategy`` (LiteLLM's names); options come from
``routing_strategy_args``. :func:`make_strategy` validates both, so the config compiler can call it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routerd.routing.health import DeploymentHealth
    from routerd.routing.plan import Candidate

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGY_NAMES",
    "CostBased",
    "LatencyBased",
    "LeastBusy",
    "Order",
    "SimpleShuffle",
    "Strategy",
    "UsageBased",
    "latency_alpha",
    "make_strategy",
    "weighted_index",
]

DEFAULT_STRATEGY = "simple-shuffle"


class Strategy(Protocol):
    """Chooses among eligible deployments; returns an index into ``eligible``."""

    name: str

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int: ...


def weighted_index(weights: Sequence[float], rng: random.Random) -> int:
    """An index drawn with probability proportional to its weight; uniform when all weights are 0."""
    total = 0.0
    for weight in weights:
        total += weight
    if total <= 0.0:
        return rng.randrange(len(weights))
    point = rng.random() * total
    last_positive = 0
    for i, weight in enumerate(weights):
        if weight > 0.0:
            last_positive = i
            point -= weight
            if point < 0.0:
                return i
    return last_positive  # float rounding left a sliver at the end


def _argmin(keys: Sequence[Any], rng: random.Random) -> int:
    """Index of the smallest key; ties broken at random so equals share the load."""
    best = min(keys)
    ties = [i for i, key in enumerate(keys) if key == best]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


class SimpleShuffle:
    """Weighted random: by ``weight``, else ``rpm``, else ``tpm``, else uniform (see plan.Candidate)."""

    name = "simple-shuffle"

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        return weighted_index([c.weight for c in eligible], rng)


class LeastBusy:
    """Fewest calls in flight (this process's, plus other processes' as a shared store last saw them)."""

    name = "least-busy"

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        return _argmin([r.in_flight + r.peer_in_flight for r in records], rng)


class LatencyBased:
    """Lowest moving average of latency per output token (time to first chunk for streams).

    Deployments without a recent sample (none yet, or older than ``ttl``) score 0 so they get explored.
    ``lowest_latency_buffer`` spreads load: every deployment within ``best * (1 + buffer)`` is picked
    at random. Failed calls feed a large penalty sample into the average (see DeploymentHealth).
    """

    name = "latency-based-routing"

    def __init__(self, buffer: float = 0.0, ttl: float = 600.0) -> None:
        self.buffer = buffer
        self.ttl = ttl

    def score(self, record: DeploymentHealth, now: float, stream: bool) -> float:
        local = self._own(record, now, stream)
        if now - record.peer_sampled_at > self.ttl:
            return 0.0 if local is None else local
        # Other processes' averages (through a shared store) count as one more opinion.
        peer = record.peer_ttft if stream and record.peer_ttft is not None else record.peer_latency
        if peer is None:
            return 0.0 if local is None else local
        return peer if local is None else (local + peer) / 2.0

    def _own(self, record: DeploymentHealth, now: float, stream: bool) -> float | None:
        if now - record.sampled_at > self.ttl:
            return None
        return record.ttft if stream and record.ttft is not None else record.latency

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        scores = [self.score(r, now, stream) for r in records]
        if self.buffer <= 0.0:
            return _argmin(scores, rng)
        limit = min(scores) * (1.0 + self.buffer)
        near = [i for i, s in enumerate(scores) if s <= limit]
        return near[0] if len(near) == 1 else rng.choice(near)


class UsageBased:
    """Lowest utilisation of its own limits this minute: max(rpm used / rpm, tpm used / tpm).

    A deployment without limits has utilisation 0; ties go to fewer tokens, then fewer requests, then
    at random. Limits themselves are enforced for every strategy by the plan.
    """

    name = "usage-based-routing"

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        keys = []
        for candidate, record in zip(eligible, records, strict=True):
            requests, tokens = record.usage.used(now)
            utilisation = 0.0
            if candidate.rpm:
                utilisation = requests / candidate.rpm
            if candidate.tpm:
                utilisation = max(utilisation, tokens / candidate.tpm)
            keys.append((utilisation, tokens, requests))
        return _argmin(keys, rng)


class CostBased:
    """Cheapest per-token price (input + output from ``model_info``); unknown prices rank last."""

    name = "cost-based-routing"

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        return _argmin([c.cost for c in eligible], rng)


class Order:
    """Strict priority: the lowest ``order``, then the first in the file. Deterministic."""

    name = "order"

    def choose(
        self,
        eligible: Sequence[Candidate],
        records: Sequence[DeploymentHealth],
        rng: random.Random,
        now: float,
        stream: bool,
    ) -> int:
        best = 0
        for i, candidate in enumerate(eligible):
            if (candidate.tier, candidate.index) < (eligible[best].tier, eligible[best].index):
                best = i
        return best


STRATEGY_NAMES: tuple[str, ...] = (
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",  # LiteLLM's name for the same idea; accepted as an alias
    "cost-based-routing",
    "order",
)


def make_strategy(name: str, args: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy called ``name`` configured with ``routing_strategy_args``. ValueError if invalid."""
    args = args or {}
    if name == "simple-shuffle":
        return SimpleShuffle()
    if name == "least-busy":
        return LeastBusy()
    if name == "latency-based-routing":
        buffer = _number(args, "lowest_latency_buffer", 0.0)
        ttl = _number(args, "ttl", 600.0)
        return LatencyBased(buffer=buffer, ttl=ttl)
    if name in ("usage-based-routing", "usage-based-routing-v2"):
        return UsageBased()
    if name == "cost-based-routing":
        return CostBased()
    if name == "order":
        return Order()
    raise ValueError(f"unknown routing_strategy {name!r}; expected one of: {', '.join(STRATEGY_NAMES)}")


def latency_alpha(args: Mapping[str, Any] | None) -> float:
    """EWMA weight of a new latency sample: 2 / (N + 1) for ``max_latency_list_size`` N (default 10)."""
    size = _number(args or {}, "max_latency_list_size", 10.0)
    return 2.0 / (max(size, 1.0) + 1.0)


def _number(args: Mapping[str, Any], key: str, default: float) -> float:
    value = args.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"routing_strategy_args.{key} must be a non-negative number, got {value!r}")
    return float(value)
