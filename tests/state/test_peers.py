"""The messages and load payloads processes exchange through Redis (pure: no Redis needed)."""

from __future__ import annotations

import orjson
import pytest

from routerd.routing.health import DeploymentHealth
from routerd.state.peers import Cooldown, Recovery, load_payload, parse_message, peer_load


def test_cooldown_and_recovery_messages_parse_even_with_a_bar_in_the_id() -> None:
    assert parse_message("p1|c|dep|with|bar|1500|RateLimitError") == Cooldown(
        "p1", "dep|with|bar", 1.5, "RateLimitError"
    )
    assert parse_message("p2|h|dep-1") == Recovery("p2", "dep-1")


@pytest.mark.parametrize("data", ["", "p1", "p1|c|dep|soon|X", "p1|c|dep", "p1|h|", "p1|x|dep|1|X"])
def test_messages_that_do_not_parse_are_ignored(data: str) -> None:
    assert parse_message(data) is None


def test_load_payload_lists_only_deployments_with_load() -> None:
    busy, idle, measured = DeploymentHealth(), DeploymentHealth(), DeploymentHealth()
    busy.in_flight = 2
    measured.latency, measured.ttft = 0.01, 0.2
    payload = load_payload({"busy": busy, "idle": idle, "measured": measured})
    assert orjson.loads(payload) == {"busy": [2, None, None], "measured": [0, 0.01, 0.2]}
    assert load_payload({"idle": idle}) == ""


def test_peer_load_sums_in_flight_averages_latency_and_skips_damaged_payloads() -> None:
    load = peer_load(
        [
            '{"a": [2, 0.01, null]}',
            b'{"a": [3, 0.03, 0.5], "b": [1, null, null]}',
            '{"a": 7}',  # damaged: skipped whole
            "not json",
        ]
    )
    assert load.in_flight == {"a": 5, "b": 1}
    assert load.latency == pytest.approx({"a": 0.02})
    assert load.ttft == {"a": 0.5}
