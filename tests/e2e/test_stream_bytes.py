"""Streams relayed as the upstream's bytes (issue 20), on the real daemon's direct write path.

The fake upstream sends raw SSE bytes in pieces (a pause between them, so they arrive as separate
reads): framing routerd must normalise, events split mid-line, usage split across reads. What the
client reads, what routerd meters and how the stream ends are checked on the wire.
"""

from __future__ import annotations

import itertools
import socket
from typing import Any

import httpx
import orjson
import pytest

from routerd.testing import FakeOpenAI, Reply
from routerd.testing.server import RouterdServer

from .support import MASTER_KEY, user, wait_for

BASE = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
HEADERS = {"authorization": f"Bearer {MASTER_KEY}"}


def _content(text: str) -> dict[str, Any]:
    return {**BASE, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def _finish() -> dict[str, Any]:
    return {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def _events(text: str) -> list[Any]:
    """The ``data:`` events of an SSE body, parsed (``[DONE]`` as the string)."""
    out: list[Any] = []
    for line in text.split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
        else:
            assert line == "", f"unexpected line {line!r}"  # routerd writes only events and blank lines
    return out


def _tokens(server: RouterdServer, direction: str) -> float:
    text = httpx.get(server.base_url + "/metrics", headers=HEADERS).text
    prefix = "routerd_tokens_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
        and 'deployment="openai-chat"' in line
        and f'direction="{direction}"' in line
    )


def _stream(server: RouterdServer, **extra: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": user("hi"), "stream": True, **extra}
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, headers=HEADERS, timeout=30)


def _pieces(body: bytes, *cuts: int) -> list[bytes]:
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def test_odd_framing_split_across_reads_reaches_the_client_as_clean_events(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    body = (
        b": ping\r\n\r\n"
        + b"data:"
        + orjson.dumps(_content("Hel"))
        + b"\r\n\r\n"
        + b"data: "
        + orjson.dumps(_content("lo"))
        + b"\r\n\r\n"
        + b"data: "
        + orjson.dumps(_finish())
        + b"\r\n\r\n"
        + b"data: "
        + orjson.dumps({**BASE, "choices": [], "usage": USAGE})
        + b"\r\n\r\n"
    )
    usage_at = body.index(b'"usage"')
    fake_openai.enqueue(
        Reply(chunks=_pieces(body, 5, 40, usage_at + 3), chunk_delay=0.02, done=True)  # a usage split
    )
    before = _tokens(gateway, "output")

    response = _stream(gateway)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events == [_content("Hel"), _content("lo"), _finish(), "[DONE]"]  # no usage: not asked for
    wait_for(lambda: _tokens(gateway, "output") == before + 7, what="the stream's usage to be metered")


def test_the_first_chunk_reaches_the_client_as_the_upstream_sent_it(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    # the router reads the first chunk as a dict (failover before the first byte); its bytes are
    # handed on as they came, not re-serialised (spaces and key order kept)
    first = b'{"choices": [{"delta": {"content": "Hi", "role": "assistant"}, "index": 0}], "id": "x"}'
    body = b"data: " + first + b"\n\n" + b"data: " + orjson.dumps(_finish()) + b"\n\ndata: [DONE]\n\n"
    fake_openai.enqueue(Reply(chunks=[body], done=False))

    text = _stream(gateway).text

    assert text.startswith("data: " + first.decode() + "\n\n")
    assert _events(text)[1:] == [_finish(), "[DONE]"]


def test_usage_asked_for_is_relayed_and_metered(gateway: RouterdServer, fake_openai: FakeOpenAI) -> None:
    before = _tokens(gateway, "input")
    response = _stream(gateway, stream_options={"include_usage": True})
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert usage["completion_tokens"] > 0 and events[-2]["choices"] == []
    wait_for(
        lambda: _tokens(gateway, "input") == before + usage["prompt_tokens"], what="the usage to be metered"
    )


def test_a_stream_without_usage_is_estimated_from_its_bytes(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    text = "twelve chars" * 10  # 120 characters of text: about 30 tokens
    chunks = [_content(text[i : i + 12]) for i in range(0, len(text), 12)] + [_finish()]
    fake_openai.enqueue(Reply(chunks=chunks))
    before = _tokens(gateway, "output")

    events = _events(_stream(gateway).text)

    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == text
    wait_for(lambda: _tokens(gateway, "output") > before, what="the estimate to be metered")
    assert 20 <= _tokens(gateway, "output") - before <= 40


def test_a_long_stream_in_large_reads_reaches_a_slow_client_whole(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    # blocks of many events written to a client with a small receive buffer: nothing lost or reordered
    # (the writer's waiting on a full buffer is tested in tests/server/test_protocol.py)
    words = [f"word{i:05d} " * 20 for i in range(600)]
    fake_openai.enqueue(Reply(chunks=[_content(w) for w in words] + [_finish()]))
    payload = orjson.dumps({"model": "gpt-4o-mini", "messages": user("hi"), "stream": True})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {MASTER_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(head + payload)
        wait_for(lambda: len(fake_openai.requests) == 1, what="the upstream call")
        received = b""
        while not received.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, "connection closed before the end of the stream"
            received += data
    body = _dechunk(received.partition(b"\r\n\r\n")[2])
    events = _events(body.decode())
    assert [e["choices"][0]["delta"]["content"] for e in events[:-2]] == words
    assert events[-1] == "[DONE]"


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out += data[:size]
        assert data[size : size + 2] == b"\r\n"
        data = data[size + 2 :]


@pytest.mark.parametrize("cut", [True, False], ids=["connection-cut", "in-band-error"])
def test_a_failure_after_bytes_were_relayed_is_an_error_event_without_done(
    gateway: RouterdServer, fake_openai: FakeOpenAI, cut: bool
) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
    chunks = [_content("a"), _content("b"), _content("c")]
    fake_openai.enqueue(
        Reply(chunks=chunks, chunk_delay=0.01, cut_after=2)
        if cut
        else Reply(chunks=chunks, chunk_delay=0.01, error_after=2, inband_error=error)
    )
    events = _events(_stream(gateway).text)
    assert events[:2] == [_content("a"), _content("b")]
    assert "[DONE]" not in events
    assert set(events[-1]["error"]) >= {"message", "type", "code"}
