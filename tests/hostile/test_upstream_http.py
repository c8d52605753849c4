"""Issue 21, the HTTP layer: upstreams that misbehave at the socket level, against both clients.

Each test reproduces a finding with :class:`~tests.hostile.upstream.RawUpstream` on loopback and
asserts the bound: answers that are not HTTP (H2) end the call at once as a retryable upstream error
and drop the connection; no client follows a redirect (M1); bodies, decoded bodies and stream lines
are bounded, and an encoding routerd did not ask for is refused (M5); ``Retry-After`` is parsed
defensively and capped (L2). Calls are made without a deadline where a hang is the bug, so only the
fix can end them; ``settle`` bounds every wait in count and time.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import google.auth.exceptions
import httpx
import orjson
import pytest

from routerd.errors import APIConnectionError, BadGatewayError, OpenAIError
from routerd.http import FastHttpClient, HttpClient, HttpLimits, HttpxClient, default_client
from routerd.providers.errors import MAX_RETRY_AFTER, ErrorContext, parse_retry_after
from routerd.providers.google_auth import MAX_TOKEN_RESPONSE_BYTES, UrllibRequest
from routerd.settings import HttpSettings
from routerd.testing import run_in_thread
from routerd.testing.server import RouterdServer

from .upstream import Act, RawUpstream, completion, head

KINDS = ["fast", "httpx"]
KIB = 1024
MIB = 1024 * 1024


def make_client(kind: str, limits: HttpLimits | None = None) -> HttpClient:
    if kind == "fast":
        return FastHttpClient(limits=limits)
    return HttpxClient(limits=limits)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(kind: str) -> AsyncIterator[HttpClient]:
    http = make_client(kind)
    try:
        yield http
    finally:
        await http.aclose()


async def settle(condition: Callable[[], bool], what: str) -> None:
    """Wait for an effect on the upstream's side, polling at most 500 times."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def always(act: Act) -> Callable[[int, bytes], Act]:
    return lambda number, request: act


# --- H2: answers that are not HTTP -------------------------------------------------------------------

MALFORMED = {
    "header line without a colon": b"HTTP/1.1 200 OK\r\nContent-Type application/json\r\nContent-Length: 2\r\n\r\n{}",
    "bad status line": b"HTTP/1.1 OK 200\r\nContent-Length: 2\r\n\r\n{}",
    "not HTTP at all": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("answer", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_unparsable_answer_fails_at_once_and_drops_the_connection(
    client: HttpClient, answer: bytes
) -> None:
    # the upstream keeps the connection open after its garbage: only the parse error can end the call
    async with RawUpstream(always(Act(answer, hang=True))) as upstream:
        async with asyncio.timeout(30):  # a hang guard only; the call has no deadline of its own
            with pytest.raises(APIConnectionError, match=r"cannot reach upstream http://127\.0\.0\.1"):
                await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=None)
        await settle(lambda: upstream.client_closed == 1, "the client dropped the broken connection")


async def test_unparsable_chunk_mid_stream_fails_at_once_after_what_came_before(client: HttpClient) -> None:
    first = b'data: {"n": 1}\n\n'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(first), first)
        + b"not-a-size\r\n"
    )
    lines: list[bytes] = []
    async with RawUpstream(always(Act(answer, hang=True))) as upstream:
        async with asyncio.timeout(30):
            with pytest.raises(APIConnectionError):
                async with client.stream("POST", upstream.url, headers={}, content=b"{}") as stream:
                    async for line in stream.aiter_lines():
                        lines.append(line)
        await settle(lambda: upstream.client_closed == 1, "the client dropped the broken stream")
    assert lines[:1] == [b'data: {"n": 1}']


async def test_the_fast_client_keeps_working_after_a_parse_error() -> None:
    replies = iter([MALFORMED["bad status line"], completion()])
    client = FastHttpClient()
    try:
        async with RawUpstream(lambda number, request: Act(next(replies))) as upstream:
            with pytest.raises(APIConnectionError):
                await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=None)
            response = await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        assert response.status == 200
        assert upstream.connections == 2  # the broken connection was not pooled
    finally:
        await client.aclose()


ENDLESS_HEADS = {
    "one endless header": b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * (1024 * KIB),
    "endless repeated headers": b"HTTP/1.1 200 OK\r\n" + b"Set-Cookie: a=b\r\n" * 100_000,
}


@pytest.mark.parametrize("answer", list(ENDLESS_HEADS.values()), ids=list(ENDLESS_HEADS))
async def test_an_endless_head_is_refused(client: HttpClient, answer: bytes) -> None:
    async with RawUpstream(always(Act(answer, hang=True))) as upstream:
        async with asyncio.timeout(30):
            with pytest.raises(OpenAIError) as caught:
                await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=None)
        await settle(lambda: upstream.client_closed == 1, "the client dropped the connection")
    assert caught.value.retryable  # an upstream fault: the router fails over


async def test_repeated_headers_are_joined(client: HttpClient) -> None:
    answer = head("200 OK", {"Via": "a", "via": "b", "VIA": "c", "X-One": "1"}, b"{}")
    async with RawUpstream(always(Act(answer))) as upstream:
        response = await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
    assert response.headers["via"] == "a, b, c"
    assert response.headers["x-one"] == "1"


# --- M1: redirects ------------------------------------------------------------------------------------


@pytest.fixture
async def elsewhere() -> AsyncIterator[RawUpstream]:
    """Where a redirect points: it must never see a request (it would carry the key)."""
    async with RawUpstream(always(Act(completion()))) as upstream:
        yield upstream


@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "307 Temporary Redirect"])
async def test_no_client_follows_a_redirect(client: HttpClient, elsewhere: RawUpstream, status: str) -> None:
    redirect = head(status, {"Location": elsewhere.url})
    async with RawUpstream(always(Act(redirect))) as upstream:
        with pytest.raises(BadGatewayError, match="redirect"):
            await client.request("POST", upstream.url, headers={"api-key": "k"}, content=b"{}", timeout=30)
        with pytest.raises(BadGatewayError, match="redirect"):
            async with client.stream("POST", upstream.url, headers={"api-key": "k"}, content=b"{}"):
                pytest.fail("a redirect was read as an answer")
    assert elsewhere.requests == 0


async def test_an_injected_httpx_client_set_to_follow_redirects_does_not(elsewhere: RawUpstream) -> None:
    redirect = head("302 Found", {"Location": elsewhere.url})
    client = HttpxClient(httpx.AsyncClient(follow_redirects=True), owned=True)
    try:
        async with RawUpstream(always(Act(redirect))) as upstream:
            with pytest.raises(BadGatewayError):
                await client.request("GET", upstream.url, headers={"x-api-key": "k"}, timeout=30)
            with pytest.raises(BadGatewayError):
                await client.request("GET", upstream.url, headers={}, params={"q": "1"}, timeout=30)
    finally:
        await client.aclose()
    assert elsewhere.requests == 0


# --- M5: size bombs -----------------------------------------------------------------------------------

SMALL = HttpLimits(max_body_bytes=4 * KIB, max_line_bytes=2 * KIB)


async def request_with(
    kind: str, limits: HttpLimits, answer: bytes, headers: dict[str, str] | None = None
) -> bytes:
    client = make_client(kind, limits)
    try:
        async with RawUpstream(always(Act(answer, close=True))) as upstream:
            response = await client.request(
                "POST", upstream.url, headers=headers or {}, content=b"{}", timeout=30
            )
            return response.content
    finally:
        await client.aclose()


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


BODIES = {
    "content-length": head("200 OK", {}, b"x" * 5000),
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*[b"x" * 1000] * 5),
    "until eof": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000,
    "gzip bomb": head("200 OK", {"Content-Encoding": "gzip"}, gzip.compress(b"0" * (8 * MIB))),
}


@pytest.mark.parametrize("answer", list(BODIES.values()), ids=list(BODIES))
async def test_a_body_over_the_bound_is_refused(kind: str, answer: bytes) -> None:
    with pytest.raises(BadGatewayError, match="larger than 4096 bytes"):
        await request_with(kind, SMALL, answer)


async def test_a_body_within_the_bound_is_read(kind: str) -> None:
    assert await request_with(kind, SMALL, head("200 OK", {}, b"x" * 4096)) == b"x" * 4096
    zipped = head("200 OK", {"Content-Encoding": "gzip"}, gzip.compress(b"y" * 4096))
    assert await request_with(kind, SMALL, zipped) == b"y" * 4096


async def test_an_encoding_routerd_did_not_ask_for_is_refused(kind: str) -> None:
    answer = head("200 OK", {"Content-Encoding": "br"}, b"\x1b\x00\x00")
    with pytest.raises(BadGatewayError, match="Content-Encoding 'br'"):
        await request_with(kind, SMALL, answer)
    # a caller that asked for it gets it as it came
    assert await request_with(kind, SMALL, answer, headers={"Accept-Encoding": "br"}) == b"\x1b\x00\x00"


async def stream_lines(kind: str, limits: HttpLimits, answer: bytes) -> list[bytes]:
    client = make_client(kind, limits)
    try:
        async with (
            RawUpstream(always(Act(answer, close=True))) as upstream,
            client.stream("POST", upstream.url, headers={}, content=b"{}", timeout=30) as stream,
        ):
            return [line async for line in stream.aiter_lines()]
    finally:
        await client.aclose()


def sse(body: bytes, encoding: str | None = None) -> bytes:
    headers = {"Content-Type": "text/event-stream", "Connection": "close"}
    if encoding:
        headers["Content-Encoding"] = encoding
    lines = [f"{name}: {value}" for name, value in headers.items()]
    return ("HTTP/1.1 200 OK\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_a_stream_line_without_newline_is_bounded(kind: str) -> None:
    # 1 MiB of one line, in whatever pieces TCP delivers: refused once past 2 KiB, not buffered whole
    with pytest.raises(BadGatewayError, match="a stream line larger than 2048 bytes"):
        await stream_lines(kind, SMALL, sse(b"data: " + b"a" * MIB))


async def test_a_long_line_arriving_in_pieces_within_the_bound_is_whole(kind: str) -> None:
    line = b"data: " + b"b" * 2000
    assert await stream_lines(kind, SMALL, sse(line + b"\n\n" + line + b"\r\n")) == [line, b"", line]


async def test_a_gzip_bomb_in_a_stream_is_bounded_by_the_line(kind: str) -> None:
    bomb = gzip.compress(b"data: " + b"0" * (16 * MIB))
    with pytest.raises(BadGatewayError, match="a stream line"):
        await stream_lines(kind, SMALL, sse(bomb, "gzip"))


async def test_a_large_gzip_stream_of_short_lines_is_decoded_in_steps(kind: str) -> None:
    plain = b"".join(b"data: %d\n\n" % n for n in range(200_000))  # 2.3 MiB: several inflate steps
    lines = await stream_lines(kind, SMALL, sse(gzip.compress(plain), "gzip"))
    assert lines == plain.split(b"\n")[:-1]


async def test_an_error_body_read_from_a_stream_is_bounded(kind: str) -> None:
    client = make_client(kind, SMALL)
    answer = head("500 Internal Server Error", {"Connection": "close"}, b"e" * 10_000)
    try:
        async with RawUpstream(always(Act(answer, close=True))) as upstream:
            with pytest.raises(BadGatewayError, match="larger than 4096 bytes"):
                async with client.stream(
                    "POST", upstream.url, headers={}, content=b"{}", timeout=30
                ) as stream:
                    await stream.aread()
    finally:
        await client.aclose()


# --- the bounds are settings that reach the clients ---------------------------------------------------


@pytest.mark.parametrize("choice", ["fast", "httpx"])
async def test_settings_bound_the_default_client(choice: str) -> None:
    settings = HttpSettings(http_client=choice, upstream_max_body_mb=0.001, upstream_max_line_mb=0.001)
    client = default_client(settings)
    try:
        async with RawUpstream(always(Act(head("200 OK", {}, b"z" * 2000)))) as upstream:
            with pytest.raises(BadGatewayError, match="larger than 1048 bytes"):
                await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
    finally:
        await client.aclose()


def test_environment_variables_reach_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_UPSTREAM_MAX_BODY_MB", "2")
    monkeypatch.setenv("ROUTERD_UPSTREAM_MAX_LINE_MB", "0.5")
    monkeypatch.setenv("ROUTERD_HTTP_CLIENT", "fast")
    client = default_client()
    assert isinstance(client, FastHttpClient)
    assert client.limits == HttpLimits(max_body_bytes=2 * MIB, max_line_bytes=MIB // 2)


def raw_config(directory: Path, base: str, extra: str = "") -> Path:
    path = directory / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-raw-upstream-key}}
    model_info: {{id: raw}}
router_settings: {{num_retries: 0, allowed_fails: 100}}
{extra}
""",
        encoding="utf-8",
    )
    return path


def test_the_daemon_settings_bound_its_upstream_client(tmp_path: Path) -> None:
    big = completion("w" * 20_000)
    with run_in_thread(RawUpstream(always(Act(big))), start_timeout=10) as upstream:  # type: ignore[arg-type]
        config = raw_config(tmp_path, upstream.base_url)
        body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
        with RouterdServer.from_file(config, upstream_max_body_mb=0.01) as server:
            bounded = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
        with RouterdServer.from_file(config) as server:
            unbounded = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    assert bounded.status_code == 502
    assert bounded.json()["error"]["message"].endswith("larger than 10485 bytes")
    assert set(bounded.json()["error"]) == {"message", "type", "param", "code"}
    assert unbounded.status_code == 200


# --- L2: Retry-After ----------------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "Infinity"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "1e999"}, None),  # float() says inf
        ({"retry-after": "99999999999"}, MAX_RETRY_AFTER),
        ({"retry-after": "9" * 400}, None),  # longer than any number worth reading
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: now
        ({"retry-after": "Tue, 14 Nov 2023 22:13:20 GMT"}, 0.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_RETRY_AFTER),
        ({"retry-after": "Mon, 99 Foo 0000 99:99:99 GMT"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),  # a broken ms value falls back
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "1e300"}, MAX_RETRY_AFTER),
    ],
)
def test_retry_after_is_parsed_defensively_and_capped(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers, NOW) == expected


def test_an_infinite_retry_after_makes_an_ordinary_error() -> None:
    errors = ErrorContext(provider="openai", model="gpt-4o-mini", wall_clock=lambda: NOW)
    body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}})
    for value in ("inf", "1e308", "nan"):
        error = errors.from_response(429, {"retry-after": value}, body)
        assert error.status_code == 429
        seconds = error.response_headers().get("retry-after")
        assert seconds is None or 1 <= int(seconds) <= MAX_RETRY_AFTER
    # a value given directly (an adapter reading its own field) is capped the same way
    made = errors.make(BadGatewayError, "x", retry_after=float("inf"))
    assert made.retry_after is None
    assert errors.make(BadGatewayError, "x", retry_after=1e12).retry_after == MAX_RETRY_AFTER


@pytest.mark.parametrize(("value", "relayed"), [("inf", None), ("1e12", str(int(MAX_RETRY_AFTER)))])
def test_the_daemon_relays_a_huge_retry_after_capped(tmp_path: Path, value: str, relayed: str | None) -> None:
    body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit", "code": None}})
    answer = head("429 Too Many Requests", {"Retry-After": value, "Content-Type": "application/json"}, body)
    with run_in_thread(RawUpstream(always(Act(answer))), start_timeout=10) as upstream:  # type: ignore[arg-type]
        config = raw_config(tmp_path, upstream.base_url)
        with RouterdServer.from_file(config) as server:
            response = httpx.post(
                f"{server.base_url}/v1/chat/completions",
                json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
    assert response.status_code == 429
    assert response.json()["error"]["message"]
    assert response.headers.get("retry-after") == relayed


# --- H2 through the daemon: failover, accounting, nothing left in flight -----------------------------


def metric_values(text: str, name: str, **labels: str) -> list[float]:
    """Values of the series of ``name`` whose labels include ``labels``."""
    values = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{key}="{wanted}"' in series for key, wanted in labels.items()):
            values.append(float(value))
    return values


def two_deployments(directory: Path, bad: str, good: str, router: str) -> Path:
    path = directory / "config.yaml"
    params = "model: openai/gpt-4o-mini, api_key: sk-raw-upstream-key"
    path.write_text(
        f"""
model_list:
  - model_name: gpt
    litellm_params: {{{params}, api_base: "{bad}/v1", timeout: 1}}
    model_info: {{id: bad}}
  - model_name: gpt
    litellm_params: {{{params}, api_base: "{good}/v1", timeout: 5}}
    model_info: {{id: good}}
router_settings: {router}
""",
        encoding="utf-8",
    )
    return path


def test_a_deployment_answering_garbage_fails_over_and_is_counted(tmp_path: Path) -> None:
    # allowed_fails keeps the broken deployment in rotation, so every request may meet it
    broken = RawUpstream(always(Act(MALFORMED["header line without a colon"], hang=True)))
    with (
        run_in_thread(broken, start_timeout=10) as bad,  # type: ignore[arg-type]
        run_in_thread(RawUpstream(always(Act(completion()))), start_timeout=10) as good,  # type: ignore[arg-type]
    ):
        config = two_deployments(
            tmp_path, bad.base_url, good.base_url, "{num_retries: 2, allowed_fails: 1000}"
        )
        body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
        with RouterdServer.from_file(config) as server, httpx.Client(base_url=server.base_url) as http:
            statuses = [
                http.post("/v1/chat/completions", json=body, timeout=30).status_code for _ in range(20)
            ]
            metrics = http.get("/metrics", timeout=30).text
            health = {
                entry["id"]: entry
                for entry in http.get("/health", timeout=30).json()["deployments"]["deployments"]
            }
    assert statuses == [200] * 20
    assert bad.requests >= 1  # the garbage was met ...
    failed = metric_values(metrics, "routerd_upstream_requests_total", deployment="bad")
    assert sum(failed) == bad.requests  # ... and every meeting was counted against the deployment
    assert metric_values(metrics, "routerd_requests_in_flight", endpoint="chat") == [0.0]
    # the breaker's accounting saw each failure, and nothing is left in flight on either deployment
    assert health["bad"]["failures"] == bad.requests
    assert health["good"]["successes"] == 20
    assert health["bad"]["in_flight"] == health["good"]["in_flight"] == 0


# --- the Vertex token endpoint client (google-auth over urllib) ---------------------------------------


async def test_the_token_client_does_not_follow_a_redirect(elsewhere: RawUpstream) -> None:
    redirect = head("302 Found", {"Location": elsewhere.url})
    async with RawUpstream(always(Act(redirect))) as upstream:
        response = await asyncio.to_thread(
            UrllibRequest(), upstream.url, "POST", b"assertion=signed-jwt", {"Content-Type": "x"}, 30
        )
    assert response.status == 302  # google-auth sees the redirect as the failure it is
    assert elsewhere.requests == 0


async def test_the_token_client_reads_a_bounded_answer() -> None:
    answer = head(
        "200 OK", {"Content-Type": "application/json"}, b"{" + b" " * (MAX_TOKEN_RESPONSE_BYTES + 10)
    )
    async with RawUpstream(always(Act(answer))) as upstream:
        with pytest.raises(google.auth.exceptions.TransportError, match="larger than"):
            await asyncio.to_thread(UrllibRequest(), upstream.url, "POST", b"x", {}, 30)


ENDLESS_TRAILERS = {
    "one endless trailer": b"X-Pad: " + b"p" * (1024 * KIB),
    "endless distinct trailers": b"".join(b"X-T%d: v\r\n" % i for i in range(60_000)),
}


@pytest.mark.parametrize("trailers", list(ENDLESS_TRAILERS.values()), ids=list(ENDLESS_TRAILERS))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_endless_trailers_after_a_chunked_body_are_refused(
    client: HttpClient, trailers: bytes, stream: bool
) -> None:
    # the trailer section never ends and the upstream keeps the connection open: only a bound on the
    # bytes after the last body byte ends the call (the parser keeps trailer lines whole)
    first = b'data: {"n": 1}\n\n'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n" % (len(first), first)
        + trailers
    )
    lines: list[bytes] = []
    async with RawUpstream(always(Act(answer, hang=True))) as upstream:
        async with asyncio.timeout(30):  # a hang guard only; the call has no deadline of its own
            with pytest.raises(OpenAIError) as caught:
                if stream:
                    async with client.stream("POST", upstream.url, headers={}, content=b"{}") as response:
                        async for line in response.aiter_lines():
                            lines.append(line)
                else:
                    await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=None)
        await settle(lambda: upstream.client_closed == 1, "the client dropped the connection")
    assert caught.value.retryable
    assert lines[:1] == ([b'data: {"n": 1}'] if stream else [])
