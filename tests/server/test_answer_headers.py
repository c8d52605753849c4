"""The successful-answer headers: routing_headers, and the block of lines the direct path renders."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from docs_pages import doc_page

from routerd.routing.types import RoutingInfo
from routerd.server import answer_headers
from routerd.server.answer_headers import (
    HEAD_BLOCK,
    asgi_start,
    header_value,
    public_api_base,
    routing_block,
    routing_headers,
)
from routerd.testing.server import RouterdServer


def _info(deployment: str = "dep-1", group: str = "chat") -> RoutingInfo:
    info = RoutingInfo()
    info.deployment_id, info.attempts, info.retries, info.fallbacks = deployment, 3, 1, 1
    info.group, info.api_base = group, "https://u:pw@h.test/v1?key=k"
    return info


def _lines(block: bytes) -> dict[str, str]:
    start = asgi_start({"type": "http.response.start", "status": 200, "headers": [], HEAD_BLOCK: block})
    assert HEAD_BLOCK not in start
    return {name.decode(): value.decode("latin-1") for name, value in start["headers"]}


def test_the_block_says_what_routing_headers_says() -> None:
    info = _info()
    block = routing_block("req-\u00e9", info)
    assert block.endswith(b"\r\n") and b"\r\n\r\n" not in block
    assert _lines(block) == routing_headers("req-\u00e9", info)
    # the route's lines are remembered; the request id is the request's own
    assert _lines(routing_block("req-2", info)) == routing_headers("req-2", info)


def test_remembered_routes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_headers, "MAX_ROUTES", 8)
    monkeypatch.setattr(answer_headers, "_routes", {})
    for i in range(50):  # a client naming a new wildcard model per request
        block = routing_block("r", _info(f"tpl:model-{i}", f"openai/model-{i}"))
        assert _lines(block)["x-litellm-model-group"] == f"openai/model-{i}"
        assert len(answer_headers._routes) <= 8


def test_values_that_cannot_be_sent_as_they_are_are_percent_encoded() -> None:
    assert header_value("mock/\u00e9\tx") == "mock/\u00e9\tx"  # printable Latin-1 (and tab): as is
    assert header_value("mock/\u043c\u043e") == "mock/%D0%BC%D0%BE"
    assert header_value("a\r\nset-cookie: x") == "a%0D%0Aset-cookie: x"
    assert header_value("50%\x7f") == "50%25%7F"
    info = _info("tpl:\u043c\u043e", "openai/\u043c\u043e\r\nx-evil: 1")
    lines = _lines(routing_block("req\x01", info))
    assert lines["x-litellm-model-group"] == "openai/%D0%BC%D0%BE%0D%0Ax-evil: 1"
    assert lines["x-routerd-model-id"] == "tpl:%D0%BC%D0%BE"
    assert lines["x-request-id"] == "req%01"
    assert "x-evil" not in lines
    assert lines == routing_headers("req\x01", info)


def test_a_start_without_a_block_is_left_alone() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]}
    assert asgi_start(start) is start


def test_non_latin_model_names_are_answered_with_their_headers(tmp_path: Path) -> None:
    """A wildcard model named in Cyrillic (or with a control character) is answered, plain and
    streamed, with its name percent-encoded in the headers (it was a plain-text 500)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        'model_list:\n  - model_name: "mock/*"\n    litellm_params: {model: "mock/*", mock_response: hi}\n'
    )
    with RouterdServer.from_file(config) as server:
        for stream in (False, True):
            answer = httpx.post(
                server.base_url + "/v1/chat/completions",
                json={
                    "model": "mock/\u043c\u043e",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "x"}],
                },
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-litellm-model-group"] == "mock/%D0%BC%D0%BE"
            assert answer.headers["x-routerd-model-id"].endswith(":%D0%BC%D0%BE")
            assert ("data: [DONE]" in answer.text) is stream


def test_litellm_headers_mirror_the_routerd_ones() -> None:
    info = RoutingInfo()
    info.deployment_id, info.attempts, info.retries, info.fallbacks = "dep-1", 3, 1, 1
    info.group, info.api_base = "chat", "https://user:secret@llm.example.test:8443/v1?api-key=secret#x"
    headers = routing_headers("req-1", info)
    assert {k: v for k, v in headers.items() if k.startswith("x-litellm-")} == {
        "x-litellm-call-id": "req-1",
        "x-litellm-model-id": "dep-1",
        "x-litellm-attempted-retries": "1",
        "x-litellm-attempted-fallbacks": "1",
        "x-litellm-model-group": "chat",
        "x-litellm-model-api-base": "https://llm.example.test:8443/v1",
    }
    assert "secret" not in repr(headers)


def test_api_base_header_only_for_plain_http_urls() -> None:
    assert public_api_base("https://h.test/v1") == "https://h.test/v1"
    assert public_api_base("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert public_api_base("os.environ/X") == ""
    assert public_api_base("") == ""
    assert public_api_base("https://h.test/\u00e9") == ""


def test_the_daemon_sends_x_litellm_headers_beside_x_routerd(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params: {model: mock/gpt-4o-mini, mock_response: hi, api_base: 'http://u:pw@127.0.0.1:9/v1'}\n"
        "    model_info: {id: mock-1, input_cost_per_token: 0.001, output_cost_per_token: 0.002}\n"
    )
    with RouterdServer.from_file(config) as server:
        answer = httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hello"}]},
            timeout=10,
        )
        failed = httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "mock_timeout": True},
            timeout=10,
        )
    assert answer.status_code == 200, answer.text
    h = answer.headers
    assert h["x-litellm-model-id"] == h["x-routerd-model-id"] == "mock-1"
    assert h["x-litellm-call-id"] == h["x-request-id"]
    assert h["x-litellm-response-cost"] == h["x-routerd-response-cost"]
    assert float(h["x-litellm-response-cost"]) > 0
    assert (h["x-litellm-attempted-retries"], h["x-litellm-attempted-fallbacks"]) == ("0", "0")
    assert h["x-litellm-model-api-base"] == "http://127.0.0.1:9/v1"
    assert failed.status_code == 504
    assert failed.json()["error"]["type"] == "timeout"
    assert failed.headers["x-litellm-attempted-retries"] == failed.headers["x-routerd-attempted-retries"]
    assert int(failed.headers["x-litellm-attempted-retries"]) >= 1


def test_the_bound_and_the_encoding_are_documented() -> None:
    page = " ".join(doc_page("api/openai.md").split())
    assert f"at most {answer_headers.MAX_ROUTES} routes (`routerd.server.answer_headers.MAX_ROUTES`" in page
    model = "mock/\u043c\u043e\u0434\u0435\u043b\u044c"
    assert f"`{model}` becomes `{header_value(model)}`" in page
