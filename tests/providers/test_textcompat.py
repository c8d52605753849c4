"""Text completion <-> chat conversion on stored example payloads (pure, no network)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routerd import errors
from routerd.providers import textcompat

CHAT_ANSWER = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "This is a test.", "refusal": None},
            "logprobs": {
                "content": [
                    {
                        "token": "This",
                        "logprob": -0.1,
                        "bytes": [84, 104, 105, 115],
                        "top_logprobs": [{"token": "This", "logprob": -0.1, "bytes": None}],
                    },
                    {"token": " is", "logprob": -0.2, "bytes": None, "top_logprobs": []},
                ]
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}

TEXT_ANSWER = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": {
                "tokens": ["\n\n", "This"],
                "token_logprobs": [-0.5, -0.1],
                "top_logprobs": [{"\n\n": -0.5}, {"This": -0.1}],
                "text_offset": [0, 2],
            },
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


def test_prompt_string_becomes_one_user_message_with_params_kept() -> None:
    body = {
        "model": "m",
        "prompt": "Say this is a test",
        "max_tokens": 7,
        "temperature": 0,
        "stop": ["\n"],
        "logprobs": 2,
        "echo": True,
    }
    prompts, chats = textcompat.text_request_to_chat(body)
    assert prompts == ["Say this is a test"]
    assert chats == [
        {
            "model": "m",
            "max_tokens": 7,
            "temperature": 0,
            "stop": ["\n"],
            "logprobs": True,
            "top_logprobs": 2,
            "messages": [{"role": "user", "content": "Say this is a test"}],
        }
    ]


def test_list_of_prompts_gives_one_chat_body_each() -> None:
    prompts, chats = textcompat.text_request_to_chat({"prompt": ["a", "b"], "n": 2})
    assert prompts == ["a", "b"]
    assert [c["messages"][0]["content"] for c in chats] == ["a", "b"]
    assert all(c["n"] == 2 for c in chats)


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]]])
def test_token_prompts_cannot_go_through_chat(prompt: Any) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as info:
        textcompat.text_request_to_chat({"prompt": prompt}, provider="anthropic")
    assert info.value.param == "prompt"
    assert "anthropic" in info.value.message


def test_suffix_and_best_of_refused_unless_drop_params() -> None:
    body = {"prompt": "x", "suffix": "end", "best_of": 3}
    with pytest.raises(errors.UnsupportedParamsError) as info:
        textcompat.text_request_to_chat(body, provider="openai")
    assert "suffix" in info.value.message and "best_of" in info.value.message
    _, chats = textcompat.text_request_to_chat(body, drop_params=True)
    assert "suffix" not in chats[0] and "best_of" not in chats[0]
    # best_of equal to n changes nothing, so it is accepted
    textcompat.text_request_to_chat({"prompt": "x", "best_of": 2, "n": 2})


def test_chat_answers_become_a_text_completion() -> None:
    second = {
        **CHAT_ANSWER,
        "id": "chatcmpl-2",
        "choices": [{**CHAT_ANSWER["choices"][0], "logprobs": None, "finish_reason": "length"}],
    }
    result = textcompat.chat_to_text_completion(
        {"prompt": ["p1", "p2"], "echo": True}, ["p1", "p2"], [CHAT_ANSWER, second]
    )
    Completion.model_validate(result)
    assert result["object"] == "text_completion"
    assert result["id"] == "cmpl-abc123"
    assert [c["text"] for c in result["choices"]] == ["p1This is a test.", "p2This is a test."]
    assert [c["index"] for c in result["choices"]] == [0, 1]
    assert [c["finish_reason"] for c in result["choices"]] == ["stop", "length"]
    assert result["usage"] == {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34}
    # logprobs in completions' parallel-list form, offsets after the echoed prompt
    assert result["choices"][0]["logprobs"] == {
        "tokens": ["This", " is"],
        "token_logprobs": [-0.1, -0.2],
        "top_logprobs": [{"This": -0.1}, {}],
        "text_offset": [2, 6],
    }


def test_choice_indices_with_n_and_several_prompts() -> None:
    two = {**CHAT_ANSWER, "choices": [{**CHAT_ANSWER["choices"][0], "index": i} for i in range(2)]}
    result = textcompat.chat_to_text_completion({"n": 2}, ["a", "b"], [two, two])
    assert [c["index"] for c in result["choices"]] == [0, 1, 2, 3]


def test_tool_call_finish_reason_maps_to_stop() -> None:
    answer = {**CHAT_ANSWER, "choices": [{**CHAT_ANSWER["choices"][0], "finish_reason": "tool_calls"}]}
    assert textcompat.chat_to_text_completion({}, ["a"], [answer])["choices"][0]["finish_reason"] == "stop"


def test_stream_chunks_convert_and_role_chunk_disappears() -> None:
    role = {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    }
    text = {**role, "choices": [{"index": 1, "delta": {"content": "Hi"}, "finish_reason": None}]}
    usage = {**role, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert textcompat.chat_chunk_to_text_chunk(role) is None
    converted = textcompat.chat_chunk_to_text_chunk(text, 1, 2, n=2)
    assert converted is not None
    assert converted["object"] == "text_completion" and converted["id"] == "cmpl-9"
    assert converted["choices"] == [{"text": "Hi", "index": 3, "logprobs": None, "finish_reason": None}]
    echoed = textcompat.chat_chunk_to_text_chunk(role, echo_prompt="Q: ")
    assert echoed is not None and echoed["choices"][0]["text"] == "Q: "
    usage_chunk = textcompat.chat_chunk_to_text_chunk(usage, completion_id="cmpl-fixed")
    assert usage_chunk is not None
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 3
    assert usage_chunk["id"] == "cmpl-fixed"


def test_chat_request_to_text_joins_messages_and_maps_params() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ],
        "max_completion_tokens": 9,
        "logprobs": True,
        "top_logprobs": 3,
        "parallel_tool_calls": True,
        "store": False,
        "stream": True,
    }
    text_body = textcompat.chat_request_to_text(body)
    assert text_body == {
        "model": "m",
        "prompt": "Be brief.\n\nHi",
        "max_tokens": 9,
        "logprobs": 3,
        "stream": True,
    }


def test_chat_only_features_refused_on_text_models() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    with pytest.raises(errors.UnsupportedParamsError) as info:
        textcompat.chat_request_to_text(body, provider="text-completion-openai")
    assert info.value.param == "tools"
    assert "tools" not in textcompat.chat_request_to_text(body, drop_params=True)
    # values that ask for nothing special are fine
    textcompat.chat_request_to_text(
        {"messages": [], "response_format": {"type": "text"}, "tool_choice": "none"}
    )


def test_text_completion_becomes_chat() -> None:
    result = textcompat.text_completion_to_chat(TEXT_ANSWER)
    ChatCompletion.model_validate(result)
    assert result["id"] == "chatcmpl-uqkvlQyYK7bGYrRHQ0eXlWi7"
    assert result["choices"][0]["message"] == {
        "role": "assistant",
        "content": "\n\nThis is indeed a test",
        "refusal": None,
    }
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["choices"][0]["logprobs"]["content"][1]["token"] == "This"
    assert result["choices"][0]["logprobs"]["content"][1]["top_logprobs"][0]["logprob"] == -0.1
    assert result["usage"] == TEXT_ANSWER["usage"]


def test_text_chunks_become_chat_chunks_with_role_first() -> None:
    started: set[int] = set()
    first = textcompat.text_chunk_to_chat_chunk(
        {"id": "cmpl-1", "choices": [{"index": 0, "text": "Hi", "finish_reason": None}]}, started
    )
    second = textcompat.text_chunk_to_chat_chunk(
        {"id": "cmpl-1", "choices": [{"index": 0, "text": "!", "finish_reason": "stop"}]}, started
    )
    for chunk in (first, second):
        ChatCompletionChunk.model_validate(chunk)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert second["choices"][0]["delta"] == {"content": "!"}
    assert second["choices"][0]["finish_reason"] == "stop"
