"""The byte path of OpenAI-style streams (issue 20): SSEReader fed bytes as reads deliver them.

Each test feeds the body in pieces (as an upstream's reads may split it) and checks what is handed on:
the upstream's own bytes where nothing must be read, normalised events otherwise, and the usage,
finish, error and end markers read wherever they fall.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.http import FastHttpClient
from routerd.http.base import HttpLimits
from routerd.providers.errors import ErrorContext
from routerd.providers.sse import DONE_EVENT
from routerd.providers.sse_stream import OpenAIStream, SSEReader, _data_events
from routerd.testing import FakeOpenAI, Reply

CTX = ErrorContext(provider="openai", model="gpt-4o-mini", deployment_id="dep-1")
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def content(text: str, **extra: Any) -> dict[str, Any]:
    return {**BASE, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}], **extra}


def finish() -> dict[str, Any]:
    return {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def usage_only() -> dict[str, Any]:
    return {**BASE, "choices": [], "usage": USAGE}


def event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def answer(*texts: str, done: bool = True) -> bytes:
    body = b"".join(event(content(t)) for t in texts) + event(finish()) + event(usage_only())
    return body + (b"data: [DONE]\n\n" if done else b"")


def relay(
    pieces: Iterable[bytes], *, strip_usage: bool = False, max_line: int = 1 << 20
) -> tuple[bytes, SSEReader]:
    """Everything the byte path hands on for ``pieces`` (each fed as one read), and the reader."""
    reader = SSEReader(CTX, max_line, "http://upstream/v1/chat/completions")
    reader.strip_usage = strip_usage
    out = b""
    for piece in pieces:
        reader.feed(piece)
        out += reader.take_block()
        if reader.error is not None:
            raise reader.error
    reader.eof()
    out += reader.take_block()
    if reader.error is not None:
        raise reader.error
    reader.check_end()
    return out, reader


def data_of(out: bytes) -> list[Any]:
    """The events handed on, each parsed ([DONE] as the string)."""
    assert out.endswith(b"\n\n")
    events = out[:-2].split(b"\n\n")
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events), out
    return [e[6:].decode() if e == b"data: [DONE]" else orjson.loads(e[6:]) for e in events]


def test_content_chunks_in_one_read_are_handed_on_unchanged() -> None:
    body = b"".join(event(content(t)) for t in ("Hel", "lo", " there"))
    reader = SSEReader(CTX)
    reader.feed(body)
    assert reader.take_block() is not None
    reader.feed(body)
    block = reader.take_block()
    assert block == body  # the very bytes: nothing parsed, nothing re-serialised
    assert (reader.seen, reader.plain_events) == (6, 6)
    assert reader.usage is None and not reader.finished and not reader.ended


def test_a_whole_answer_in_one_read_keeps_its_bytes_and_reads_its_markers() -> None:
    body = answer(*[f"w{i} " for i in range(10)])
    out, reader = relay([body])
    assert out == body  # usage wanted by the client: every byte as it came
    assert reader.usage == USAGE and reader.ended
    assert reader.seen == 12  # 10 content chunks, the finish chunk and the usage chunk
    # only the usage chunk was parsed: a block that ends with [DONE] needs no finish reason (it only
    # tells a stream cut after its finish from one cut before it)
    assert reader.plain_events == 11


def test_a_finish_is_read_when_the_block_does_not_end_the_stream() -> None:
    # the same answer without [DONE]: its finish chunk is read, so the cut body still counts complete
    body = answer(*[f"w{i} " for i in range(10)], done=False)
    out, reader = relay([body])
    assert out == body
    assert reader.finished and reader.ended and reader.usage == USAGE
    assert reader.plain_events == 10


def test_usage_the_client_did_not_ask_for_is_dropped() -> None:
    out, reader = relay([answer("a", "b", "c", "d", "e", "f")], strip_usage=True)
    events = data_of(out)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert len(events) == 8  # six content chunks, the finish chunk, [DONE]
    assert reader.usage == USAGE  # recorded all the same, for metering


def test_usage_on_a_chunk_with_choices_is_removed_from_that_chunk_only() -> None:
    last = {**finish(), "usage": USAGE}
    body = event(content("hi")) + event(last) + b"data: [DONE]\n\n"
    out, reader = relay([body], strip_usage=True)
    events = data_of(out)
    assert events[1] == finish() and events[2] == "[DONE]"
    assert reader.usage == USAGE


@pytest.mark.parametrize("size", [1, 2, 7, 50])
def test_events_split_anywhere_across_reads_arrive_whole(size: int) -> None:
    body = answer("one ", "two ", "three ", "four ", "five ")
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out, reader = relay(pieces)
    assert data_of(out) == data_of(body)
    assert reader.usage == USAGE  # a usage chunk split across reads is read whole
    assert reader.finished and reader.ended


def test_a_usage_chunk_split_across_two_reads_is_dropped_when_not_asked_for() -> None:
    body = answer("x", "y")
    cut = body.index(b'"usage"') + 4
    out, reader = relay([body[:cut], body[cut:]], strip_usage=True)
    assert all("usage" not in e for e in data_of(out)[:-1])
    assert reader.usage == USAGE


def test_crlf_framing_is_rendered_as_lf_events() -> None:
    body = answer("a", "b").replace(b"\n", b"\r\n")
    out, reader = relay([body[:40], body[40:]])
    assert b"\r" not in out
    assert data_of(out) == data_of(answer("a", "b"))
    assert reader.usage == USAGE


def test_data_lines_without_a_space_comments_and_fields_are_normalised() -> None:
    body = (
        b": ping\n\n"
        b"id: 1\nretry: 500\n"
        b"data:" + orjson.dumps(content("a")) + b"\n\n"
        b": keep-alive\n"
        b"data:" + orjson.dumps(finish()) + b"\n\n"
        b"data:[DONE]\n\n"
    )
    out, reader = relay([body])
    assert data_of(out) == [content("a"), finish(), "[DONE]"]
    assert out.startswith(b"data: {")  # comments and fields are not handed on
    assert reader.finished and reader.ended


@pytest.mark.parametrize(
    "odd",
    [b"\ndata: " + orjson.dumps(content("b")) + b"\n", b"\nid: 7\n", b"\n\n\n"],
    ids=["two-data-lines", "field", "extra-blank-lines"],
)
def test_a_lone_newline_among_plain_events_takes_the_line_by_line_way(odd: bytes) -> None:
    # a region is handed on unchanged only when every line is a data line or the blank line after it
    body = event(content("a")) + event(content("x"))[:-1] + odd + event(content("c")) + event(finish())
    out, reader = relay([body])
    events = data_of(out)  # every event rendered as one data line and a blank line
    assert [e["choices"][0]["delta"].get("content") for e in events] == [
        "a",
        "x",
        *(["b"] if b"data" in odd else []),
        "c",
        None,
    ]
    assert reader.finished


def test_escaped_markers_inside_text_are_content() -> None:
    tricky = 'say "usage": {1}, "error", "finish_reason": "x", [DONE] and data: {"a"}\\n'
    body = event(content(tricky)) + event(content("é ✓ \u2028")) + answer("z")
    out, reader = relay([body])
    assert out == body  # nothing in the text was taken for a marker
    assert data_of(out)[0]["choices"][0]["delta"]["content"] == tricky
    # the two tricky chunks, the last content chunk and the finish chunk (a block that ends with
    # [DONE] needs no finish reason): only the usage chunk was parsed
    assert reader.plain_events == 4


def test_spaced_json_is_read_and_handed_on_as_it_came() -> None:
    spaced = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}], "usage": null}\n\n'
    done = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": null}\n\n'
    out, reader = relay([spaced + done + b"data: [DONE]\n\n"])
    assert out == spaced + done + DONE_EVENT
    assert reader.finished and reader.usage is None


def test_an_error_event_ends_the_block_after_the_chunks_before_it() -> None:
    error = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
    reader = SSEReader(CTX)
    reader.feed(event(content("a")) + event(content("b")) + event(error) + event(content("never")))
    block = reader.take_block()
    assert data_of(block) == [content("a"), content("b")]
    assert isinstance(reader.error, errors.OpenAIError)
    assert "overloaded" in str(reader.error)


def test_a_named_error_event_is_an_error() -> None:
    reader = SSEReader(CTX)
    reader.feed(event(content("a")) + b"event: error\n" + event({"message": "bad things"}))
    assert data_of(reader.take_block()) == [content("a")]
    assert isinstance(reader.error, errors.OpenAIError)


def test_a_chunk_that_is_not_json_is_a_bad_gateway_where_it_is_read() -> None:
    reader = SSEReader(CTX)
    reader.feed(event(content("a")) + b"data: oops\n\n")
    assert data_of(reader.take_block()) == [content("a")]
    assert isinstance(reader.error, errors.BadGatewayError)

    # content chunks are not parsed on the byte path: one that looks like an object goes on as it came
    reader = SSEReader(CTX)
    reader.feed(b"data: {oops\n\n" + event(finish()))
    assert reader.take_block().startswith(b"data: {oops\n\n")
    reader.feed(b'data: {"usage": {oops\n\n')
    assert reader.take_block() == b""
    assert isinstance(reader.error, errors.BadGatewayError)


def test_done_ends_the_stream_and_nothing_after_it_is_handed_on() -> None:
    out, reader = relay(
        [event(content("a")) + event(finish()) + b"data: [DONE]\n\n" + event(content("late"))]
    )
    assert data_of(out) == [content("a"), finish(), "[DONE]"]
    assert reader.ended


def test_a_finished_stream_without_done_is_complete_and_a_cut_one_is_not() -> None:
    out, reader = relay([event(content("a")) + event(finish())])
    assert data_of(out) == [content("a"), finish()]
    assert reader.ended  # the server adds [DONE]

    with pytest.raises(errors.APIConnectionError, match="after 2 chunk"):
        relay([event(content("a")) + event(content("b"))])


def test_a_last_line_without_terminator_is_read_at_the_end_of_the_body() -> None:
    out, reader = relay([event(content("a")) + b"data: " + orjson.dumps(finish())])
    assert data_of(out) == [content("a"), finish()]
    assert reader.finished


def test_a_line_longer_than_the_bound_is_refused_while_it_arrives() -> None:
    reader = SSEReader(CTX, max_line=100, url="http://upstream/v1")
    reader.feed(b"data: " + b"x" * 60)
    with pytest.raises(errors.BadGatewayError, match="stream line"):
        reader.feed(b"y" * 60)


def test_a_complete_line_longer_than_the_bound_is_refused() -> None:
    reader = SSEReader(CTX, max_line=100)
    with pytest.raises(errors.BadGatewayError, match="stream line"):
        reader.feed(event(content("z" * 200)))


def test_first_chunk_as_a_dict_then_the_rest_as_bytes() -> None:
    body = answer("a", "b", "c", "d", "e", "f")
    reader = SSEReader(CTX)
    reader.feed(body)
    assert reader.next_chunk() == content("a")  # the router reads the first chunk this way
    rest = reader.take_block()
    assert rest == body[len(event(content("a"))) :]  # the rest is still the upstream's bytes
    assert reader.seen == 8 and reader.ended  # six content chunks, the finish and the usage chunk


# --- OpenAIStream over a real connection (FakeOpenAI on loopback) ---------------------------------

AUTH = {"authorization": "Bearer sk-test-key-123456", "content-type": "application/json"}  # conftest's
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_the_stream_reads_its_first_chunk_as_a_dict_and_the_rest_as_blocks(
    fake_openai: FakeOpenAI,
) -> None:
    body = answer("a", "b", "c", "d", "e")
    fake_openai.enqueue(Reply(chunks=[body[:100], body[100:900], body[900:]], chunk_delay=0.01, done=False))
    http = FastHttpClient()
    try:
        stream = OpenAIStream(http, fake_openai.base_url + "/chat/completions", AUTH, REQUEST, 10, CTX)
        first = await anext(stream)
        blocks = []
        while (block := await stream.next_block()) is not None:
            blocks.append(block)
    finally:
        await http.aclose()
    assert first == content("a")
    assert b"".join(blocks) == body[len(event(first)) :]
    assert stream.reader.usage == USAGE


async def test_the_line_bound_of_the_client_applies_to_the_byte_path(fake_openai: FakeOpenAI) -> None:
    """ROUTERD_UPSTREAM_MAX_LINE_MB reaches the stream reader through the client's limits."""
    long_line = event(content("z" * 5000))
    fake_openai.enqueue(Reply(chunks=[event(content("a")), long_line], chunk_delay=0.01))
    http = FastHttpClient(limits=HttpLimits(max_line_bytes=2000))
    try:
        stream = OpenAIStream(http, fake_openai.base_url + "/chat/completions", AUTH, REQUEST, 10, CTX)
        assert await anext(stream) == content("a")
        with pytest.raises(errors.BadGatewayError, match="stream line"):
            await stream.next_block()
    finally:
        await http.aclose()


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (b"data: {}\n\ndata: [DONE]\n\n", [b"{}", b"[DONE]"]),
        (b"data: {}\n\n", [b"{}"]),
        (b"data:{}\n\n", None),  # no space: read line by line
        (b"data: {}\r\n\r\n", None),  # CRLF framing
        (b"data: {}\n\n\n", None),  # an extra blank line
        (b"event: error\ndata: {}\n\n", None),  # a field line
        (b"data: {}\ndata: {}\n\n", None),  # two data lines in one event
        (b"data: {}\n", None),  # no blank line after the last event
    ],
)
def test_a_tail_of_single_data_line_events_is_split_without_reading_lines(
    tail: bytes, expected: list[bytes] | None
) -> None:
    assert _data_events(tail) == expected


@pytest.mark.parametrize(
    "tail",
    [
        event(finish()) + b"event: error\n" + event({"message": "late failure"}) + b"data: [DONE]\n\n",
        event(finish()) + b"data:" + orjson.dumps(usage_only()) + b"\n\n" + b"data: [DONE]\n\n",
        event(finish()) + event(usage_only()).replace(b"\n", b"\r\n") + b"data: [DONE]\n\n",
    ],
    ids=["named-error", "no-space", "crlf"],
)
def test_tails_that_are_not_single_data_lines_are_read_line_by_line(tail: bytes) -> None:
    # the fast split of a stream's last events gives way to the line-by-line reading: the same markers
    body = b"".join(event(content(t)) for t in ("a", "b", "c")) + tail
    reader = SSEReader(CTX)
    reader.feed(body)
    block = reader.take_block()
    if b"event: error" in tail:
        assert data_of(block) == [content("a"), content("b"), content("c"), finish()]
        assert isinstance(reader.error, errors.OpenAIError) and "late failure" in str(reader.error)
        return
    assert data_of(block) == [content("a"), content("b"), content("c"), finish(), usage_only(), "[DONE]"]
    assert reader.usage == USAGE and reader.ended and reader.error is None
