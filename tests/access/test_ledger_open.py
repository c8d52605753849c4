"""The in-memory spend ledger of a file without keys is opened by its first use, not at start-up."""

from __future__ import annotations

import threading

from routerd.access.ledger import BudgetScope, SpendEvent, SpendLedger


def _event(at: float, usd: float) -> SpendEvent:
    return SpendEvent(
        at=at,
        key_alias="",
        team_id="",
        end_user="",
        model_group="g",
        usd=usd,
        prompt_tokens=2,
        completion_tokens=3,
        estimated=False,
        budgets=(BudgetScope("user:u", 0.0, 7200.0),),
    )


def test_a_ledger_with_nothing_to_write_stays_closed() -> None:
    ledger = SpendLedger(None)
    ledger.open_on_first_use(now=10.0)
    assert ledger.flush() == 0
    assert not ledger.opened
    ledger.close()
    assert not ledger.opened


def test_the_first_flush_with_spend_opens_it_and_writes() -> None:
    ledger = SpendLedger(None)
    ledger.open_on_first_use(now=10.0)
    ledger.record(_event(10.0, 0.5))
    assert not ledger.opened  # recording is memory only
    assert ledger.flush() == 2  # one budget row, one hourly row
    assert ledger.opened
    assert ledger.report("model", 0.0, 7200.0)[0]["spend_usd"] == 0.5
    ledger.close()


def test_a_report_opens_it_even_with_nothing_recorded() -> None:
    ledger = SpendLedger(None)
    ledger.open_on_first_use(now=10.0)
    assert ledger.report("key", 0.0, 7200.0) == []
    assert ledger.opened
    ledger.close()


def test_a_ledger_not_opened_on_first_use_keeps_spend_pending() -> None:
    ledger = SpendLedger(None)
    ledger.record(_event(10.0, 1.0))
    assert ledger.flush() == 0
    assert not ledger.opened


def test_flushes_and_reports_racing_open_it_once_and_lose_nothing() -> None:
    ledger = SpendLedger(None)
    ledger.open_on_first_use(now=10.0)
    for i in range(20):
        ledger.record(_event(10.0 + i, 0.25))
    workers = [threading.Thread(target=ledger.flush) for _ in range(4)]
    workers += [threading.Thread(target=ledger.report, args=("model", 0.0, 7200.0)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    # a second open would have started a new, empty in-memory database: rows would be missing
    assert ledger.report("model", 0.0, 7200.0)[0]["spend_usd"] == 5.0
    ledger.close()
