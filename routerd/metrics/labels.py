"""Bounded label cardinality.

Most label values come from the routing file (group names, deployment ids, providers), which bounds
them. Two do not: a wildcard group (``anthropic/*``) turns every model name a client asks for into a
group and a deployment id, and an upstream status code is whatever the upstream sends. A
:class:`LabelGuard` admits the first ``limit`` distinct values of one label and folds the rest into
:data:`OVERFLOW`, so a client cannot grow the number of series (and Prometheus's memory) without bound.
"""

from __future__ import annotations

import logging

log = logging.getLogger("routerd.metrics")

OVERFLOW = "__other__"


class LabelGuard:
    """Admits up to ``limit`` distinct values of one label; later new values become :data:`OVERFLOW`."""

    __slots__ = ("_admitted", "_limit", "_name", "_warned")

    def __init__(self, name: str, limit: int) -> None:
        self._name = name
        self._limit = limit
        self._admitted: set[str] = set()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if len(self._admitted) < self._limit:
            self._admitted.add(value)
            return value
        if not self._warned:
            self._warned = True
            log.warning(
                "metrics label %r reached its limit of %d distinct values; further values are reported as %r",
                self._name,
                self._limit,
                OVERFLOW,
            )
        return OVERFLOW

    def __len__(self) -> int:
        return len(self._admitted)
