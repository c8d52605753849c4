"""Pure routing decisions: which deployment of a group takes the next call, or why none can.

:func:`build_group_plan` turns a group's deployments into :class:`Candidate` rows once per routing
table (weights, tiers, prices and limits read from the deployment, so the hot path does not). Per
call, :func:`pick` filters the candidates and hands the survivors to the strategy:

1. skip deployments already tried by this request (re-routing a retry), and deployments whose
   ``max_input_tokens`` is smaller than the prompt;
2. skip deployments whose breaker does not admit a call now (cooling down, or half-open with its one
   probe in flight), remembering when each returns;
3. skip deployments at their ``rpm`` / ``tpm`` limit, remembering when capacity frees;
4. keep only the lowest ``order`` tier that has anything left (higher tiers are used only when every
   lower-tier deployment is unavailable);
5. let the strategy choose.

When nothing survives the answer is :class:`Blocked`: the earliest moment something returns, and
whether it was cooldowns, rate limits or the prompt size that blocked.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container, Sequence
from dataclasses import dataclass

from routerd.config.table import Deployment
from routerd.routing.health import BreakerState, DeploymentHealth, available_at, is_probe
from routerd.routing.strategies import Strategy

__all__ = ["Blocked", "Candidate", "GroupPlan", "Pick", "build_group_plan", "pick"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deployment as the router ranks it, precomputed once per routing table."""

    deployment: Deployment
    index: int  # position in the group (file order)
    weight: float  # simple-shuffle weight: weight, else rpm, else tpm, else 1
    tier: float  # ``order``; deployments without one come after every tier that has one
    cost: float  # input + output price per token; inf when unknown
    rpm: int | None
    tpm: int | None
    max_input_tokens: int | None

    @property
    def id(self) -> str:
        return self.deployment.id


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """What the router precomputes for a group (or for one concrete model of a wildcard group)."""

    name: str
    candidates: tuple[Candidate, ...]
    needs_tokens: bool  # some deployment has a tpm limit or a max_input_tokens: count the prompt
    num_retries: int | None  # the largest deployment-level num_retries, if any deployment sets one


@dataclass(frozen=True, slots=True)
class Pick:
    candidate: Candidate
    record: DeploymentHealth
    probe: bool  # this call is the half-open probe of a deployment whose cooldown just ended


@dataclass(frozen=True, slots=True)
class Blocked:
    """No deployment can take the call now, and when that changes (``inf``: not by waiting)."""

    cool_until: float = math.inf  # earliest end of a cooldown
    probe_until: float = math.inf  # earliest end of an in-flight half-open probe's lease
    limit_until: float = math.inf  # earliest moment rpm/tpm capacity frees
    too_large: bool = False  # every remaining deployment's max_input_tokens is below the prompt

    @property
    def until(self) -> float:
        return min(self.cool_until, self.probe_until, self.limit_until)

    @property
    def cooling(self) -> bool:
        """Some deployment is cooling down or being probed (as opposed to only rate limited)."""
        return self.cool_until < math.inf or self.probe_until < math.inf

    @property
    def probing(self) -> bool:
        return self.probe_until < math.inf

    @property
    def rate_limited(self) -> bool:
        return self.limit_until < math.inf


def build_group_plan(name: str, deployments: Sequence[Deployment]) -> GroupPlan:
    weights = _shuffle_weights(deployments)
    candidates = tuple(
        Candidate(
            deployment=dep,
            index=i,
            weight=weights[i],
            tier=float(dep.order) if dep.order is not None else math.inf,
            cost=_cost(dep),
            rpm=dep.rpm,
            tpm=dep.tpm,
            max_input_tokens=dep.info.max_input_tokens,
        )
        for i, dep in enumerate(deployments)
    )
    retries = [d.num_retries for d in deployments if d.num_retries is not None]
    return GroupPlan(
        name=name,
        candidates=candidates,
        needs_tokens=any(c.tpm is not None or c.max_input_tokens is not None for c in candidates),
        num_retries=max(retries) if retries else None,
    )


def _shuffle_weights(deployments: Sequence[Deployment]) -> list[float]:
    # The first of weight / rpm / tpm that any deployment sets decides the weights. A deployment
    # missing it gets 1 for ``weight`` (the conventional default) and the group's mean for rpm/tpm.
    if any(d.weight is not None for d in deployments):
        return [max(float(d.weight), 0.0) if d.weight is not None else 1.0 for d in deployments]
    for attribute in ("rpm", "tpm"):
        values = [getattr(d, attribute) for d in deployments]
        given = [float(v) for v in values if v is not None]
        if given:
            mean = sum(given) / len(given)
            return [max(float(v), 0.0) if v is not None else mean for v in values]
    return [1.0] * len(deployments)


def _cost(dep: Deployment) -> float:
    prices = [p for p in (dep.input_cost_per_token, dep.output_cost_per_token) if p is not None]
    return sum(prices) if prices else math.inf


def pick(
    plan: GroupPlan,
    records: Sequence[DeploymentHealth],
    strategy: Strategy,
    *,
    now: float,
    rng: random.Random,
    tokens: int = 0,
    stream: bool = False,
    exclude: Container[str] = (),
    check_size: bool = True,
    calls: int = 1,
) -> Pick | Blocked:
    """Choose the deployment for the next call. ``records`` are aligned with ``plan.candidates``.

    ``tokens`` is the estimated prompt size (0 when unknown); ``check_size`` turns the
    ``max_input_tokens`` filter on; ``calls`` is how many upstream calls the attempt makes (counted
    against ``rpm``). Pure apart from the draws from ``rng``.
    """
    eligible: list[Candidate] = []
    eligible_records: list[DeploymentHealth] = []
    best_tier = math.inf
    cool_until = probe_until = limit_until = math.inf
    considered = too_large = 0
    for candidate, record in zip(plan.candidates, records, strict=True):
        if candidate.deployment.id in exclude:
            continue
        considered += 1
        if check_size and candidate.max_input_tokens is not None and tokens > candidate.max_input_tokens:
            too_large += 1
            continue
        breaker = record.breaker
        at = available_at(breaker, now)
        if at > now:
            if breaker.state is BreakerState.HALF_OPEN:
                probe_until = min(probe_until, at)
            else:
                cool_until = min(cool_until, at)
            continue
        if candidate.rpm is not None or candidate.tpm is not None:
            at = record.usage.free_at(now, candidate.rpm, candidate.tpm, tokens, calls)
            if at > now:
                limit_until = min(limit_until, at)
                continue
        if candidate.tier > best_tier:
            continue
        if candidate.tier < best_tier:
            best_tier = candidate.tier
            if eligible:
                eligible.clear()
                eligible_records.clear()
        eligible.append(candidate)
        eligible_records.append(record)
    if not eligible:
        return Blocked(
            cool_until=cool_until,
            probe_until=probe_until,
            limit_until=limit_until,
            too_large=considered > 0 and too_large == considered,
        )
    i = 0 if len(eligible) == 1 else strategy.choose(eligible, eligible_records, rng, now, stream)
    chosen = eligible_records[i]
    return Pick(eligible[i], chosen, is_probe(chosen.breaker, now))
