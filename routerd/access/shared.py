"""Budget totals shared by every replica through Redis (when the shared-state store is Redis).

Each replica keeps recording spend locally (its SQLite ledger stays the durable record of what *it*
served) and, once per flush interval, adds what it spent since the last time to one Redis counter per
budget scope and period (``INCRBYFLOAT``, expiring a day after the period ends) and reads back the
totals of every budget it tracks, in one pipelined round trip, off the request path. Budget checks
then see the cluster's spend at most one flush interval old: replicas together may overspend a budget
by at most what they all spend in that interval (1 s by default). Redis unreachable: the increments
are kept and sent later, and budgets are checked against what this replica knows.

The same exchange adds this replica's hourly spend rows to the fleet's report (one Redis hash per
hour, ``<ns>spend:h:<hour>``, one set of fields per grouping and name, kept :data:`FLEET_REPORT_DAYS`
days), which ``GET /v1/routerd/spend`` reads: the whole fleet's spend, at most one flush interval old.
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

__all__ = ["FLEET_REPORT_DAYS", "MAX_PENDING_ROWS", "SharedSpend", "declared_budgets"]

log = logging.getLogger("routerd.gate")

#: Days the fleet's hourly spend rows stay in Redis (``/v1/routerd/spend`` reports 30 by default).
FLEET_REPORT_DAYS = 32
#: Hourly rows a replica keeps for the fleet's report while Redis is unreachable; newer rows beyond
#: this are left out of the fleet's report (they stay in the replica's own ledger).
MAX_PENDING_ROWS = 100_000
# the ledger's groupings, in the order of a row's fields after the hour
_GROUPINGS = ("key", "team", "end_user", "model")
# a row's totals, in the ledger's order: usd, prompt tokens, completion tokens, requests, estimated
_METRICS = ("usd", "prompt_tokens", "completion_tokens", "requests", "estimated")
_SEP = "\x1f"  # between grouping, name and metric in a field: never in a name from a routing file


class SharedSpend:
    """Synchronises a :class:`SpendLedger`'s budget totals with Redis."""

    def __init__(self, client: Any, *, namespace: str = "routerd:", timeout: float = 1.0) -> None:
        self.client = client
        self.namespace = namespace
        self.timeout = timeout
        self.errors = 0
        self.dropped_rows = 0  # hourly rows left out of the fleet's report (Redis away too long)

    def _key(self, scope: str, start: float) -> str:
        return f"{self.namespace}spend:{scope}:{int(start)}"

    def _hour_key(self, hour: int) -> str:
        return f"{self.namespace}spend:h:{hour}"

    def _push_rows(self, pipe: Any, rows: Mapping[tuple[int, str, str, str, str], list[float]]) -> int:
        """Queue the hourly rows on ``pipe``; returns how many commands that added."""
        queued = 0
        hours: set[int] = set()
        for (hour, *names), totals in rows.items():
            key = self._hour_key(hour)
            hours.add(hour)
            for grouping, name in zip(_GROUPINGS, names, strict=True):
                prefix = f"{grouping}{_SEP}{name}{_SEP}"
                pipe.hincrbyfloat(key, prefix + "usd", totals[0])
                for metric, value in zip(_METRICS[1:], totals[1:], strict=True):
                    pipe.hincrby(key, prefix + metric, int(value))
                queued += len(_METRICS)
        for hour in hours:
            pipe.expireat(self._hour_key(hour), hour + 3600 + FLEET_REPORT_DAYS * 86400)
            queued += 1
        return queued

    async def report(self, group_by: str, since: float, until: float) -> list[dict[str, Any]]:
        """The fleet's spend grouped by ``key``, ``team``, ``end_user`` or ``model`` over the hours of
        [since, until), as :meth:`SpendLedger.report` gives one replica's. One pipelined read; raises
        when Redis does not answer (the caller reports this replica's instead)."""
        # hours older than the retention are gone from Redis: never ask for more than it keeps
        kept = int(until // 3600) * 3600 - (FLEET_REPORT_DAYS * 24 + 1) * 3600
        first = max(int(since // 3600) * 3600, kept)
        hours = [hour for hour in range(first, int(until) + 1, 3600) if hour < until]
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self._hour_key(hour))
        answers = await asyncio.wait_for(pipe.execute(), self.timeout) if hours else []
        prefix = f"{group_by}{_SEP}"
        totals: dict[str, list[float]] = {}
        for answer in answers:
            for field, value in answer.items():
                text = field.decode() if isinstance(field, bytes) else str(field)
                if not text.startswith(prefix):
                    continue
                name, _, metric = text[len(prefix) :].rpartition(_SEP)
                if metric in _METRICS:
                    row = totals.setdefault(name, [0.0, 0, 0, 0, 0])
                    row[_METRICS.index(metric)] += float(value)
        return [
            {
                "name": name,
                "spend_usd": round(t[0], 10),
                "prompt_tokens": int(t[1]),
                "completion_tokens": int(t[2]),
                "requests": int(t[3]),
                "estimated_requests": int(t[4]),
            }
            for name, t in sorted(totals.items(), key=lambda item: item[1][0], reverse=True)
        ]

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
        rows = ledger.take_shared_hourly()
        tracked = ledger.active_budgets(now)
        for key, end in (declared or {}).items():
            tracked.setdefault(key, end)
        for key, (end, _) in increments.items():
            tracked.setdefault(key, end)
        if not tracked and not rows:
            return True
        order = list(tracked)
        try:
            pipe = self.client.pipeline(transaction=False)
            pushed = self._push_rows(pipe, rows)
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
            self.dropped_rows += ledger.give_back_shared_hourly(rows, MAX_PENDING_ROWS)
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.warning(
                    "sharing spend through redis failed (%s); budgets use this replica's view",
                    type(exc).__name__,
                )
            return False
        totals: dict[tuple[str, float], tuple[float, float]] = {}
        values = iter(results[pushed:])
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
