"""Porting suite, part 3: the import paths and helper functions LiteLLM's docs use, and the price/model
data they read (bundled, registered, or from a ROUTERD_MODEL_PRICES file)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

import routerd
import routerd.cost as cost
from routerd.testing.openai_fake import MODERATION_MARKER, FakeOpenAI
from tests.sdk.conftest import OPENAI_KEY, serve_in_thread

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered models start empty and are forgotten after the test."""
    monkeypatch.setattr(cost, "_registered", {})
    monkeypatch.setattr(cost, "_env_loaded", False)
    saved = dict(routerd.model_cost)
    yield
    cost._cached_price.cache_clear()
    routerd.model_cost.clear()
    routerd.model_cost.update(saved)


def test_litellm_import_paths_exist() -> None:
    from routerd.exceptions import BadRequestError, RateLimitError
    from routerd.integrations.custom_logger import CustomLogger
    from routerd.types.utils import Message, ModelResponse
    from routerd.utils import get_model_info, supports_function_calling

    assert issubclass(RateLimitError, routerd.OpenAIError) and issubclass(
        BadRequestError, routerd.OpenAIError
    )
    assert not issubclass(RateLimitError, routerd.APIError)  # siblings, as in LiteLLM
    assert ModelResponse is routerd.ModelResponse and Message is routerd.Message
    assert callable(get_model_info) and callable(supports_function_calling)
    assert hasattr(CustomLogger, "async_log_success_event")


def test_get_model_info_and_supports_helpers() -> None:
    info = routerd.get_model_info("openai/gpt-4o-2024-08-06")
    assert info["max_input_tokens"] == 128000
    assert info["input_cost_per_token"] > 0
    assert info["litellm_provider"] == "openai"
    assert routerd.supports_function_calling("gpt-4o")
    assert routerd.supports_vision("claude-3-5-sonnet-20241022")
    assert not routerd.supports_vision("gpt-3.5-turbo")
    assert routerd.supports_reasoning("o3-mini")
    assert not routerd.supports_function_calling("no-such-model-xyz")
    with pytest.raises(ValueError, match="register_model"):
        routerd.get_model_info("no-such-model-xyz")


def test_get_supported_openai_params_follows_the_provider() -> None:
    openai_params = routerd.get_supported_openai_params("gpt-4o")
    anthropic_params = routerd.get_supported_openai_params("claude-3-haiku-20240307")
    assert openai_params is not None and anthropic_params is not None
    assert "logit_bias" in openai_params and "logit_bias" not in anthropic_params
    assert "tools" in anthropic_params
    assert routerd.get_supported_openai_params("who-knows") is None


def test_get_llm_provider_returns_litellms_tuple() -> None:
    assert routerd.get_llm_provider("anthropic/claude-3-haiku-20240307")[:2] == (
        "claude-3-haiku-20240307",
        "anthropic",
    )


def test_register_model_sets_prices_and_model_cost(fresh_registry: None) -> None:
    assert routerd.cost_per_token("acme-1", 1000, 1000) is None
    routerd.register_model(
        {
            "acme-1": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 3e-6,
                "max_input_tokens": 4096,
                "litellm_provider": "openai",
                "supports_function_calling": True,
            }
        }
    )
    assert routerd.cost_per_token("acme-1", 1000, 1000) == pytest.approx((0.001, 0.003))
    assert routerd.model_cost["acme-1"]["max_input_tokens"] == 4096
    assert routerd.supports_function_calling("acme-1", custom_llm_provider="openai")
    routerd.register_model({"gpt-4o": {"input_cost_per_token": 5e-6, "output_cost_per_token": 5e-6}})
    assert routerd.cost_per_token("gpt-4o", 1000, 0) == pytest.approx((0.005, 0.0))  # overrides the table
    response = routerd.completion(model="gpt-4o", messages=HI, mock_response="ok")
    assert routerd.completion_cost(response) == pytest.approx(
        response.usage.prompt_tokens * 5e-6 + response.usage.completion_tokens * 5e-6
    )


def test_register_model_rejects_non_numeric_prices(fresh_registry: None) -> None:
    with pytest.raises(ValueError, match="input_cost_per_token"):
        routerd.register_model({"acme-2": {"input_cost_per_token": "cheap"}})


def test_routerd_model_prices_file_is_read(tmp_path: Path) -> None:
    prices = tmp_path / "model_prices_and_context_window.json"
    prices.write_bytes(
        orjson.dumps(
            {
                "sample_spec": {"max_tokens": "set to max_output_tokens"},
                "acme-file-model": {
                    "input_cost_per_token": 2e-6,
                    "output_cost_per_token": 4e-6,
                    "max_input_tokens": 1000,
                },
            }
        )
    )
    code = (
        "import routerd; print(routerd.cost_per_token('acme-file-model', 1000, 1000));"
        "print(routerd.get_model_info('acme-file-model')['max_input_tokens'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"ROUTERD_MODEL_PRICES": str(prices), "PYTHONPATH": str(Path(routerd.__file__).parents[1])},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out[0].startswith("(0.002") and out[-1] == "1000"


class PassThroughFake(FakeOpenAI):
    """The OpenAI fake plus images, rerank and responses routes (canned answers); moderations are the
    fake's own (flagged when the input holds its marker word)."""

    def routes(self) -> list[web.RouteDef]:
        prefix = self.api_prefix
        # before FakeOpenAI's own routes for the same paths: the first registered route answers
        return [
            web.post(
                f"{prefix}/images/generations",
                self._answer({"created": 1, "data": [{"url": "http://img/1"}]}),
            ),
            web.post(f"{prefix}/rerank", self._answer({"results": [{"index": 1, "relevance_score": 0.9}]})),
            web.post(
                f"{prefix}/responses", self._answer({"id": "resp_1", "object": "response", "output": []})
            ),
            *super().routes(),
        ]

    def _answer(self, payload: dict[str, Any]) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            await self.record(request)
            denied = self.check_auth(request)
            return denied or web.json_response(payload)

        return handler


@pytest.fixture
def passthrough_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[PassThroughFake]:
    with serve_in_thread(PassThroughFake(api_key=OPENAI_KEY)) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_API_BASE", fake.base_url)
        yield fake


def test_pass_through_endpoints(passthrough_fake: PassThroughFake) -> None:
    assert routerd.image_generation(prompt="a cat", model="dall-e-3").data[0].url == "http://img/1"
    assert routerd.moderation(input=f"a {MODERATION_MARKER} here").results[0].flagged is True
    assert routerd.moderation(input="hello").results[0].flagged is False
    assert routerd.rerank(model="openai/rerank-1", query="q", documents=["a", "b"]).results[0].index == 1
    assert routerd.responses(input="hi", model="gpt-4o").id == "resp_1"
    paths = [r.path for r in passthrough_fake.requests]
    assert paths == [
        "/v1/images/generations",
        "/v1/moderations",
        "/v1/moderations",
        "/v1/rerank",
        "/v1/responses",
    ]
    assert passthrough_fake.requests[0].json == {"prompt": "a cat", "model": "dall-e-3"}


def test_pass_through_errors_are_routerd_errors(passthrough_fake: PassThroughFake) -> None:
    with pytest.raises(routerd.AuthenticationError):
        routerd.moderation(input="hello", api_key="sk-wrong")


def test_batch_completion_keeps_order_and_errors_in_place() -> None:
    results = routerd.batch_completion(
        model="gpt-4o", messages=[HI, [{"role": "user", "content": "second"}]], mock_response="ok"
    )
    assert [r.choices[0].message.content for r in results] == ["ok", "ok"]
    failed = routerd.batch_completion(model="gpt-4o", messages=[HI], mock_response="litellm.RateLimitError")
    assert isinstance(failed[0], routerd.RateLimitError)


def test_completion_with_retries_retries(openai_env: Any, instant_backoff: list[float]) -> None:
    from routerd.testing.openai_fake import Reply

    openai_env.enqueue(Reply.error(503), Reply.error(503), Reply.error(503))
    response = routerd.completion_with_retries(model="gpt-4o", messages=HI)
    assert response._hidden_params["retries"] == 3


def test_file_content_has_litellms_content_attribute(tmp_path: Path) -> None:
    from routerd.sdk.types import FileContent

    stored = FileContent(b'{"a": 1}')
    assert stored.content == b'{"a": 1}' and stored.text == '{"a": 1}' and stored.json() == {"a": 1}
    assert stored == b'{"a": 1}'  # still bytes
    stored.write_to_file(tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"a": 1}'


def test_batch_completion_runs_at_most_the_worker_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import routerd.sdk.extra as extra

    monkeypatch.setattr(extra, "BATCH_COMPLETION_WORKERS", 2)
    active, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def fake_completion(**kwargs: Any) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] == 2:
                release.set()
        release.wait(5)
        with lock:
            active[0] -= 1
        return "done"

    monkeypatch.setattr(extra, "completion", fake_completion)
    assert routerd.batch_completion(model="m", messages=[HI] * 6) == ["done"] * 6
    assert peak[0] == 2


def test_routerd_exceptions_are_the_classes_the_sdk_raises() -> None:
    import openai

    import routerd.exceptions

    assert routerd.exceptions.RateLimitError is routerd.RateLimitError
    assert issubclass(routerd.exceptions.RateLimitError, openai.RateLimitError)
    with pytest.raises(routerd.exceptions.RateLimitError):
        routerd.completion(model="gpt-4o", messages=HI, mock_response="litellm.RateLimitError")
