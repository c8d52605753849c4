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
(which the server turns into an in-band error event) and the upstream is closed. A stream has one
event-loop timer for both of its bounds (:class:`StreamTimer`): armed by the attempt for the first
chunk (which must come within the attempt's timeout), it is handed to the relay, which lets it run
on and, when it fires before the duration bound (a stream longer than the attempt's timeout),
re-arms it once for the duration bound; a stream that ends first cancels it. An
``asyncio.timeout`` around the first read and a second timer for the relay cost a context manager
and two timer handles per stream; a timeout around every read cost them per chunk. When the timer
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

__all__ = ["StreamRelay", "StreamTimer", "close_iterator"]

log = logging.getLogger("routerd.router")

JSON = dict[str, Any]

# (relay, error or None, whether the upstream ended normally) -> None; called exactly once
OnEnd = Callable[["StreamRelay", "OpenAIError | None", bool], None]


class StreamTimer:
    """The one timer of a stream (see the module docstring): the bound on its first chunk, then,
    once a relay adopts it, on the relay's duration."""

    __slots__ = ("_cancelling", "_handle", "_loop", "_relay", "_task", "at", "late")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline: float, task: asyncio.Task[Any] | None = None
    ) -> None:
        self._loop = loop
        self._task = task  # waits for the first chunk: cancelled when the timer fires before it comes
        self._cancelling = task.cancelling() if task is not None else 0
        self._relay: weakref.ref[StreamRelay] | None = None  # weak: a pending timer keeps no relay alive
        self.late = False  # fired before the first chunk came
        self.at = deadline
        self._handle: asyncio.TimerHandle | None = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        ref = self._relay
        if ref is not None:
            relay = ref()
            if relay is not None:
                relay._on_timer(self)
            return
        self.late = True
        if self._task is not None:
            self._task.cancel()

    def timed_out(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised while waiting for the first chunk, is this timer's cancellation;
        if so the task's cancellation is taken back (it becomes a timeout, as ``asyncio.timeout``'s)."""
        if not self.late or not isinstance(exc, asyncio.CancelledError) or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def adopt(self, relay: StreamRelay, deadline: float | None) -> None:
        """From now on the timer bounds ``relay``'s duration (``deadline``; None: unbounded)."""
        self._task = None
        if deadline is None:
            self.cancel()
            return
        self._relay = weakref.ref(relay)
        if self._handle is None or self.at > deadline:
            self.rearm(deadline)

    def rearm(self, deadline: float) -> None:
        self.cancel()
        self.at = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()


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
        timer: StreamTimer | None = None,
    ) -> None:
        self._iterator = iterator
        # the upstream was asked for usage the client did not ask for: record it, do not hand it on
        self._strip_usage = strip_usage
        self._limit = max_duration
        self._deadline: float | None = None  # on the event loop's clock; None: unbounded
        self._timer = timer  # the stream's timer (the first chunk's, handed on), or one made here
        self._expired = False  # the timer fired: the stream has lasted as long as it may
        self._waiter: asyncio.Task[Any] | None = None  # the task waiting on the upstream, while it waits
        if max_duration < math.inf:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + max_duration
            if timer is None:
                self._timer = timer = StreamTimer(loop, self._deadline)
        if timer is not None:
            timer.adopt(self, self._deadline)
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

    @property
    def done(self) -> bool:
        """Whether the relay has finished (and accounted for the stream)."""
        return self._done

    async def next_block(self) -> bytes | None:
        """The next SSE bytes ready to write, one block per upstream read (see
        :class:`~routerd.providers.sse_stream.OpenAIStream`); None after the last block, which ends
        with ``data: [DONE]``.

        Only for a relay whose :attr:`relays_bytes` is true, read from the start instead of iterating
        it: the first chunk (already parsed) is handed on as the upstream sent it (re-rendered only
        when its usage is hidden) and joined with the events that arrived in the same read. Usage,
        the usage the client did not ask for, the bound on the stream's duration, errors and the end
        are handled as when iterating; the relay is finished (and accounted for) before its last
        block is handed out. A coroutine, not an async generator: no generator object, finaliser
        hook or hop per block between the upstream read and the write.
        """
        stream: Any = self._iterator
        reader = stream.reader
        first = self._first
        if first is not None:
            self._first = None
            reader.strip_usage = self._strip_usage
            handed = self._hand_on(first)
            block = b""
            if handed is first and reader.raw:
                block = b"data: " + reader.raw + b"\n\n"
            elif handed is not None:
                block = b"data: " + orjson.dumps(handed) + b"\n\n"
            if reader.has_data:
                block += reader.take_block()  # already here: one write for both
            if block:
                return await self._handed(block, reader)
        while not self._done:
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
                return None
            if block:
                return await self._handed(block, reader)
        return None

    async def _handed(self, block: bytes, reader: Any) -> bytes:
        """Note what ``block`` carried; finish the relay first when it ends the stream."""
        self.chunks = reader.seen  # the reader parsed the first chunk too
        if reader.usage is not None:
            self.usage = reader.usage
        if reader.ended and reader.error is None:
            await self._finish(None, finished=True)
        return block

    async def blocks(self) -> AsyncIterator[bytes]:
        """:meth:`next_block` as an async iterator (for a response that iterates its body)."""
        while (block := await self.next_block()) is not None:
            yield block

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

    def _on_timer(self, timer: StreamTimer) -> None:
        """The stream's timer fired: at the duration bound, or at the first chunk's bound before it
        (then it waits on for the duration bound)."""
        if self._done:
            return
        deadline = self._deadline
        if deadline is not None and timer.at < deadline:
            timer.rearm(deadline)
            return
        self._expire()

    def _expire(self) -> None:
        """The stream has lasted as long as it may (see the module docstring)."""
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
        timer = self._timer
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


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an adapter's stream (and so its upstream connection), if it can be closed."""
    aclose: Callable[[], Awaitable[Any]] | None = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # the upstream is being abandoned; a failure to close it changes nothing
            log.debug("closing an upstream stream failed", exc_info=True)
