"""Budget periods: ``budget_duration`` strings and the period a moment falls in.

Durations are LiteLLM's: ``30s``, ``15m``, ``1h``, ``1d``, ``7d``, ``30d``, ``1mo`` (and multiples such as
``2h`` or ``3mo``). Periods are aligned, not rolling from a key's creation (a key in a file has no
creation time, and every replica must agree on when a budget resets): fixed durations count from the
Unix epoch in UTC (``1d`` resets at 00:00 UTC, ``7d`` every 7 days from 1970-01-01, a Thursday),
months are calendar months in UTC (``1mo`` resets on the 1st at 00:00 UTC, ``3mo`` on quarters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Duration", "parse_duration", "period_bounds"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
#: Longest budget period accepted (ten years), so period arithmetic stays in range.
MAX_SECONDS = 10 * 366 * 86400


@dataclass(frozen=True, slots=True)
class Duration:
    """A budget period length: ``seconds`` for fixed units, ``months`` for calendar months."""

    text: str
    seconds: int = 0
    months: int = 0


def parse_duration(text: str) -> Duration:
    """``"30d"`` -> Duration(seconds=2592000); ``"1mo"`` -> Duration(months=1). ValueError if malformed."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 1h, 1d, 7d, 30d or 1mo")
    count, unit = int(match.group(1)), match.group(2)
    if count <= 0:
        raise ValueError(f"{text!r}: the duration must be positive")
    if unit == "mo":
        if count > 120:
            raise ValueError(f"{text!r}: at most 120 months")
        return Duration(text.strip(), months=count)
    seconds = count * _UNITS[unit]
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r}: at most ten years")
    return Duration(text.strip(), seconds=seconds)


def period_bounds(duration: Duration | None, now: float) -> tuple[float, float]:
    """(start, end) of the period containing the Unix time ``now``; no duration: one endless period."""
    if duration is None:
        return 0.0, float("inf")
    if duration.seconds:
        start = (int(now) // duration.seconds) * duration.seconds
        return float(start), float(start + duration.seconds)
    moment = datetime.fromtimestamp(now, UTC)
    first = (moment.year * 12 + moment.month - 1) // duration.months * duration.months
    after = first + duration.months
    begin = datetime(first // 12, first % 12 + 1, 1, tzinfo=UTC)
    end = datetime(after // 12, after % 12 + 1, 1, tzinfo=UTC)
    return begin.timestamp(), end.timestamp()
