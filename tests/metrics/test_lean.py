"""The lean families export exactly what prometheus_client's classes export for the same updates."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from routerd.metrics.definitions import RouterdMetrics
from routerd.metrics.lean import LeanCounter, LeanGauge, LeanHistogram, PendingRegistry, metric_classes
from routerd.metrics.runtime import MetricsRuntime

BUCKETS = (0.01, 0.1, 1.0, 10.0)


def _exercise(
    counter_cls: Any, gauge_cls: Any, histogram_cls: Any, pending: PendingRegistry | None = None
) -> CollectorRegistry:
    registry: Any = CollectorRegistry() if pending is None else pending
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
    return registry if pending is None else pending.build()


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


# -- prometheus_client's registry made by the first scrape ---------------------------------------


def _family_names(registry: CollectorRegistry) -> list[str]:
    return [family.name for family in text_string_to_metric_families(generate_latest(registry).decode())]


def test_a_pending_registry_builds_the_registry_the_families_would_have_had() -> None:
    pending = PendingRegistry(lambda r: LeanGauge("t_first", "Registered first.", registry=r))
    built = _exercise(LeanCounter, LeanGauge, LeanHistogram, pending)
    assert pending.built and pending.build() is built  # made once
    reference = _exercise(LeanCounter, LeanGauge, LeanHistogram)
    LeanGauge("t_first", "Registered first.", registry=reference)
    text = generate_latest(built)
    assert text.startswith(b"# HELP t_first ")  # the ``first`` collectors come first
    first_block = b"# HELP t_first Registered first.\n# TYPE t_first gauge\nt_first 0.0\n"
    assert text == first_block + generate_latest(reference).replace(first_block, b"")


def test_a_pending_registry_refuses_a_duplicate_at_once_and_forwards_after_build() -> None:
    pending = PendingRegistry()
    LeanCounter("t_c", "C.", ("group",), registry=pending)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LeanCounter("t_c", "Again.", ("group",), registry=pending)
    assert not pending.built
    registry = pending.build()
    LeanGauge("t_later", "After the build.", registry=pending).set(2)
    assert registry.get_sample_value("t_later") == 2.0
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LeanCounter("t_c", "Once more.", ("group",), registry=pending)


def test_the_runtime_scrape_has_the_families_and_order_of_an_eager_registry() -> None:
    runtime = MetricsRuntime()
    assert runtime._pending is not None and not runtime._pending.built  # nothing read yet
    runtime.metrics.requests.labels("g", "d", "mock", "chat", "200").inc()
    body, headers = runtime.render()
    assert runtime._pending.built
    eager = CollectorRegistry()
    ProcessCollector(registry=eager)
    PlatformCollector(registry=eager)
    GCCollector(registry=eager)
    RouterdMetrics(eager)
    assert _family_names(runtime.registry) == _family_names(eager)
    assert headers["content-type"].startswith("text/plain")
    assert b'routerd_requests_total{deployment="d",endpoint="chat",model_group="g"' in body
