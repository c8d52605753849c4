from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from routerd.config.table import Deployment
from routerd.routing.health import DeploymentHealth
from routerd.routing.plan import Pick, build_group_plan, pick
from routerd.routing.strategies import (
    STRATEGY_NAMES,
    LatencyBased,
    latency_alpha,
    make_strategy,
    weighted_index,
)

from .fakes import dep


def distribution(
    deployments: list[Deployment],
    strategy_name: str,
    records: list[DeploymentHealth] | None = None,
    n: int = 20_000,
    *,
    stream: bool = False,
    now: float = 100.0,
    args: dict[str, Any] | None = None,
) -> Counter[str]:
    plan = build_group_plan("g", deployments)
    records = records or [DeploymentHealth() for _ in deployments]
    strategy = make_strategy(strategy_name, args)
    rng = random.Random(42)
    counts: Counter[str] = Counter()
    for _ in range(n):
        choice = pick(plan, records, strategy, now=now, rng=rng, stream=stream)
        assert isinstance(choice, Pick)
        counts[choice.candidate.id] += 1
    return counts


def assert_shares(counts: Counter[str], expected: dict[str, float]) -> None:
    n = sum(counts.values())
    for key, p in expected.items():
        # within 4 standard deviations of a binomial: fails by chance about once in 16,000 runs,
        # and the seed is fixed, so it never flakes
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[key] - n * p) <= 4 * sigma + 1, (key, counts[key], n * p)


def test_weighted_choice_matches_weights() -> None:
    counts = distribution([dep("a", weight=1), dep("b", weight=3), dep("c", weight=6)], "simple-shuffle")
    assert_shares(counts, {"a": 0.1, "b": 0.3, "c": 0.6})


def test_shuffle_falls_back_to_rpm_then_tpm_then_uniform() -> None:
    assert_shares(
        distribution([dep("a", rpm=100), dep("b", rpm=300)], "simple-shuffle"), {"a": 0.25, "b": 0.75}
    )
    assert_shares(
        distribution([dep("a", tpm=1000), dep("b", tpm=1000)], "simple-shuffle"), {"a": 0.5, "b": 0.5}
    )
    uniform = distribution([dep("a"), dep("b"), dep("c")], "simple-shuffle")
    assert_shares(uniform, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_missing_weight_counts_as_one_and_zero_weight_is_never_shuffled_in() -> None:
    counts = distribution([dep("a", weight=3), dep("b"), dep("c", weight=0)], "simple-shuffle")
    assert counts["c"] == 0
    assert_shares(counts, {"a": 0.75, "b": 0.25})


def test_weighted_index_handles_all_zero_weights() -> None:
    rng = random.Random(1)
    assert {weighted_index([0.0, 0.0], rng) for _ in range(100)} == {0, 1}


def test_least_busy_picks_fewest_in_flight_and_breaks_ties_at_random() -> None:
    records = [DeploymentHealth() for _ in range(3)]
    records[0].in_flight, records[1].in_flight, records[2].in_flight = 4, 1, 1
    counts = distribution([dep("a"), dep("b"), dep("c")], "least-busy", records, n=4000)
    assert counts["a"] == 0
    assert_shares(counts, {"b": 0.5, "c": 0.5})


def test_latency_based_prefers_fastest_and_explores_unknown() -> None:
    records = [DeploymentHealth() for _ in range(3)]
    for record, latency in zip(records, (0.05, 0.01, 0.02), strict=True):
        record.latency, record.sampled_at = latency, 99.0
    assert distribution([dep("a"), dep("b"), dep("c")], "latency-based-routing", records, n=200) == {"b": 200}
    records[0].sampled_at = -math.inf  # never measured: explored first
    assert distribution([dep("a"), dep("b"), dep("c")], "latency-based-routing", records, n=200) == {"a": 200}


def test_latency_buffer_spreads_over_near_equals() -> None:
    records = [DeploymentHealth() for _ in range(3)]
    for record, latency in zip(records, (0.010, 0.014, 0.030), strict=True):
        record.latency, record.sampled_at = latency, 99.0
    counts = distribution(
        [dep("a"), dep("b"), dep("c")],
        "latency-based-routing",
        records,
        n=4000,
        args={"lowest_latency_buffer": 0.5},
    )
    assert counts["c"] == 0
    assert_shares(counts, {"a": 0.5, "b": 0.5})


def test_latency_uses_time_to_first_token_for_streams_and_forgets_stale_samples() -> None:
    records = [DeploymentHealth() for _ in range(2)]
    records[0].latency, records[0].ttft, records[0].sampled_at = 0.01, 0.9, 99.0
    records[1].latency, records[1].ttft, records[1].sampled_at = 0.02, 0.1, 99.0
    assert distribution([dep("a"), dep("b")], "latency-based-routing", records, n=50) == {"a": 50}
    assert distribution([dep("a"), dep("b")], "latency-based-routing", records, n=50, stream=True) == {
        "b": 50
    }
    strategy = LatencyBased(ttl=600.0)
    assert strategy.score(records[0], now=99.0 + 601.0, stream=False) == 0.0


def test_usage_based_picks_lowest_utilisation() -> None:
    records = [DeploymentHealth() for _ in range(2)]
    for _ in range(30):
        records[0].usage.add(100.0, 10)  # 30 of 100 rpm: 30%
    for _ in range(20):
        records[1].usage.add(100.0, 10)  # 20 of 40 rpm: 50%
    counts = distribution([dep("a", rpm=100), dep("b", rpm=40)], "usage-based-routing", records, n=100)
    assert counts == {"a": 100}


def test_cost_based_picks_cheapest_known_price() -> None:
    deployments = [
        dep("pricey", input_cost=1e-5, output_cost=3e-5),
        dep("cheap", input_cost=1e-7, output_cost=4e-7),
        dep("unknown"),
    ]
    assert distribution(deployments, "cost-based-routing", n=100) == {"cheap": 100}


def test_order_strategy_is_strict_priority() -> None:
    deployments = [dep("backup", order=2), dep("first", order=1), dep("second", order=1)]
    assert distribution(deployments, "order", n=100) == {"first": 100}


def test_strategy_names_and_validation() -> None:
    for name in STRATEGY_NAMES:
        assert make_strategy(name).name in STRATEGY_NAMES
    with pytest.raises(ValueError, match="unknown routing_strategy"):
        make_strategy("round-robin-ish")
    with pytest.raises(ValueError, match="lowest_latency_buffer"):
        make_strategy("latency-based-routing", {"lowest_latency_buffer": "fast"})
    assert latency_alpha({"max_latency_list_size": 9}) == pytest.approx(0.2)
    assert latency_alpha(None) == pytest.approx(2 / 11)
