"""Bounds on what one call may make the router do, whatever the client asks for.

A client controls the body of its request: how many prompts a ``/v1/completions`` request lists, its
``num_retries`` and ``timeout``, which model name it asks a wildcard group for. Each of those grows
work, sockets or memory in the gateway, so each has a bound here. The daemon reads them from its
settings (``ROUTERD_*``, see :class:`routerd.settings.Settings`); the SDK uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routerd.settings import Settings

__all__ = ["DEFAULT_LIMITS", "CallLimits"]


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Per-call bounds (see the fields' comments and the operations docs)."""

    max_prompts: int = 128  # prompts one /v1/completions request may list; 400 beyond
    prompt_concurrency: int = 8  # chat calls in flight at once for one request's prompt list
    max_num_retries: int = 10  # a client's num_retries is capped to this
    max_timeout: float = 600.0  # a client's timeout (seconds) is capped to this
    max_stream_duration: float = 3600.0  # a relayed stream is ended with an error event after this
    max_wildcard_models: int = 1024  # concrete models of wildcard groups kept (LRU), with their health

    @classmethod
    def from_settings(cls, settings: Settings) -> CallLimits:
        """The limits the daemon's settings ask for."""
        return cls(
            max_prompts=settings.max_prompts,
            prompt_concurrency=settings.prompt_concurrency,
            max_num_retries=settings.max_num_retries,
            max_timeout=settings.max_request_timeout,
            max_stream_duration=settings.max_stream_duration,
            max_wildcard_models=settings.max_wildcard_models,
        )


DEFAULT_LIMITS = CallLimits()
