"""The ``keys:`` and ``teams:`` sections of the routing file, in LiteLLM's ``/key/generate`` field names.

```yaml
teams:
  - team_id: search
    models: [gpt-4o-mini, embeddings]      # group names, wildcards (gpt-*), access groups
    max_budget: 200                        # USD per budget_duration
    budget_duration: 30d
    rpm_limit: 600
keys:
  - key_alias: search-backend
    key: os.environ/SEARCH_KEY             # or key_hash: sha256:<64 hex digits>
    team_id: search
    tpm_limit: 200000
    max_parallel_requests: 20
    max_budget: 50
    budget_duration: 1d
    expires: 2027-06-30
```
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from routerd.access.periods import parse_duration

__all__ = ["KeySpec", "TeamSpec", "hash_key", "parse_key_hash"]

_HASH = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
#: Shortest literal key accepted (a guessable key is no key).
MIN_KEY_CHARS = 16

# defer_build: the key/team validators are built when a file first has keys or teams, not at import
_CONFIG = ConfigDict(
    frozen=True, extra="forbid", hide_input_in_errors=True, coerce_numbers_to_str=True, defer_build=True
)


def hash_key(key: str) -> bytes:
    """The SHA-256 digest a presented key is looked up by."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_key_hash(text: str) -> bytes:
    match = _HASH.match(text.strip())
    if match is None:
        raise ValueError("key_hash must be 'sha256:' followed by 64 hex digits")
    return bytes.fromhex(match.group(1))


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _expires(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                "expires must be an ISO 8601 date or time, e.g. 2027-06-30 or 2027-06-30T12:00:00Z"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


NameList = Annotated[tuple[str, ...], BeforeValidator(_names)]
PosInt = Annotated[int, Field(ge=1)]
Budget = Annotated[float, Field(ge=0)]


class _Limits(BaseModel):
    model_config = _CONFIG

    models: NameList = Field(
        default=(), description="Model groups, wildcards (gpt-*) or access groups; empty or absent: all."
    )
    rpm_limit: PosInt | None = Field(default=None, description="Requests per minute (sliding 60 s).")
    tpm_limit: PosInt | None = Field(default=None, description="Tokens per minute (sliding 60 s).")
    max_parallel_requests: PosInt | None = Field(default=None, description="Calls in flight at once.")
    max_budget: Budget | None = Field(default=None, description="USD per budget period.")
    budget_duration: str | None = Field(default=None, description="30s, 1h, 1d, 7d, 30d, 1mo ...")
    blocked: bool = False
    guardrails: NameList = Field(default=(), description="Guardrails every call of this key/team runs.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class TeamSpec(_Limits):
    """One team: limits and budget shared by all its keys."""

    team_id: Annotated[str, Field(min_length=1, max_length=128)]
    team_alias: str | None = None


class KeySpec(_Limits):
    """One client key."""

    key: str | None = Field(
        default=None, description="The key itself (use os.environ/NAME), or give key_hash."
    )
    key_hash: str | None = Field(
        default=None, description="sha256:<hex> of the key, so the file need not hold it."
    )
    key_alias: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    team_id: str | None = None
    expires: Annotated[datetime | None, BeforeValidator(_expires)] = None
    tags: NameList = ()
    user_id: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> KeySpec:
        if (self.key is None) == (self.key_hash is None):
            raise ValueError("give exactly one of `key` and `key_hash`")
        if self.key is not None and len(self.key) < MIN_KEY_CHARS:
            raise ValueError(f"key must be at least {MIN_KEY_CHARS} characters")
        if self.key_hash is not None:
            parse_key_hash(self.key_hash)
        return self

    def digest(self) -> bytes:
        return hash_key(self.key) if self.key is not None else parse_key_hash(self.key_hash or "")

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "key" and value is not None else value)
