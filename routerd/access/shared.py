"""Budget totals shared by every replica through Redis (when the shared-state store is Redis).

Each replica keeps recording spend locally (its SQLite ledger stays the durable record of what *it*
served) and, once per flush interval, adds what it spent since the last time to one Redis counter per
budget scope and period (``INCRBYFLOAT``, expiring a day after the period ends) and reads back the
totals of every budget it tracks, in one pipelined round trip, off the request path. Budget checks
then see the cluster's spend at most one flush interval old: replicas together may overspend a budget
by at most what they all spend in that interval (1 s by default). Redis unreachable: the increments
are kept and sent later, and budgets are checked against what this replica knows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from routerd.access.ledger import SpendLedger
from routerd.access.periods import period_bounds
from routerd.access.table import AccessTable

__all__ = ["SharedSpend", "declared_budgets"]

log = logging.getLogger("routerd.gate")


class SharedSpend:
    """Synchronises a :class:`SpendLedger`'s budget totals with Redis."""

    def __init__(self, client: Any, *, namespace: str = "routerd:", timeout: float = 1.0) -> None:
        self.client = client
        self.namespace = namespace
        self.timeout = timeout
        self.errors = 0

    def _key(self, scope: str, start: float) -> str:
        return f"{self.namespace}spend:{scope}:{int(start)}"

    async def sync(
        self,
        ledger: SpendLedger,
        now: float | None = None,
        declared: Mapping[tuple[str, float], float] | None = None,
    ) -> bool:
        """One exchange: send this replica's new spend, read every tracked budget's total. ``declared``
        adds the current periods of the budgets the routing file declares, so a replica knows what its
        peers spent on a key it has not served yet."""
        now = time.time() if now is None else now
        increments = ledger.take_shared()
        tracked = ledger.active_budgets(now)
        for key, end in (declared or {}).items():
            tracked.setdefault(key, end)
        for key, (end, _) in increments.items():
            tracked.setdefault(key, end)
        if not tracked:
            return True
        order = list(tracked)
        try:
            pipe = self.client.pipeline(transaction=False)
            for scope, start in order:
                redis_key = self._key(scope, start)
                usd = increments.get((scope, start), (0.0, 0.0))[1]
                if usd:
                    pipe.incrbyfloat(redis_key, usd)
                    if tracked[(scope, start)] != float("inf"):
                        pipe.expireat(redis_key, int(tracked[(scope, start)]) + 86400)
                else:
                    pipe.get(redis_key)
            results = await asyncio.wait_for(pipe.execute(), self.timeout)
        except Exception as exc:  # unreachable or slow: keep the increments for the next exchange
            ledger.give_back_shared(increments)
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.warning(
                    "sharing spend through redis failed (%s); budgets use this replica's view",
                    type(exc).__name__,
                )
            return False
        totals: dict[tuple[str, float], tuple[float, float]] = {}
        values = iter(results)
        for scope, start in order:
            usd = increments.get((scope, start), (0.0, 0.0))[1]
            value = next(values)
            if usd and tracked[(scope, start)] != float("inf"):
                next(values)  # the EXPIREAT's answer
            totals[(scope, start)] = (tracked[(scope, start)], float(value) if value is not None else 0.0)
        ledger.apply_shared(totals)
        return True


def declared_budgets(access: AccessTable | None, now: float) -> dict[tuple[str, float], float]:
    """(scope, period start) -> period end of every key and team budget a routing file declares."""
    budgets: dict[tuple[str, float], float] = {}
    if access is None:
        return budgets
    for policy in access.keys.values():
        if policy.max_budget is not None:
            start, end = period_bounds(policy.budget, now)
            budgets[(f"key:{policy.alias}", start)] = end
    for team in access.teams.values():
        if team.max_budget is not None:
            start, end = period_bounds(team.budget, now)
            budgets[(f"team:{team.team_id}", start)] = end
    return budgets
