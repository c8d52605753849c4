"""Applying guardrail decisions to request and answer bodies, streams chunk by chunk, and the network
types' decisions on what their services answer."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from routerd.guardrails.content_filter import ContentFilter
from routerd.guardrails.engine import (
    ContentFilterGuardrail,
    GuardrailBlockedError,
    GuardrailUnavailableError,
    Mode,
    StreamGuard,
    apply_answer,
    apply_request,
    select,
    unknown_names,
)
from routerd.guardrails.filter_spec import ContentFilterParams, compile_content_filter
from routerd.guardrails.network import ModerationGuardrail, WebhookGuardrail


def _content_filter(**params: Any) -> ContentFilter:
    return compile_content_filter(ContentFilterParams.model_validate(params), lambda name: {})


MASK_EMAIL = _content_filter(
    patterns=[{"pattern_type": "prebuilt", "pattern_name": "email", "action": "MASK"}]
)
BLOCK_SSN = _content_filter(
    patterns=[{"pattern_type": "prebuilt", "pattern_name": "us_ssn", "action": "BLOCK"}]
)
ALL_MODES = frozenset(Mode)


def _guard(name: str, content_filter: ContentFilter, window: int = 256, **kw: Any) -> ContentFilterGuardrail:
    return ContentFilterGuardrail(
        name, content_filter, kw.pop("modes", ALL_MODES), stream_window=window, **kw
    )


async def test_pre_call_masks_every_text_a_chat_request_carries() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "admin is root@corp.example"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "mail bob@x.example"},
                    {"type": "image_url", "image_url": {"url": "u@h.example"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "eve@y.example"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "sent to eve@y.example"},
        ],
    }
    runs = await apply_request([_guard("pii", MASK_EMAIL)], "chat", body, {})
    messages = body["messages"]
    assert messages[0]["content"] == "admin is [EMAIL_REDACTED]"
    assert messages[1]["content"][0]["text"] == "mail [EMAIL_REDACTED]"
    assert messages[1]["content"][1]["image_url"]["url"] == "u@h.example"  # not a text
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"to": "[EMAIL_REDACTED]"}'
    assert messages[3]["content"] == "sent to [EMAIL_REDACTED]"
    assert [(r.guardrail, r.mode, r.action, r.reason) for r in runs] == [
        ("pii", "pre_call", "mask", "email masked")
    ]


@pytest.mark.parametrize(
    ("endpoint", "body", "field", "expected"),
    [
        (
            "completions",
            {"prompt": ["a@b.example", "clean", [1, 2, 3]]},
            "prompt",
            ["[EMAIL_REDACTED]", "clean", [1, 2, 3]],
        ),
        ("completions", {"prompt": "to a@b.example"}, "prompt", "to [EMAIL_REDACTED]"),
        ("embeddings", {"input": ["x a@b.example", "y"]}, "input", ["x [EMAIL_REDACTED]", "y"]),
    ],
)
async def test_pre_call_masks_prompts_and_embedding_inputs(
    endpoint: str, body: dict[str, Any], field: str, expected: Any
) -> None:
    await apply_request([_guard("pii", MASK_EMAIL)], endpoint, body, {})
    assert body[field] == expected


async def test_pre_call_block_stops_at_the_blocking_guardrail_and_never_quotes_the_value() -> None:
    body = {"messages": [{"role": "user", "content": "ssn 123-45-6789, mail a@b.example"}]}
    with pytest.raises(GuardrailBlockedError) as caught:
        await apply_request([_guard("pii", MASK_EMAIL), _guard("ssn", BLOCK_SSN)], "chat", body, {})
    error = caught.value
    assert (error.status_code, error.error_type, error.guardrail) == (400, "guardrail_violation", "ssn")
    assert "123-45-6789" not in error.message and "us_ssn" in error.message
    assert error.to_dict()["error"]["guardrail"] == "ssn"
    assert [(r.guardrail, r.action) for r in error.runs] == [("pii", "mask"), ("ssn", "block")]
    assert error.retryable is False


class _Recorder:
    """A guardrail of another type (not a content filter): records the texts it is asked about."""

    name = "recorder"
    kind = "recorder"
    modes = ALL_MODES
    default_on = False

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Any:
        from routerd.guardrails.engine import Verdict

        self.seen.append(list(texts))
        return Verdict("allow")


async def test_each_guardrail_sees_the_texts_the_ones_before_it_masked() -> None:
    """The texts are read once per call and passed along: after a mask, the next guardrail (a content
    filter asked directly, or another type through ``check``) is given the masked texts, and one that
    blocks on the mask's tag sees it."""
    tag_filter = _content_filter(
        patterns=[
            {"pattern_type": "regex", "name": "tag", "pattern": r"\[EMAIL_REDACTED\]", "action": "BLOCK"}
        ]
    )
    recorder = _Recorder()
    body = {"messages": [{"role": "user", "content": "mail a@b.example"}, {"role": "user", "content": "x"}]}
    runs = await apply_request([_guard("pii", MASK_EMAIL), recorder], "chat", body, {})  # type: ignore[list-item]
    assert recorder.seen == [["mail [EMAIL_REDACTED]", "x"]]
    assert [(r.guardrail, r.action, r.reason) for r in runs] == [
        ("pii", "mask", "email masked"),
        ("recorder", "allow", ""),
    ]
    body = {"messages": [{"role": "user", "content": "mail a@b.example"}]}
    with pytest.raises(GuardrailBlockedError) as caught:
        await apply_request([_guard("pii", MASK_EMAIL), _guard("tag", tag_filter)], "chat", body, {})
    assert [(r.guardrail, r.action) for r in caught.value.runs] == [("pii", "mask"), ("tag", "block")]


async def test_answer_runs_name_each_guardrails_mode() -> None:
    answer = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "a@b.example", "refusal": "no"}}]
    }
    during = _guard("during", MASK_EMAIL, modes=frozenset({Mode.DURING_CALL}))
    post = _guard("post", BLOCK_SSN, modes=frozenset({Mode.POST_CALL, Mode.DURING_CALL}))
    recorder = _Recorder()
    runs = await apply_answer([during, post, recorder], "chat", answer, {})  # type: ignore[list-item]
    assert [(r.guardrail, r.mode, r.action) for r in runs] == [
        ("during", "during_call", "mask"),
        ("post", "post_call", "allow"),
        ("recorder", "post_call", "allow"),
    ]
    assert recorder.seen == [["[EMAIL_REDACTED]", "no"]]  # the content, then the refusal


async def test_post_call_masks_answer_content_and_tool_arguments() -> None:
    answer = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "reach me: a@b.example"}},
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"e": "c@d.example"}'}}],
                },
            },
        ]
    }
    runs = await apply_answer([_guard("pii", MASK_EMAIL)], "chat", answer, {})
    assert answer["choices"][0]["message"]["content"] == "reach me: [EMAIL_REDACTED]"
    assert (
        answer["choices"][1]["message"]["tool_calls"][0]["function"]["arguments"]
        == '{"e": "[EMAIL_REDACTED]"}'
    )
    assert runs[0].mode == "post_call"


def test_select_default_on_requested_and_scoped() -> None:
    guards = {
        "a": _guard("a", MASK_EMAIL, default_on=True),
        "b": _guard("b", MASK_EMAIL),
        "c": _guard("c", BLOCK_SSN),
        "d": _guard("d", BLOCK_SSN, modes=frozenset({Mode.POST_CALL})),
    }
    assert [g.name for g in select(guards, Mode.PRE_CALL)] == ["a"]
    assert [g.name for g in select(guards, Mode.PRE_CALL, requested=["c"], scoped=["d"])] == ["a", "c"]
    assert [g.name for g in select(guards, Mode.POST_CALL, scoped=["d"])] == ["a", "d"]
    assert unknown_names(guards, ["a", "zz"]) == ["zz"]


def _chunks(texts: Sequence[str]) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return chunks


def _text_of(chunks: Sequence[Mapping[str, Any] | None]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c is not None)


@pytest.mark.parametrize("size", [1, 3, 8, 100])
def test_stream_guard_masks_across_chunks_and_keeps_the_text_otherwise(size: int) -> None:
    text = "Write to alice.smith@example.org or bob@b.example, not to me. Thanks a lot!"
    guard = StreamGuard([_guard("pii", MASK_EMAIL, window=20)], "chat")
    out = [
        guard.chunk(copy.deepcopy(c))
        for c in _chunks([text[i : i + size] for i in range(0, len(text), size)])
    ]
    assert _text_of(out) == "Write to [EMAIL_REDACTED] or [EMAIL_REDACTED], not to me. Thanks a lot!"
    assert out[-1] is not None and out[-1]["choices"][0]["finish_reason"] == "stop"
    assert guard.runs["pii"].action == "mask"


def test_stream_guard_drops_chunks_that_only_carried_held_back_text() -> None:
    guard = StreamGuard([_guard("pii", MASK_EMAIL, window=50)], "chat")
    out = [guard.chunk(c) for c in _chunks(["short ", "text"])]
    assert out[1] is None and out[2] is None  # held back, nothing else to say
    assert _text_of(out) == "short text"


def test_stream_guard_block_raises_before_the_value_is_released() -> None:
    guard = StreamGuard([_guard("ssn", BLOCK_SSN, window=16)], "chat")
    released = ""
    with pytest.raises(GuardrailBlockedError) as caught:
        for chunk in _chunks(["my number: 123-", "45-6789 and then", " much more text"]):
            out = guard.chunk(chunk)
            released += _text_of([out])
    assert "123" not in released and caught.value.guardrail == "ssn"


def test_stream_guard_text_completions() -> None:
    guard = StreamGuard([_guard("pii", MASK_EMAIL, window=10)], "completions")
    chunks = [
        {"choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in ["mail a@b.", "example now"]
    ]
    chunks.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    out = [guard.chunk(c) for c in chunks]
    assert "".join(c["choices"][0]["text"] for c in out if c) == "mail [EMAIL_REDACTED] now"


class _Service:
    """A scripted guardrail service: answers (status, body) or raises, and records what it was sent."""

    def __init__(self, answer: Any, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.sent: list[Mapping[str, Any]] = []

    async def __call__(
        self, url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
    ) -> tuple[int, Any]:
        self.sent.append(body)
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        result: tuple[int, Any] = self.answer
        return result


def _hook(service: _Service, **kw: Any) -> WebhookGuardrail:
    return WebhookGuardrail(
        "hook", ALL_MODES, "http://127.0.0.1:9/check", service, {"authorization": "Bearer k"}, **kw
    )


async def test_webhook_allow_block_and_replace() -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    allow = _Service((200, {"action": "NONE"}))
    await apply_request(
        [_hook(allow, params={"policy": "strict"})],
        "chat",
        body,
        {"model": "m", "user": "u1", "api_key": "sk-x"},
    )
    assert allow.sent[0] == {
        "texts": ["hello"],
        "input_type": "request",
        "request_data": {"model": "m", "user": "u1"},
        "additional_provider_specific_params": {"policy": "strict"},
    }
    replace = _Service((200, {"action": "GUARDRAIL_INTERVENED", "texts": ["HELLO"]}))
    await apply_request([_hook(replace)], "chat", body, {})
    assert body["messages"][0]["content"] == "HELLO"
    block = _Service((200, {"action": "BLOCKED", "blocked_reason": "policy\nviolation"}))
    with pytest.raises(GuardrailBlockedError, match="policy violation"):
        await apply_request([_hook(block)], "chat", body, {})


@pytest.mark.parametrize(
    "answer",
    [
        (500, None),
        (200, ["not", "an", "object"]),
        (200, {"action": "MAYBE"}),
        (200, {"action": "GUARDRAIL_INTERVENED", "texts": []}),
        ConnectionRefusedError(),
    ],
)
async def test_webhook_failures_follow_the_declared_choice(answer: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    runs = await apply_request([_hook(_Service(answer), fail_open=True)], "chat", body, {})
    assert runs[0].action == "allow" and "fail-open" in runs[0].reason
    with pytest.raises(GuardrailUnavailableError) as caught:
        await apply_request([_hook(_Service(answer))], "chat", body, {})
    assert caught.value.status_code == 503


async def test_webhook_timeout_is_bounded() -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    slow = _Service((200, {"action": "NONE"}), delay=30)
    with pytest.raises(GuardrailUnavailableError, match=r"no answer within 0\.05 s"):
        await apply_request([_hook(slow, timeout=0.05)], "chat", body, {})
    runs = await apply_request([_hook(slow, timeout=0.05, fail_open=True)], "chat", body, {})
    assert runs[0].action == "allow"


async def test_moderation_blocks_flagged_categories() -> None:
    async def moderator(model: str, texts: Sequence[str], timeout: float) -> Mapping[str, Any]:
        flagged = any("attack" in t for t in texts)
        return {
            "results": [
                {"flagged": flagged, "categories": {"violence": flagged, "hate": False}} for _ in texts
            ]
        }

    body = {"messages": [{"role": "user", "content": "plan an attack"}]}
    guard = ModerationGuardrail("mod", ALL_MODES, "omni-moderation", moderator)
    with pytest.raises(GuardrailBlockedError, match="flagged for violence"):
        await apply_request([guard], "chat", body, {})
    only_hate = ModerationGuardrail(
        "mod", ALL_MODES, "omni-moderation", moderator, categories=frozenset({"hate"})
    )
    assert (await apply_request([only_hate], "chat", body, {}))[0].action == "allow"
    body["messages"][0]["content"] = "plan a picnic"
    assert (await apply_request([guard], "chat", body, {}))[0].action == "allow"
