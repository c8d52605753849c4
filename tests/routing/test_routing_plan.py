from __future__ import annotations

import math
import random

from routerd.errors import RateLimitError
from routerd.routing.health import CooldownRules, DeploymentHealth, begin_probe, classify, on_failure
from routerd.routing.plan import Blocked, GroupPlan, Pick, build_group_plan, pick
from routerd.routing.strategies import SimpleShuffle

from .fakes import dep

RNG = random.Random(0)


def cool(record: DeploymentHealth, now: float, seconds: float) -> None:
    failure = classify(RateLimitError("429", retry_after=seconds))
    record.breaker = on_failure(record.breaker, now, failure, CooldownRules(), 60.0)


def test_skips_excluded_and_cooling_deployments() -> None:
    plan = build_group_plan("g", [dep("a"), dep("b"), dep("c")])
    records = [DeploymentHealth() for _ in range(3)]
    cool(records[1], 0.0, 10.0)
    for _ in range(50):
        choice = pick(plan, records, SimpleShuffle(), now=1.0, rng=RNG, exclude={"a"})
        assert isinstance(choice, Pick) and choice.candidate.id == "c"


def test_blocked_reports_when_the_first_returns() -> None:
    plan = build_group_plan("g", [dep("a"), dep("b")])
    records = [DeploymentHealth(), DeploymentHealth()]
    cool(records[0], 0.0, 10.0)
    cool(records[1], 0.0, 4.0)
    choice = pick(plan, records, SimpleShuffle(), now=1.0, rng=RNG)
    assert isinstance(choice, Blocked)
    assert choice.cooling and not choice.rate_limited and not choice.probing
    assert choice.until == 4.0
    # at 4.0 b is half-open: the call that gets it is the probe
    choice = pick(plan, records, SimpleShuffle(), now=4.0, rng=RNG)
    assert isinstance(choice, Pick) and choice.candidate.id == "b" and choice.probe
    records[1].breaker = begin_probe(records[1].breaker, 4.0, lease=30.0)
    choice = pick(plan, records, SimpleShuffle(), now=5.0, rng=RNG)
    assert isinstance(choice, Blocked) and choice.probing and choice.until == 10.0


def test_rate_limited_deployments_are_skipped_until_capacity_frees() -> None:
    plan = build_group_plan("g", [dep("a", rpm=2), dep("b", rpm=1)])
    records = [DeploymentHealth(), DeploymentHealth()]
    records[0].usage.add(0.0, 0)
    records[0].usage.add(0.0, 0)
    records[1].usage.add(30.0, 0)
    choice = pick(plan, records, SimpleShuffle(), now=30.0, rng=RNG)
    assert isinstance(choice, Blocked) and choice.rate_limited and not choice.cooling
    assert choice.limit_until == 61.0 and choice.until == 61.0


def picked_ids(plan: GroupPlan, records: list[DeploymentHealth], now: float) -> set[str]:
    ids = set()
    for _ in range(50):
        choice = pick(plan, records, SimpleShuffle(), now=now, rng=RNG)
        assert isinstance(choice, Pick)
        ids.add(choice.candidate.id)
    return ids


def test_lower_order_tier_first_higher_tier_only_when_it_is_unavailable() -> None:
    plan = build_group_plan("g", [dep("backup", order=2), dep("primary", order=1), dep("unordered")])
    records = [DeploymentHealth() for _ in range(3)]
    picks = picked_ids(plan, records, 0.0)
    assert picks == {"primary"}
    cool(records[1], 0.0, 10.0)
    picks = picked_ids(plan, records, 1.0)
    assert picks == {"backup"}
    cool(records[0], 0.0, 10.0)
    picks = picked_ids(plan, records, 1.0)
    assert picks == {"unordered"}


def test_prompt_too_large_for_some_or_all() -> None:
    plan = build_group_plan("g", [dep("small", max_input_tokens=100), dep("big", max_input_tokens=10_000)])
    assert plan.needs_tokens
    records = [DeploymentHealth(), DeploymentHealth()]
    for _ in range(20):
        choice = pick(plan, records, SimpleShuffle(), now=0.0, rng=RNG, tokens=500)
        assert isinstance(choice, Pick) and choice.candidate.id == "big"
    choice = pick(plan, records, SimpleShuffle(), now=0.0, rng=RNG, tokens=50_000)
    assert isinstance(choice, Blocked) and choice.too_large and choice.until == math.inf
    unchecked = pick(plan, records, SimpleShuffle(), now=0.0, rng=RNG, tokens=50_000, check_size=False)
    assert isinstance(unchecked, Pick)


def test_group_plan_precomputes_weights_costs_and_retries() -> None:
    plan = build_group_plan(
        "g",
        [
            dep("a", rpm=100, num_retries=1),
            dep("b", input_cost=1e-6, output_cost=2e-6, num_retries=4),
            dep("c"),
        ],
    )
    assert [c.weight for c in plan.candidates] == [100.0, 100.0, 100.0]  # c: mean of given rpm, b: mean
    assert plan.candidates[1].cost == 3e-6 and plan.candidates[0].cost == math.inf
    assert plan.num_retries == 4 and not plan.needs_tokens
