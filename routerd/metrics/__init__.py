"""Prometheus metrics: definitions on an injected registry, fed by the event bus.

:class:`MetricsRuntime` bundles one app's registry, metric families (:class:`RouterdMetrics`) and the
event subscriber (:class:`MetricsRecorder`); :mod:`routerd.server.metrics_routes` serves it on
``/metrics``. :func:`prepare_multiprocess_dir` makes ``routerd serve --workers N`` aggregate across
worker processes.
"""

from __future__ import annotations

from routerd.metrics.definitions import DEPLOYMENT_STATES, RouterdMetrics
from routerd.metrics.labels import OVERFLOW, LabelGuard
from routerd.metrics.multiprocess import multiprocess_dir, prepare_multiprocess_dir
from routerd.metrics.recorder import MetricsRecorder
from routerd.metrics.runtime import MetricsRuntime

__all__ = [
    "DEPLOYMENT_STATES",
    "OVERFLOW",
    "LabelGuard",
    "MetricsRecorder",
    "MetricsRuntime",
    "RouterdMetrics",
    "multiprocess_dir",
    "prepare_multiprocess_dir",
]
