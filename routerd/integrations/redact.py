"""``turn_off_message_logging``: callbacks hear of a call without its text, as in LiteLLM.

When message logging is off (``routerd.turn_off_message_logging = True``, the daemon's
``litellm_settings.turn_off_message_logging: true``, or a ``CustomLogger(turn_off_message_logging=True)``
for that logger alone), callbacks get *copies* of the call's ``kwargs`` and response in which the
prompt (``messages`` / ``prompt`` / ``input``) and the answer text (message content, tool-call and
function-call arguments, text-completion text, stream deltas) are :data:`REDACTED`. Everything else --
model, tokens, cost, times, ids -- is left as it is. The caller's own response is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["PROMPT_KEYS", "REDACTED", "hides_messages", "is_redacted", "redact_kwargs", "redact_response"]

#: what replaces prompt and answer text in the copies callbacks receive
REDACTED = "redacted-by-routerd"
#: the ``kwargs`` keys that hold the prompt
PROMPT_KEYS = ("messages", "prompt", "input")
# the parts of a choice that hold answer text
_MESSAGE_KEYS = ("message", "delta")


def hides_messages(callback: Any, *, everywhere: bool) -> bool:
    """Whether ``callback`` gets redacted copies: logging is off for all (``everywhere``) or for it."""
    return everywhere or getattr(callback, "turn_off_message_logging", False) is True


def is_redacted(value: Any) -> bool:
    """Whether ``value`` is the placeholder (a logger that records text checks before it does)."""
    return isinstance(value, str) and value == REDACTED


def redact_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a callback's ``kwargs`` without the prompt (and without the assembled stream's text)."""
    out = dict(kwargs)
    for key in PROMPT_KEYS:
        if out.get(key) is not None:
            out[key] = REDACTED
    if out.get("complete_streaming_response") is not None:
        out["complete_streaming_response"] = redact_response(out["complete_streaming_response"])
    return out


def redact_response(response: Any) -> Any:
    """A copy of a response, stream chunk or list of chunks whose answer text is :data:`REDACTED`."""
    if response is None:
        return None
    if isinstance(response, list):
        return [redact_response(item) for item in response]
    clone = _clone(response)
    for choice in _get(clone, "choices") or ():
        if _get(choice, "text") is not None:
            _set(choice, "text", REDACTED)
        for key in _MESSAGE_KEYS:
            message = _get(choice, key)
            if message is not None:
                _scrub_message(message)
    return clone


def _scrub_message(message: Any) -> None:
    for key in ("content", "reasoning_content"):
        if _get(message, key) is not None:
            _set(message, key, REDACTED)
    for call in _get(message, "tool_calls") or ():
        _scrub_arguments(_get(call, "function"))
    _scrub_arguments(_get(message, "function_call"))


def _scrub_arguments(function: Any) -> None:
    if function is not None and _get(function, "arguments") is not None:
        _set(function, "arguments", REDACTED)


def _clone(obj: Any) -> Any:
    model_copy = getattr(obj, "model_copy", None)  # the SDK's pydantic response objects
    if model_copy is not None:
        return model_copy(deep=True)
    return copy.deepcopy(obj)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _set(obj: Any, key: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)
