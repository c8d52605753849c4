"""A deployment's body defaults as a native Responses request gets them."""

from __future__ import annotations

from routerd.providers.openai import body_defaults, responses_defaults


def test_chat_defaults_map_to_the_responses_names() -> None:
    extra = {
        "temperature": 0.2,
        "max_tokens": 100,
        "reasoning_effort": "high",
        "frequency_penalty": 0.5,  # chat only: the Responses API refuses it
        "stop": ["x"],
        "seed": 7,
        "service_tier": "flex",
        "input_cost_per_token": 0.1,  # routerd's, never a body field
        "extra_body": {"store": False, "max_output_tokens": 50},
    }
    assert responses_defaults(extra) == {
        "temperature": 0.2,
        "max_output_tokens": 50,  # extra_body is the user's own body: it wins
        "reasoning": {"effort": "high"},
        "service_tier": "flex",
        "store": False,
    }
    assert body_defaults(extra)["frequency_penalty"] == 0.5  # chat keeps them all


def test_max_completion_tokens_and_no_defaults() -> None:
    assert responses_defaults({"max_completion_tokens": 9}) == {"max_output_tokens": 9}
    assert responses_defaults({"max_tokens": 9, "max_completion_tokens": 8}) == {"max_output_tokens": 9}
    assert responses_defaults({}) == {}
