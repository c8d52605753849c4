"""The inference fast path in the HTTP protocol: one write per complete answer, nothing lost or reordered."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routerd.server import protocol
from routerd.server.protocol import HeldHeadTransport
from routerd.testing.server import RouterdServer


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _held() -> tuple[HeldHeadTransport, RecordingTransport]:
    real = RecordingTransport()
    return HeldHeadTransport(real), real  # type: ignore[arg-type]


def test_head_and_body_leave_in_one_write() -> None:
    held, real = _held()
    held.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    held.write(b'{"ok":true}')
    assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"ok":true}']


def test_a_stream_joins_only_its_first_chunk_to_the_head() -> None:
    held, real = _held()
    for data in (b"HEAD", b"chunk-1", b"chunk-2", b""):
        held.write(data)
    assert real.writes == [b"HEADchunk-1", b"chunk-2", b""]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_closing_sends_a_held_head_first(end: str) -> None:
    held, real = _held()
    held.write(bytearray(b"HEAD"))
    getattr(held, end)()
    assert real.writes == [b"HEAD"]
    assert real.closed
    assert held.is_closing()  # everything else is the real transport's


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
    held: list[str] = []

    class CountingHeldHeadTransport(HeldHeadTransport):
        def __init__(self, transport: Any) -> None:
            held.append("fast path")
            super().__init__(transport)

    monkeypatch.setattr(protocol, "HeldHeadTransport", CountingHeldHeadTransport)
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
    assert len(held) == 3  # the three inference requests, not the health probe


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
