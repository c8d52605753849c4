"""The spend ledger's one SQLite connection is used by the flush thread and by report threads at once:
every use holds the ledger's connection lock, so no transaction interleaves with another statement."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from routerd.access.ledger import BudgetScope, SpendEvent, SpendLedger

ROUNDS = 300  # per thread: bounded by count; each round is a flush or a report


def _event(at: float, model_group: str) -> SpendEvent:
    return SpendEvent(
        at=at,
        key_alias="k",
        team_id="t",
        end_user="",
        model_group=model_group,
        usd=0.25,
        prompt_tokens=2,
        completion_tokens=3,
        estimated=False,
        budgets=(BudgetScope("key:k", 0.0, 7200.0),),
    )


def _run(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers)


def test_reports_running_with_flushes_neither_raise_nor_lose_spend(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "spend.sqlite")
    ledger.open(now=10.0)
    errors: list[BaseException] = []
    totals: list[float] = []

    def flusher(model_group: str) -> None:
        try:
            for i in range(ROUNDS):
                ledger.record(_event(10.0 + i, model_group))
                ledger.flush()
        except BaseException as exc:  # collected: a thread's exception would otherwise be lost
            errors.append(exc)

    def reporter() -> None:
        try:
            for _ in range(ROUNDS):
                rows = ledger.report("key", 0.0, 7200.0)
                totals.append(rows[0]["spend_usd"] if rows else 0.0)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=flusher, args=(name,)) for name in ("a", "b")]
    workers += [threading.Thread(target=reporter) for _ in range(2)]
    _run(workers)
    assert errors == []
    # a report never goes backwards or past what was recorded
    assert all(0.0 <= total <= 2 * ROUNDS * 0.25 for total in totals)
    assert ledger.report("key", 0.0, 7200.0)[0]["spend_usd"] == 2 * ROUNDS * 0.25
    assert sorted(ledger.report("model", 0.0, 7200.0), key=lambda row: row["name"]) == [
        {
            "name": name,
            "spend_usd": ROUNDS * 0.25,
            "prompt_tokens": 2 * ROUNDS,
            "completion_tokens": 3 * ROUNDS,
            "requests": ROUNDS,
            "estimated_requests": 0,
        }
        for name in ("a", "b")
    ]
    ledger.close()


class _CheckedConnection:
    """The ledger's connection, recording every use made without the ledger's connection lock held."""

    def __init__(self, ledger: SpendLedger, db: Any) -> None:
        self._ledger = ledger
        self._db = db
        self.unlocked: list[str] = []
        self.uses = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._db, name)
        if not callable(attribute):
            return attribute

        def use(*args: Any, **kwargs: Any) -> Any:
            self.uses += 1
            if not self._ledger.db_lock_held():
                self.unlocked.append(name)
            return attribute(*args, **kwargs)

        return use


def test_every_use_of_the_connection_holds_the_lock() -> None:
    ledger = SpendLedger(None)
    ledger.open(now=10.0)
    checked = _CheckedConnection(ledger, ledger._db)
    ledger._db = checked  # type: ignore[assignment]
    ledger.record(_event(10.0, "a"))
    assert ledger.flush() == 2
    assert ledger.report("model", 0.0, 7200.0)[0]["requests"] == 1
    ledger.record(_event(11.0, "a"))
    ledger.close()
    assert checked.uses >= 6  # BEGIN, two inserts, COMMIT, the report's query, close's flush and close
    assert checked.unlocked == []
