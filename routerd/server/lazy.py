"""Routes whose module is imported on the first request that needs it, not when the server starts.

``routerd serve`` pays, before it is ready, for every module it imports. The Files, fine-tuning,
Batch, audio/image-edit and front-door (Anthropic Messages, Responses, Azure) routes bring in most
of routerd's translation and management code, and most gateways never receive one of those requests.
So :func:`routerd.server.app.create_app` mounts them as :class:`LazyRoutes`: a group that knows only
the path prefixes its routes live under and where its route list comes from (``"module:function"``).
The first request under one of the prefixes imports the module (once) and is then routed exactly as
the module's own routes would route it; a request under no prefix never imports anything.

What is deferred is only code loading: nothing here may defer a check that must fail at start (the
routing file is validated and compiled before the server binds, whichever routes it uses).
:class:`LazyEndpoint` does the same for one ASGI endpoint of the direct dispatch table
(``RouterdApp.fast_routes``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LazyEndpoint", "LazyRoutes", "import_target"]

# one import at a time: two first requests arriving together in different threads (tests, the SDK's
# server thread) must not both run a module's top level
_IMPORT_LOCK = threading.Lock()


def import_target(target: str) -> Any:
    """The object ``"package.module:attribute"`` names (the module imported if it was not yet)."""
    module_name, _, attribute = target.partition(":")
    with _IMPORT_LOCK:
        module = importlib.import_module(module_name)
    return getattr(module, attribute)


def _route_path(scope: Scope) -> str:
    # the path as Starlette's routes match it: without the root path of an enclosing mount
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


class LazyRoutes(BaseRoute):
    """The routes ``routes_factory`` returns (``"module:function"``), loaded on the first request under
    ``prefixes``. Matching order is kept: the group sits where its routes would sit, and among its own
    routes the first full match wins, a method mismatch (405) only when nothing matches fully."""

    def __init__(self, prefixes: Sequence[str], routes_factory: str) -> None:
        self.prefixes = tuple(prefixes)
        self.routes_factory = routes_factory
        self._routes: list[BaseRoute] | None = None

    @property
    def loaded(self) -> bool:
        """Whether the module has been imported (the first request under a prefix came)."""
        return self._routes is not None

    @property
    def routes(self) -> list[BaseRoute]:
        """The group's routes (importing their module if that has not happened yet)."""
        if self._routes is None:
            factory: Callable[[], list[BaseRoute]] = import_target(self.routes_factory)
            self._routes = list(factory())
        return self._routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not _under(_route_path(scope), self.prefixes):
            return Match.NONE, {}
        route, match, child_scope = self._best(scope)
        return (match, child_scope) if route is not None else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, _, child_scope = self._best(scope)
        if route is None:  # not reached: the router calls handle only after a match
            raise NoMatchFound(scope.get("path", ""), {})
        scope.update(child_scope)
        await route.handle(scope, receive, send)

    def _best(self, scope: Scope) -> tuple[BaseRoute | None, Match, Scope]:
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, match, child_scope
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:
            return partial[0], Match.PARTIAL, partial[1]
        return None, Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"LazyRoutes({list(self.prefixes)!r}, {self.routes_factory!r}, loaded={self.loaded})"


class LazyEndpoint:
    """An ASGI endpoint taken from a mapping in a module on its first call:
    ``LazyEndpoint("pkg.module:MAPPING", key)`` serves ``pkg.module.MAPPING[key]``."""

    def __init__(self, mapping: str, key: str) -> None:
        self.mapping = mapping
        self.key = key
        self._endpoint: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self._endpoint = import_target(self.mapping)[self.key]
        await endpoint(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyEndpoint({self.mapping!r}, {self.key!r})"
