"""Connection abuse and hostile requests against the server (issue 21: M2, M6, L4, L10 and the protocol
errors): raw socket clients against a real daemon on loopback, bounded in count and time."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routerd.testing.openai_fake import FakeOpenAI, Reply, run_in_thread
from routerd.testing.server import RouterdServer

KEY = "sk-bounds-master"
AUTH = {"authorization": f"Bearer {KEY}"}
CONFIG = f"""
model_list:
  - model_name: echo
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {KEY}
"""
# the bounds under test, small enough to act within a test's seconds
LIMITS: dict[str, Any] = {
    "max_header_bytes": 4096,
    "header_timeout": 0.5,
    "body_timeout": 0.5,
    "keep_alive_timeout": 0.5,
    "max_connections": 16,
}
WAIT = 10.0  # a socket read never waits longer than this: the bounds above act well within it
UVICORN_KEEP_ALIVE = 5.0  # uvicorn's default keep-alive timeout, which the setting replaces


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    path: Path = tmp_path_factory.mktemp("bounds") / "routerd.yaml"
    path.write_text(CONFIG)
    with RouterdServer.from_file(path, **LIMITS) as running:
        yield running


def _connect(server: RouterdServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (bounded by WAIT per read)."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _split(answer: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def _read_answer(sock: socket.socket) -> bytes:
    """One complete answer with a content-length (head and body may come in separate writes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_within(sock: socket.socket) -> bool:
    """True when the server closes ``sock`` (recv gives EOF or a reset) before WAIT runs out."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- M2: heads ------------------------------------------------------------------------------------


def test_an_oversized_head_is_refused_with_431_in_openai_shape(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 10_000 + b"\r\n\r\n")
        status, headers, body = _split(_read_all(sock))
    assert status == 431
    assert body["error"]["code"] == "headers_too_large"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert headers["x-request-id"]


def test_an_oversized_head_dripped_in_pieces_is_refused_before_it_ends(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(1000):  # at most 1 MB: the server stops reading long before
                sock.sendall(b"a" * 1024)
                sent += 1024
                time.sleep(0.001)
    assert sent < 1000 * 1024


def test_an_overlong_url_is_refused_with_414(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/models?" + b"q" * 10_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body = _split(_read_all(sock))
    assert status in (414, 431)
    assert body["error"]["code"] in ("url_too_long", "headers_too_large")


def test_a_head_within_the_limit_is_served(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\nx-ok: " + b"a" * 3000 + b"\r\n\r\n")
        data = _read_answer(sock)
    assert data.startswith(b"HTTP/1.1 200")


def test_a_slow_head_is_closed_after_the_header_timeout(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\n")  # and never the rest
        assert _closed_within(sock)


def test_a_connection_that_sends_nothing_is_closed(server: RouterdServer) -> None:
    with _connect(server) as sock:
        assert _closed_within(sock)


def test_a_slow_body_is_closed_after_the_body_timeout(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
            + KEY.encode()
            + b"\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        answer = b""
        try:
            answer = _read_all(sock)
        except ConnectionResetError:
            pass
    # closed without a 200: either nothing or the 499-style end of a cut request
    assert not answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/embeddings", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1/responses", "openai"),
        ("/v1/audio/transcriptions", "openai"),
    ],
)
@pytest.mark.parametrize("key", [None, "sk-not-the-key"])
def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(
    server: RouterdServer, path: str, shape: str, key: str | None
) -> None:
    # the head promises a large body that never comes: the 401 must not wait for it (it used to be read,
    # up to the body size bound, and parsed, for any caller)
    auth = b"" if key is None else b"authorization: Bearer " + key.encode() + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(
            b"POST " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n" + auth
            + b"content-type: application/json\r\ncontent-length: 900000\r\n\r\n"
        )  # fmt: skip
        answer = b""
        while not answer.endswith(b"}"):  # the JSON error body, or the server closing (bounded by WAIT)
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status, _, body = _split(answer)
    assert status == 401
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    else:
        assert body["error"]["code"] == "invalid_api_key"
    assert "sk-not-the-key" not in json.dumps(body)


def test_the_bounds_apply_to_every_request_of_a_kept_alive_connection(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nx-big: " + b"a" * 5000)  # over the limit, unfinished
        status, _, body = _split(_read_all(sock))
    assert (status, body["error"]["code"]) == (431, "headers_too_large")
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\n")  # a second head that never ends
        assert _closed_within(sock)


def test_an_idle_keep_alive_connection_is_closed(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        # keep_alive_timeout is 0.5 s here; uvicorn's own 5 s would not close it before this read gives up
        sock.settimeout(UVICORN_KEEP_ALIVE / 2)
        assert _closed_within(sock)


# -- M2: a flood of idle and slow connections -------------------------------------------------------


def test_a_flood_of_idle_connections_does_not_shut_out_probes_or_clients(server: RouterdServer) -> None:
    flood = [_connect(server) for _ in range(3 * LIMITS["max_connections"])]
    try:
        for sock in flood[::2]:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # slowloris: a head that never ends
        with httpx.Client(base_url=server.base_url, timeout=WAIT) as client:
            assert client.get("/health/liveness").status_code == 200
            answer = client.post(
                "/v1/chat/completions",
                headers=AUTH,
                json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert answer.status_code == 200
        assert len(server._server.server_state.connections) <= LIMITS["max_connections"]
    finally:
        for sock in flood:
            sock.close()


# -- protocol errors and request ids -------------------------------------------------------------------


def test_bad_chunked_framing_is_answered_in_openai_shape(server: RouterdServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
        )
        status, headers, body = _split(_read_all(sock))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body["error"]["code"] == "invalid_http_request"
    assert headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/models", 200),
        ("GET", "/health", 200),
        ("GET", "/health/readiness", 200),
        ("GET", "/v1/nothing-here", 404),
        ("GET", "/v1/chat/completions", 405),
        ("GET", "/v1/files", 400),  # no files_settings
    ],
)
def test_every_answer_carries_a_request_id(
    server: RouterdServer, method: str, path: str, status: int
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=WAIT) as client:
        answer = client.request(method, path, headers=AUTH)
        echoed = client.request(method, path, headers={**AUTH, "x-request-id": "req-from-client"})
    assert answer.status_code == status
    assert len(answer.headers["x-request-id"]) == 32
    assert echoed.headers["x-request-id"] == "req-from-client"


# -- L4: control characters in a model name -------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/gpt\r\nx-evil: 1", "openai/gpt\x00", "echo\n", "openai/a\tb"])
def test_a_model_name_with_control_characters_is_a_400(server: RouterdServer, model: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=WAIT) as client:
        answer = client.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"


# -- M6: a client that leaves stops the work done for it ------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_disconnect_cancels_the_upstream_call_and_its_retries(tmp_path: Path, stream: bool) -> None:
    with run_in_thread(FakeOpenAI(api_key="sk-up")) as fake:
        fake.enqueue(*(Reply(hang=True) for _ in range(5)))
        config = tmp_path / "routerd.yaml"
        config.write_text(
            f"""
model_list:
  - model_name: hangs
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {fake.base_url}
      api_key: sk-up
      num_retries: 3
      timeout: 60
general_settings:
  master_key: {KEY}
"""
        )
        with RouterdServer.from_file(config) as server, _connect(server) as sock:
            body = json.dumps(
                {"model": "hangs", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
            ).encode()
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
                + KEY.encode()
                + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                + body
            )
            _wait_until(lambda: len(fake.requests) >= 1)
            sock.close()  # the client gives up
            _wait_until(lambda: fake.disconnects >= 1)  # the upstream saw its connection closed
            _wait_until(lambda: _in_flight(server) == 0)
            time.sleep(0.3)  # a retry, if any, would reach the fake now
        assert len(fake.requests) == 1


def _in_flight(server: RouterdServer) -> int:
    with httpx.Client(base_url=server.base_url, timeout=WAIT) as client:
        report = client.get("/health", headers=AUTH).json()
    return sum(entry["in_flight"] for entry in report["deployments"]["deployments"])


def _wait_until(condition: Any, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# -- issue 19: the fast paths' guards -----------------------------------------------------------------


def test_middleware_on_the_app_is_refused(tmp_path: Path) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    from routerd.config import load_config
    from routerd.server.app import MiddlewareBypassedError, create_app

    path = tmp_path / "routerd.yaml"
    path.write_text(CONFIG)
    app = create_app(load_config(path))
    with pytest.raises(MiddlewareBypassedError, match="bypass"):
        app.add_middleware(GZipMiddleware)
    app.user_middleware.append(__import__("starlette.middleware").middleware.Middleware(GZipMiddleware))
    with pytest.raises(MiddlewareBypassedError):
        app.build_middleware_stack()


def test_a_uvicorn_without_the_protocol_hooks_fails_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from routerd.server import protocol

    protocol.check_uvicorn()  # the installed one has them
    monkeypatch.delattr(HttpToolsProtocol, "_start_asgi_task")
    with pytest.raises(RuntimeError, match="_start_asgi_task"):
        protocol.check_uvicorn()


def test_the_connection_bounds_are_serve_flags() -> None:
    from routerd.cli import _BOUND_FLAGS, build_parser

    args = build_parser().parse_args(
        [
            "serve",
            "c.yaml",
            "--max-header-bytes",
            "2048",
            "--header-timeout",
            "2.5",
            "--max-connections",
            "99",
        ]
    )
    assert (args.max_header_bytes, args.header_timeout, args.max_connections) == (2048, 2.5, 99)
    assert {dest for dest, _, _ in _BOUND_FLAGS.values()} == {
        "max_header_bytes",
        "header_timeout",
        "body_timeout",
        "keep_alive_timeout",
        "max_connections",
    }


def test_the_default_connection_limit_follows_the_open_file_limit() -> None:
    import resource

    from routerd.server.limits import MIN_CONNECTIONS, ConnectionLimits, default_max_connections
    from routerd.settings import Settings

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_connections() == max(MIN_CONNECTIONS, soft // 2)
    assert ConnectionLimits.from_settings(Settings()).max_connections == default_max_connections()
    assert ConnectionLimits.from_settings(Settings(max_connections=500)).max_connections == 500


# -- L7: numbers from query strings and headers ------------------------------------------------------------


@pytest.mark.parametrize("samples", ["%C2%B2", "%D9%A3", "-1", "1e3", "0"])
def test_explain_samples_that_are_not_ascii_digits_are_a_400(server: RouterdServer, samples: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=WAIT) as client:
        answer = client.get(f"/v1/routerd/explain?model=echo&samples={samples}", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "samples"
