"""A loopback upstream that misbehaves at the socket level, on demand.

``RawUpstream(answer)`` reads each request (head and ``Content-Length`` body) and acts on
``answer(request_number, head)``: write raw bytes (any bytes: a broken status line, a header without
a colon, a bad chunk size), then keep the connection, close it, reset it (RST), or hang until the
client gives up. It counts requests and the connections the client closed, so a test can assert that
a broken connection was dropped. Use it with ``async with`` in async tests, or with
:func:`routerd.testing.run_in_thread` for a daemon started by the test.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Act:
    """What the upstream does with one request."""

    data: bytes = b""
    close: bool = False  # close after writing
    reset: bool = False  # abort with RST after writing
    hang: bool = False  # after writing, read until the client closes; never answer more


Answer = Callable[[int, bytes], Act]


def head(status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A response: ``status`` is the status line's tail (``"200 OK"``); Content-Length is added."""
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if not any(name.lower() in ("content-length", "transfer-encoding") for name in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def completion(text: str = "ok") -> bytes:
    """A 200 chat completion, as an OpenAI upstream sends it."""
    body = orjson.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )
    return head("200 OK", {"Content-Type": "application/json"}, body)


def error_500() -> bytes:
    body = orjson.dumps({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    return head("500 Internal Server Error", {"Content-Type": "application/json"}, body)


class RawUpstream:
    """A scripted HTTP/1.1 server on ``127.0.0.1:<free port>``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self.heads: list[bytes] = []
        self.connections = 0
        self.client_closed = 0  # connections the client closed (EOF while we waited)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1/chat/completions"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> RawUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.client_closed += 1
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request_head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                self.client_closed += 1
                return
            length = 0
            for line in request_head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            self.requests += 1
            self.heads.append(request_head)
            act = self.answer(self.requests, request_head)
            if act.data:
                writer.write(act.data)
                await writer.drain()
            if act.reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if act.close:
                return
            if act.hang:
                while await reader.read(65536):
                    pass
                self.client_closed += 1
                return
