"""Keys, teams and budgets: periods, validation, authentication, model access, limits and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from routerd.access.ledger import BudgetScope, SpendEvent, SpendLedger
from routerd.access.limits import AccessLimits
from routerd.access.periods import Duration, parse_duration, period_bounds
from routerd.access.spec import KeySpec, TeamSpec, hash_key
from routerd.access.table import (
    BudgetExceededError,
    allowed_groups,
    authenticate,
    check_budget,
    check_model,
    compile_access,
)
from routerd.errors import AuthenticationError, PermissionDeniedError, RateLimitError

KEY_A = "sk-team-search-0123456789"
KEY_B = "sk-team-other-9876543210"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", Duration("30s", 30)),
        ("15m", Duration("15m", 900)),
        ("1h", Duration("1h", 3600)),
        ("7d", Duration("7d", 604800)),
        ("1mo", Duration("1mo", 0, 1)),
        ("3mo", Duration("3mo", 0, 3)),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1y", "0d", "-1d", "1.5h", "999999999d", "200mo"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fixed_periods_align_to_the_epoch_in_utc() -> None:
    now = _ts("2026-12-03T13:45:10")
    assert period_bounds(parse_duration("1d"), now) == (
        _ts("2026-12-03T00:00:00"),
        _ts("2026-12-04T00:00:00"),
    )
    assert period_bounds(parse_duration("1h"), now) == (
        _ts("2026-12-03T13:00:00"),
        _ts("2026-12-03T14:00:00"),
    )
    start, end = period_bounds(parse_duration("30s"), now)
    assert (start, end) == (_ts("2026-12-03T13:45:00"), _ts("2026-12-03T13:45:30"))
    assert period_bounds(None, now) == (0.0, float("inf"))


def test_month_periods_are_calendar_months() -> None:
    assert period_bounds(parse_duration("1mo"), _ts("2026-12-31T23:59:59")) == (
        _ts("2026-12-01T00:00:00"),
        _ts("2027-01-01T00:00:00"),
    )
    assert period_bounds(parse_duration("3mo"), _ts("2026-05-10T00:00:00")) == (
        _ts("2026-04-01T00:00:00"),
        _ts("2026-07-01T00:00:00"),
    )


def _key(**kw: Any) -> KeySpec:
    return KeySpec.model_validate({"key": KEY_A, **kw})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key_alias": "x"}, "exactly one of `key` and `key_hash`"),
        ({"key": KEY_A, "key_hash": "sha256:" + "0" * 64}, "exactly one"),
        ({"key": "short"}, "at least 16"),
        ({"key_hash": "md5:abc"}, "64 hex digits"),
        ({"key": KEY_A, "budget_duration": "1 fortnight"}, "not a duration"),
        ({"key": KEY_A, "rpm_limit": 0}, "greater than or equal to 1"),
        ({"key": KEY_A, "expires": "next tuesday"}, "ISO 8601"),
        ({"key": KEY_A, "max_budget": -1}, "greater than or equal to 0"),
        ({"key": KEY_A, "bogus": 1}, "Extra inputs"),
    ],
)
def test_key_spec_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KeySpec.model_validate(data)


def test_key_repr_never_shows_the_key() -> None:
    assert KEY_A not in repr(_key(key_alias="a"))


def test_compile_and_authenticate() -> None:
    team = TeamSpec(team_id="search", models=("gpt-*",))
    keys = [
        _key(key_alias="a", team_id="search"),
        KeySpec(key_hash="sha256:" + hash_key(KEY_B).hex(), key_alias="b", expires="2026-12-01"),
        KeySpec(key="sk-blocked-0000000000", key_alias="c", blocked=True),
    ]
    table, problems = compile_access(keys, [team])
    assert problems == []
    now = _ts("2026-11-30T12:00:00")
    policy = authenticate(table, KEY_A, now)
    assert (policy.alias, policy.team_id) == ("a", "search")
    assert authenticate(table, KEY_B, now).alias == "b"
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate(table, KEY_B, _ts("2026-12-01T00:00:00"))
    with pytest.raises(AuthenticationError, match="blocked"):
        authenticate(table, "sk-blocked-0000000000", now)
    with pytest.raises(AuthenticationError) as caught:
        authenticate(table, "sk-not-a-key-at-all-0000", now)
    assert caught.value.status_code == 401 and "sk-not" not in caught.value.message


def test_compile_reports_problems_with_their_paths() -> None:
    keys = [
        _key(key_alias="a"),
        _key(key_alias="dup"),
        KeySpec(key=KEY_B, key_alias="a"),
        KeySpec(key="sk-orphan-000000000000", team_id="nope"),
    ]
    _, problems = compile_access(keys, [TeamSpec(team_id="t"), TeamSpec(team_id="t")])
    assert [path for path, _ in problems] == [
        ("teams", 1, "team_id"),
        ("keys", 1),
        ("keys", 2, "key_alias"),
        ("keys", 3, "team_id"),
    ]


def test_model_access_by_name_wildcard_access_group_and_team() -> None:
    team = TeamSpec(team_id="t", models=("gpt-*", "embeddings"))
    keys = [_key(key_alias="a", team_id="t", models=("gpt-4o", "beta-models"))]
    table, _ = compile_access(keys, [team], {"beta-models": ["embeddings"]})
    policy = authenticate(table, KEY_A, 0)
    groups = ["gpt-4o", "gpt-4o-mini", "embeddings", "claude"]
    assert allowed_groups(policy, groups, table.access_groups) == ["gpt-4o", "embeddings"]
    check_model(policy, "gpt-4o", "gpt-4o", groups, table.access_groups)
    with pytest.raises(PermissionDeniedError) as caught:
        check_model(policy, "claude", "claude", groups, table.access_groups)
    assert caught.value.status_code == 403
    assert "'claude'" in caught.value.message and "gpt-4o, embeddings" in caught.value.message


def test_empty_model_lists_allow_everything() -> None:
    table, _ = compile_access([_key()], [])
    policy = authenticate(table, KEY_A, 0)
    assert allowed_groups(policy, ["x", "y"], table.access_groups) == ["x", "y"]


def test_budget_check_names_the_budget_and_the_reset() -> None:
    now = _ts("2026-12-03T10:00:00")
    check_budget("key 'a'", 0.99, 1.0, parse_duration("1d"), now)
    with pytest.raises(BudgetExceededError) as caught:
        check_budget("key 'a'", 1.0, 1.0, parse_duration("1d"), now)
    error = caught.value
    assert (error.status_code, error.error_type) == (400, "budget_exceeded")
    assert "key 'a'" in error.message and "2026-12-04T00:00:00+00:00" in error.message


def _policy(**kw: Any):  # type: ignore[no-untyped-def]
    teams = [TeamSpec(team_id="t", **kw.pop("team", {}))]
    table, _ = compile_access([_key(key_alias="a", team_id="t", **kw)], teams)
    return authenticate(table, KEY_A, 0)


def test_key_rpm_limit_refuses_with_retry_after_and_frees_after_a_minute() -> None:
    limits, policy = AccessLimits(), _policy(rpm_limit=3)
    for second in range(3):
        limits.release(limits.admit(policy, 10, 100.0 + second))
    with pytest.raises(RateLimitError) as caught:
        limits.admit(policy, 10, 103.0)
    assert caught.value.status_code == 429 and caught.value.code == "rpm_limit"
    assert caught.value.retry_after == pytest.approx(58.0)  # the call at second 100 leaves at 161
    limits.admit(policy, 10, 161.0)


def test_team_tpm_limit_applies_to_its_keys_and_refusals_leave_no_trace() -> None:
    limits, policy = AccessLimits(), _policy(team={"tpm_limit": 100})
    limits.admit(policy, 60, 10.0)
    with pytest.raises(RateLimitError, match="team 't' reached its tpm_limit"):
        limits.admit(policy, 60, 11.0)
    assert limits.in_flight("key:a") == 1  # the refused call was not counted


def test_a_team_refusal_takes_back_the_keys_count() -> None:
    limits, policy = AccessLimits(), _policy(rpm_limit=2, tpm_limit=100, team={"tpm_limit": 50})
    limits.admit(policy, 30, 10.0)
    for _ in range(3):  # the key's window counts each call before the team's refuses it
        with pytest.raises(RateLimitError, match="team 't' reached its tpm_limit"):
            limits.admit(policy, 30, 10.5)
    limits.admit(policy, 20, 10.5)  # the key's rpm (2) and tpm (100) kept only the admitted calls
    with pytest.raises(RateLimitError, match="key 'a' reached its rpm_limit"):
        limits.admit(policy, 0, 11.0)


def test_settle_corrects_tokens() -> None:
    limits, policy = AccessLimits(), _policy(tpm_limit=100)
    admission = limits.admit(policy, 90, 10.0)
    limits.settle(admission, 20, 11.0)
    limits.admit(policy, 70, 12.0)  # 20 + 70 fits


def test_parallel_limit_and_release() -> None:
    limits, policy = AccessLimits(), _policy(max_parallel_requests=2)
    first = limits.admit(policy, 1, 1.0)
    limits.admit(policy, 1, 1.0)
    with pytest.raises(RateLimitError, match="max_parallel_requests"):
        limits.admit(policy, 1, 1.0)
    limits.release(first)
    limits.release(first)  # twice is harmless
    limits.admit(policy, 1, 1.0)


def test_limits_divided_between_processes() -> None:
    limits, policy = AccessLimits(divisor=lambda: 2), _policy(rpm_limit=4)
    limits.admit(policy, 1, 1.0)
    limits.admit(policy, 1, 1.0)
    with pytest.raises(RateLimitError):
        limits.admit(policy, 1, 1.0)


def _event(at: float, usd: float, scopes: tuple[BudgetScope, ...], **kw: Any) -> SpendEvent:
    fields = {
        "key_alias": "a",
        "team_id": "t",
        "end_user": "",
        "model_group": "g",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "estimated": False,
    }
    fields.update(kw)
    return SpendEvent(at=at, usd=usd, budgets=scopes, **fields)


def test_ledger_survives_a_restart_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite"
    day = BudgetScope("key:a", 86400.0, 172800.0)
    ledger = SpendLedger(path)
    ledger.open(now=90000.0)
    ledger.record(_event(90000.0, 0.25, (day,)))
    ledger.record(_event(90010.0, 0.5, (day,), model_group="h", end_user="u1", estimated=True))
    assert ledger.spent("key:a", 86400.0) == pytest.approx(0.75)
    assert ledger.spent_on(day) == pytest.approx(0.75)  # the same total, by the budget's own key
    assert ledger.spent_on(BudgetScope("key:a", 172800.0, 259200.0)) == 0.0  # the next period
    ledger.close()
    again = SpendLedger(path)
    again.open(now=90100.0)
    assert again.spent("key:a", 86400.0) == pytest.approx(0.75)
    by_model = again.report("model", 0.0, 200000.0)
    assert [(r["name"], r["spend_usd"], r["requests"], r["estimated_requests"]) for r in by_model] == [
        ("h", 0.5, 1, 1),
        ("g", 0.25, 1, 0),
    ]
    assert again.report("key", 0.0, 200000.0)[0]["prompt_tokens"] == 6
    assert again.report("key", 200000.0, 300000.0) == []
    again.close()
    ended = SpendLedger(path)
    ended.open(now=172800.0)  # the period is over: not loaded
    assert ended.spent("key:a", 86400.0) == 0.0
    ended.close()


def test_ledger_memory_only_and_flush_before_open() -> None:
    ledger = SpendLedger(None)
    ledger.record(_event(10.0, 1.0, (BudgetScope("team:t", 0.0, 100.0),)))
    assert ledger.flush() == 0  # not open: kept
    ledger.open(now=10.0)
    assert ledger.report("team", 0.0, 100.0)[0]["spend_usd"] == 1.0


def test_ledger_bounds_end_users_in_memory() -> None:
    ledger = SpendLedger(None, max_end_users=2)
    for user in ("u1", "u2", "u3"):
        ledger.record(_event(1.0, 1.0, (BudgetScope(f"user:{user}", 0.0, 100.0),)))
    assert ledger.spent("user:u1", 0.0) == 0.0 and ledger.spent("user:u3", 0.0) == 1.0


def test_forget_ended_periods() -> None:
    ledger = SpendLedger(None)
    ledger.record(_event(1.0, 1.0, (BudgetScope("key:a", 0.0, 100.0),)))
    ledger.forget_ended(now=100.0)
    assert ledger.spent("key:a", 0.0) == 0.0


def test_end_settles_and_releases_in_one_pass() -> None:
    limits, policy = AccessLimits(), _policy(tpm_limit=100, max_parallel_requests=1, team={"tpm_limit": 100})
    admission = limits.admit(policy, 90, 10.0)
    assert limits.in_flight("key:a") == limits.in_flight("team:t") == 1
    limits.end(admission, 20, 11.0)  # the real count: 20 tokens, in the key's and the team's windows
    assert limits.in_flight("key:a") == limits.in_flight("team:t") == 0
    limits.end(admission, 20, 11.0)  # twice is harmless: not released twice, not settled again
    assert limits.in_flight("key:a") == 0
    second = limits.admit(policy, 80, 12.0)  # 20 + 80 fits both windows (90 + 80 would not)
    limits.end(second, 80, 13.0)  # the estimate was right: nothing to correct
    with pytest.raises(RateLimitError, match="tpm_limit"):
        limits.admit(policy, 1, 13.0)  # 20 + 80 + 1 > 100


class _SharedUp:
    """A shared store's access limits as AccessLimits sees them: answering (``up``)."""

    up = True


def test_admit_local_decides_only_without_a_shared_store() -> None:
    policy = _policy(rpm_limit=1)
    shared: _SharedUp | None = _SharedUp()
    limits = AccessLimits(shared=lambda: shared)  # type: ignore[arg-type,return-value]
    assert limits.admit_local(policy, 1, 1.0) is None  # the shared store must be asked
    assert limits.in_flight("key:a") == 0  # ... and nothing was counted here
    shared.up = False  # type: ignore[misc]
    admission = limits.admit_local(policy, 1, 1.0)  # Redis down: this process decides alone
    assert admission is not None and admission.scopes == ("key:a", "team:t")
    with pytest.raises(RateLimitError, match="rpm_limit"):
        limits.admit_local(policy, 1, 2.0)
    shared = None
    assert AccessLimits().admit_local(policy, 1, 1.0) is not None  # no shared store at all


def test_lookup_remembers_matched_keys_only_and_still_checks_them() -> None:
    keys = [_key(key_alias="a"), KeySpec(key=KEY_B, key_alias="b", expires="2026-12-01")]
    table, _ = compile_access(keys, [])
    now = _ts("2026-11-30T12:00:00")
    for _ in range(3):
        assert authenticate(table, KEY_A, now).alias == "a"
        assert authenticate(table, KEY_B, now).alias == "b"
        with pytest.raises(AuthenticationError):
            authenticate(table, "sk-not-a-key-at-all-0000", now)
    assert sorted(table._known) == sorted([KEY_A, KEY_B])  # bounded by the declared keys
    with pytest.raises(AuthenticationError, match="expired"):  # a remembered key is still checked
        authenticate(table, KEY_B, _ts("2026-12-01T00:00:00"))
    reloaded, _ = compile_access([_key(key_alias="a")], [])  # a reload forgets with the old table
    with pytest.raises(AuthenticationError):
        authenticate(reloaded, KEY_B, now)
