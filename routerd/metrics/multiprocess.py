"""Metrics across ``routerd serve --workers N``: prometheus_client's multiprocess mode.

Each uvicorn worker is its own process with its own counters. With ``PROMETHEUS_MULTIPROC_DIR`` set
(before any worker imports prometheus_client), every metric value is written to a per-process file in
that directory, and a scrape -- answered by whichever worker gets it -- merges all files: counters and
histograms are summed, gauges are combined by their ``multiprocess_mode``.

The directory must start empty (stale files from an earlier run would be merged in), which is why
``routerd serve`` calls :func:`prepare_multiprocess_dir` before starting workers.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# prometheus_client is imported by the functions that use it: a single-process server loads it with
# its first scrape (routerd.metrics.lean.PendingRegistry), and this module is imported at start-up

log = logging.getLogger("routerd.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"

_PID_FILE = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when multiprocess mode is on, else None."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(*, cleanup: bool = True) -> Path:
    """Turn on multiprocess mode for the workers this process is about to start; returns the directory.

    Call it in the parent before the workers are spawned (they inherit the environment). When
    ``PROMETHEUS_MULTIPROC_DIR`` is already set, that directory is used (created if missing) and its
    stale ``*.db`` files are removed; otherwise a fresh private temporary directory is created,
    exported, and (with ``cleanup``) removed when this process exits.
    """
    existing = multiprocess_dir()
    if existing is not None:
        existing.mkdir(parents=True, exist_ok=True)
        for stale in existing.glob("*.db"):
            stale.unlink(missing_ok=True)
        return existing
    path = Path(tempfile.mkdtemp(prefix="routerd-metrics-"))
    os.environ[ENV] = str(path)
    if cleanup:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    log.debug("metrics: multiprocess mode in %s", path)
    return path


def collection_registry() -> CollectorRegistry:
    """A registry that, when collected, merges every worker's files (build once, collect per scrape)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def forget_dead_workers(path: Path) -> list[int]:
    """Drop the ``live*`` gauge files of worker processes that no longer exist; returns their pids.

    uvicorn replaces a crashed worker without telling prometheus_client, whose live gauges (in-flight
    requests, deployment state) would otherwise keep counting the dead worker's last values.
    """
    dead: set[int] = set()
    for file in path.glob("gauge_live*_*.db"):
        match = _PID_FILE.search(file.name)
        if match is not None:
            pid = int(match.group(1))
            if pid != os.getpid() and not _alive(pid):
                dead.add(pid)
    if dead:
        from prometheus_client.multiprocess import mark_process_dead

    for pid in dead:
        mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    return sorted(dead)


def worker_exiting() -> None:
    """Remove this process's live gauges (its in-flight count, its view of deployment health)."""
    path = multiprocess_dir()
    if path is not None and path.is_dir():
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(os.getpid(), str(path))  # type: ignore[no-untyped-call]
