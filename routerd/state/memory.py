"""The in-process health store: a dict of records. The default backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from routerd.routing.health import Breaker, DeploymentHealth


class MemoryHealthStore:
    """Health records in a dict; state is per process and lost on restart."""

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[str, DeploymentHealth] = {}

    def record(self, deployment_id: str) -> DeploymentHealth:
        record = self._records.get(deployment_id)
        if record is None:
            record = self._records[deployment_id] = DeploymentHealth()
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

    async def aclose(self) -> None:
        return None
