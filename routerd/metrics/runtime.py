"""One app's metrics: the registry, the metric families, the event recorder, and rendering a scrape."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routerd.metrics.definitions import RouterdMetrics
from routerd.metrics.lean import PendingRegistry
from routerd.metrics.multiprocess import collection_registry, forget_dead_workers, multiprocess_dir
from routerd.metrics.recorder import DeploymentLookup, MetricsRecorder
from routerd.state.status import StateStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

STATE_MODES = ("shared", "local", "per_worker")

HealthReport = Callable[[], Mapping[str, Any]]


class MetricsRuntime:
    """Everything ``/metrics`` needs, for one app.

    ``registry`` is private to the app unless one is passed (tests pass their own, or read this one);
    the global default registry is never used. In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)
    values live in per-process files and a scrape merges every worker's; the process/GC collectors,
    which describe only one process, are then left out.

    In one process with a registry of its own, prometheus_client is not imported until something reads
    :attr:`registry` (a scrape, a test): the lean families wait in a
    :class:`~routerd.metrics.lean.PendingRegistry` until then.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        health_report: HealthReport | None = None,
        deployment: DeploymentLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
        process_metrics: bool = True,
        max_label_values: int = 2000,
        max_wildcard_values: int = 100,
    ) -> None:
        self.multiprocess_dir: Path | None = multiprocess_dir()
        self._registry = registry
        self._pending: PendingRegistry | None = None
        if registry is None and self.multiprocess_dir is None:
            self._pending = PendingRegistry(_process_collectors if process_metrics else None)
            self.metrics = RouterdMetrics(self._pending)
        else:
            _disable_created_series()
            if self._registry is None:
                from prometheus_client import CollectorRegistry

                self._registry = CollectorRegistry()
            self.metrics = RouterdMetrics(self._registry)
        self.recorder = MetricsRecorder(
            self.metrics,
            clock=clock,
            deployment=deployment,
            max_label_values=max_label_values,
            max_wildcard_values=max_wildcard_values,
        )
        self._health_report = health_report
        self._merged = collection_registry() if self.multiprocess_dir is not None else None
        self.port: int | None = None  # the separate metrics port, once bound
        self._evictions_seen = 0

    @property
    def registry(self) -> CollectorRegistry:
        """The app's prometheus_client registry (made, and prometheus_client imported, on first use)."""
        if self._registry is None:
            assert self._pending is not None
            _disable_created_series()
            self._registry = self._pending.build()
        return self._registry

    def refresh(self) -> None:
        """Bring the per-deployment gauges up to date with the router (call on the event loop)."""
        if self._health_report is not None:
            self.recorder.apply_health_report(self._health_report())
        else:
            self.recorder.refresh()

    def set_state(self, status: StateStatus) -> None:
        """Publish the health store's backend and mode (``routerd_state_*``)."""
        m = self.recorder.metrics
        m.state_backend_up.labels(status.backend.split(" ", 1)[0]).set(1 if status.up else 0)
        for mode in STATE_MODES:
            m.state_mode.labels(mode).set(1 if mode == status.mode else 0)

    def set_cache_evictions(self, total: int) -> None:
        """Bring ``routerd_cache_evictions_total`` up to the local cache's own count (read at scrape)."""
        counter = self.recorder.metrics.cache_evictions.labels()
        seen = self._evictions_seen
        if total > seen:
            counter.inc(total - seen)
            self._evictions_seen = total

    def render(
        self, accept: str | None = None, accept_encoding: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The exposition body and its headers: Prometheus text, or OpenMetrics when asked; gzip when accepted.

        Blocking (reads every worker's file in multiprocess mode): run it off the event loop.
        """
        from prometheus_client.exposition import choose_encoder, gzip_accepted

        if self.multiprocess_dir is not None:
            forget_dead_workers(self.multiprocess_dir)
        encoder, content_type = choose_encoder(accept or "")
        body = encoder(self._merged if self._merged is not None else self.registry)
        headers = {"content-type": content_type}
        if gzip_accepted(accept_encoding or ""):
            body = gzip.compress(body, compresslevel=5)
            headers["content-encoding"] = "gzip"
        return body, headers


def _disable_created_series() -> None:
    # ``*_created`` series would double the number of series in the text format, and no query or
    # alert of routerd's uses them. prometheus_client only offers this switch process-wide.
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]


def _process_collectors(registry: CollectorRegistry) -> None:
    # registered first, as they were when the registry was made with the runtime
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
