"""Where the router keeps per-deployment health: the :class:`HealthStore` interface and its backends.

The router reads health on every call, so the interface is synchronous and must never do I/O on the
call path: a store hands out :class:`~routerd.routing.health.DeploymentHealth` records that live in
this process, and the router reads and updates them between awaits (no locks needed on one event
loop). :class:`MemoryHealthStore` is the default.

A backend shared between replicas (:class:`routerd.state.redis.RedisHealthStore`) implements the same
interface over local records and mirrors them in the background: :meth:`HealthStore.set_breaker` is
the hook where a breaker change (most importantly a cooldown) is published, and remote cooldowns are
merged into local records by keeping the later deadline, which is safe because deadlines only ever
move later. The one exception to "no I/O on the call path" is :attr:`HealthStore.gate`: an exact
cluster-wide rpm/tpm limit (and the single half-open probe) needs a round trip when this process's
reservation of the limit does not cover the call, so the router awaits the gate after the pure
planner picked a deployment and before it is called (the gate returns at once while it needs none).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from routerd.routing.health import Breaker, DeploymentHealth
from routerd.state.memory import MemoryHealthStore
from routerd.state.status import StateStatus

if TYPE_CHECKING:
    from routerd.routing.plan import Pick

__all__ = ["Gate", "HealthStore", "MemoryHealthStore", "StateStatus"]

# (the planner's pick, estimated prompt tokens, upstream calls the attempt makes, now) -> admitted?
# False: the store updated the local record (window full until ..., or another process probes) and
# the router picks again.
Gate = Callable[["Pick", int, int, float], Awaitable[bool]]


class HealthStore(Protocol):
    """Per-deployment health records, keyed by deployment id."""

    @property
    def gate(self) -> Gate | None:
        """The shared admission check to await before an attempt; None when local state decides."""
        ...

    def record(self, deployment_id: str) -> DeploymentHealth:
        """The record for ``deployment_id``, created healthy on first use. The same object each time."""
        ...

    def get(self, deployment_id: str) -> DeploymentHealth | None:
        """The record if one exists, without creating it."""
        ...

    def set_breaker(self, deployment_id: str, record: DeploymentHealth, breaker: Breaker) -> None:
        """Store a breaker transition (``record`` is ``record(deployment_id)``)."""
        ...

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Drop the records of deployments for which ``keep(id)`` is false (after a reload)."""
        ...

    def items(self) -> Iterator[tuple[str, DeploymentHealth]]:
        """Every (id, record) pair, for reports."""
        ...

    def status(self) -> StateStatus:
        """Backend, mode and limit share, for ``/health`` and ``/metrics``."""
        ...

    async def start(self) -> None:
        """Connect and start background tasks (on the event loop that will use the store)."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...
