"""Request and response heads of FastHttpClient: what is sent and what callers read.

Request heads are rendered once per (method, URL, headers) and kept in a bounded cache
(``HEAD_CACHE_SIZE``); response headers are decoded in one pass when the head is complete. These
tests pin what both must keep: the bytes on the wire, CR/LF refused, the bound, and the response
mapping (lower-case names, repeated names joined, UTF-8 values with surrogateescape).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from routerd.http import FastHttpClient
from routerd.http.conn import _decode_headers
from routerd.http.fast import HEAD_CACHE_SIZE


class HeadServer:
    """A loopback HTTP/1.1 server that records each raw request head and answers with ``answer``."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> HeadServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):  # bounded: far more requests than any test sends on one connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(self.answer)
                await writer.drain()
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


@pytest.fixture
async def client() -> AsyncIterator[FastHttpClient]:
    http = FastHttpClient(user_agent="heads-test")
    try:
        yield http
    finally:
        await http.aclose()


# --- request heads -------------------------------------------------------------------------------


async def test_request_heads_are_the_same_bytes_from_the_cache(client: FastHttpClient) -> None:
    headers = {"Authorization": "Bearer sk-test", "Content-Type": "application/json", "X-Case": "Keep"}
    async with HeadServer(OK) as server:
        url = server.url()
        await client.request("POST", url, headers=headers, content=b"{}", timeout=5)
        await client.request("POST", url, headers=headers, content=b'{"a": 1}', timeout=5)
        await client.request("POST", url, headers=headers, content=None, timeout=5)
        await client.request("GET", server.url("/v1/models"), headers=headers, timeout=5)
        host = f"127.0.0.1:{server.port}"
    common = (
        f"Host: {host}\r\nAuthorization: Bearer sk-test\r\nContent-Type: application/json\r\n"
        "X-Case: Keep\r\nUser-Agent: heads-test\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
    )
    post = f"POST /v1/chat/completions HTTP/1.1\r\n{common}"
    assert [head.decode() for head in server.heads] == [
        f"{post}Content-Length: 2\r\nConnection: keep-alive\r\n\r\n",
        f"{post}Content-Length: 8\r\nConnection: keep-alive\r\n\r\n",
        f"{post}Content-Length: 0\r\nConnection: keep-alive\r\n\r\n",
        f"GET /v1/models HTTP/1.1\r\n{common}Connection: keep-alive\r\n\r\n",
    ]
    assert len(client._heads) == 2  # the three POSTs share one entry: only the framing differs


async def test_a_changed_header_value_is_sent_not_the_cached_one(client: FastHttpClient) -> None:
    # the cache is keyed on the values, not on the mapping: a mapping changed in place is re-rendered
    headers = {"X-Trace": "first", "Accept": "text/event-stream", "accept-encoding": "gzip"}
    async with HeadServer(OK) as server:
        await client.request("POST", server.url(), headers=headers, content=b"{}", timeout=5)
        headers["X-Trace"] = "second"
        await client.request("POST", server.url(), headers=headers, content=b"{}", timeout=5)
    assert [b"X-Trace: first" in head for head in server.heads] == [True, False]
    assert b"X-Trace: second\r\n" in server.heads[1]
    for head in server.heads:  # the caller's own Accept / Accept-Encoding, not the defaults
        assert b"Accept: text/event-stream\r\n" in head and b"Accept: */*" not in head
        assert b"accept-encoding: gzip\r\n" in head and b"identity" not in head


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-test\r\nX-Evil: 1"},
        {"X-A": "one\ntwo"},
        {"X-A": "one\rtwo"},
        {"X-Evil\r\nX-B": "1"},
    ],
)
async def test_cr_or_lf_is_refused_every_time(client: FastHttpClient, headers: dict[str, str]) -> None:
    async with HeadServer(OK) as server:
        for _ in range(2):  # a refused head is not cached: the second call is refused too
            with pytest.raises(ValueError, match="CR or LF"):
                await client.request("POST", server.url(), headers=headers, content=b"{}", timeout=5)
            with pytest.raises(ValueError, match="CR or LF"):
                async with client.stream("POST", server.url(), headers=headers, content=b"{}", timeout=5):
                    pass
    assert server.heads == []
    assert client._heads == {}


async def test_the_head_cache_is_bounded(client: FastHttpClient) -> None:
    # per-request values (a trace id) make every head new; the cache empties at its bound
    sizes = []
    async with HeadServer(OK) as server:
        url = server.url()
        for number in range(HEAD_CACHE_SIZE + 5):
            headers = {"Authorization": "Bearer sk-test", "X-Request-Id": f"req-{number}"}
            await client.request("POST", url, headers=headers, content=b"{}", timeout=5)
            sizes.append(len(client._heads))
    assert max(sizes) == HEAD_CACHE_SIZE
    assert sizes[HEAD_CACHE_SIZE - 1] == HEAD_CACHE_SIZE and sizes[HEAD_CACHE_SIZE] == 1
    assert sizes[-1] == 5
    last = server.heads[-1]
    assert f"X-Request-Id: req-{HEAD_CACHE_SIZE + 4}\r\n".encode() in last
    assert len(server.heads) == HEAD_CACHE_SIZE + 5


# --- response headers ----------------------------------------------------------------------------

MANY = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Set-Cookie: a=1\r\n"
    b"X-RateLimit-Remaining-Requests: 99\r\n"
    b"set-cookie: b=2\r\n"
    b"X-Name: caf\xc3\xa9 \xe2\x82\r\n"  # UTF-8, then a cut-off sequence
    b"X-Latin: \xe9t\xe9\r\n"  # not UTF-8 at all
    b"X-Empty:\r\n"
    b"SET-COOKIE: c=3\r\n"
    b"Content-Length: 2\r\n"
    b"\r\n{}"
)
MANY_HEADERS = {
    "content-type": "application/json",
    "set-cookie": "a=1, b=2, c=3",
    "x-ratelimit-remaining-requests": "99",
    "x-name": "café \udce2\udc82",
    "x-latin": "\udce9t\udce9",
    "x-empty": "",
    "content-length": "2",
}


async def test_response_headers_keep_their_semantics(client: FastHttpClient) -> None:
    async with HeadServer(MANY) as server:
        response = await client.request("POST", server.url(), headers={}, content=b"{}", timeout=5)
        async with client.stream("POST", server.url(), headers={}, content=b"{}", timeout=5) as stream:
            streamed = dict(stream.headers)
            body = await stream.aread()
    assert dict(response.headers) == MANY_HEADERS
    assert list(response.headers) == list(MANY_HEADERS)  # first-seen order, repeats in place
    assert (streamed, body, response.content) == (MANY_HEADERS, b"{}", b"{}")
    assert response.headers["x-name"].encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xe2\x82"


async def test_interim_answer_headers_are_not_kept(client: FastHttpClient) -> None:
    interim = b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\nSet-Cookie: early=1\r\n\r\n"
    async with HeadServer(interim + MANY) as server:
        response = await client.request("POST", server.url(), headers={}, content=b"{}", timeout=5)
    assert dict(response.headers) == MANY_HEADERS


async def test_trailer_fields_join_the_headers_without_replacing_any(client: FastHttpClient) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nX-A: 1\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Checksum: abc\r\nX-A: 2\r\nx-checksum: again\r\n\r\n"
    )
    async with HeadServer(answer) as server:
        response = await client.request("POST", server.url(), headers={}, content=b"{}", timeout=5)
        async with client.stream("POST", server.url(), headers={}, content=b"{}", timeout=5) as stream:
            body = await stream.aread()
            streamed = dict(stream.headers)
    head = {"transfer-encoding": "chunked", "trailer": "X-Checksum", "x-a": "1"}
    assert (response.content, body) == (b"{}", b"{}")
    assert dict(response.headers) == streamed == {**head, "x-checksum": "abc"}


def test_decoding_each_header_apart_gives_the_same_mapping() -> None:
    # the parser never hands over LF in a name or NUL in a value; if it ever did, the one-pass
    # decoding's counts differ and each header is decoded on its own, with the same result
    raw = [b"X-A", b"1\x002", b"Bad\nName", b"v", b"X-A", b"\xff3"]
    assert _decode_headers(raw) == {"x-a": "1\x002, \udcff3", "bad\nname": "v"}
    assert _decode_headers([]) == {}
    assert _decode_headers([b"Only", b"one"]) == {"only": "one"}
