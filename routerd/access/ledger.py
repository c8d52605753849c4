"""The spend ledger: what each key, team, end user and model group spent, per budget period.

Two views of the same events, both kept in memory and written to SQLite in one transaction per flush:

- ``budget_spend(scope, period_start, period_end, usd)``: running totals per budget scope
  (``key:<alias>``, ``team:<id>``, ``user:<id>``) and period, read on every call to enforce budgets;
- ``spend_hourly(hour, key_alias, team_id, end_user, model_group, usd, prompt_tokens,
  completion_tokens, requests, estimated)``: the record ``/v1/routerd/spend`` reports from.

The database is in WAL mode and flushed every ``flush_interval`` seconds by the server (in a worker
thread, never on the event loop), so a crash loses at most that interval; a restart loads the totals of
periods that have not ended. Without a path (a file without keys, teams or end-user budgets and no
``ROUTERD_SPEND_DB``) the in-memory database is opened by the first flush that has something to write
or the first report (:meth:`SpendLedger.open_on_first_use`), not at start-up. End users are client-chosen names: the in-memory totals keep at most
``max_end_users`` of them (least recently charged evicted first); the database keeps them all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # sqlite3 is imported when a database is opened (not by a file without keys)
    import sqlite3

__all__ = ["BudgetScope", "SpendEvent", "SpendLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_spend (
    scope TEXT NOT NULL, period_start REAL NOT NULL, period_end REAL NOT NULL, usd REAL NOT NULL,
    PRIMARY KEY (scope, period_start));
CREATE TABLE IF NOT EXISTS spend_hourly (
    hour INTEGER NOT NULL, key_alias TEXT NOT NULL, team_id TEXT NOT NULL, end_user TEXT NOT NULL,
    model_group TEXT NOT NULL, usd REAL NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, requests INTEGER NOT NULL, estimated INTEGER NOT NULL,
    PRIMARY KEY (hour, key_alias, team_id, end_user, model_group));
"""
GROUPINGS = {"key": "key_alias", "team": "team_id", "end_user": "end_user", "model": "model_group"}


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """A budget the event counts against: ``scope`` and the period it falls in."""

    scope: str
    period_start: float
    period_end: float
    #: (scope, period_start): the budget's key in the ledger's totals (built once, used every call)
    key: tuple[str, float] = field(init=False, repr=False, compare=False)
    #: an end user's budget (kept in the bounded recently-charged order)
    of_user: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.scope, self.period_start))
        object.__setattr__(self, "of_user", self.scope[:5] == "user:")


@dataclass(slots=True)
class SpendEvent:
    """One finished call (a plain record, built once per call: not frozen, which costs more to build)."""

    at: float
    key_alias: str
    team_id: str
    end_user: str
    model_group: str
    usd: float
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    budgets: tuple[BudgetScope, ...] = ()


class SpendLedger:
    """In-memory totals with SQLite persistence (``path=None``: an in-memory database)."""

    def __init__(self, path: Path | None, *, max_end_users: int = 100_000) -> None:
        self.path = path
        self.max_end_users = max_end_users
        self._budgets: dict[tuple[str, float], tuple[float, float]] = {}  # (scope, start) -> (end, usd)
        self._users: OrderedDict[tuple[str, float], None] = OrderedDict()
        self._pending_budgets: dict[tuple[str, float], tuple[float, float]] = {}
        self._pending_hourly: dict[tuple[int, str, str, str, str], list[float]] = {}
        # budget increments not yet added to the shared (Redis) totals; see routerd.access.shared
        self._pending_shared: dict[tuple[str, float], tuple[float, float]] = {}
        # hourly rows not yet added to the fleet's report in Redis (same shape as _pending_hourly)
        self._pending_shared_hourly: dict[tuple[int, str, str, str, str], list[float]] = {}
        self.shared = False
        self._lock = threading.Lock()  # memory <-> flushing thread
        self._db: sqlite3.Connection | None = None
        # open_on_first_use: the time to load totals from (None: opened by open(), or not at all)
        self._open_at: float | None = None
        # The one connection is shared by the flush thread and report threads (asyncio.to_thread):
        # every use of it holds this lock, so a report's query never runs inside a flush's
        # transaction and two flushes never BEGIN at once. Re-entrant: a report flushes first, and
        # opening on first use happens under it (a flush and a report opening it at once open it once).
        self._db_lock = threading.RLock()

    # -- the event loop side -------------------------------------------------------------------

    def spent(self, scope: str, period_start: float) -> float:
        """USD spent by ``scope`` in the period starting at ``period_start``."""
        entry = self._budgets.get((scope, period_start))
        return entry[1] if entry else 0.0

    def spent_on(self, budget: BudgetScope) -> float:
        """USD spent on ``budget`` in its period (:meth:`spent` by the budget's prebuilt key)."""
        entry = self._budgets.get(budget.key)
        return entry[1] if entry else 0.0

    def record(self, event: SpendEvent) -> None:
        """Count a finished call against its budgets and in the hourly record."""
        usd = event.usd
        row = (
            int(event.at // 3600) * 3600,
            event.key_alias,
            event.team_id,
            event.end_user,
            event.model_group,
        )
        with self._lock:
            spent, pending = self._budgets, self._pending_budgets
            for budget in event.budgets:
                key = budget.key
                # _add_usd inlined for the two totals every call adds to
                entry = spent.get(key)
                spent[key] = (budget.period_end, usd) if entry is None else (entry[0], entry[1] + usd)
                entry = pending.get(key)
                pending[key] = (budget.period_end, usd) if entry is None else (entry[0], entry[1] + usd)
                if self.shared:
                    _add_usd(self._pending_shared, key, budget.period_end, usd)
                if budget.of_user:
                    self._touch_user(key)
            totals = self._pending_hourly.get(row)
            if totals is None:
                totals = self._pending_hourly[row] = [0.0, 0, 0, 0, 0]
            totals[0] += usd
            totals[1] += event.prompt_tokens
            totals[2] += event.completion_tokens
            totals[3] += 1
            if event.estimated:
                totals[4] += 1
            if self.shared:
                _add(self._pending_shared_hourly.setdefault(row, [0.0, 0, 0, 0, 0]), event)

    def _touch_user(self, key: tuple[str, float]) -> None:
        self._users[key] = None
        self._users.move_to_end(key)
        while len(self._users) > self.max_end_users:
            old, _ = self._users.popitem(last=False)
            self._budgets.pop(old, None)

    def take_shared(self) -> dict[tuple[str, float], tuple[float, float]]:
        """The budget increments to add to the shared totals (handed over: recorded again if they fail)."""
        with self._lock:
            pending, self._pending_shared = self._pending_shared, {}
        return pending

    def take_shared_hourly(self) -> dict[tuple[int, str, str, str, str], list[float]]:
        """The hourly rows to add to the fleet's report (handed over: give them back if that fails)."""
        with self._lock:
            pending, self._pending_shared_hourly = self._pending_shared_hourly, {}
        return pending

    def give_back_shared_hourly(
        self, pending: dict[tuple[int, str, str, str, str], list[float]], most: int
    ) -> int:
        """Keep rows that could not be sent, up to ``most`` rows waiting; returns the rows dropped."""
        dropped = 0
        with self._lock:
            for row, totals in pending.items():
                merged = self._pending_shared_hourly.get(row)
                if merged is None:
                    if len(self._pending_shared_hourly) >= most:
                        dropped += 1
                        continue
                    merged = self._pending_shared_hourly[row] = [0.0, 0, 0, 0, 0]
                for i, value in enumerate(totals):
                    merged[i] += value
        return dropped

    def give_back_shared(self, pending: dict[tuple[str, float], tuple[float, float]]) -> None:
        with self._lock:
            for key, (end, usd) in pending.items():
                send, susd = self._pending_shared.get(key, (end, 0.0))
                self._pending_shared[key] = (send, susd + usd)

    def active_budgets(self, now: float) -> dict[tuple[str, float], float]:
        """(scope, period start) -> period end of every budget this process tracks that is still running."""
        with self._lock:
            return {key: end for key, (end, _) in self._budgets.items() if end > now}

    def apply_shared(self, totals: dict[tuple[str, float], tuple[float, float]]) -> None:
        """Take the cluster-wide totals (what every replica added, this one included up to the last
        hand-over), plus what this process recorded since then."""
        with self._lock:
            for key, (end, total) in totals.items():
                recent = self._pending_shared.get(key, (end, 0.0))[1]
                self._budgets[key] = (end, total + recent)

    def forget_ended(self, now: float) -> None:
        """Drop in-memory totals of periods that have ended (they stay in the database)."""
        with self._lock:
            for key in [k for k, (end, _) in self._budgets.items() if end <= now]:
                del self._budgets[key]
                self._users.pop(key, None)

    # -- the worker-thread side ----------------------------------------------------------------

    def open(self, now: float) -> None:
        """Open (creating) the database and load the totals of periods not yet ended. Blocking.
        Without a path the database lives in memory (same queries, nothing survives a restart)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        import sqlite3

        target = str(self.path) if self.path is not None else ":memory:"
        with self._db_lock:  # published under the lock: a report waits for the loaded totals
            db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            rows = db.execute(
                "SELECT scope, period_start, period_end, usd FROM budget_spend WHERE period_end > ?", (now,)
            )
            with self._lock:
                for scope, start, end, usd in rows:
                    self._budgets[(scope, start)] = (end, usd)
            self._db = db

    @property
    def opened(self) -> bool:
        """Whether the database is open."""
        return self._db is not None

    def open_on_first_use(self, now: float) -> None:
        """Open the database when it is first needed (a flush with something to write, a report)
        instead of now. For the in-memory database of a file without keys: most such gateways never
        record spend, and opening costs the ``sqlite3`` import and a worker thread at start-up."""
        self._open_at = now

    def db_lock_held(self) -> bool:
        """Whether this thread holds the connection lock (every use of the connection does)."""
        return bool(self._db_lock._is_owned())  # type: ignore[attr-defined]

    def _opened(self) -> sqlite3.Connection | None:
        """The connection, opened now if it is opened on first use. Call with the connection lock held."""
        if self._db is None and self._open_at is not None:
            self.open(self._open_at)
        return self._db

    def flush(self) -> int:
        """Write what was recorded since the last flush, in one transaction; returns rows written. Blocking."""
        if self._db is None and not (self._pending_budgets or self._pending_hourly):
            return 0  # nothing to write: a ledger opened on first use stays closed
        with self._db_lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        db = self._opened()
        if db is None:
            return 0  # not open yet: keep everything pending
        with self._lock:
            budgets, self._pending_budgets = self._pending_budgets, {}
            hourly, self._pending_hourly = self._pending_hourly, {}
        if not (budgets or hourly):
            return 0
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO budget_spend VALUES (?, ?, ?, ?) ON CONFLICT (scope, period_start) "
                "DO UPDATE SET usd = usd + excluded.usd",
                [(scope, start, end, usd) for (scope, start), (end, usd) in budgets.items()],
            )
            db.executemany(
                "INSERT INTO spend_hourly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (hour, key_alias, team_id, end_user, model_group) DO UPDATE SET "
                "usd = usd + excluded.usd, prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = completion_tokens + excluded.completion_tokens, "
                "requests = requests + excluded.requests, estimated = estimated + excluded.estimated",
                [(*row, *totals) for row, totals in hourly.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            with self._lock:  # keep them for the next flush
                for key, (end, usd) in budgets.items():
                    pend, pusd = self._pending_budgets.get(key, (end, 0.0))
                    self._pending_budgets[key] = (pend, pusd + usd)
                for row, totals in hourly.items():
                    merged = self._pending_hourly.setdefault(row, [0.0, 0, 0, 0, 0])
                    for i, value in enumerate(totals):
                        merged[i] += value
            raise
        return len(budgets) + len(hourly)

    def report(self, group_by: str, since: float, until: float) -> list[dict[str, Any]]:
        """Spend grouped by ``key``, ``team``, ``end_user`` or ``model`` over [since, until). Blocking;
        flushes first so the report includes everything recorded."""
        column = GROUPINGS[group_by]
        with self._db_lock:
            self._flush_locked()
            db = self._opened()
            if db is None:
                raise RuntimeError("the spend ledger is not open")
            rows = db.execute(
                f"SELECT {column}, SUM(usd), SUM(prompt_tokens), SUM(completion_tokens), SUM(requests), "
                "SUM(estimated) FROM spend_hourly WHERE hour >= ? AND hour < ? GROUP BY 1 ORDER BY 2 DESC",
                (int(since // 3600) * 3600, until),
            ).fetchall()  # read under the lock: the cursor steps the shared connection
        return [_row(name, totals) for name, *totals in rows]

    def close(self) -> None:
        """Flush and close the database. Blocking."""
        with self._db_lock:
            if self._db is not None:
                self._flush_locked()
                self._db.close()
                self._db = None


def _add_usd(
    totals: dict[tuple[str, float], tuple[float, float]], key: tuple[str, float], end: float, usd: float
) -> None:
    """Add ``usd`` to the (end, usd) total of ``key`` (created with period end ``end``)."""
    entry = totals.get(key)
    totals[key] = (end, usd) if entry is None else (entry[0], entry[1] + usd)


def _row(name: str, totals: Iterable[Any]) -> dict[str, Any]:
    usd, prompt, completion, requests, estimated = totals
    return {
        "name": name,
        "spend_usd": round(usd, 10),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "requests": requests,
        "estimated_requests": estimated,
    }


def _add(shared: list[float], event: SpendEvent) -> None:
    shared[0] += event.usd
    shared[1] += event.prompt_tokens
    shared[2] += event.completion_tokens
    shared[3] += 1
    shared[4] += 1 if event.estimated else 0
