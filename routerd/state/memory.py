"""The in-process health store: a dict of records. The default backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from routerd.routing.health import Breaker, DeploymentHealth
from routerd.state.status import StateStatus


class MemoryHealthStore:
    """Health records in a dict; state is per process and lost on restart.

    ``share`` > 1 is for ``--workers N`` without a shared store: each worker enforces
    ``limit // share`` of every rpm/tpm limit, so the host as a whole stays within the limit.
    """

    __slots__ = ("_records", "_share")

    gate = None  # no shared window to check: the planner's local decision is final

    def __init__(self, share: int = 1) -> None:
        self._records: dict[str, DeploymentHealth] = {}
        self._share = share

    def record(self, deployment_id: str) -> DeploymentHealth:
        record = self._records.get(deployment_id)
        if record is None:
            record = self._records[deployment_id] = DeploymentHealth()
            record.usage.share = self._share
        return record

    def get(self, deployment_id: str) -> DeploymentHealth | None:
        return self._records.get(deployment_id)

    def set_breaker(self, deployment_id: str, record: DeploymentHealth, breaker: Breaker) -> None:
        record.breaker = breaker

    def retain(self, keep: Callable[[str], bool]) -> None:
        self._records = {k: v for k, v in self._records.items() if keep(k)}

    def items(self) -> Iterator[tuple[str, DeploymentHealth]]:
        return iter(list(self._records.items()))

    def __len__(self) -> int:
        return len(self._records)

    def status(self) -> StateStatus:
        return StateStatus("memory", "per_worker" if self._share > 1 else "local", True, self._share)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
