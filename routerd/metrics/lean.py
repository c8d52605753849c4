"""Metric families that cost a few attribute updates per observation, for the single-process server.

prometheus_client's children take a lock on every update and its histogram walks the buckets in
Python; with a dozen updates per request that was a fifth of routerd's own work on a request. In one
process, on one event loop, plain numbers do: these families keep floats and bucket counts and turn
them into prometheus_client metric families only when scraped, so the exposition (names, ``_total``,
``_bucket``/``_sum``/``_count``, ``le`` labels) is exactly prometheus_client's.

Multiprocess mode (``routerd serve --workers N``) needs prometheus_client's own classes, whose values
live in files every worker can read; :func:`metric_classes` picks the right set.

A scrape may run in a thread while the event loop updates: each read is one attribute or one copy,
atomic under the GIL; at worst a histogram's count and sum straddle one observation.

prometheus_client itself (~15 ms of imports: its exposition brings http.server, wsgiref and urllib)
is needed only to describe and collect the families, so it is imported then, not when they are made:
:class:`PendingRegistry` holds them until the first scrape asks for the real registry, and ``routerd
serve`` does not load prometheus_client before it is ready (tests/server/test_startup_imports.py).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

__all__ = [
    "CounterFamily",
    "GaugeFamily",
    "HistogramFamily",
    "LeanCounter",
    "LeanGauge",
    "LeanHistogram",
    "PendingRegistry",
    "Registry",
    "metric_classes",
]


class Registry(Protocol):
    """Where a family registers itself: prometheus_client's ``CollectorRegistry`` or a
    :class:`PendingRegistry`."""

    def register(self, collector: Any) -> None: ...


class PendingRegistry:
    """Collectors kept in order until :meth:`build` makes prometheus_client's registry of them.

    ``build`` (the first scrape, or a test reading samples) imports prometheus_client, makes the
    registry, registers the ``first`` collectors (the process, platform and GC ones) and then every
    collector registered here, in order -- the registry prometheus_client would have had from the
    start, so the exposition is the same -- and keeps it: later registrations go straight to it.
    A second family of a name already registered is refused at once, as prometheus_client would.
    """

    def __init__(self, first: Callable[[CollectorRegistry], None] | None = None) -> None:
        self._first = first
        self._collectors: list[Any] = []
        self._names: set[str] = set()
        self._registry: CollectorRegistry | None = None
        self._lock = threading.Lock()  # two first scrapes in worker threads build one registry

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has made the registry."""
        return self._registry is not None

    def register(self, collector: Any) -> None:
        """Keep ``collector`` for the registry (or register it there once that exists)."""
        with self._lock:
            if self._registry is not None:
                self._registry.register(collector)
                return
            name = getattr(collector, "name", None)
            if name is not None:
                if name in self._names:
                    raise ValueError(f"Duplicated timeseries in CollectorRegistry: {{{name!r}}}")
                self._names.add(name)
            self._collectors.append(collector)

    def build(self) -> CollectorRegistry:
        """prometheus_client's registry of every collector kept (made once)."""
        with self._lock:
            if self._registry is None:
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry()
                if self._first is not None:
                    self._first(registry)
                for collector in self._collectors:
                    registry.register(collector)
                self._registry = registry
                self._collectors.clear()
            return self._registry


# -- what the recorder relies on: satisfied by these classes and by prometheus_client's ---------------


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...
    def set(self, value: float) -> None: ...


class HistogramChild(Protocol):
    def observe(self, amount: float) -> None: ...


class CounterFamily(CounterChild, Protocol):
    def labels(self, *labelvalues: Any) -> CounterChild: ...
    def remove(self, *labelvalues: Any) -> None: ...


class GaugeFamily(GaugeChild, Protocol):
    def labels(self, *labelvalues: Any) -> GaugeChild: ...
    def remove(self, *labelvalues: Any) -> None: ...


class HistogramFamily(HistogramChild, Protocol):
    def labels(self, *labelvalues: Any) -> HistogramChild: ...
    def remove(self, *labelvalues: Any) -> None: ...


# -- children -------------------------------------------------------------------------------------


class _CounterValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class _GaugeValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class _HistogramValue:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # upper bounds, +Inf last
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal")
        self.counts[bisect.bisect_left(self._bounds, amount)] += 1
        self.sum += amount


# -- families -------------------------------------------------------------------------------------


class _Family:
    """Children by label values; registered on ``registry`` as a collector."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Registry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:
            self.labels()  # an unlabelled metric is exported (as 0) from the start, as prometheus_client's
        registry.register(self)

    def _new_child(self) -> Any:
        raise NotImplementedError

    def labels(self, *labelvalues: Any) -> Any:
        key = tuple(str(value) for value in labelvalues)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
            child = self._children[key] = self._new_child()
        return child

    def remove(self, *labelvalues: Any) -> None:
        self._children.pop(tuple(str(value) for value in labelvalues), None)

    def _only_child(self) -> Any:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: call .labels() first")
        return self.labels()

    def _family(self) -> Metric:
        raise NotImplementedError

    def _add(self, family: Any, labels: Sequence[str], child: Any) -> None:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> list[Metric]:
        family = self._family()
        for labels, child in dict(self._children).items():  # a copy: the loop may add children meanwhile
            self._add(family, labels, child)
        return [family]


class LeanCounter(_Family):
    def _new_child(self) -> _CounterValue:
        return _CounterValue()

    def inc(self, amount: float = 1) -> None:
        self._only_child().inc(amount)

    def _family(self) -> Metric:
        from prometheus_client.core import CounterMetricFamily

        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: CounterMetricFamily, labels: Sequence[str], child: _CounterValue) -> None:
        family.add_metric(labels, child.value)


class LeanGauge(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Registry,
        multiprocess_mode: str = "all",  # only meaningful to prometheus_client's multiprocess gauges
    ) -> None:
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> _GaugeValue:
        return _GaugeValue()

    def inc(self, amount: float = 1) -> None:
        self._only_child().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._only_child().dec(amount)

    def set(self, value: float) -> None:
        self._only_child().set(value)

    def _family(self) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: GaugeMetricFamily, labels: Sequence[str], child: _GaugeValue) -> None:
        family.add_metric(labels, child.value)


class LeanHistogram(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Registry,
        buckets: Sequence[float],
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        self._le: tuple[str, ...] | None = None  # the bounds as "le" labels, made by the first collect
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> _HistogramValue:
        return _HistogramValue(self._bounds)

    def observe(self, amount: float) -> None:
        self._only_child().observe(amount)

    def _family(self) -> Metric:
        from prometheus_client.core import HistogramMetricFamily

        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _labels_le(self) -> tuple[str, ...]:
        if self._le is None:
            from prometheus_client.utils import floatToGoString

            self._le = tuple(floatToGoString(b) for b in self._bounds)  # type: ignore[no-untyped-call]
        return self._le

    def _add(self, family: HistogramMetricFamily, labels: Sequence[str], child: _HistogramValue) -> None:
        counts, total = child.counts[:], child.sum
        cumulative = 0
        buckets = []
        for le, count in zip(self._labels_le(), counts, strict=True):
            cumulative += count
            buckets.append((le, float(cumulative)))
        family.add_metric(labels, buckets, total)


def metric_classes(multiprocess: bool) -> tuple[type[Any], type[Any], type[Any]]:
    """(Counter, Gauge, Histogram): prometheus_client's across worker processes, else the lean ones."""
    if multiprocess:
        from prometheus_client import Counter, Gauge, Histogram

        return Counter, Gauge, Histogram
    return LeanCounter, LeanGauge, LeanHistogram
