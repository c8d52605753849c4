"""The lean families export exactly what prometheus_client's classes export for the same updates."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from routerd.metrics.lean import LeanCounter, LeanGauge, LeanHistogram, metric_classes

BUCKETS = (0.01, 0.1, 1.0, 10.0)


def _exercise(counter_cls: Any, gauge_cls: Any, histogram_cls: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = counter_cls("t_requests", "Requests.", ("group", "status"), registry=registry)
    in_flight = gauge_cls("t_in_flight", "In flight.", ("endpoint",), registry=registry)
    generation = gauge_cls("t_generation", "Generation.", registry=registry)
    duration = histogram_cls(
        "t_duration_seconds", "Duration.", ("group",), buckets=BUCKETS, registry=registry
    )
    counter_cls("t_unused", "Never incremented.", ("group",), registry=registry)

    requests.labels("a", "200").inc()
    requests.labels("a", "200").inc(2.5)
    requests.labels("b", "503").inc()
    requests.labels("gone", "200").inc()
    requests.remove("gone", "200")
    in_flight.labels("chat").inc()
    in_flight.labels("chat").inc()
    in_flight.labels("chat").dec()
    in_flight.labels("embeddings").set(7)
    generation.set(3)
    # on a bound, between bounds, past the last bound, and zero
    for value in (0.01, 0.05, 0.5, 1.0, 42.0, 0.0):
        duration.labels("a").observe(value)
    duration.labels("b").observe(0.2)
    return registry


def test_text_and_openmetrics_exposition_match_prometheus_client() -> None:
    lean = _exercise(LeanCounter, LeanGauge, LeanHistogram)
    reference = _exercise(Counter, Gauge, Histogram)
    # prometheus_client adds *_created samples unless disabled process-wide; compare without them
    strip = lambda text: b"\n".join(line for line in text.splitlines() if b"_created" not in line)  # noqa: E731
    assert strip(generate_latest(lean)) == strip(generate_latest(reference))
    assert strip(generate_openmetrics(lean)) == strip(generate_openmetrics(reference))
    assert lean.get_sample_value("t_duration_seconds_bucket", {"group": "a", "le": "0.01"}) == 2.0
    assert lean.get_sample_value("t_duration_seconds_count", {"group": "a"}) == 6.0
    assert lean.get_sample_value("t_requests_total", {"group": "gone", "status": "200"}) is None


def test_misuse_is_refused_as_prometheus_client_refuses_it() -> None:
    registry = CollectorRegistry()
    counter = LeanCounter("t_c", "C.", ("group",), registry=registry)
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match=r"call \.labels"):
        counter.inc()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LeanCounter("t_c", "Again.", ("group",), registry=registry)


def test_multiprocess_mode_uses_prometheus_client() -> None:
    assert metric_classes(multiprocess=True) == (Counter, Gauge, Histogram)
    assert metric_classes(multiprocess=False) == (LeanCounter, LeanGauge, LeanHistogram)
