"""Routing: pick a deployment per call, recover from failures, and explain the choice.

Pure decisions live in :mod:`~routerd.routing.strategies`, :mod:`~routerd.routing.health`,
:mod:`~routerd.routing.usage`, :mod:`~routerd.routing.backoff`, :mod:`~routerd.routing.plan`,
:mod:`~routerd.routing.policy` (the retry policy as a pure step) and :mod:`~routerd.routing.recovery`;
:mod:`~routerd.routing.executor` (the :class:`CallRouter`, a thin driver) and
:mod:`~routerd.routing.attempt` are the only modules that do I/O. Reports over a router's state are
in :mod:`~routerd.routing.explain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routerd.routing.types import CallResult, RoutingInfo

if TYPE_CHECKING:
    from routerd.routing.executor import CallRouter
    from routerd.routing.explain import format_explain

__all__ = ["CallResult", "CallRouter", "RoutingInfo", "format_explain"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the executor imports routerd.state, which imports routerd.routing.health.
    if name == "CallRouter":
        from routerd.routing.executor import CallRouter

        return CallRouter
    if name == "format_explain":
        from routerd.routing.explain import format_explain

        return format_explain
    raise AttributeError(name)
