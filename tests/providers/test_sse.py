"""SSE parsing of OpenAI-style streams (no network: lines fed from lists)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.providers.errors import ErrorContext
from routerd.providers.sse import DONE_EVENT, encode_event, iter_data, iter_json_chunks

CTX = ErrorContext(provider="openai", model="gpt-4o-mini", deployment_id="dep-1")


async def lines_of(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def collect(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    return [chunk async for chunk in iter_json_chunks(lines_of(lines), CTX)]


def chunk(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    payload = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload)


async def test_iter_data_handles_fields_comments_and_events() -> None:
    body = [
        b": keep-alive",
        b"id: 7",
        b"retry: 100",
        b'data:{"a":1}',
        b"",
        b"event: error",
        b"data: {}",
        b"",
        b"data: x",
    ]
    events = [item async for item in iter_data(lines_of(body))]
    assert events == [(b"", b'{"a":1}'), (b"error", b"{}"), (b"", b"x")]


async def test_chunks_until_done_and_nothing_after() -> None:
    body = [
        chunk("Hel"),
        b"",
        chunk("lo"),
        b"",
        chunk(None, "stop"),
        b"",
        b"data: [DONE]",
        b"",
        chunk("late"),
    ]
    chunks = await collect(body)
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["Hel", "lo", None]


async def test_stream_without_done_but_finished_is_complete() -> None:
    chunks = await collect([chunk("a"), chunk(None, "length")])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_stream_ending_early_is_a_cut() -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(errors.APIConnectionError) as info:
        async for item in iter_json_chunks(lines_of([chunk("a"), chunk("b")]), CTX):
            seen.append(item)
    assert len(seen) == 2  # what arrived was delivered before the error
    assert info.value.deployment_id == "dep-1"
    assert "after 2 chunk" in info.value.message


async def test_in_band_error_event_is_raised_translated() -> None:
    error = b'data: {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}'
    with pytest.raises(errors.RateLimitError) as info:
        await collect([chunk("a"), error, b"data: [DONE]"])
    assert info.value.message == "Rate limit reached"
    assert info.value.llm_provider == "openai"


async def test_named_error_event_is_raised_even_without_error_key() -> None:
    with pytest.raises(errors.OpenAIError) as info:
        await collect([b"event: error", b'data: {"message": "upstream exploded"}', b""])
    assert info.value.message == "upstream exploded"


async def test_garbage_chunk_is_bad_gateway() -> None:
    with pytest.raises(errors.BadGatewayError):
        await collect([chunk("a"), b"data: {not json"])
    with pytest.raises(errors.BadGatewayError):
        await collect([b"data: [1, 2]"])


async def test_blank_data_lines_are_skipped() -> None:
    assert len(await collect([b"data: ", chunk(None, "stop"), b"data: [DONE]"])) == 1


async def test_transport_errors_mid_stream_are_annotated() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield chunk("a")
        raise errors.Timeout("upstream did not answer in time")

    with pytest.raises(errors.Timeout) as info:
        [c async for c in iter_json_chunks(failing(), CTX)]
    assert (info.value.llm_provider, info.value.deployment_id) == ("openai", "dep-1")


def test_encoding() -> None:
    assert encode_event({"a": [1, "é"]}) == b'data: {"a":[1,"\xc3\xa9"]}\n\n'
    assert DONE_EVENT == b"data: [DONE]\n\n"
