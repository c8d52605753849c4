"""What a health store reports about itself: which backend, which mode, and the limit share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StateStatus:
    """Shown in ``/health`` (``state``) and as ``routerd_state_backend_up`` / ``routerd_state_mode``.

    ``mode`` is ``"local"`` (state per process: one process, or Redis unreachable), ``"per_worker"``
    (``--workers N`` without Redis: limits divided by N) or ``"shared"`` (Redis reachable).
    ``share`` is the divisor each process applies to rpm/tpm limits.
    """

    backend: str  # "memory", or "redis" / "redis-cluster" with where it is (never a password)
    mode: str
    up: bool  # the backend answers (always true for memory)
    share: int

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "mode": self.mode, "up": self.up, "limit_share": self.share}
