"""Exceptions as the SDK raises them, and the token/cost helpers."""

from __future__ import annotations

import openai
import pytest

import routerd
from routerd.sdk import Router, completion, completion_cost, cost_per_token, token_counter
from routerd.sdk import __all__ as sdk_all

ERRORS_WITH_OPENAI_PARENTS = {
    "AuthenticationError": openai.AuthenticationError,
    "PermissionDeniedError": openai.PermissionDeniedError,
    "NotFoundError": openai.NotFoundError,
    "BadRequestError": openai.BadRequestError,
    "ContextWindowExceededError": openai.BadRequestError,
    "ContentPolicyViolationError": openai.BadRequestError,
    "UnsupportedParamsError": openai.BadRequestError,
    "RateLimitError": openai.RateLimitError,
    "Timeout": openai.APITimeoutError,
    "APIConnectionError": openai.APIConnectionError,
    "ServiceUnavailableError": openai.InternalServerError,
    "InternalServerError": openai.InternalServerError,
    "APIError": openai.APIError,
    "OpenAIError": openai.APIError,
}


@pytest.mark.parametrize(("name", "parent"), sorted(ERRORS_WITH_OPENAI_PARENTS.items()))
def test_errors_are_importable_from_routerd_and_subclass_openai(name: str, parent: type[Exception]) -> None:
    cls = getattr(routerd, name)
    error = cls("it failed", llm_provider="openai", model="gpt-4")
    assert isinstance(error, parent)
    assert (error.llm_provider, error.model, error.message) == ("openai", "gpt-4", "it failed")
    assert isinstance(error.status_code, int) and error.status_code >= 400


def test_errors_raised_by_calls_carry_provider_and_model() -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        completion(
            model="gpt-4",
            messages=[{"role": "user", "content": "x"}],
            mock_response="routerd.AuthenticationError",
        )
    assert info.value.status_code == 401 and info.value.model == "gpt-4"


def test_the_sdk_exports_what_routerd_should_reexport() -> None:
    import routerd.sdk as sdk

    assert all(hasattr(sdk, name) for name in sdk_all)
    expected = {"completion", "acompletion", "text_completion", "atext_completion", "embedding", "aembedding"}
    assert expected | {"Router", "ModelResponse", "token_counter", "completion_cost"} <= set(sdk_all)
    assert not {name for name in sdk_all if name.endswith("Error")}  # errors come from routerd.errors


def test_token_counter_is_an_estimate_with_chat_overhead() -> None:
    messages = [{"role": "user", "content": "Hello there, how are you?"}]
    assert token_counter(model="gpt-4", messages=messages) == 3 + 3 + 7  # reply + message overhead + text
    assert token_counter(model="gpt-4", text="abcdefgh") == 2
    assert token_counter(text=None) == 0


def test_cost_helpers_use_the_price_table_and_say_none_when_unknown() -> None:
    prompt_cost, output_cost = cost_per_token("gpt-4", 1000, 1000)  # type: ignore[misc]
    assert prompt_cost > 0 and output_cost > prompt_cost
    assert cost_per_token("no-such-model-anywhere", 10, 10) is None
    body = {
        "model": "gpt-4",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000},
    }
    assert completion_cost(body) == pytest.approx(prompt_cost + output_cost)
    assert completion_cost({"model": "no-such-model-anywhere", "usage": body["usage"]}) is None
    with pytest.raises(TypeError):
        completion_cost()


def test_completion_cost_uses_the_serving_deployments_configured_prices() -> None:
    router = Router(
        model_list=[
            {
                "model_name": "house-model",
                "litellm_params": {"model": "mock/house-model", "mock_response": "priced"},
                "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
            }
        ]
    )
    response = router.completion(model="house-model", messages=[{"role": "user", "content": "hi"}])
    usage = response.usage
    assert completion_cost(response) == pytest.approx(
        usage.prompt_tokens * 0.001 + usage.completion_tokens * 0.002
    )
    assert response._hidden_params["response_cost"] == completion_cost(response)
    router.close()
