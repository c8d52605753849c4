"""The guardrails a request names: ``"guardrails": [names]`` in its body, or LiteLLM's
``"metadata": {"guardrails": [names]}`` (the body's own field wins when both are given).

Read the same way on every door: the chat path's gate reads it from the body it routes, and the front
doors (``/v1/messages``, ``/v1/responses``) take it out of their client's body with
:func:`take_selection` before translating it, then hand it to the gate in the chat body. Pure; no
guardrail engine is imported here (a gateway without guardrails pays for nothing more).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError

__all__ = ["FIELD", "MAX_REQUESTED_GUARDRAILS", "check_selection", "selection_of", "take_selection"]

#: the field that names guardrails, in the body and in its ``metadata``
FIELD = "guardrails"
#: Guardrail names one request may ask for (``guardrails: [...]``).
MAX_REQUESTED_GUARDRAILS = 32


def selection_of(body: Mapping[str, Any]) -> Any:
    """The raw selection of ``body`` (not validated): its ``guardrails``, else its metadata's, else None."""
    names = body.get(FIELD)
    if names is None:
        metadata = body.get("metadata")
        if isinstance(metadata, Mapping):
            names = metadata.get(FIELD)
    return names


def check_selection(names: Any, error: type[BadRequestError] = BadRequestError) -> list[str]:
    """``names`` if it is a list of at most :data:`MAX_REQUESTED_GUARDRAILS` strings; else ``error``
    (a 400 in the door's own shape). Whether the names exist is the gate's to check (the table's)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise error("'guardrails' must be a list of guardrail names", param=FIELD)
    if len(names) > MAX_REQUESTED_GUARDRAILS:
        raise error(f"at most {MAX_REQUESTED_GUARDRAILS} guardrails per request", param=FIELD)
    return names


def take_selection(body: Any, error: type[BadRequestError] = BadRequestError) -> tuple[Any, list[str] | None]:
    """(``body`` without the selection, the validated selection or None) for a front door.

    The selection is routerd's, not the client API's: it is taken out of the body (and of its
    ``metadata``, which is left out when nothing else was in it) so that neither the translation nor
    a deployment that gets the request natively sees it. A body without it is returned as it is.
    """
    if not isinstance(body, Mapping):
        return body, None  # the door's own validation refuses it
    metadata: Any = body.get("metadata")
    if not (isinstance(metadata, Mapping) and FIELD in metadata):
        metadata = None
    if FIELD not in body and metadata is None:
        return body, None
    names = selection_of(body)
    rest = {key: value for key, value in body.items() if key != FIELD}
    if metadata is not None:
        kept = {key: value for key, value in metadata.items() if key != FIELD}
        if kept:
            rest["metadata"] = kept
        else:
            del rest["metadata"]
    return rest, None if names is None else check_selection(names, error)
