"""The compiled access policy: keys by digest, teams by id, model access, and the pure decisions.

Lookup is by the SHA-256 digest of the presented key: the table never holds a key, only digests, and
a dict lookup by digest reveals nothing useful through its timing (an attacker would need a preimage of
the digest to aim at). Keys of ``os.environ/`` are resolved at load time like every other secret.
Keys that matched are remembered by their text in process memory (:meth:`AccessTable.lookup`, at most
one per declared key), which saves the digest on later calls; Python's string hashing is keyed per
process, so that lookup cannot be aimed either, and unknown keys are never remembered.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from routerd.access.periods import Duration, parse_duration, period_bounds
from routerd.access.spec import KeySpec, TeamSpec, hash_key
from routerd.errors import AuthenticationError, BadRequestError, PermissionDeniedError

__all__ = [
    "AccessTable",
    "BudgetExceededError",
    "EndUserBudget",
    "KeyPolicy",
    "TeamPolicy",
    "allowed_groups",
    "authenticate",
    "check_budget",
    "check_model",
    "compile_access",
]

#: Names listed in a 403 that refuses a model (the full list can be long).
MAX_LISTED_MODELS = 50
_ALL = frozenset({"*", "all-proxy-models", "all-models"})


@dataclass(frozen=True, slots=True)
class _Policy:
    models: tuple[str, ...]
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None
    max_budget: float | None
    budget: Duration | None
    blocked: bool
    guardrails: tuple[str, ...]
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TeamPolicy(_Policy):
    team_id: str
    alias: str | None
    #: ``team:<id>``: the name of the team's budget and limits (precomputed: it is used on every call)
    scope: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", f"team:{self.team_id}")


@dataclass(frozen=True, slots=True)
class KeyPolicy(_Policy):
    alias: str
    team: TeamPolicy | None
    expires: float | None
    tags: tuple[str, ...]
    user_id: str | None
    digest: bytes = field(repr=False)
    # Precomputed from the fields above, because every call through the gate asks:
    #: ``key:<alias>``: the name of the key's budget and limits
    scope: str = field(init=False, repr=False, compare=False)
    #: the key and its team may call every model (no ``models`` lists to match)
    all_models: bool = field(init=False, repr=False, compare=False)
    #: the key or its team has an rpm, tpm or parallel limit (a call must be admitted and released)
    limited: bool = field(init=False, repr=False, compare=False)
    #: the key or its team has a tpm limit (a call's tokens are estimated up front)
    counts_tokens: bool = field(init=False, repr=False, compare=False)
    #: (scope, policy) of the key, then of its team: what a call is counted against
    limit_scopes: tuple[tuple[str, _Policy], ...] = field(init=False, repr=False, compare=False)
    #: the scope names of ``limit_scopes``
    scope_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        team = self.team
        both: tuple[_Policy, ...] = (self,) if team is None else (self, team)
        unrestricted = all(not p.models or any(m in _ALL for m in p.models) for p in both)
        # `is not None`: a limit of 0 is a limit (refuse every call), not the absence of one
        limited = any(
            p.rpm_limit is not None or p.tpm_limit is not None or p.max_parallel_requests is not None
            for p in both
        )
        object.__setattr__(self, "scope", f"key:{self.alias}")
        object.__setattr__(self, "all_models", unrestricted)
        object.__setattr__(self, "limited", limited)
        object.__setattr__(self, "counts_tokens", any(p.tpm_limit is not None for p in both))
        scope = self.scope
        scopes: tuple[tuple[str, _Policy], ...] = (
            ((scope, self),) if team is None else ((scope, self), (team.scope, team))
        )
        object.__setattr__(self, "limit_scopes", scopes)
        object.__setattr__(self, "scope_names", tuple(name for name, _ in scopes))

    @property
    def team_id(self) -> str | None:
        return self.team.team_id if self.team else None


@dataclass(frozen=True, slots=True)
class AccessTable:
    """Keys and teams as compiled from one routing file."""

    keys: Mapping[bytes, KeyPolicy]
    teams: Mapping[str, TeamPolicy]
    access_groups: Mapping[str, frozenset[str]]
    #: any client keys declared (asked on every call: precomputed)
    enabled: bool = field(init=False, compare=False)
    # Presented key -> its policy, for keys that matched: saves a SHA-256 per call. Bounded by the
    # number of declared keys (a policy has one digest, so one key string); unknown keys are never
    # kept. A reload builds a new table, so a removed key is forgotten with the table that had it.
    _known: dict[str, KeyPolicy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled", bool(self.keys))
        object.__setattr__(self, "_known", {})

    def lookup(self, token: str) -> KeyPolicy | None:
        """The policy of the presented key ``token`` (looked up by its digest), or None."""
        known = self._known
        policy = known.get(token)
        if policy is None:
            policy = self.keys.get(hash_key(token))
            if policy is not None:
                known[token] = policy
        return policy

    def by_alias(self, alias: str) -> KeyPolicy | None:
        return next((k for k in self.keys.values() if k.alias == alias), None)


@dataclass(frozen=True, slots=True)
class EndUserBudget:
    """``litellm_settings.max_end_user_budget``: USD per end user (the request's ``user``) per period."""

    max_budget: float
    budget: Duration | None


EMPTY = AccessTable(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))


def _common(spec: TeamSpec | KeySpec) -> dict[str, Any]:
    return {
        "models": spec.models,
        "rpm_limit": spec.rpm_limit,
        "tpm_limit": spec.tpm_limit,
        "max_parallel_requests": spec.max_parallel_requests,
        "max_budget": spec.max_budget,
        "budget": parse_duration(spec.budget_duration) if spec.budget_duration else None,
        "blocked": spec.blocked,
        "guardrails": spec.guardrails,
        "metadata": MappingProxyType(dict(spec.metadata)),
    }


def compile_access(
    keys: Sequence[KeySpec],
    teams: Sequence[TeamSpec],
    access_groups: Mapping[str, Iterable[str]] | None = None,
) -> tuple[AccessTable, list[tuple[tuple[Any, ...], str]]]:
    """Build the table; returns it with the problems found as (YAML path, message) pairs."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    team_table: dict[str, TeamPolicy] = {}
    for index, team_spec in enumerate(teams):
        if team_spec.team_id in team_table:
            problems.append((("teams", index, "team_id"), f"team {team_spec.team_id!r} is declared twice"))
            continue
        team_table[team_spec.team_id] = TeamPolicy(
            **_common(team_spec), team_id=team_spec.team_id, alias=team_spec.team_alias
        )
    key_table: dict[bytes, KeyPolicy] = {}
    aliases: set[str] = set()
    for index, spec in enumerate(keys):
        digest = spec.digest()
        alias = spec.key_alias or f"key-{digest.hex()[:8]}"
        if digest in key_table:
            problems.append(
                (("keys", index), f"key {alias!r} has the same key as {key_table[digest].alias!r}")
            )
            continue
        if alias in aliases:
            problems.append((("keys", index, "key_alias"), f"key_alias {alias!r} is used twice"))
            continue
        team = team_table.get(spec.team_id) if spec.team_id else None
        if spec.team_id and team is None:
            problems.append(
                (("keys", index, "team_id"), f"team {spec.team_id!r} is not declared under teams:")
            )
            continue
        aliases.add(alias)
        key_table[digest] = KeyPolicy(
            **_common(spec),
            alias=alias,
            team=team,
            expires=spec.expires.timestamp() if spec.expires else None,
            tags=spec.tags,
            user_id=spec.user_id,
            digest=digest,
        )
    groups = {name: frozenset(members) for name, members in (access_groups or {}).items()}
    table = AccessTable(MappingProxyType(key_table), MappingProxyType(team_table), MappingProxyType(groups))
    return table, problems


def authenticate(table: AccessTable, token: str, now: float) -> KeyPolicy:
    """The key's policy, or 401: unknown, blocked (key or team) or expired keys are all refused."""
    policy = table.lookup(token)
    if policy is None:
        raise AuthenticationError("Invalid API key.", code="invalid_api_key")
    if policy.blocked or (policy.team is not None and policy.team.blocked):
        raise AuthenticationError(f"Key {policy.alias!r} is blocked.", code="key_blocked")
    if policy.expires is not None and now >= policy.expires:
        when = datetime.fromtimestamp(policy.expires, UTC).isoformat()
        raise AuthenticationError(f"Key {policy.alias!r} expired at {when}.", code="key_expired")
    return policy


def _matches(
    patterns: Sequence[str], names: Iterable[str], access_groups: Mapping[str, frozenset[str]]
) -> bool:
    if not patterns:
        return True
    names = tuple(names)
    for pattern in patterns:
        if pattern in _ALL:
            return True
        members = access_groups.get(pattern)
        if members is not None and any(n in members for n in names):
            return True
        if any(n == pattern or fnmatch.fnmatchcase(n, pattern) for n in names):
            return True
    return False


def _allowed(policy: KeyPolicy, names: Sequence[str], access_groups: Mapping[str, frozenset[str]]) -> bool:
    if policy.all_models:
        return True
    if not _matches(policy.models, names, access_groups):
        return False
    return policy.team is None or _matches(policy.team.models, names, access_groups)


def allowed_groups(
    policy: KeyPolicy, groups: Iterable[str], access_groups: Mapping[str, frozenset[str]]
) -> list[str]:
    """The model groups (of ``groups``) the key may call, in the order given."""
    return [g for g in groups if _allowed(policy, (g,), access_groups)]


def check_model(
    policy: KeyPolicy,
    requested: str,
    group: str,
    groups: Iterable[str],
    access_groups: Mapping[str, frozenset[str]],
) -> None:
    """403 unless the key (and its team) may call ``requested`` (the name the client sent) or the group
    it resolved to; the error names the model and lists the allowed groups."""
    if _allowed(policy, (requested, group), access_groups):
        return
    allowed = allowed_groups(policy, groups, access_groups)
    shown = ", ".join(allowed[:MAX_LISTED_MODELS]) + (" ..." if len(allowed) > MAX_LISTED_MODELS else "")
    whose = f"key {policy.alias!r}" + (f" (team {policy.team_id!r})" if policy.team_id else "")
    raise PermissionDeniedError(
        f"{whose} may not call model {requested!r}. Allowed: {shown or 'none'}.",
        param="model",
        code="model_not_allowed",
    )


class BudgetExceededError(BadRequestError):
    """A key's, team's or end user's budget for the current period is spent (LiteLLM's shape: 400,
    ``type: budget_exceeded``)."""

    error_type = "budget_exceeded"
    default_code = "budget_exceeded"


def check_budget(
    scope: str, spent: float, max_budget: float | None, duration: Duration | None, now: float
) -> None:
    """400 ``budget_exceeded`` when ``spent`` has reached ``max_budget`` in the current period; the
    message names the budget and when it resets."""
    if max_budget is None or spent < max_budget:
        return
    _, end = period_bounds(duration, now)
    resets = (
        "never (no budget_duration)" if end == float("inf") else datetime.fromtimestamp(end, UTC).isoformat()
    )
    raise BudgetExceededError(
        f"Budget exceeded for {scope}: spent ${spent:.6f} of ${max_budget:g}"
        + (f" this {duration.text} period" if duration else "")
        + f". Resets: {resets}.",
    )
