"""The ``Allow`` header of a 405: every method the request's path accepts, over all its routes.

Starlette answers a method mismatch from the first route whose path matches, so a path served by
one route per method (``GET`` and ``POST /v1/batches``) would advertise only one of them. The 405
handler asks here instead, walking the app's routes (and the lazy groups the path lies under, which
are loaded already: the 405 came from one of them).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from routerd.server.lazy import LazyRoutes

__all__ = ["allowed_methods"]


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's (sorted; HEAD with GET)."""
    return sorted(_collect(routes, scope))


def _collect(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, LazyRoutes):
            # NONE when the path is under none of the group's prefixes: no import for that
            if route.matches(scope)[0] is not Match.NONE:
                methods |= _collect(route.routes, scope)
        # PARTIAL: the path matches, the method does not (FULL cannot happen on a 405)
        elif isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    return methods
