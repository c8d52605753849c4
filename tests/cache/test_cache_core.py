"""The cache's pure parts: what the key covers, the per-request controls, the byte-bounded LRU, and the
round trip between a stream and a whole answer."""

from __future__ import annotations

from typing import Any

import pytest

from routerd.cache.controls import MAX_CONTROL_SECONDS, CacheControls, parse_controls
from routerd.cache.key import cache_key, embedding_item_keys
from routerd.cache.local import ENTRY_OVERHEAD, LocalCache
from routerd.cache.replay import answer_from_chunks, chunks_from_answer
from routerd.cache.spec import CacheParams, endpoints_for
from routerd.errors import BadRequestError

BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.2,
}


def _key(body: dict[str, Any], **kw: Any) -> str:
    return cache_key("chat", kw.pop("group", "gpt-4o"), body, **kw)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"temperature": 0.3},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"n": 2},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "none"},
        {"response_format": {"type": "json_object"}},
        {"seed": 7},
        {"stop": ["\n"]},
        {"logit_bias": {"1": 2}},
    ],
)
def test_parameters_that_change_the_answer_change_the_key(change: dict[str, Any]) -> None:
    assert _key({**BODY, **change}) != _key(BODY)


@pytest.mark.parametrize(
    "change",
    [
        {"stream": True},
        {"stream_options": {"include_usage": True}},
        {"user": "end-user-7"},
        {"metadata": {"trace": "x"}},
        {"cache": {"ttl": 5}},
        {"timeout": 30},
        {"num_retries": 2},
        {"fallbacks": ["other"]},
        {"request_id": "abc"},
        {"model": "an-alias-of-the-same-group"},
        {"temperature": 0.2, "top_p": None},
    ],
)
def test_parameters_that_do_not_change_the_answer_keep_the_key(change: dict[str, Any]) -> None:
    assert _key({**BODY, **change}) == _key(BODY)


def test_key_is_independent_of_field_order() -> None:
    assert _key(dict(reversed(list(BODY.items())))) == _key(BODY)


def test_scope_namespace_group_endpoint_and_configured_user_separate_entries() -> None:
    base = _key(BODY)
    assert _key(BODY, scope="team-a") != base != _key(BODY, scope="team-b")
    assert _key(BODY, scope="team-a") != _key(BODY, scope="team-b")
    assert _key(BODY, namespace="n1") != base
    assert _key(BODY, group="other") != base
    assert cache_key("completions", "gpt-4o", BODY) != base
    with_user = {**BODY, "user": "u1"}
    assert _key(with_user, include_user=True) != _key({**BODY, "user": "u2"}, include_user=True)


def test_embedding_keys_are_per_item_and_share_batch_parameters() -> None:
    body = {"model": "emb", "input": ["a", "b"], "encoding_format": "float"}
    a, b = embedding_item_keys("emb", body, ["a", "b"])
    assert a != b
    assert embedding_item_keys("emb", body, ["b"]) == [b]  # same item, other batch
    assert embedding_item_keys("emb", {**body, "dimensions": 64}, ["a"]) != [a]
    assert embedding_item_keys("emb", body, [[1, 2, 3]]) != [a]  # token arrays are items too


def test_controls_parse_and_bound() -> None:
    assert parse_controls(None) == CacheControls()
    controls = parse_controls(
        {"no-cache": True, "no-store": False, "ttl": 5, "s-maxage": 2, "namespace": "x"}
    )
    assert controls == CacheControls(True, False, 5.0, 2.0, "x", None)
    assert parse_controls({"ttl": 10**12}).ttl == MAX_CONTROL_SECONDS
    assert parse_controls({"use-cache": True}).use_cache is True


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        {"no-cache": "true"},
        {"ttl": -1},
        {"ttl": "5"},
        {"ttl": True},
        {"s-maxage": float("nan")},
        {"namespace": 3},
        {"bogus": 1},
    ],
)
def test_bad_controls_are_400(value: Any) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_controls(value)
    assert caught.value.status_code == 400


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_cache_expiry_and_max_age() -> None:
    clock = _Clock()
    cache = LocalCache(max_bytes=10_000, max_entry_bytes=1000, clock=clock)
    assert cache.set("k", b"v", ttl=10)
    clock.now += 5
    entry = cache.get("k")
    assert entry is not None and entry.value == b"v"
    assert cache.get("k", max_age=4) is None and cache.get("k", max_age=6) is not None
    clock.now += 5
    assert cache.get("k") is None and len(cache) == 0 and cache.bytes == 0


def test_local_cache_lru_eviction_by_bytes_and_entry_size_limit() -> None:
    cache = LocalCache(max_bytes=3 * (100 + ENTRY_OVERHEAD), max_entry_bytes=200, clock=_Clock())
    for name in "abc":
        assert cache.set(name, b"x" * 100, ttl=60)
    assert cache.get("a") is not None  # a is now the most recently used
    assert cache.set("d", b"x" * 100, ttl=60)
    assert cache.get("b") is None and cache.get("a") is not None and cache.evictions == 1
    assert cache.bytes == 3 * (100 + ENTRY_OVERHEAD)
    assert not cache.set("big", b"x" * 201, ttl=60)  # above the entry limit: not stored
    assert cache.get("big") is None and len(cache) == 3


def test_replacing_an_entry_keeps_the_byte_count_exact() -> None:
    cache = LocalCache(max_bytes=10_000, max_entry_bytes=1000, clock=_Clock())
    cache.set("k", b"x" * 10, ttl=60)
    cache.set("k", b"x" * 30, ttl=60)
    assert cache.bytes == 30 + ENTRY_OVERHEAD


ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"},
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            "finish_reason": "tool_calls",
        },
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def test_answer_replays_as_chunks_and_back() -> None:
    chunks = chunks_from_answer("chat", ANSWER, include_usage=True)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == ANSWER["usage"]
    assert answer_from_chunks("chat", chunks) == ANSWER
    without_usage = chunks_from_answer("chat", ANSWER)
    assert all("usage" not in c for c in without_usage)


def test_split_tool_call_arguments_are_joined() -> None:
    chunks = [
        {
            "id": "x",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a"'},
                            }
                        ],
                    },
                }
            ],
        },
        {
            "id": "x",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}
            ],
        },
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    answer = answer_from_chunks("chat", chunks)
    assert answer is not None
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a": 1}',
    }


def test_an_unfinished_stream_is_not_an_answer() -> None:
    chunks = chunks_from_answer("chat", ANSWER)
    assert answer_from_chunks("chat", [c for c in chunks if not c["choices"][0].get("finish_reason")]) is None
    assert answer_from_chunks("chat", []) is None


def test_text_completion_round_trip() -> None:
    answer = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "abc", "logprobs": None, "finish_reason": "length"}],
    }
    assert answer_from_chunks("completions", chunks_from_answer("completions", answer)) == answer


def test_cache_params_call_types() -> None:
    endpoints, skipped = endpoints_for(
        CacheParams(supported_call_types=("acompletion", "aembedding", "atranscription"))
    )
    assert endpoints == {"chat", "embeddings"} and skipped == ["atranscription"]
