"""Read-only containers for the compiled table, and redaction of secret-looking values.

The routing table is shared by every request in flight, so nothing in it may change after compile.
Free-form values from the file (provider-specific ``litellm_params``, ``model_info`` extras,
``routing_strategy_args``) are deep-frozen into :class:`FrozenDict` and tuples. ``FrozenDict`` is a
``dict`` subclass on purpose: adapters merge these values into request bodies, and orjson and the
json module serialise dict subclasses and tuples natively (a ``MappingProxyType`` would not be).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

# Words that make a key name a credential: ``api_key``, ``aws_secret_access_key``, ``redis_password``,
# ``vertex_credentials``. A trailing ``token`` does too (``azure_ad_token``), but not a price or a limit
# (``input_cost_per_token``, ``max_tokens``).
_SECRET_WORDS = frozenset(
    {"key", "apikey", "secret", "password", "passwd", "credential", "credentials", "authorization", "cookie"}
)
_WORD_SPLIT = re.compile(r"[_\-.\s]+")
REDACTED = "***"


def is_secret_key(key: object) -> bool:
    """True when a value stored under ``key`` must never be shown."""
    if not isinstance(key, str):
        return False
    words = [w for w in _WORD_SPLIT.split(key.lower()) if w]
    if _SECRET_WORDS.intersection(words):
        return True
    return bool(words) and words[-1] == "token" and "per" not in words


class FrozenDict(dict[str, Any]):
    """An immutable, hashable ``dict`` whose ``repr`` hides the values of secret-looking keys."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is part of a compiled routing table and cannot be changed")

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        self._readonly()

    def __delitem__(self, key: str) -> NoReturn:
        self._readonly()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._readonly()

    def clear(self) -> NoReturn:
        self._readonly()

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._readonly()

    def popitem(self) -> NoReturn:
        self._readonly()

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._readonly()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._readonly()

    def __hash__(self) -> int:  # type: ignore[override]
        # deep_freeze leaves only hashable values, so a frozen deployment stays hashable
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        # pickle/copy would otherwise rebuild the dict through __setitem__
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return repr(redacted(self))


EMPTY = FrozenDict()


def deep_freeze(value: Any) -> Any:
    """``value`` with every mapping turned into a :class:`FrozenDict` and every list into a tuple."""
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({str(k): deep_freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(deep_freeze(v) for v in value)
    return value


def redacted(value: Any) -> Any:
    """A plain copy of ``value`` with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(k) and v is not None else redacted(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redacted(v) for v in value)
    return value
