"""The successful-answer headers, rendered as bytes on the hot path, say what routing_headers says."""

from __future__ import annotations

from pathlib import Path

import httpx

from routerd.routing.types import RoutingInfo
from routerd.server.inference import _answer_headers, public_api_base, routing_headers
from routerd.testing.server import RouterdServer


def test_answer_headers_match_routing_headers() -> None:
    info = RoutingInfo()
    info.deployment_id, info.attempts, info.retries, info.fallbacks = "dep-1", 3, 1, 1
    raw = _answer_headers("req-\u00e9", info, 272)
    assert raw[:2] == [(b"content-type", b"application/json"), (b"content-length", b"272")]
    rendered = {name.decode(): value.decode("latin-1") for name, value in raw[2:]}
    assert rendered == routing_headers("req-\u00e9", info)


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
