"""``CustomLogger``: the base class of callback objects, with LiteLLM's hook names and arguments.

Subclass it and override the hooks you need, then register an instance with
``routerd.callbacks = [instance]`` (SDK) or ``litellm_settings.callbacks: module.instance`` (daemon).
Every hook receives LiteLLM's arguments: ``kwargs`` (the call: ``model``, ``messages``,
``optional_params``, ``litellm_params``, ``litellm_call_id``, ``response_cost``, ``exception``...),
``response_obj`` (the response, a stream chunk, or None on failure) and ``start_time`` / ``end_time``
(``datetime.datetime``). A hook that raises is logged and counted; it never breaks the call.

Which hooks run where:

* ``completion()`` (sync): ``log_pre_api_call``, ``log_stream_event`` per chunk, then
  ``log_success_event`` or ``log_failure_event``.
* ``acompletion()``: the same synchronous hooks, then their ``async_`` twins.
* the daemon: the ``async_`` hooks, plus ``async_pre_call_hook`` (may change or reject the request).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["CustomLogger"]


class CustomLogger:
    """Override any hook; the defaults do nothing.

    ``turn_off_message_logging=True``: this logger's hooks get copies of the call without prompt and
    answer text (:mod:`routerd.integrations.redact`), whatever the module or daemon setting says.
    """

    def __init__(self, turn_off_message_logging: bool = False, **kwargs: Any) -> None:
        self.turn_off_message_logging = turn_off_message_logging

    # --- synchronous hooks -----------------------------------------------------------------------
    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        """Before the call is sent."""

    def log_post_api_call(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After the upstream answered (before the response is returned)."""

    def log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """One streamed chunk."""

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """A call succeeded (for a stream: after its last chunk, with the assembled response)."""

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """A call failed; ``kwargs["exception"]`` is the error."""

    # --- asynchronous hooks ----------------------------------------------------------------------
    async def async_log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        """Before the call is sent (async calls and the daemon)."""

    async def async_log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """One streamed chunk (async calls)."""

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """A call succeeded (async calls and the daemon)."""

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """A call failed (async calls and the daemon)."""

    # --- daemon (proxy) hooks --------------------------------------------------------------------
    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | str | None:
        """Before the daemon routes a request: return the (changed) body, or raise to reject it."""
        return data
