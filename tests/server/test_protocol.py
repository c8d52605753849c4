"""The inference fast path in the HTTP protocol: one write per complete answer, nothing lost or reordered."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from routerd.server import protocol
from routerd.testing.server import RouterdServer


class FakeCycle:
    """What ``_render`` reads of uvicorn's RequestResponseCycle."""

    def __init__(self, *, keep_alive: bool = True) -> None:
        self.default_headers = [(b"date", b"Mon, 23 Nov 2026 00:00:00 GMT"), (b"server", b"uvicorn")]
        self.keep_alive = keep_alive


def _start(*headers: tuple[bytes, bytes], status: int = 200) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def _render(start: dict[str, Any], body: bytes, *, keep_alive: bool = True) -> bytes | None:
    return protocol._render(FakeCycle(keep_alive=keep_alive), start, body)  # type: ignore[arg-type]


def test_a_complete_answer_is_rendered_whole() -> None:
    answer = _render(_start((b"Content-Type", b"application/json"), (b"content-length", b"2")), b"{}")
    assert answer == (
        b"HTTP/1.1 200 OK\r\ndate: Mon, 23 Nov 2026 00:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )
    closing = _render(_start((b"content-length", b"0"), status=404), b"", keep_alive=False)
    assert closing is not None
    assert closing.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert closing.endswith(b"content-length: 0\r\nconnection: close\r\n\r\n")


def test_a_stream_head_is_rendered_with_its_first_chunk() -> None:
    start = _start((b"content-type", b"text/event-stream; charset=utf-8"))
    head = protocol._render_stream(FakeCycle(), start, b"data: {}\n\n")  # type: ignore[arg-type]
    assert head == (
        b"HTTP/1.1 200 OK\r\ndate: Mon, 23 Nov 2026 00:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
        b"a\r\ndata: {}\n\n\r\n"
    )
    # a start that carries its own framing, or a bad header, is left to uvicorn
    for headers in [
        ((b"content-length", b"2"),),
        ((b"x-request-id", b"a\r\nb: c"),),
        ((b"connection", b"close"),),
    ]:
        assert protocol._render_stream(FakeCycle(), _start(*headers), b"x") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (((b"x-request-id", b"abc\r\nset-cookie: evil=1"), (b"content-length", b"2")), 200),  # injection
        (((b"x-request-id", b"abc\x00"), (b"content-length", b"2")), 200),
        (((b"bad name", b"v"), (b"content-length", b"2")), 200),
        (((b"content-length", b"3"),), 200),  # does not match the body
        ((), 200),  # no length
        (((b"content-length", b"2"), (b"content-length", b"2")), 200),
        (((b"content-length", b"2"), (b"connection", b"close")), 200),  # framing: uvicorn's way
        (((b"transfer-encoding", b"chunked"),), 200),
        (((b"content-length", b"2"),), 204),
        (((b"content-length", b"2"),), 999),
    ],
)
def test_answers_it_cannot_vouch_for_are_left_to_uvicorn(
    headers: tuple[tuple[bytes, bytes], ...], status: int
) -> None:
    assert _render(_start(*headers, status=status), b"{}") is None


CONFIG = """
model_list:
  - model_name: echo
    litellm_params:
      model: mock/echo
general_settings:
  master_key: sk-test-master
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    path: Path = tmp_path_factory.mktemp("protocol") / "routerd.yaml"
    path.write_text(CONFIG)
    with RouterdServer.from_file(path) as running:
        yield running


def _request(path: str, body: bytes, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: test", f"content-length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, dict[str, str], bytes]]:
    """``count`` complete HTTP/1.1 responses with a content-length, read off ``sock``."""
    buffer = b""
    answers: list[tuple[bytes, dict[str, str], bytes]] = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status, *header_lines = head.split(b"\r\n")
        headers = {
            name.decode().lower(): value.decode().strip()
            for name, _, value in (line.partition(b":") for line in header_lines)
        }
        length = int(headers["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buffer += chunk
        answers.append((status, headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def _chat(content: str) -> bytes:
    return b'{"model": "echo", "messages": [{"role": "user", "content": "%s"}]}' % content.encode()


def test_keep_alive_and_pipelined_requests_through_the_fast_path(
    server: RouterdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct: list[bytes] = []

    def counting_render(cycle: Any, start: Any, body: bytes) -> bytes | None:
        answer = render(cycle, start, body)
        if answer is not None:
            direct.append(answer)
        return answer

    render = protocol._render
    monkeypatch.setattr(protocol, "_render", counting_render)
    auth: dict[str, Any] = {"authorization": "Bearer sk-test-master", "x_request_id": "pipelined"}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # two requests in one packet, then a third on the same connection, then a non-inference route
        sock.sendall(
            _request("/v1/chat/completions", _chat("one"), **auth)
            + _request("/chat/completions", _chat("two"), **auth)
        )
        first, second = _read_responses(sock, 2)
        sock.sendall(_request("/v1/chat/completions", b"{not json", **auth))
        (bad,) = _read_responses(sock, 1)
        sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: test\r\n\r\n")
        (live,) = _read_responses(sock, 1)
    assert first[0] == second[0] == b"HTTP/1.1 200 OK"
    assert b'"one"' in first[2] and b'"two"' in second[2]
    assert first[1]["x-request-id"] == "pipelined"
    assert first[1]["x-routerd-attempts"] == "1"
    assert "date" in first[1]  # uvicorn's default headers still go out
    assert bad[0].startswith(b"HTTP/1.1 400") and b"invalid_json" in bad[2]
    assert live[0] == b"HTTP/1.1 200 OK"
    assert len(direct) == 3  # the three inference answers, written whole; not the health probe


def test_connection_close_is_honoured(server: RouterdServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            _request(
                "/v1/chat/completions",
                _chat("bye"),
                authorization="Bearer sk-test-master",
                connection="close",
            )
        )
        ((status, headers, body),) = _read_responses(sock, 1)
        assert status == b"HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        assert b'"bye"' in body
        assert sock.recv(1) == b""  # the server closed its end


class _Transport:
    """The transport side of a stream written through the direct send: what was written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...


class _StreamCycle(FakeCycle):
    """What the direct send touches of a cycle while it writes a stream (uvicorn's real FlowControl)."""

    def __init__(self) -> None:
        super().__init__()
        self.transport = _Transport()
        self.flow = FlowControl(self.transport)  # type: ignore[arg-type]
        self.disconnected = False
        self.response_started = self.response_complete = self.chunked_encoding = False
        self.access_log = False
        self.message_event = asyncio.Event()
        self.completed = 0

    def on_response(self) -> None:
        self.completed += 1


async def test_a_direct_stream_waits_while_the_client_buffer_is_full() -> None:
    cycle = _StreamCycle()
    send = protocol._DirectSend(cycle)  # type: ignore[arg-type]
    await send(_start((b"content-type", b"text/event-stream")))
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert cycle.transport.written == []  # held until the task waits
    await asyncio.sleep(0)
    assert len(cycle.transport.written) == 1  # the head with the first chunk, in one write
    assert cycle.transport.written[0].endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")

    await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
    cycle.flow.pause_writing()  # the client's buffer filled
    blocked = asyncio.create_task(
        send({"type": "http.response.body", "body": b"data: 3\n\n", "more_body": True})
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done()  # the writer waits for the client
    assert b"".join(cycle.transport.written).endswith(b"9\r\ndata: 2\n\n\r\n")  # what came before went out

    cycle.flow.resume_writing()
    await blocked
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
    body = b"".join(cycle.transport.written).partition(b"\r\n\r\n")[2]
    assert body == (
        b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    )
    assert cycle.response_complete and cycle.completed == 1 and not send.streaming


async def test_a_direct_stream_that_ends_before_it_waits_is_one_write() -> None:
    # the whole answer came in one upstream read: head, blocks and the end of the body go out together
    cycle = _StreamCycle()
    send = protocol._DirectSend(cycle)  # type: ignore[arg-type]
    await send(_start((b"content-type", b"text/event-stream")))
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    assert len(cycle.transport.written) == 1
    head, _, body = cycle.transport.written[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
    assert body == b"9\r\ndata: 1\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    assert cycle.response_complete and cycle.completed == 1
    await asyncio.sleep(0)  # the flush scheduled for the first block finds nothing left to write
    assert len(cycle.transport.written) == 1
