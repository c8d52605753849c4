"""Behind an HTTP proxy the daemon's client is httpx, and its calls really go through the proxy."""

from __future__ import annotations

import pytest

from routerd.errors import BadGatewayError
from routerd.http import HttpxClient, default_client
from tests.hostile.upstream import Act, RawUpstream, completion, head

PROXY_VARS = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARS, "ROUTERD_HTTP_CLIENT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_calls_go_through_the_configured_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    async with RawUpstream(lambda number, request: Act(completion("via the proxy"))) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.base_url)
        client = default_client()
        try:
            assert isinstance(client, HttpxClient)
            response = await client.request(
                "POST", "http://upstream.invalid/v1/chat/completions", headers={}, content=b"{}", timeout=30
            )
            # multipart uploads (files / fine-tuning) take the same client
            upload = await client.request(
                "POST",
                "http://upstream.invalid/v1/files",
                headers={},
                files={"file": ("a.jsonl", b"{}\n", "application/jsonl")},
                data={"purpose": "fine-tune"},
                timeout=30,
            )
        finally:
            await client.aclose()
    assert response.status == 200 and upload.status == 200
    # an absolute-form request line: the proxy, not the upstream, was connected to
    assert proxy.heads[0].startswith(b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1")
    assert proxy.heads[1].startswith(b"POST http://upstream.invalid/v1/files HTTP/1.1")


async def test_a_redirect_through_the_proxy_is_not_followed(no_proxy_env: pytest.MonkeyPatch) -> None:
    redirect = head("302 Found", {"Location": "http://elsewhere.invalid/steal"})
    async with RawUpstream(lambda number, request: Act(redirect)) as proxy:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.base_url)
        no_proxy_env.setenv("HTTP_PROXY", proxy.base_url)
        client = default_client()
        try:
            with pytest.raises(BadGatewayError, match="redirect"):
                await client.request(
                    "GET", "http://upstream.invalid/v1/files", headers={"api-key": "k"}, timeout=30
                )
        finally:
            await client.aclose()
    assert proxy.requests == 1
