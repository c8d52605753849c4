"""FastHttpClient against real loopback servers: FakeOpenAI, a TLS server, and a scripted raw server
for what an ordinary server will not do on demand (close a keep-alive connection at the worst
moment, gzip, bodies until EOF)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from routerd.errors import APIConnectionError, Timeout
from routerd.http import FastHttpClient, HttpxClient, default_client
from routerd.testing import FakeOpenAI, Reply
from routerd.testing.openai_fake import Recorded

JSON_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}


class CountingFake(FakeOpenAI):
    """FakeOpenAI that also remembers which client port (= which connection) each request came on."""

    def __init__(self) -> None:
        super().__init__(api_key="sk-test")
        self.client_ports: list[int] = []

    async def record(self, request: web.Request) -> Recorded:
        assert request.transport is not None
        self.client_ports.append(request.transport.get_extra_info("peername")[1])
        return await super().record(request)


@pytest.fixture
async def fake() -> AsyncIterator[CountingFake]:
    async with CountingFake() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[FastHttpClient]:
    http = FastHttpClient()
    try:
        yield http
    finally:
        await http.aclose()


def chat(content: str = "hello there", **extra: object) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- plain requests ------------------------------------------------------------------------------


async def test_json_request_round_trip(fake: CountingFake, client: FastHttpClient) -> None:
    response = await client.request(
        "POST", f"{fake.base_url}/chat/completions", headers=JSON_HEADERS, content=chat(), timeout=5
    )
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == "hello there"
    sent = fake.requests[-1]
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.headers["host"] == f"127.0.0.1:{fake.port}"
    assert sent.headers["accept-encoding"] == "identity"
    assert sent.headers["content-length"] == str(len(chat()))


async def test_error_status_is_returned_with_its_body(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply.error(429, "slow down", retry_after=2))
    response = await client.request(
        "POST", f"{fake.base_url}/chat/completions", headers=JSON_HEADERS, content=chat(), timeout=5
    )
    assert response.status == 429
    assert response.headers["retry-after"] == "2"
    assert orjson.loads(response.content)["error"]["message"] == "slow down"


async def test_chunked_body_is_read_whole(fake: CountingFake, client: FastHttpClient) -> None:
    # a streamed answer is sent chunked; request() must reassemble it
    response = await client.request(
        "POST",
        f"{fake.base_url}/chat/completions",
        headers=JSON_HEADERS,
        content=chat("a b c", stream=True),
        timeout=5,
    )
    assert response.headers["transfer-encoding"] == "chunked"
    events = [line for line in response.content.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]"
    assert len(events) >= 3


async def test_caller_cannot_duplicate_managed_headers(fake: CountingFake, client: FastHttpClient) -> None:
    headers = {**JSON_HEADERS, "Content-Length": "999", "Connection": "close", "User-Agent": "tests"}
    response = await client.request(
        "POST", f"{fake.base_url}/chat/completions", headers=headers, content=chat(), timeout=5
    )
    assert response.status == 200
    assert fake.requests[-1].headers["content-length"] == str(len(chat()))
    assert fake.requests[-1].headers["user-agent"] == "tests"


async def test_header_injection_is_refused(fake: CountingFake, client: FastHttpClient) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        await client.request(
            "GET",
            f"{fake.base_url}/models",
            headers={"Authorization": "Bearer sk-test\r\nX-Evil: 1"},
            timeout=5,
        )
    assert fake.requests == []


async def test_params_go_through_httpx(fake: CountingFake, client: FastHttpClient) -> None:
    response = await client.request(
        "GET", f"{fake.base_url}/models", headers=JSON_HEADERS, params={"limit": 2, "after": None}, timeout=5
    )
    assert response.status == 200
    assert fake.requests[-1].query == {"limit": "2"}


# --- keep-alive ----------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(fake: CountingFake, client: FastHttpClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    for _ in range(3):
        response = await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
        assert response.status == 200
    async with client.stream(
        "POST", url, headers=JSON_HEADERS, content=chat(stream=True), timeout=5
    ) as stream:
        assert [line async for line in stream.aiter_lines()][-2] == b"data: [DONE]"
    await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
    assert len(fake.client_ports) == 5
    assert len(set(fake.client_ports)) == 1


async def test_concurrent_requests_use_separate_connections(
    fake: CountingFake, client: FastHttpClient
) -> None:
    url = f"{fake.base_url}/chat/completions"
    fake.enqueue(Reply(delay=0.05), Reply(delay=0.05))
    responses = await asyncio.gather(
        *(client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5) for _ in range(2))
    )
    assert [r.status for r in responses] == [200, 200]
    assert len(set(fake.client_ports)) == 2


async def test_idle_pool_is_bounded(fake: CountingFake) -> None:
    http = FastHttpClient(max_idle_per_origin=1)
    url = f"{fake.base_url}/chat/completions"
    try:
        fake.enqueue(Reply(delay=0.05), Reply(delay=0.05))
        await asyncio.gather(
            *(http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5) for _ in range(2))
        )
        await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
        await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
    finally:
        await http.aclose()
    first_two, last_two = fake.client_ports[:2], fake.client_ports[2:]
    # one of the two connections was kept, the other closed; later requests reuse the kept one
    assert len(set(last_two)) == 1
    assert last_two[0] in first_two


# --- streams -------------------------------------------------------------------------------------


async def test_sse_stream_line_by_line(fake: CountingFake, client: FastHttpClient) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": word}}]} for word in ("one", "two", "three")]
    fake.enqueue(Reply(chunks=chunks))
    async with client.stream(
        "POST",
        f"{fake.base_url}/chat/completions",
        headers=JSON_HEADERS,
        content=chat(stream=True),
        timeout=5,
    ) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        lines = [line async for line in stream.aiter_lines()]
    data = [line for line in lines if line]
    assert [orjson.loads(line[6:])["choices"][0]["delta"]["content"] for line in data[:3]] == [
        "one",
        "two",
        "three",
    ]
    assert data[3] == b"data: [DONE]"
    assert b"" in lines  # the blank lines between events are kept


async def test_stream_error_body_via_aread(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply.error(500, "boom"))
    async with client.stream(
        "POST",
        f"{fake.base_url}/chat/completions",
        headers=JSON_HEADERS,
        content=chat(stream=True),
        timeout=5,
    ) as stream:
        assert stream.status == 500
        assert orjson.loads(await stream.aread())["error"]["message"] == "boom"
    # the error body was read completely: the connection is reused
    await client.request(
        "POST", f"{fake.base_url}/chat/completions", headers=JSON_HEADERS, content=chat(), timeout=5
    )
    assert len(set(fake.client_ports)) == 1


async def test_stream_closed_early_closes_the_connection(fake: CountingFake, client: FastHttpClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    fake.enqueue(Reply(hang_after=1))
    async with client.stream(
        "POST", url, headers=JSON_HEADERS, content=chat(stream=True), timeout=5
    ) as stream:
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith(b"data: ")
        await lines.aclose()
    await fake.wait_disconnect()
    assert fake.disconnects == 1
    # the abandoned connection is not reused
    await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
    assert len(set(fake.client_ports)) == 2


async def test_cancelled_request_closes_the_connection(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply(hang=True))
    task = asyncio.create_task(
        client.request("POST", f"{fake.base_url}/chat/completions", headers=JSON_HEADERS, content=chat())
    )
    for _ in range(500):  # until the fake has the request (bounded: a broken client fails, not hangs)
        if fake.requests:
            break
        await asyncio.sleep(0.01)  # the fake offers no event for "request arrived"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_disconnect()
    assert fake.disconnects == 1


async def test_connection_cut_midstream_raises_connection_error(
    fake: CountingFake, client: FastHttpClient
) -> None:
    fake.enqueue(Reply(cut_after=2))
    with pytest.raises(APIConnectionError, match=r"cannot reach upstream http://127\.0\.0\.1"):
        async with client.stream(
            "POST",
            f"{fake.base_url}/chat/completions",
            headers=JSON_HEADERS,
            content=chat(stream=True),
            timeout=5,
        ) as stream:
            async for _ in stream.aiter_lines():
                pass


# --- timeouts and failures -----------------------------------------------------------------------


async def test_request_timeout(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply(hang=True))
    with pytest.raises(Timeout, match=r"did not answer in time \(http://127.0.0.1"):
        await client.request(
            "POST", f"{fake.base_url}/chat/completions", headers=JSON_HEADERS, content=chat(), timeout=0.2
        )
    await fake.wait_disconnect()


async def test_each_request_on_a_kept_connection_gets_its_own_deadline(
    fake: CountingFake, client: FastHttpClient
) -> None:
    """The connection's one timer was set for the first request's deadline; a later request's longer
    deadline must still be waited for in full, and a shorter one must still fire on time."""
    url = f"{fake.base_url}/chat/completions"
    await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=0.3)
    await asyncio.sleep(0.2)  # the first request's deadline passes while the connection is idle
    # orders of events on the loop's timer heap, not measured times: a 0.5 s sentinel has fired before
    # the 0.6 s deadline (waited in full), and a 0.6 s one has not when the 0.2 s deadline fires
    fake.enqueue(Reply(hang=True))
    earlier = asyncio.create_task(asyncio.sleep(0.5))
    with pytest.raises(Timeout):
        await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=0.6)
    assert earlier.done()
    fake.enqueue(Reply(hang=True))
    earlier = asyncio.create_task(asyncio.sleep(0.1))
    sentinel = asyncio.create_task(asyncio.sleep(0.6))
    with pytest.raises(Timeout):
        await client.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=0.2)
    assert earlier.done()
    assert not sentinel.done()
    sentinel.cancel()


async def test_stream_head_timeout(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply(hang=True))
    with pytest.raises(Timeout):
        async with client.stream(
            "POST",
            f"{fake.base_url}/chat/completions",
            headers=JSON_HEADERS,
            content=chat(stream=True),
            timeout=0.2,
        ):
            pytest.fail("the head never came")


async def test_stream_idle_read_timeout(fake: CountingFake, client: FastHttpClient) -> None:
    fake.enqueue(Reply(hang_after=1))
    lines: list[bytes] = []
    with pytest.raises(Timeout):
        async with client.stream(
            "POST",
            f"{fake.base_url}/chat/completions",
            headers=JSON_HEADERS,
            content=chat(stream=True),
            timeout=0.2,
        ) as stream:
            async for line in stream.aiter_lines():
                lines.append(line)
    assert lines[0].startswith(b"data: ")  # what came before the silence was delivered
    await fake.wait_disconnect()


async def test_refused_port_raises_connection_error(client: FastHttpClient) -> None:
    port = free_port()
    with pytest.raises(APIConnectionError, match=f"cannot reach upstream http://127.0.0.1:{port}"):
        await client.request("POST", f"http://127.0.0.1:{port}/v1/x", headers={}, content=b"{}", timeout=5)
    with pytest.raises(APIConnectionError):
        async with client.stream("POST", f"http://127.0.0.1:{port}/v1/x", headers={}, timeout=5):
            pytest.fail("connected to a closed port")


async def test_error_messages_keep_query_strings_out(client: FastHttpClient) -> None:
    port = free_port()
    with pytest.raises(APIConnectionError) as caught:
        await client.request("GET", f"http://127.0.0.1:{port}/v1/x?key=secret-key", headers={}, timeout=5)
    assert "secret-key" not in str(caught.value)


# --- a scripted raw server -----------------------------------------------------------------------

Handler = Callable[[int, int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class RawServer:
    """Answers each request with ``handler(connection_no, request_no, reader, writer)``.

    The handler returns False to close the connection. Requests are read (head and
    ``Content-Length`` body) before the handler is called; ``connections`` counts accepted ones.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/test"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                if not await self.handler(number, self.requests, reader, writer):
                    return
                await writer.drain()
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def stale_second_request(
    conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    if conn == 1 and request == 2:
        return False  # the server "timed out" the idle connection just as the request came
    writer.write(OK)
    return True


async def test_stale_keepalive_connection_is_retried_once_for_an_idempotent_request(
    client: FastHttpClient,
) -> None:
    async with RawServer(stale_second_request) as server:
        first = await client.request("GET", server.url, headers={}, timeout=5)
        second = await client.request("GET", server.url, headers={}, timeout=5)
        pool = client._get_pool()
        # the stale connection is forgotten: only the live one is kept, and only its slot is counted
        assert len(pool.all) == 1 and not next(iter(pool.all)).closed
        assert list(pool.open.values()) == [1]
    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2
    assert server.requests == 3


async def test_post_on_a_stale_connection_is_not_sent_again(client: FastHttpClient) -> None:
    """The POST reached the upstream (it may have been billed): the client must not send it twice;
    the router decides whether to retry."""
    async with RawServer(stale_second_request) as server:
        await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        with pytest.raises(APIConnectionError):
            await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        third = await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert third.status == 200
    assert server.requests == 3  # the first, the one the stale connection swallowed, the third
    assert server.connections == 2


@pytest.mark.parametrize(("method", "requests"), [("GET", 3), ("POST", 2)])
async def test_stale_stream_connection_is_retried_only_when_idempotent(
    client: FastHttpClient, method: str, requests: int
) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if conn == 1 and request == 2:
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ndata: x\n\n")
        return True

    async with RawServer(handler) as server:
        await client.request(method, server.url, headers={}, timeout=5)
        try:
            async with client.stream(method, server.url, headers={}, timeout=5) as stream:
                assert [line async for line in stream.aiter_lines()] == [b"data: x", b""]
        except APIConnectionError:
            assert method == "POST"
        else:
            assert method == "GET"
    assert server.requests == requests


async def test_retry_happens_only_once(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if request == 1:
            writer.write(OK)
            return True
        return False  # every later request: closed without an answer

    async with RawServer(handler) as server:
        await client.request("GET", server.url, headers={}, timeout=5)
        with pytest.raises(APIConnectionError):
            await client.request("GET", server.url, headers={}, timeout=5)
    assert server.requests == 3  # the first, the stale attempt, one retry


async def test_fresh_connection_closed_without_answer_is_not_retried(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        return False

    async with RawServer(handler) as server:
        with pytest.raises(APIConnectionError):
            await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert server.requests == 1


async def test_connection_closed_after_part_of_the_answer_is_not_retried(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if request == 1:
            writer.write(OK)
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        return False

    async with RawServer(handler) as server:
        await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        with pytest.raises(APIConnectionError):
            await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert server.requests == 2


async def test_connection_close_header_is_honoured(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        return True  # the server would even keep it open: the client must not reuse it

    async with RawServer(handler) as server:
        for _ in range(2):
            assert (await client.request("GET", server.url, headers={}, timeout=5)).content == b"{}"
    assert server.connections == 2


async def test_chunks_split_mid_line(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: o", b"ne\r\n\r\nda", b"ta: two\n", b"\ndata: [DONE]"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    async with RawServer(handler) as server:
        async with client.stream("POST", server.url, headers={}, content=b"{}", timeout=5) as stream:
            lines = [line async for line in stream.aiter_lines()]
        assert lines == [b"data: one", b"", b"data: two", b"", b"data: [DONE]"]
        again = await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert again.content == b"data: one\r\n\r\ndata: two\n\ndata: [DONE]"
    assert server.connections == 1


async def test_body_until_eof(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok": true}')
        return False

    async with RawServer(handler) as server:
        response = await client.request("GET", server.url, headers={}, timeout=5)
    assert orjson.loads(response.content) == {"ok": True}


async def test_gzip_answers_are_decompressed(client: FastHttpClient) -> None:
    body = gzip.compress(b'{"compressed": true}\n' * 50)

    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    async with RawServer(handler) as server:
        response = await client.request("GET", server.url, headers={}, timeout=5)
        async with client.stream("GET", server.url, headers={}, timeout=5) as stream:
            lines = [line async for line in stream.aiter_lines()]
    assert response.content == b'{"compressed": true}\n' * 50
    assert lines == [b'{"compressed": true}'] * 50


async def test_interim_100_continue_is_skipped(client: FastHttpClient) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        return True

    async with RawServer(handler) as server:
        response = await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        again = await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert (response.status, response.content, again.status) == (200, b"{}", 200)
    assert server.connections == 1


# --- HTTPS ---------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "routerd test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
async def tls_fake(tmp_path: Path) -> AsyncIterator[tuple[FakeOpenAI, Path]]:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    fake = FakeOpenAI(api_key="sk-test")
    runner = web.AppRunner(fake.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    fake.port = int(runner.addresses[0][1])
    try:
        yield fake, cert
    finally:
        await runner.cleanup()


async def test_https_with_a_custom_ssl_context(tls_fake: tuple[FakeOpenAI, Path]) -> None:
    fake, cert = tls_fake
    trust = ssl.create_default_context(cafile=str(cert))
    http = FastHttpClient(ssl_context=trust)
    url = f"https://127.0.0.1:{fake.port}/v1/chat/completions"
    try:
        response = await http.request("POST", url, headers=JSON_HEADERS, content=chat("secure"), timeout=5)
        async with http.stream(
            "POST", url, headers=JSON_HEADERS, content=chat(stream=True), timeout=5
        ) as stream:
            lines = [line async for line in stream.aiter_lines()]
    finally:
        await http.aclose()
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == "secure"
    assert lines[-2] == b"data: [DONE]"
    assert fake.requests[0].headers["host"] == f"127.0.0.1:{fake.port}"


async def test_https_rejects_an_untrusted_certificate(tls_fake: tuple[FakeOpenAI, Path]) -> None:
    fake, _ = tls_fake
    http = FastHttpClient()  # the system trust store does not know the test certificate
    try:
        with pytest.raises(APIConnectionError, match="SSLCertVerificationError"):
            await http.request(
                "GET", f"https://127.0.0.1:{fake.port}/v1/models", headers=JSON_HEADERS, timeout=5
            )
    finally:
        await http.aclose()
    assert fake.requests == []


# --- the default client --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FastHttpClient),
        ({"ROUTERD_HTTP_CLIENT": "httpx"}, HttpxClient),
        ({"ROUTERD_HTTP_CLIENT": "fast"}, FastHttpClient),
        ({"HTTPS_PROXY": "http://proxy.internal:3128"}, HttpxClient),
        ({"http_proxy": "http://proxy.internal:3128"}, HttpxClient),
        ({"http_proxy": "http://proxy.internal:3128", "ROUTERD_HTTP_CLIENT": "fast"}, FastHttpClient),
    ],
)
def test_default_client(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: type) -> None:
    for name in (
        "ROUTERD_HTTP_CLIENT",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert type(default_client()) is expected


async def test_client_is_usable_again_after_aclose(fake: CountingFake) -> None:
    http = FastHttpClient()
    url = f"{fake.base_url}/chat/completions"
    await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
    await http.aclose()
    response = await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
    await http.aclose()
    assert response.status == 200
    assert len(set(fake.client_ports)) == 2


# --- uvloop (the daemon's loop) ------------------------------------------------------------------


def test_works_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[int, list[bytes], int, int]:
        async with CountingFake() as fake:
            http = FastHttpClient()
            url = f"{fake.base_url}/chat/completions"
            try:
                response = await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
                async with http.stream(
                    "POST", url, headers=JSON_HEADERS, content=chat(stream=True), timeout=5
                ) as stream:
                    lines = [line async for line in stream.aiter_lines()]
                fake.enqueue(Reply(hang_after=1))
                async with http.stream(
                    "POST", url, headers=JSON_HEADERS, content=chat(stream=True), timeout=5
                ) as stream:
                    await anext(stream.aiter_lines())
                await fake.wait_disconnect()
                await http.request("POST", url, headers=JSON_HEADERS, content=chat(), timeout=5)
            finally:
                await http.aclose()
            return response.status, lines, len(set(fake.client_ports)), fake.disconnects

    status, lines, connections, disconnects = uvloop.run(scenario())
    assert status == 200
    assert lines[-2] == b"data: [DONE]"
    assert connections == 2  # three calls shared one; the abandoned stream's was not reused
    assert disconnects == 1


async def test_retired_origin_idle_connections_close_and_busy_ones_are_not_pooled_again(
    client: FastHttpClient,
) -> None:
    async def handler(
        conn: int, request: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ndata: x\n\n")
        return True

    async with RawServer(handler) as server:
        await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        assert len(client._get_pool().all) == 1  # kept alive, idle
        # a reload removed every deployment using this upstream
        client.retire_origins([server.url], kept=["http://127.0.0.1:9/v1"])
        assert client._get_pool().all == set()  # the idle connection closed at once
        # a request in flight on the old table still completes, on a connection not pooled afterwards
        async with client.stream("POST", server.url, headers={}, content=b"{}", timeout=5) as stream:
            assert [line async for line in stream.aiter_lines()] == [b"data: x", b""]
        assert client._get_pool().all == set()
        # a later reload adds the upstream back: pooling resumes
        client.retire_origins([], kept=[server.url])
        await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
        await client.request("POST", server.url, headers={}, content=b"{}", timeout=5)
    assert len(client._get_pool().all) == 1
    assert server.connections == 3  # the first, the retired stream's, and one reused by the last two
