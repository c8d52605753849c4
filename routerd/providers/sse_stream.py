"""An OpenAI-style streamed answer, readable as chunk dicts or relayed as the upstream's own bytes.

:class:`OpenAIStream` is what the OpenAI-compatible adapter returns for a stream. Like every adapter
stream it is an async iterator of chunk dicts (the router reads the first chunk that way, and the SDK,
the front doors, guardrails and the cache's stream capture read them all). The server's byte path
(issue 20) instead calls :meth:`OpenAIStream.next_block` after the first chunk: it hands on the SSE
events received since the last read as one block of bytes, ready to write, parsing only the events
that must be read:

* an event with a non-null ``usage`` (recorded; stripped when the client did not ask for it),
* an event with a non-null ``finish_reason`` (so a stream cut after it still counts as complete),
* an error event (``"error"`` in it, or ``event: error``): raised after the events before it,
* ``data: [DONE]``, which ends the stream (the block carries routerd's own ``[DONE]``).

Content chunks are recognised without parsing: a block whose lines are all ``data: {...}`` followed
by a blank line (LF framing, which every known server uses) and that holds none of the markers above
is handed on unchanged, found with a few C-level scans of the whole block. When only the last few
events of a block carry markers (the finish, usage and ``[DONE]`` events usually come together), the
block before them is handed on unchanged and only they are read line by line. Anything else (CRLF
framing, ``data:`` without a space, comments such as ``: ping``, ``event:`` fields, events split across
reads) takes the line-by-line way, which renders each event as ``data: ...\\n\\n``.

:class:`SSEReader` is the sans-I/O part (fed bytes, read as dicts or blocks); it holds at most one
incomplete line, bounded by ``ROUTERD_UPSTREAM_MAX_LINE_MB`` like the HTTP clients' line reader.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from routerd.errors import BadRequestError, OpenAIError
from routerd.http import HttpClient
from routerd.http.base import DEFAULT_MAX_LINE_BYTES, HttpLimits, too_large_error
from routerd.providers.errors import ErrorContext
from routerd.providers.sse import DONE, DONE_EVENT, encode_event

__all__ = ["OpenAIStream", "SSEReader", "complete_as_chunks"]

JSON = dict[str, Any]

#: events at the end of a block read line by line while the block before them is handed on whole:
#: the finish, usage and ``[DONE]`` events that usually end a stream (more cost a line-by-line read
#: each; an answer whose markers reach further back is read line by line whole, correct but slower)
_TAIL_EVENTS = 3
#: bytes of SSE framing around one event's data on the byte path: ``data: `` and the blank line
_FRAMING = 8
#: the bytes between two events of a region handed on unchanged
_BOUNDARY = len(b"\n\ndata: {")
#: how a block that ends with the end of the stream usually ends
_DONE_LINE = b"data: [DONE]\n\n"


def _plain_events(buf: bytes, lo: int, hi: int, *, finish: bool = True) -> int:
    """How many events ``buf[lo:hi]`` holds when it may be handed on unchanged (0 when it may not).

    With every ``\\n\\ndata: {`` taken out, the only newlines left must be the region's last two:
    then each line is a ``data: {...}`` line or the blank line after it (JSON holds no raw CR or LF).
    That costs a ``replace`` and a ``memchr``; counting the newlines instead cost three times a
    search (a one-byte count is a plain loop), the most expensive scan of the byte path. ``finish=False``
    skips the two scans for finish reasons: a region whose block ends the stream (``[DONE]``) has no
    use for them (they only tell a stream cut after its finish from one cut before it). Every scan
    reads every byte of the region, so there are as few as can be.
    """
    if not (buf.startswith(b"data: {", lo) and buf.endswith(b"\n\n", lo, hi)):
        return 0
    region = buf[lo:hi] if lo or hi != len(buf) else buf
    rest = region.replace(b"\n\ndata: {", b"")
    if rest.find(b"\n") != len(rest) - 2 or region.find(b'"error"') >= 0:
        return 0
    usage = region.count(b'"usage"')
    if usage and usage != region.count(b'"usage":null'):
        return 0
    if finish:
        count = region.count(b'"finish_reason"')
        if count and count != region.count(b'"finish_reason":null'):
            return 0
    return (len(region) - len(rest)) // _BOUNDARY + 1


def _plain_data(data: bytes, finish: bool = True) -> bool:
    """Whether one event's data is a content chunk that needs no reading (see the module docstring;
    ``finish`` as for :func:`_plain_events`)."""
    # find, not "in": bytes.__contains__ first tries its operand as an integer and raises and clears a
    # TypeError for a bytes one (~2,000 instructions, more than the search)
    if data[:1] != b"{" or data.find(b'"error"') >= 0:
        return False
    usage = data.count(b'"usage"')
    if usage and usage != data.count(b'"usage":null'):
        return False
    if not finish:
        return True
    count = data.count(b'"finish_reason"')
    return not count or count == data.count(b'"finish_reason":null')


def _data_events(region: bytes) -> list[bytes] | None:
    """The data of each event of ``region`` when every event is a single ``data: `` line ending in a
    blank line (LF framing); None when any is not (then it is read line by line). Split at the
    boundaries, the only newlines left must be theirs (JSON holds no raw CR or LF)."""
    if not (region.startswith(b"data: ") and region.endswith(b"\n\n")) or region.find(b"\r") >= 0:
        return None
    inner = region[6:-2]
    events = inner.split(b"\n\ndata: ")
    return events if inner.count(b"\n") == 2 * len(events) - 2 else None


def _has_finish(chunk: JSON) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


class SSEReader:
    """The sans-I/O part of :class:`OpenAIStream`: fed the body as it arrives, read as dicts or blocks.

    Semantics follow :func:`routerd.providers.sse.iter_json_chunks`: each ``data:`` line is one event;
    an ``{"error": ...}`` event or an ``event: error`` is the upstream's error; ``[DONE]`` ends the
    stream; a body that ends without ``[DONE]`` is complete when its choices reported a finish reason.
    """

    __slots__ = (
        "_buf",
        "_eof",
        "_errors",
        "_event",
        "_max",
        "_pending",
        "_pos",
        "_url",
        "ended",
        "error",
        "finished",
        "plain_bytes",
        "plain_events",
        "raw",
        "seen",
        "strip_usage",
        "usage",
    )

    def __init__(self, errors: ErrorContext, max_line: int = DEFAULT_MAX_LINE_BYTES, url: str = "") -> None:
        self._errors = errors
        self._max = max_line
        self._url = url
        self._buf = b""  # complete lines not read yet, from _pos on
        self._pos = 0
        self._pending = bytearray()  # the start of a line whose end has not arrived
        self._event = b""  # the current SSE event's name
        self._eof = False
        self.ended = False  # [DONE] was read (or a complete stream's body ended)
        self.finished = False  # every choice of some chunk reported a finish reason
        self.error: OpenAIError | None = (
            None  # an error event met on the byte path, raised after the bytes before it
        )
        self.seen = 0  # chunks read (parsed or handed on)
        self.usage: Any = None  # the last non-null usage seen
        self.strip_usage = False  # the byte path drops usage the client did not ask for
        self.plain_events = 0  # events handed on unparsed, and their data's bytes (to estimate text)
        self.plain_bytes = 0
        self.raw = b""  # the data of the last chunk read as a dict, as it came (to hand it on unchanged)

    # --- input ------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add body bytes; the complete lines among them become readable."""
        pending = self._pending
        cut = data.rfind(b"\n")
        if cut < 0:
            pending += data
            self._check(len(pending))
            return
        if pending:
            pending += data[: cut + 1]
            complete = bytes(pending)
            pending.clear()
        else:
            complete = data if cut + 1 == len(data) else data[: cut + 1]
        if cut + 1 < len(data):
            pending += data[cut + 1 :]
            self._check(len(pending))
        if len(complete) > self._max:
            for line in complete.split(b"\n"):
                self._check(len(line))
        if self._pos < len(self._buf):
            complete = self._buf[self._pos :] + complete
        self._buf = complete
        self._pos = 0

    def eof(self) -> None:
        """The body ended: a last line without a terminator is read as a line."""
        self._eof = True
        if self._pending:
            self.feed(b"\n")

    @property
    def has_data(self) -> bool:
        """Whether complete lines wait to be read."""
        return self._pos < len(self._buf)

    def _check(self, length: int) -> None:
        if length > self._max:
            raise too_large_error(self._url, "a stream line", self._max)

    # --- reading as dicts -------------------------------------------------------------------------

    def next_chunk(self) -> JSON | None:
        """The next chunk among the complete lines; None when there is none (or the stream ended)."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        while pos < size and not self.ended:
            end = buf.index(b"\n", pos)
            data = self._field(buf[pos:end])
            pos = end + 1
            if data is not None:
                self._pos = pos
                chunk = self._read(data)
                if chunk is not None:
                    return chunk
        self._pos = pos
        return None

    def _field(self, line: bytes) -> bytes | None:
        """One SSE line (without its ``\\n``): the data of a ``data:`` line; else None, after noting
        an ``event:`` name or, at a blank line, the end of the event."""
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"data:"):
            data = line[5:]
            return data[1:] if data[:1] == b" " else data
        if not line:
            self._event = b""
        elif line.startswith(b"event:"):
            self._event = line[6:].strip()
        return None

    def check_end(self) -> None:
        """At the end of the body: raise when the stream was cut (no ``[DONE]``, nothing finished)."""
        if not (self.ended or self.finished):
            raise self._errors.stream_cut(self.seen)
        self.ended = True

    def _read(self, data: bytes) -> JSON | None:
        """Parse one event's data: the chunk, or None for ``[DONE]`` (the end) and empty data."""
        if data == DONE:
            self.ended = True
            return None
        if not data.strip():
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._errors.bad_gateway(
                f"upstream sent a stream chunk that is not JSON (after {self.seen})"
            ) from None
        if not isinstance(chunk, dict):
            raise self._errors.bad_gateway("upstream sent a stream chunk that is not a JSON object")
        if chunk.get("error") or self._event == b"error":
            raise self._errors.from_payload(chunk)
        self.seen += 1
        if not self.finished:
            self.finished = _has_finish(chunk)
        self.raw = data
        return chunk

    # --- reading as bytes -------------------------------------------------------------------------

    def take_block(self) -> bytes:
        """The complete lines as SSE bytes to hand on (see the module docstring); may be ``b""``.

        An error event stops the block: the bytes before it are returned and the error is left in
        :attr:`error`. ``[DONE]`` ends the block with routerd's own ``data: [DONE]``.
        """
        buf, lo, hi = self._buf, self._pos, len(self._buf)
        self._buf = b""
        self._pos = 0
        if buf[lo : lo + 1] == b"\n":
            # the blank line ending an event read as a dict (or the last block's last event)
            lo += 1
            self._event = b""
        if lo >= hi or self.ended:
            return b""
        # A block that ends the stream has its markers in its last events: look there first.
        ends = buf.endswith(_DONE_LINE, lo)
        if not ends:
            events = _plain_events(buf, lo, hi)
            if events:
                self._handed_on(events, hi - lo)
                return buf[lo:] if lo else buf
        out: list[bytes | memoryview] = []
        cut = self._plain_prefix(buf, lo, hi, finish=not ends)
        if cut:
            out.append(memoryview(buf)[lo:cut])  # joined below: copied once
            lo = cut
        self._lines(buf[lo:], out, finish=not ends)
        return b"".join(out)

    def _plain_prefix(self, buf: bytes, lo: int, hi: int, *, finish: bool) -> int:
        """Where the last few events of ``buf[lo:hi]`` start, when all events before them are plain
        (0 when they are not)."""
        cut = hi - 2
        for _ in range(_TAIL_EVENTS):
            cut = buf.rfind(b"\n\n", lo, cut)
            if cut < 0:
                return 0
        cut += 2
        events = _plain_events(buf, lo, cut, finish=finish)
        if not events:
            return 0
        self._handed_on(events, cut - lo)
        return cut

    def _handed_on(self, events: int, size: int) -> None:
        self.seen += events
        self.plain_events += events
        self.plain_bytes += size - _FRAMING * events

    def _lines(self, region: bytes, out: list[bytes | memoryview], *, finish: bool = True) -> None:
        """The line-by-line way: every event rendered as ``data: ...\\n\\n``; markers read (finish
        reasons only when ``finish``: see :func:`_plain_events`)."""
        events = _data_events(region) if not self._event else None
        if events is not None:
            # every event one "data: " line (the usual tail of a stream): no line-by-line reading
            for data in events:
                if self._event_data(data, out, finish):
                    return
            return
        for line in region.split(b"\n")[:-1]:
            field = self._field(line)
            if field is not None and self._event_data(field, out, finish):
                return

    def _event_data(self, data: bytes, out: list[bytes | memoryview], finish: bool) -> bool:
        """Hand on (or read) one event's data; True when the block stops here (an error, the end)."""
        if self._event != b"error" and _plain_data(data, finish):
            self._handed_on(1, len(data) + _FRAMING)
            out.append(b"data: " + data + b"\n\n")
            return False
        try:
            chunk = self._read(data)
        except OpenAIError as exc:
            self.error = exc
            return True
        if chunk is not None:
            self._relay_read(chunk, data, out)
            return False
        if self.ended:
            out.append(DONE_EVENT)
            return True
        return False

    def _relay_read(self, chunk: JSON, data: bytes, out: list[bytes | memoryview]) -> None:
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
            if self.strip_usage:
                if chunk.get("choices") == []:
                    return  # a usage-only chunk the client did not ask for
                out.append(encode_event({k: v for k, v in chunk.items() if k != "usage"}))
                return
        out.append(b"data: " + data + b"\n\n")


def complete_as_chunks(content: bytes, status: int, errors: ErrorContext) -> list[JSON]:
    """A complete answer sent for a stream request, as the chunks it stands for."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise errors.bad_gateway("upstream stream answer is not JSON", upstream_status=status) from None
    if not isinstance(payload, dict):
        raise errors.bad_gateway("upstream stream answer is not a JSON object", upstream_status=status)
    if payload.get("error"):
        raise errors.from_payload(payload)
    if payload.get("object") != "chat.completion":
        return [payload]  # a text_completion object is already a valid chunk
    chunks = []
    for choice in payload.get("choices") or ():
        delta = dict(choice.get("message") or {})
        if delta.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(delta["tool_calls"])]
        chunks.append(
            {
                "id": payload.get("id"),
                "object": "chat.completion.chunk",
                "created": payload.get("created"),
                "model": payload.get("model"),
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "logprobs": choice.get("logprobs"),
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if payload.get("usage"):
        chunks.append({**chunks[-1], "choices": [], "usage": payload["usage"]} if chunks else payload)
    return chunks


def json_body(body: JSON, errors: ErrorContext) -> bytes:
    """``body`` as the JSON bytes of a request; a body that cannot be serialised is the client's 400."""
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        raise errors.make(BadRequestError, f"request body is not JSON-serializable: {exc}") from exc


async def _reads(
    http: HttpClient,
    url: str,
    headers: Mapping[str, str],
    body: JSON,
    timeout: float,
    errors: ErrorContext,
) -> AsyncGenerator[bytes, None]:
    """The body of the upstream's answer as it arrives (a non-2xx answer raised translated).

    A generator, so the event loop's async-generator finaliser closes the upstream response when a
    stream is dropped unclosed.
    """
    content = json_body(body, errors)
    async with http.stream("POST", url, headers=headers, content=content, timeout=timeout) as response:
        status = response.status
        if not 200 <= status < 300:
            raise errors.from_response(status, response.headers, await response.aread())
        content_type = response.headers.get("content-type") or ""
        if content_type.startswith("application/json"):
            # the server ignored stream=true and sent one complete answer: as the events it stands for
            chunks = complete_as_chunks(await response.aread(), status, errors)
            yield b"".join(encode_event(chunk) for chunk in chunks) + DONE_EVENT
            return
        read = getattr(response, "next_chunk", None)
        if read is not None:
            # routerd's own client: its reads without another async generator in between
            while data := await read():
                yield data
            return
        pieces = response.aiter_bytes()
        try:
            async for data in pieces:
                yield data
        finally:
            # closed here, not left to the event loop's async-generator finaliser (a task per stream)
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()


class OpenAIStream:
    """An OpenAI-style streamed answer: chunk dicts, or SSE byte blocks (see the module docstring).

    The request is sent on the first read. Any upstream HTTP error is raised by that read, before a
    chunk; closing the stream closes the upstream response (dropping the connection when it is
    incomplete, which cancels the generation upstream).
    """

    __slots__ = ("_errors", "_reads", "reader")

    def __init__(
        self,
        http: HttpClient,
        url: str,
        headers: Mapping[str, str],
        body: JSON,
        timeout: float,
        errors: ErrorContext,
    ) -> None:
        limits = getattr(http, "limits", None)
        max_line = limits.max_line_bytes if isinstance(limits, HttpLimits) else DEFAULT_MAX_LINE_BYTES
        self._errors = errors
        self._reads = _reads(http, url, headers, body, timeout, errors)
        self.reader = SSEReader(errors, max_line, url)

    def __aiter__(self) -> OpenAIStream:
        return self

    async def __anext__(self) -> JSON:
        reader = self.reader
        try:
            while True:
                chunk = reader.next_chunk()
                if chunk is not None:
                    return chunk
                if reader.ended or not await self._fill():
                    break
        except OpenAIError as exc:
            self._errors.annotate(exc)
            await self.aclose()
            raise
        await self.aclose()
        raise StopAsyncIteration

    async def next_block(self) -> bytes | None:
        """The events received since the last read, as bytes to hand on; None after the last block.

        Waits for the upstream only when nothing complete is buffered. The block that ends the
        stream ends with ``data: [DONE]`` (added when the upstream ended without one).
        """
        reader = self.reader
        try:
            while True:
                error = reader.error
                if error is not None:
                    reader.error = None
                    raise error
                if reader.ended:
                    await self.aclose()
                    return None
                if reader.has_data:
                    block = reader.take_block()
                    if block:
                        return block
                elif not await self._fill():
                    return DONE_EVENT
        except OpenAIError as exc:
            self._errors.annotate(exc)
            await self.aclose()
            raise

    async def _fill(self) -> bool:
        """Read from the upstream; False when the body ended (raises if the stream was cut)."""
        reader = self.reader
        data = await anext(self._reads, None)
        if data is not None:
            reader.feed(data)
            return True
        reader.eof()
        if reader.has_data:
            return True
        reader.check_end()
        return False

    async def aclose(self) -> None:
        """Close the upstream response (idempotent)."""
        await self._reads.aclose()
