"""Any JSON a client sends gets a translation or a 400 naming a field, never an internal error.

Hypothesis builds request bodies near the real shapes (real field names and block types with
arbitrary values) as well as arbitrary JSON; the translators must answer each with a chat body or
their API's 400, since anything else would reach the client as a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerd.errors import BadRequestError
from routerd.frontdoors import anthropic_messages, responses
from routerd.frontdoors.anthropic_errors import AnthropicRequestError

SCALARS = st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def near(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the real field names, with arbitrary values."""
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "video"]
BLOCK = near(
    ["type", "text", "source", "id", "name", "input", "tool_use_id", "content", "is_error"],
    st.sampled_from(BLOCK_TYPES) | JSON_VALUES,
)
MESSAGE = near(
    ["role", "content"],
    st.sampled_from(["user", "assistant", "x"]) | st.text(max_size=5) | st.lists(BLOCK, max_size=3),
)
ANTHROPIC_BODY = near(
    [
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "stop_sequences",
        "metadata",
        "temperature",
        "stream",
        "output_config",
    ],
    JSON_VALUES | st.lists(MESSAGE, min_size=1, max_size=3),
)

ITEM = near(
    ["type", "role", "content", "call_id", "name", "arguments", "output"],
    st.sampled_from(["message", "function_call", "function_call_output", "user", "input_text", "input_image"])
    | JSON_VALUES
    | st.lists(
        near(
            ["type", "text", "image_url", "file_data"],
            st.sampled_from(["input_text", "input_image", "input_file"]) | JSON_VALUES,
        ),
        max_size=3,
    ),
)
RESPONSES_BODY = near(
    [
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "reasoning",
        "text",
        "max_output_tokens",
        "metadata",
        "stream",
        "store",
    ],
    JSON_VALUES | st.lists(ITEM, max_size=3),
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
@FAST
@given(ANTHROPIC_BODY | JSON_VALUES)
def test_anthropic_requests_translate_or_name_a_field(body: Any) -> None:
    try:
        chat = anthropic_messages.to_chat_request(body)
    except AnthropicRequestError as exc:
        assert exc.status_code == 400 and exc.param is not None
        return
    assert isinstance(chat["messages"], list) and chat["model"]


@FAST
@given(ANTHROPIC_BODY | JSON_VALUES)
def test_count_tokens_counts_or_names_a_field(body: Any) -> None:
    try:
        counted = anthropic_messages.count_tokens(body)
    except AnthropicRequestError as exc:
        assert exc.param is not None
        return
    assert counted["input_tokens"] >= 0


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
@FAST
@given(RESPONSES_BODY | JSON_VALUES)
def test_responses_requests_translate_or_name_a_field(body: Any) -> None:
    try:
        call = responses.to_chat_request(body)
    except BadRequestError as exc:
        assert exc.status_code == 400 and exc.param is not None
        return
    assert call.chat["messages"] and call.chat["model"]
