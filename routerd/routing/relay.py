"""The stream handed to the client: the first chunk (already received), then the rest of the upstream.

A plain async generator cannot do this job: if it is closed (or dropped) before its first
``__anext__`` its body never runs, so nothing would close the upstream or finish the accounting.
:class:`StreamRelay` finishes exactly once, whichever comes first: the upstream ends, the upstream
fails (the error is raised to the reader mid-stream), the reader calls :meth:`StreamRelay.aclose`
(which closes the adapter's generator and so the upstream connection), or the relay is garbage
collected unread.

A relayed stream lasts at most ``max_duration`` seconds (``ROUTERD_MAX_STREAM_DURATION``): the adapter's
timeouts are per read, so an upstream that keeps sending (``: ping`` comments, or chunks forever) would
otherwise be relayed forever. Past it the reader gets a :class:`~routerd.errors.Timeout` mid-stream
(which the server turns into an in-band error event) and the upstream is closed. The bound is one
event-loop timer per stream, armed when the relay is made: an ``asyncio.timeout`` around every read
cost a timer handle and a context manager per chunk, a good part of the relay's own work. When it
fires while the reader waits for the upstream, the waiting task is cancelled (and the cancellation
turned into the timeout); when it fires between reads, the next read fails.

A relay over an adapter stream that can hand on its own bytes (the OpenAI-compatible adapter's
:class:`~routerd.providers.sse_stream.OpenAIStream`) can instead be read as SSE blocks with
:meth:`StreamRelay.blocks`: the same accounting, bound and errors, one block per upstream read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.errors import APIError, OpenAIError, Timeout

__all__ = ["StreamRelay", "close_iterator"]

log = logging.getLogger("routerd.router")

JSON = dict[str, Any]

# (relay, error or None, whether the upstream ended normally) -> None; called exactly once
OnEnd = Callable[["StreamRelay", "OpenAIError | None", bool], None]


class StreamRelay:
    """An async iterator of OpenAI chunk dicts; see the module docstring."""

    __slots__ = (
        "__weakref__",
        "_deadline",
        "_deployment",
        "_done",
        "_expired",
        "_first",
        "_iterator",
        "_limit",
        "_on_end",
        "_strip_usage",
        "_timer",
        "_waiter",
        "chunks",
        "usage",
    )

    def __init__(
        self,
        iterator: AsyncIterator[JSON],
        first: JSON,
        deployment: Deployment,
        on_end: OnEnd,
        max_duration: float = math.inf,
        strip_usage: bool = False,
    ) -> None:
        self._iterator = iterator
        # the upstream was asked for usage the client did not ask for: record it, do not hand it on
        self._strip_usage = strip_usage
        self._limit = max_duration
        self._deadline: float | None = None  # on the event loop's clock; None: unbounded
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False  # the timer fired: the stream has lasted as long as it may
        self._waiter: asyncio.Task[Any] | None = None  # the task waiting on the upstream, while it waits
        if max_duration < math.inf:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + max_duration
            # through a weak reference: a pending timer must not keep an abandoned relay alive
            self._timer = loop.call_at(self._deadline, _expire, weakref.ref(self))
        self._first: JSON | None = first
        self._deployment = deployment
        self._on_end = on_end
        self._done = False
        self.chunks = 0  # chunks handed to the reader
        self.usage: Any = None  # the last ``usage`` object seen in a chunk

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> JSON:
        # One frame per chunk: the read is inline, the failure handling in _fail (run only then).
        while True:
            if self._done:
                raise StopAsyncIteration
            chunk = self._first
            if chunk is not None:
                self._first = None
            else:
                try:
                    if self._expired:
                        raise TimeoutError
                    self._waiter = asyncio.current_task()
                    try:
                        chunk = await anext(self._iterator)
                    finally:
                        self._waiter = None
                except BaseException as exc:
                    raise await self._fail(exc)  # noqa: B904 -- _fail chains it (or returns exc itself)
            self.chunks += 1
            handed = self._hand_on(chunk)
            if handed is not None:
                return handed
            # a usage-only chunk (no choices) the client did not ask for: read on

    @property
    def relays_bytes(self) -> bool:
        """Whether :meth:`blocks` can be used: the upstream's stream hands on its own bytes."""
        return self._first is not None and callable(getattr(self._iterator, "next_block", None))

    @property
    def iterator(self) -> AsyncIterator[JSON]:
        """The adapter's stream this relay reads."""
        return self._iterator

    @property
    def first(self) -> JSON | None:
        """The first chunk, until it is handed to the reader."""
        return self._first

    async def blocks(self) -> AsyncIterator[bytes]:
        """The stream as SSE bytes ready to write, one block per upstream read (see
        :class:`~routerd.providers.sse_stream.OpenAIStream`); the last block ends with ``data: [DONE]``.

        Only for a relay whose :attr:`relays_bytes` is true, read from the start instead of iterating
        it: the first chunk (already parsed) is rendered and joined with the events that arrived in
        the same read. Usage, the usage the client did not ask for, the bound on the stream's
        duration, errors and the end are handled as when iterating; the relay is finished (and
        accounted for) before its last block is handed out.
        """
        stream: Any = self._iterator
        reader = stream.reader
        reader.strip_usage = self._strip_usage
        first, self._first = self._first, None
        block: bytes | None = b""
        if first is not None:
            first = self._hand_on(first)
            if first is not None:
                block = b"data: " + orjson.dumps(first) + b"\n\n"
            if reader.has_data:
                block += reader.take_block()  # already here: one write for both
        while True:
            if block:
                self.chunks = reader.seen  # the reader parsed the first chunk too
                if reader.usage is not None:
                    self.usage = reader.usage
                if reader.ended and reader.error is None:
                    await self._finish(None, finished=True)
                    yield block
                    return
                yield block
            try:
                if self._expired:
                    raise TimeoutError
                self._waiter = asyncio.current_task()
                try:
                    block = await stream.next_block()
                finally:
                    self._waiter = None
            except BaseException as exc:
                raise await self._fail(exc)  # noqa: B904 -- _fail chains it (or returns exc itself)
            if block is None:  # the upstream ended with nothing more to hand on
                self.chunks = reader.seen
                await self._finish(None, finished=True)
                return

    def _hand_on(self, chunk: JSON) -> JSON | None:
        """The chunk as the reader gets it (its usage recorded, and hidden when not asked for)."""
        usage = chunk.get("usage")
        if not usage:
            return chunk
        self.usage = usage
        if not self._strip_usage:
            return chunk
        if chunk.get("choices") != []:
            return {k: v for k, v in chunk.items() if k != "usage"}
        return None

    async def _fail(self, exc: BaseException) -> BaseException:
        """Finish after a failed read; returns what the reader gets raised (the error, or ``exc``)."""
        if isinstance(exc, StopAsyncIteration):
            await self._finish(None, finished=True)
            return exc
        if isinstance(exc, OpenAIError):
            await self._finish(exc, finished=False)
            return exc
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if not self._expired or task is None or task.cancelling() != 1:
                # the reader went away (or is cancelled besides our timer): stop quietly
                await self._finish(None, finished=False)
                return exc
            task.uncancel()  # our own cancellation: it becomes the timeout error
        if isinstance(exc, TimeoutError | asyncio.CancelledError):
            error = self._timed_out()
        elif isinstance(exc, Exception):
            dep = self._deployment
            log.error("stream from deployment %s failed inside routerd", dep.id, exc_info=exc)
            error = APIError(
                f"internal error relaying the {dep.provider} stream ({type(exc).__name__})",
                llm_provider=dep.provider,
                model=dep.model,
                deployment_id=dep.id,
            )
        else:  # the reader went away
            await self._finish(None, finished=False)
            return exc
        await self._finish(error, finished=False)
        error.__cause__ = exc
        return error

    def _expire(self) -> None:
        """The stream's timer: it has lasted as long as it may (see the module docstring)."""
        self._timer = None
        if self._done:
            return
        self._expired = True
        waiter = self._waiter
        if waiter is not None:
            waiter.cancel("routerd: ROUTERD_MAX_STREAM_DURATION")

    def _timed_out(self) -> OpenAIError:
        dep = self._deployment
        expired = self._expired or (
            self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline
        )
        why = (
            f"passed the longest a stream may last ({self._limit:g}s, ROUTERD_MAX_STREAM_DURATION)"
            if expired
            else "timed out"
        )
        return Timeout(
            f"the stream from deployment {dep.id} {why}",
            llm_provider=dep.provider,
            model=dep.model,
            deployment_id=dep.id,
        )

    async def aclose(self) -> None:
        """Stop reading: closes the upstream connection and finishes the accounting."""
        if not self._done:
            await self._finish(None, finished=False)

    async def _finish(self, error: OpenAIError | None, *, finished: bool) -> None:
        self._done = True
        self._disarm()
        try:
            await close_iterator(self._iterator)
        finally:
            self._on_end(self, error, finished)

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def __del__(self) -> None:
        # Dropped unread and unclosed: account for it now. The adapter's generator is closed by the
        # event loop's async-generator finaliser when it is collected in turn.
        if not self._done:
            self._done = True
            self._disarm()
            try:
                self._on_end(self, None, False)
            except Exception:
                log.exception("accounting for an abandoned stream failed")


def _expire(ref: weakref.ref[StreamRelay]) -> None:
    relay = ref()
    if relay is not None:
        relay._expire()


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an adapter's stream (and so its upstream connection), if it can be closed."""
    aclose: Callable[[], Awaitable[Any]] | None = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # the upstream is being abandoned; a failure to close it changes nothing
            log.debug("closing an upstream stream failed", exc_info=True)
