"""Shared helpers of the front-door tests: stored payloads and chunk streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    """A stored JSON payload under tests/frontdoors/fixtures."""
    return orjson.loads((FIXTURES / name).read_bytes())


def load_lines(name: str) -> list[dict[str, Any]]:
    """A stored JSON-lines payload (one chunk a line)."""
    return [orjson.loads(line) for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


class ChunkStream:
    """An async iterator of chunks that may fail after some, and records whether it was closed."""

    def __init__(self, chunks: Iterable[dict[str, Any]], error: Exception | None = None) -> None:
        self._chunks = list(chunks)
        self._error = error
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._chunks:
            return self._chunks.pop(0)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    """Every byte of an SSE body."""
    return b"".join([part async for part in stream])
