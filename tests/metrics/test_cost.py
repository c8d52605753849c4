"""Prices: the deployment's own first, then the bundled table by name, base model, bare and undated name."""

from __future__ import annotations

import math
from types import SimpleNamespace

import orjson
import pytest

from routerd.config.table import Deployment, ModelInfo
from routerd.cost import (
    COST_HEADER,
    completion_cost,
    cost_per_token,
    lookup_price,
    price_table,
    price_table_meta,
    request_cost,
    response_cost_header,
)

GPT_4O = (2.5e-6, 1e-5)


def deployment(litellm_model: str, **info: object) -> Deployment:
    provider, _, model = litellm_model.partition("/")
    return Deployment(
        id="d1",
        group="g",
        provider=provider,
        model=model,
        litellm_model=litellm_model,
        info=ModelInfo(**info),  # type: ignore[arg-type]
    )


def prices(model: str, dep: Deployment | None = None) -> tuple[float, float] | None:
    price = lookup_price(model, deployment=dep)
    return None if price is None else (price.input_cost_per_token, price.output_cost_per_token)


def test_table_is_usd_per_token_with_a_source_month() -> None:
    meta = price_table_meta()
    assert meta["unit"] == "USD per token"
    assert len(meta["as_of"]) == 7 and meta["as_of"][4] == "-"  # YYYY-MM
    table = price_table()
    # per token, not per million: every price is far below a cent
    assert all(
        0 <= p.input_cost_per_token < 1e-3 and 0 <= p.output_cost_per_token < 1e-3 for p in table.values()
    )
    for family in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o1",
        "o3",
        "o4-mini",
        "gpt-3.5-turbo",
        "text-embedding-3-small",
        "claude-3-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-pro",
        "mistral-large",
        "groq/llama-3.3-70b-versatile",
        "deepseek-chat",
    ):
        assert family in table, family


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),  # exact
        ("openai/gpt-4o", "gpt-4o"),  # provider prefix stripped
        ("gpt-4o-2024-08-06", "gpt-4o"),  # date suffix stripped
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a dated model with its own price wins
        ("azure/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("anthropic/claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("gemini/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini/gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.0-flash-exp", "gemini-2.0-flash"),
        ("mistral/mistral-large-latest", "mistral-large"),
        ("mistral/mistral-small-2503", "mistral-small"),
        ("groq/llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
        ("deepseek/deepseek-reasoner", "deepseek-reasoner"),
        ("o1-preview-2024-09-12", "o1-preview"),
        ("ft:gpt-4o-mini-2024-07-18:acme:support:abc123", "ft:gpt-4o-mini-2024-07-18"),
    ],
)
def test_table_lookup_order(model: str, key: str) -> None:
    price = lookup_price(model)
    assert price is not None, model
    assert price.source == f"table:{key}"


def test_open_weight_models_are_priced_per_host() -> None:
    # a bare llama name says nothing about the host; the deployment's provider does
    assert lookup_price("llama-3.3-70b-versatile") is None
    dep = deployment("groq/llama-3.3-70b-versatile")
    assert prices("llama-3.3-70b-versatile", dep) == (0.59e-6, 0.79e-6)


def test_deployment_prices_win_over_the_table() -> None:
    dep = deployment("openai/gpt-4o", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    assert prices("openai/gpt-4o", dep) == (1e-6, 2e-6)
    assert lookup_price("openai/gpt-4o", deployment=dep).source == "deployment"  # type: ignore[union-attr]


def test_a_side_the_deployment_leaves_unset_comes_from_the_table() -> None:
    dep = deployment("openai/gpt-4o", input_cost_per_token=1e-6)
    assert prices("openai/gpt-4o", dep) == (1e-6, GPT_4O[1])
    # ... and counts as 0 when the table does not know the model either
    unknown = deployment("mock/anything", output_cost_per_token=3e-6)
    assert prices("mock/anything", unknown) == (0.0, 3e-6)


def test_base_model_prices_a_freely_named_azure_deployment() -> None:
    dep = deployment("azure/prod-chat-eu", base_model="azure/gpt-4o-2024-08-06")
    assert prices("azure/prod-chat-eu", dep) == GPT_4O
    assert prices("azure/prod-chat-eu", deployment("azure/prod-chat-eu")) is None


def test_unknown_model_has_no_cost_not_zero() -> None:
    assert lookup_price("mock/gpt-4o-mini-but-not-really-zzz") is None
    assert cost_per_token("my-private-model", 100, 100) is None
    assert completion_cost({"model": "my-private-model", "usage": {"prompt_tokens": 5}}) is None
    assert response_cost_header(None) == {}


def test_a_free_deployment_costs_zero_not_unknown() -> None:
    dep = deployment("mock/local", input_cost_per_token=0.0, output_cost_per_token=0.0)
    assert cost_per_token("mock/local", 1000, 1000, deployment=dep) == (0.0, 0.0)
    assert response_cost_header(request_cost(dep, 1000, 1000)) == {COST_HEADER: "0"}


def test_cost_per_token_multiplies() -> None:
    result = cost_per_token("gpt-4o", 1000, 500)
    assert result is not None
    assert math.isclose(result[0], 1000 * 2.5e-6) and math.isclose(result[1], 500 * 1e-5)


def test_completion_cost_reads_usage_and_model_from_a_dict_or_an_object() -> None:
    body = {"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}}
    expected = 1000 * 0.15e-6 + 2000 * 0.6e-6
    assert math.isclose(completion_cost(body) or 0, expected)
    obj = SimpleNamespace(
        model=body["model"], usage=SimpleNamespace(prompt_tokens=1000, completion_tokens=2000)
    )
    assert math.isclose(completion_cost(obj) or 0, expected)
    # an explicit model wins over the one the response names
    assert math.isclose(completion_cost(body, model="gpt-4o") or 0, 1000 * 2.5e-6 + 2000 * 1e-5)


def test_completion_cost_of_an_embedding_counts_prompt_tokens() -> None:
    body = {
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1_000_000, "total_tokens": 1_000_000},
    }
    assert math.isclose(completion_cost(body) or 0, 0.02)


def test_completion_cost_tries_the_response_model_after_the_deployment() -> None:
    dep = deployment("azure/prod-chat-eu")  # no base_model: the upstream's answer names the model
    body = {"model": "gpt-4o-2024-08-06", "usage": {"prompt_tokens": 10, "completion_tokens": 10}}
    assert math.isclose(completion_cost(body, deployment=dep) or 0, 10 * GPT_4O[0] + 10 * GPT_4O[1])


def test_request_cost_matches_the_uncached_lookup_and_sees_changed_prices() -> None:
    dep = deployment("anthropic/claude-3-5-haiku-20241022")
    assert math.isclose(request_cost(dep, 1000, 1000) or 0, 1000 * 0.8e-6 + 1000 * 4e-6)
    repriced = deployment("anthropic/claude-3-5-haiku-20241022", input_cost_per_token=1e-6)
    assert math.isclose(request_cost(repriced, 1000, 0) or 0, 1e-3)
    assert request_cost(deployment("azure/free-name"), 10, 10) is None
    assert request_cost(deployment("azure/free-name"), 10, 10, response_model="gpt-4o") is not None


@pytest.mark.parametrize(
    ("cost", "header"),
    [
        (2.85e-05, "0.0000285"),
        (0.0, "0"),
        (12.5, "12.5"),
        (1e-13, "0"),
        (0.000123456789012345, "0.000123456789"),
    ],
)
def test_cost_header_is_plain_decimal(cost: float, header: str) -> None:
    assert response_cost_header(cost) == {COST_HEADER: header}
    float(header)  # every client can parse it


def test_prices_json_is_valid_and_every_entry_has_both_prices() -> None:
    from importlib import resources

    raw = orjson.loads(resources.files("routerd").joinpath("data/prices.json").read_bytes())
    for key, entry in raw.items():
        if key == "_meta":
            continue
        assert set(entry) >= {"input_cost_per_token", "output_cost_per_token"}, key
