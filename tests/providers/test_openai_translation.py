"""What the OpenAI-family adapters precompute and send (pure: no network)."""

from __future__ import annotations

import pytest

from routerd.config.table import ModelInfo
from routerd.errors import APIConnectionError, ConfigError
from routerd.providers.base import CHAT, COMPLETIONS, get_adapter
from routerd.providers.infer import split_model
from routerd.providers.openai import OpenAIEndpoint, body_defaults, pick_headers, strip_routerd_keys


def test_prepare_precomputes_urls_and_headers(make_deployment) -> None:
    dep = make_deployment("openai", "gpt-4o", api_key="sk-abc", organization="org-1")
    ep = dep.prepared
    assert isinstance(ep, OpenAIEndpoint)
    assert ep.chat_url == "https://api.openai.com/v1/chat/completions"
    assert ep.completions_url == "https://api.openai.com/v1/completions"
    assert ep.embeddings_url == "https://api.openai.com/v1/embeddings"
    assert ep.headers == {
        "content-type": "application/json",
        "authorization": "Bearer sk-abc",
        "openai-organization": "org-1",
    }
    assert ep.errors.secrets == ("sk-abc",)
    assert "sk-abc" not in repr(dep)


@pytest.mark.parametrize(
    ("api_base", "chat_url"),
    [
        ("http://localhost:1234/v1", "http://localhost:1234/v1/chat/completions"),
        ("http://localhost:1234/v1/", "http://localhost:1234/v1/chat/completions"),
        ("http://gpu:8080/v1/chat/completions", "http://gpu:8080/v1/chat/completions"),
        ("http://proxy/openai", "http://proxy/openai/chat/completions"),
    ],
)
def test_api_base_override_for_compatible_servers(make_deployment, api_base: str, chat_url: str) -> None:
    ep = make_deployment("openai", "llama-3", api_base=api_base).prepared
    assert ep.chat_url == chat_url
    assert "authorization" not in ep.headers  # LM Studio / llama.cpp without a key


def test_environment_fallbacks(make_deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_API_BASE", "http://env-base/v1")
    ep = make_deployment("openai", "gpt-4o").prepared
    assert ep.headers["authorization"] == "Bearer sk-from-env"
    assert ep.chat_url == "http://env-base/v1/chat/completions"
    # what the deployment says wins over the environment
    ep = make_deployment("openai", "gpt-4o", api_key="sk-own", api_base="http://own/v1").prepared
    assert ep.headers["authorization"] == "Bearer sk-own"
    assert ep.chat_url.startswith("http://own/v1/")


def test_hosted_vllm_requires_api_base_and_appends_v1(make_deployment) -> None:
    with pytest.raises(ConfigError, match="hosted_vllm needs api_base"):
        make_deployment("hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct")
    ep = make_deployment(
        "hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct", api_base="http://gpu:8000"
    ).prepared
    assert ep.chat_url == "http://gpu:8000/v1/chat/completions"
    assert ep.native_completions and not ep.text_only


async def test_unpreparable_wildcard_deployment_fails_as_unreachable(make_deployment, make_request) -> None:
    dep = make_deployment("hosted_vllm", "x", prepare=False)
    adapter = get_adapter("hosted_vllm")
    with pytest.raises(APIConnectionError) as info:
        await adapter.chat(None, make_request(dep, {"messages": []}))  # type: ignore[arg-type]
    assert info.value.deployment_id == dep.id and info.value.retryable
    # streams fail on the first anext(), like every other upstream failure, not when created
    stream = adapter.chat_stream(None, make_request(dep, {"messages": []}))  # type: ignore[arg-type]
    with pytest.raises(APIConnectionError):
        await anext(stream)
    with pytest.raises(APIConnectionError):
        await anext(adapter.completion_stream(None, make_request(dep, {"prompt": "x"})))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("provider", "chat_url"),
    [
        ("groq", "https://api.groq.com/openai/v1/chat/completions"),
        ("mistral", "https://api.mistral.ai/v1/chat/completions"),
        ("deepseek", "https://api.deepseek.com/v1/chat/completions"),
        ("together_ai", "https://api.together.xyz/v1/chat/completions"),
        ("fireworks_ai", "https://api.fireworks.ai/inference/v1/chat/completions"),
        ("openrouter", "https://openrouter.ai/api/v1/chat/completions"),
        ("perplexity", "https://api.perplexity.ai/chat/completions"),
        ("xai", "https://api.x.ai/v1/chat/completions"),
        ("ollama", "http://localhost:11434/v1/chat/completions"),
        ("ollama_chat", "http://localhost:11434/v1/chat/completions"),
        ("lm_studio", "http://localhost:1234/v1/chat/completions"),
    ],
)
def test_openai_compatible_hosted_providers(make_deployment, provider: str, chat_url: str) -> None:
    dep = make_deployment(provider, "some-model", api_key="k-123456")
    assert dep.prepared.chat_url == chat_url
    assert get_adapter(provider).name == ("ollama" if provider == "ollama_chat" else provider)


def test_local_servers_get_v1_appended_to_a_bare_host(make_deployment) -> None:
    assert make_deployment("ollama", "llama3", api_base="http://box:11434").prepared.chat_url == (
        "http://box:11434/v1/chat/completions"
    )


def test_which_models_are_text_only(make_deployment) -> None:
    def ep(provider: str, model: str, **kw: object) -> OpenAIEndpoint:
        return make_deployment(provider, model, **kw).prepared

    assert not ep("openai", "gpt-4o").text_only
    assert not ep("openai", "gpt-4o").native_completions  # chat models serve completions through chat
    assert ep("openai", "gpt-3.5-turbo-instruct").text_only
    assert ep("openai", "ft:davinci-002:my-org:custom:abc").text_only
    assert ep("text-completion-openai", "anything").text_only
    assert ep("openai", "base-llm", api_base="http://vllm/v1", info=ModelInfo(mode="completion")).text_only


def test_fine_tuned_ids_resolve_to_openai_and_pass_through(make_deployment) -> None:
    model = "ft:gpt-4o-mini:my-org:suffix:abc123"
    assert split_model(model) == ("openai", model)
    assert split_model(f"openai/{model}") == ("openai", model)
    ep = make_deployment("openai", model).prepared
    assert ep.body({"model": "my-public-name", "messages": []}, stream=False)["model"] == model
    assert not ep.text_only


def test_body_uses_upstream_model_defaults_and_strips_routerd_keys(make_deployment) -> None:
    dep = make_deployment(
        "openai",
        "llama-3",
        api_base="http://vllm/v1",
        extra={
            "top_k": 40,
            "temperature": 0.1,
            "extra_body": {"guided_json": {"type": "object"}},
            "mock_latency_ms": 5,
            "vertex_project": "p",
            "headers": {"X-Tenant": "t1"},
            "additional_drop_params": ["user"],
        },
    )
    ep = dep.prepared
    body = ep.body(
        {
            "model": "public",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.7,
            "user": "u-1",
            "mock_response": "x",
            "fallbacks": ["other"],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=False,
    )
    assert body == {
        "top_k": 40,
        "temperature": 0.7,  # the client's value wins over the deployment default
        "guided_json": {"type": "object"},
        "model": "llama-3",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert ep.headers["x-tenant"] == "t1"
    streamed = ep.body({"messages": [], "stream_options": {"include_usage": True}}, stream=True)
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert "stream" not in ep.body({"input": "x", "stream": True}, stream=None)


def test_body_defaults_and_strip_helpers() -> None:
    assert body_defaults({"top_p": 0.5, "repetition_penalty": None, "azure_ad_token": "t", "rpm": 5}) == {
        "top_p": 0.5
    }
    assert strip_routerd_keys({"a": 1, "num_retries": 3, "api_key": "k"}) == {"a": 1}


def test_kept_response_headers() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-remaining-tokens": "149000",
        "set-cookie": "secret",
        "x-request-id": "req_1",
    }
    assert pick_headers(headers) == {
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-remaining-tokens": "149000",
    }


def test_declared_endpoints() -> None:
    assert {CHAT, COMPLETIONS} <= get_adapter("openai").endpoints
    assert CHAT not in get_adapter("text-completion-openai").endpoints
    assert get_adapter("custom_openai") is get_adapter("openai")
