"""``KeyPolicy.limited``: whether a call must be admitted and released (any rpm, tpm or parallel limit
on the key or its team). A limit of 0 is a limit, not its absence."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from routerd.access.table import KeyPolicy, TeamPolicy

_NONE: dict[str, Any] = {"rpm_limit": None, "tpm_limit": None, "max_parallel_requests": None}


def _common(**limits: Any) -> dict[str, Any]:
    return {
        "models": (),
        **_NONE,
        **limits,
        "max_budget": None,
        "budget": None,
        "blocked": False,
        "guardrails": (),
        "metadata": MappingProxyType({}),
    }


def _key(team: TeamPolicy | None = None, **limits: Any) -> KeyPolicy:
    return KeyPolicy(
        **_common(**limits),
        alias="k",
        team=team,
        expires=None,
        tags=(),
        user_id=None,
        digest=b"d",
    )


def _team(**limits: Any) -> TeamPolicy:
    return TeamPolicy(**_common(**limits), team_id="t", alias=None)


@pytest.mark.parametrize("limit", ["rpm_limit", "tpm_limit", "max_parallel_requests"])
@pytest.mark.parametrize("value", [0, 1])
def test_any_limit_of_the_key_or_its_team_makes_it_limited(limit: str, value: int) -> None:
    assert _key(**{limit: value}).limited
    assert _key(team=_team(**{limit: value})).limited


def test_no_limit_anywhere_is_not_limited() -> None:
    assert not _key().limited
    assert not _key(team=_team()).limited


def test_a_tpm_limit_of_zero_counts_tokens() -> None:
    assert _key(tpm_limit=0).counts_tokens
    assert not _key(rpm_limit=0).counts_tokens
