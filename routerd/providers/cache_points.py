"""``litellm_params.cache_control_injection_points``: Anthropic prompt caching without client changes.

LiteLLM's documented shape, a list of points::

    cache_control_injection_points:
      - location: message
        role: system          # every message with this role
      - location: message
        index: -1             # or one message by position (negative counts from the end)
        control: {type: ephemeral, ttl: 1h}   # optional; {type: ephemeral} by default

Each targeted message gets ``cache_control`` on its content: a string content becomes one text part
carrying it, and every part of a list content carries it (as LiteLLM does). The points are checked
when the file is loaded (:func:`problems`), so at call time they are known to be well formed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KEY = "cache_control_injection_points"
_DEFAULT_CONTROL: Mapping[str, Any] = {"type": "ephemeral"}


def problems(points: Any) -> list[str]:
    """What is wrong with a ``cache_control_injection_points`` value (empty when it is usable)."""
    if not isinstance(points, list):
        return ["must be a list of {location: message, role: <role>} or {location: message, index: <n>}"]
    found = []
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            found.append(f"[{i}] must be a mapping")
            continue
        if point.get("location") != "message":
            found.append(f"[{i}].location must be 'message' (the only location LiteLLM defines)")
        role, index = point.get("role"), point.get("index")
        if (role is None) == (index is None):
            found.append(f"[{i}] needs exactly one of role or index")
        elif role is not None and not isinstance(role, str):
            found.append(f"[{i}].role must be a string")
        elif index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            found.append(f"[{i}].index must be an integer")
        control = point.get("control")
        if control is not None and not (
            isinstance(control, Mapping) and isinstance(control.get("type"), str)
        ):
            found.append(f"[{i}].control must be a mapping with a type, e.g. {{type: ephemeral}}")
    return found


def inject(body: dict[str, Any], points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``body`` with cache_control added to the messages the points name (``body`` is not changed)."""
    messages = body.get("messages")
    if not points or not isinstance(messages, list) or not messages:
        return body
    out = list(messages)
    for point in points:
        control = dict(point.get("control") or _DEFAULT_CONTROL)
        index = point.get("index")
        if index is not None:
            if -len(out) <= index < len(out):
                out[index] = _with_control(out[index], control)
            continue
        role = point.get("role")
        out = [_with_control(m, control) if _role(m) == role else m for m in out]
    return {**body, "messages": out}


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else None


def _with_control(message: Any, control: dict[str, Any]) -> Any:
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    if isinstance(content, str):
        parts: Any = [{"type": "text", "text": content, "cache_control": control}]
    elif isinstance(content, list):
        parts = [{**p, "cache_control": control} if isinstance(p, Mapping) else p for p in content]
    else:
        return message
    return {**message, "content": parts}
