"""LiteLLM's ``litellm.utils`` helpers, backed by routerd's model data.

Model data is the bundled price table (``routerd/data/prices.json``) and model table
(``routerd/data/model_info.json``: context windows, output limits, features), overridden by models
registered at run time (:func:`register_model`, or a LiteLLM-format file named by
``ROUTERD_MODEL_PRICES``). Names are matched as prices are (:mod:`routerd.cost`): provider prefixes
and date/version suffixes are stripped, so ``openai/gpt-4o-2024-08-06`` finds ``gpt-4o``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import orjson

import routerd.cost as _cost
from routerd.providers.infer import DEFAULT_API_BASE_ENV, DEFAULT_API_KEY_ENV, PROVIDER_PREFIXES, split_model
from routerd.sdk.helpers import completion_cost, cost_per_token, token_counter
from routerd.sdk.types import (
    Choices,
    Delta,
    EmbeddingResponse,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    TextCompletionResponse,
    Usage,
)

__all__ = [
    "Choices",
    "Delta",
    "EmbeddingResponse",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "TextCompletionResponse",
    "Usage",
    "completion_cost",
    "cost_per_token",
    "get_llm_provider",
    "get_model_info",
    "get_supported_openai_params",
    "model_cost",
    "register_model",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_prompt_caching",
    "supports_reasoning",
    "supports_response_schema",
    "supports_system_messages",
    "supports_tool_choice",
    "supports_vision",
    "token_counter",
]

#: OpenAI's chat completion parameters (what an OpenAI-compatible provider accepts)
OPENAI_CHAT_PARAMS = (
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "modalities",
    "prediction",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "response_format",
    "user",
    "reasoning_effort",
    "audio",
)
OPENAI_EMBEDDING_PARAMS = ("dimensions", "encoding_format", "user")


@functools.cache
def _bundled_info() -> Mapping[str, Mapping[str, Any]]:
    raw = orjson.loads(resources.files("routerd").joinpath("data/model_info.json").read_bytes())
    return {key: value for key, value in raw.items() if not key.startswith("_")}


def _provider(model: str, custom_llm_provider: str | None) -> str | None:
    if custom_llm_provider:
        return PROVIDER_PREFIXES.get(custom_llm_provider, custom_llm_provider)
    return split_model(model)[0]


def _lookup(model: str, custom_llm_provider: str | None) -> tuple[str, dict[str, Any]] | None:
    """(matched key, merged entry) for ``model``: registered entries over bundled info and prices."""
    provider = _provider(model, custom_llm_provider)
    registered = _cost.registered_models()
    info, prices = _bundled_info(), _cost.price_table()
    for key in _cost.candidate_keys(model, provider):
        if key in registered or key in info or key in prices:
            entry: dict[str, Any] = {}
            entry.update(info.get(key, {}))
            price = prices.get(key)
            if price is not None:
                entry["input_cost_per_token"] = price.input_cost_per_token
                entry["output_cost_per_token"] = price.output_cost_per_token
            entry.update(registered.get(key, {}))
            return key, entry
    return None


def get_model_info(model: str, custom_llm_provider: str | None = None) -> dict[str, Any]:
    """What routerd knows of ``model``, with LiteLLM's keys (``max_input_tokens``, ``max_tokens``,
    ``input_cost_per_token``, ``litellm_provider``, ``mode``, ``supports_*``...).

    Raises ``ValueError`` when the model is not in routerd's data (LiteLLM raises a plain Exception).
    """
    found = _lookup(model, custom_llm_provider)
    if found is None:
        raise ValueError(
            f"model {model!r} is not in routerd's model data; add it with routerd.register_model({{...}}) "
            "or a ROUTERD_MODEL_PRICES file"
        )
    key, entry = found
    out: dict[str, Any] = {
        "key": key,
        "max_tokens": entry.get("max_tokens", entry.get("max_output_tokens")),
        "max_input_tokens": entry.get("max_input_tokens"),
        "max_output_tokens": entry.get("max_output_tokens"),
        "input_cost_per_token": entry.get("input_cost_per_token"),
        "output_cost_per_token": entry.get("output_cost_per_token"),
        "litellm_provider": entry.get("litellm_provider") or _provider(model, custom_llm_provider),
        "mode": entry.get("mode", "chat"),
        "supported_openai_params": get_supported_openai_params(model, custom_llm_provider),
    }
    for name, value in entry.items():
        out.setdefault(name, value)
    return out


def _model_cost() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for key, price in _cost.price_table().items():
        table[key] = {
            "input_cost_per_token": price.input_cost_per_token,
            "output_cost_per_token": price.output_cost_per_token,
        }
    for key, info in _bundled_info().items():
        table.setdefault(key, {}).update(info)
    for key, entry in _cost.registered_models().items():
        table.setdefault(key, {}).update(entry)
    return table


#: every model routerd has data for: name -> LiteLLM-format entry (kept current by register_model)
model_cost: dict[str, dict[str, Any]] = _model_cost()


def register_model(model_cost: Mapping[str, Any] | str) -> dict[str, Any]:
    """Add or update models (LiteLLM's ``register_model``): a mapping of model name -> entry in
    LiteLLM's ``model_prices_and_context_window.json`` format, or the path of such a file."""
    registered = _cost.register_model(model_cost)
    globals()["model_cost"].clear()
    globals()["model_cost"].update(_model_cost())
    return registered


def get_supported_openai_params(
    model: str, custom_llm_provider: str | None = None, request_type: str = "chat_completion"
) -> list[str] | None:
    """The OpenAI parameters routerd sends to ``model``'s provider (others are refused, or dropped
    with ``drop_params``); None when the provider is unknown."""
    provider = _provider(model, custom_llm_provider)
    if provider is None:
        return None
    if request_type == "embeddings":
        return list(OPENAI_EMBEDDING_PARAMS)
    unsupported: frozenset[str] = frozenset()
    if provider == "anthropic":
        from routerd.providers.anthropic_translate import UNSUPPORTED_PARAMS as unsupported
    elif provider in {"gemini", "vertex_ai"}:
        from routerd.providers.google_translate import UNSUPPORTED_PARAMS as unsupported
    return [p for p in OPENAI_CHAT_PARAMS if p not in unsupported]


def _supports(feature: str, model: str, custom_llm_provider: str | None) -> bool:
    found = _lookup(model, custom_llm_provider)
    return bool(found and found[1].get(f"supports_{feature}"))


def supports_function_calling(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether routerd's data says ``model`` accepts ``tools`` (False when unknown)."""
    return _supports("function_calling", model, custom_llm_provider)


def supports_parallel_function_calling(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model`` may call several tools in one answer (False when unknown)."""
    return _supports("parallel_function_calling", model, custom_llm_provider)


def supports_vision(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model`` accepts images (False when unknown)."""
    return _supports("vision", model, custom_llm_provider)


def supports_response_schema(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model`` honours a JSON-schema ``response_format`` (False when unknown)."""
    return _supports("response_schema", model, custom_llm_provider)


def supports_tool_choice(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model`` accepts ``tool_choice`` (False when unknown)."""
    return _supports("tool_choice", model, custom_llm_provider)


def supports_reasoning(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model`` is a reasoning model (False when unknown)."""
    return _supports("reasoning", model, custom_llm_provider)


def supports_prompt_caching(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether ``model``'s provider caches prompts (False when unknown)."""
    return _supports("prompt_caching", model, custom_llm_provider)


def supports_system_messages(model: str, custom_llm_provider: str | None = None) -> bool:
    """Every provider routerd serves accepts system messages (translated where needed)."""
    return _provider(model, custom_llm_provider) is not None


def get_llm_provider(
    model: str,
    custom_llm_provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
) -> tuple[str, str, str | None, str | None]:
    """``(model, provider, api_key, api_base)`` as LiteLLM's ``get_llm_provider`` returns them; the key
    and base are the given ones, else the provider's environment variables (read now)."""
    import os

    provider = _provider(model, custom_llm_provider)
    if provider is None:
        from routerd.errors import BadRequestError

        raise BadRequestError(
            f"cannot tell which provider serves model '{model}'", model=model, param="model"
        )
    bare = (
        split_model(model)[1]
        if custom_llm_provider is None
        else model.removeprefix(f"{custom_llm_provider}/")
    )
    key_env, base_env = DEFAULT_API_KEY_ENV.get(provider), DEFAULT_API_BASE_ENV.get(provider)
    return (
        bare,
        provider,
        api_key or (os.environ.get(key_env) if key_env else None),
        api_base or (os.environ.get(base_env) if base_env else None),
    )
