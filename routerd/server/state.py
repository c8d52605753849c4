"""What the running daemon holds: the router (and through it the current routing table), settings,
the event bus, and the reload status shown in ``/health``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routerd.events import EventBus
from routerd.settings import Settings

if TYPE_CHECKING:
    from routerd.config.table import RoutingTable
    from routerd.metrics.runtime import MetricsRuntime
    from routerd.routing.executor import CallRouter
    from routerd.server.reload import Reloader


@dataclass(slots=True)
class ReloadStatus:
    """The outcome of loading the routing file, as ``/health`` and the metrics report it."""

    generation: int = 1
    content_hash: str = ""
    loaded_at: float = field(default_factory=time.time)
    last_attempt_at: float | None = None
    last_error: str | None = None  # the latest failed reload's message (file:line:col ...), until a good one
    failures: int = 0
    restart_required: tuple[str, ...] = ()  # settings changed in the file that need a restart


@dataclass(slots=True)
class AppState:
    router: CallRouter
    settings: Settings
    events: EventBus
    config_path: Path | None = None
    reload: ReloadStatus = field(default_factory=ReloadStatus)
    started_at: float = field(default_factory=time.time)
    draining: bool = False
    reloader: Reloader | None = None
    metrics: MetricsRuntime | None = None  # created by routerd.server.metrics_routes
    gate: Any = None  # a routerd.server.gate.Gate, created by routerd.server.access_routes
    responses: Any = None  # a routerd.frontdoors.response_store.ResponseStore (stored /v1/responses)
    batches: Any = None  # a routerd.server.batch_gateway.BatchRegistry (gateway batches and uploads)

    @property
    def table(self) -> RoutingTable:
        return self.router.table

    @property
    def master_key(self) -> str | None:
        """The settings' key wins over the file's, so an operator can lock a gateway without editing it."""
        if self.settings.master_key is not None:
            return self.settings.master_key.get_secret_value()
        return self.router.table.server.master_key

    @property
    def max_body_bytes(self) -> int:
        megabytes = self.settings.max_body_mb or self.router.table.server.max_request_size_mb
        return int(megabytes * 1024 * 1024)
