"""Server-sent events: reading OpenAI-style ``data:`` streams and writing them.

OpenAI and every compatible server put one JSON document on each ``data:`` line and end the stream
with ``data: [DONE]``. Each ``data:`` line is therefore dispatched as soon as it is read instead of
waiting for the blank line that ends the event: the chunk reaches the client one read earlier and no
server is known to split a JSON chunk over several ``data:`` lines.

Bounds: nothing here accumulates. Lines come from :mod:`routerd.http`'s clients, which refuse a line
longer than ``ROUTERD_UPSTREAM_MAX_LINE_MB`` (split with linear cost however it arrives), and each
``data:`` line is dispatched alone, so that bound is also the most an SSE event holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from routerd.errors import OpenAIError
from routerd.providers.errors import ErrorContext

__all__ = [
    "DONE",
    "DONE_EVENT",
    "encode_event",
    "iter_data",
    "iter_json_chunks",
]

DONE = b"[DONE]"
#: the line that ends an OpenAI stream, as bytes on the wire
DONE_EVENT = b"data: [DONE]\n\n"


def encode_event(payload: Any) -> bytes:
    """One SSE event carrying ``payload`` as JSON: ``data: {...}\\n\\n``."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def iter_data(lines: AsyncIterator[bytes]) -> AsyncIterator[tuple[bytes, bytes]]:
    """``(event name, data)`` for each ``data:`` line of an SSE body.

    ``lines`` are body lines without terminators. Comments (``:keep-alive``), ``id:`` and ``retry:``
    fields and blank lines are skipped; an ``event:`` field names the data lines that follow it until
    the blank line that ends the event (``b""`` when unnamed).
    """
    event = b""
    async for line in lines:
        if line.startswith(b"data:"):
            data = line[5:]
            if data[:1] == b" ":
                data = data[1:]
            yield event, data
        elif not line:
            event = b""
        elif line.startswith(b"event:"):
            event = line[6:].strip()


async def iter_json_chunks(
    lines: AsyncIterator[bytes], errors: ErrorContext
) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an OpenAI-style stream, up to ``data: [DONE]``.

    Raises, mid-iteration, the translated error of an in-band ``{"error": ...}`` event (or of an
    ``event: error``), :class:`~routerd.errors.BadGatewayError` for a chunk that is not JSON, and
    :class:`~routerd.errors.APIConnectionError` when the body ends before ``[DONE]`` without any
    choice having finished (a cut stream). Some compatible servers omit ``[DONE]``; a stream whose
    choices all reported a ``finish_reason`` is accepted as complete.
    """
    seen = 0
    finished = False
    try:
        async for event, data in iter_data(lines):
            if data == DONE:
                return
            if not data.strip():
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise errors.bad_gateway(
                    f"upstream sent a stream chunk that is not JSON (after {seen})"
                ) from None
            if not isinstance(chunk, dict):
                raise errors.bad_gateway("upstream sent a stream chunk that is not a JSON object")
            if chunk.get("error") or event == b"error":
                raise errors.from_payload(chunk)
            seen += 1
            if not finished:
                finished = _has_finish(chunk)
            yield chunk
    except OpenAIError as exc:
        # transport errors (timeouts, dropped connections) do not know which deployment they are about
        errors.annotate(exc)
        raise
    if not finished:
        raise errors.stream_cut(seen)


def _has_finish(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)
