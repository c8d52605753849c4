"""Service guardrails over a stream, chunk by chunk (:class:`RemoteStreamGuard`): where segments end,
what each verdict releases, the per-stream check budget, tool-call arguments and several choices.
The service is a scripted poster (the real wire format is exercised end to end in
tests/e2e/test_guardrail_streams_e2e.py)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from routerd.guardrails.engine import GuardrailBlockedError, GuardrailUnavailableError, Mode
from routerd.guardrails.network import ModerationGuardrail, WebhookGuardrail
from routerd.guardrails.remote_stream import MAX_STREAM_CHECKS, RemoteStreamGuard, _segment_end

DURING = frozenset({Mode.DURING_CALL})


class _Policy:
    """Answers like a policy service: BLOCKED for a text with ``bad``, replaces ``titan``, else NONE."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[str] = []

    async def __call__(
        self, url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
    ) -> tuple[int, Any]:
        [text] = body["texts"]
        assert body["input_type"] == "response"
        self.sent.append(text)
        if "bad" in text:
            return self.status, {"action": "BLOCKED", "blocked_reason": "bad word"}
        if "titan" in text:
            return self.status, {"action": "GUARDRAIL_INTERVENED", "texts": [text.replace("titan", "[x]")]}
        return self.status, {"action": "NONE"}


def _hook(policy: _Policy, window: int = 16, fail_open: bool = False, name: str = "hook") -> WebhookGuardrail:
    return WebhookGuardrail(
        name, DURING, "http://127.0.0.1:9/", policy, fail_open=fail_open, stream_check_chars=window
    )


def _chunks(pieces: Sequence[str], index: int = 0) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [
        {"choices": [{"index": index, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    chunks.append({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
    return chunks


def _words(text: str) -> list[str]:
    return [text[i : i + 5] for i in range(0, len(text), 5)]


async def _run(guard: RemoteStreamGuard, chunks: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
    out = [await guard.chunk(copy.deepcopy(c)) for c in chunks]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out if c is not None)
    return text, out


def test_segments_end_at_whitespace_once_the_window_is_full() -> None:
    assert _segment_end("short text", 16) == 0  # fewer than the window wait
    assert _segment_end("one two three four five", 16) == len("one two three four ")
    assert _segment_end("x" * 20, 16) == 0  # no whitespace: held up to twice the window
    assert _segment_end("x" * 32, 16) == 32


async def test_text_is_released_only_after_the_service_answered_for_it() -> None:
    policy = _Policy()
    guard = RemoteStreamGuard([_hook(policy)], "chat", {})
    text = "the quick brown fox jumps over the lazy dog and runs away"
    released, out = await _run(guard, _chunks(_words(text)))
    assert released == text and "".join(policy.sent) == text
    assert all(16 - 5 < len(s) <= 16 + 5 for s in policy.sent[:-1])
    assert out[1] is None  # its text held, nothing else to say
    assert out[-1] is not None and out[-1]["choices"][0]["finish_reason"] == "stop"
    assert guard.runs["hook"].action == "allow" and guard.checks == {"hook": len(policy.sent)}


async def test_a_replacement_takes_the_segments_place_and_a_block_releases_nothing_more() -> None:
    guard = RemoteStreamGuard([_hook(_Policy())], "chat", {})
    released, _ = await _run(guard, _chunks(_words("about the titan launch on monday morning")))
    assert released == "about the [x] launch on monday morning"
    assert guard.runs["hook"].action == "mask"
    guard = RemoteStreamGuard([_hook(_Policy())], "chat", {})
    released = ""
    with pytest.raises(GuardrailBlockedError) as caught:
        for chunk in _chunks(_words("a calm opening sentence here, then the bad part and more text")):
            out = await guard.chunk(chunk)
            released += (out or {"choices": [{"delta": {}}]})["choices"][0]["delta"].get("content") or ""
    assert "bad" not in released and "a calm opening".startswith(released[:14])
    assert caught.value.guardrail == "hook" and [r.action for r in caught.value.runs] == ["block"]


@pytest.mark.parametrize("fail_open", [True, False])
async def test_an_unavailable_service_follows_the_declared_choice_per_check(fail_open: bool) -> None:
    guard = RemoteStreamGuard([_hook(_Policy(status=503), fail_open=fail_open)], "chat", {})
    text = "a text long enough for two checks of the service"
    if fail_open:
        released, _ = await _run(guard, _chunks(_words(text)))
        assert released == text and "fail-open" in guard.runs["hook"].reason
    else:
        with pytest.raises(GuardrailUnavailableError):
            await _run(guard, _chunks(_words(text)))
        assert guard.runs["hook"].action == "unavailable"


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_stream_asks_each_guardrail_at_most_max_checks_times(fail_open: bool) -> None:
    assert MAX_STREAM_CHECKS == 256  # the documented default
    policy = _Policy()
    guard = RemoteStreamGuard([_hook(policy, fail_open=fail_open)], "chat", {}, max_checks=3)
    text = "word " * 40
    if fail_open:
        released, _ = await _run(guard, _chunks(_words(text)))
        assert released == text  # the rest went out unchecked, as the guardrail declared
        assert "more than 3 checks" in guard.runs["hook"].reason
    else:
        with pytest.raises(GuardrailUnavailableError, match="more than 3 checks"):
            await _run(guard, _chunks(_words(text)))
    assert len(policy.sent) == 3


async def test_whitespace_only_text_asks_nothing() -> None:
    policy = _Policy()
    guard = RemoteStreamGuard([_hook(policy)], "chat", {})
    released, _ = await _run(guard, _chunks([" ", "\n\n", "   "]))
    assert released == " \n\n   " and policy.sent == [] and guard.runs == {}


async def test_guardrails_chain_and_moderation_blocks_flagged_segments() -> None:
    asked: list[str] = []

    async def moderator(model: str, texts: Sequence[str], timeout: float) -> Mapping[str, Any]:
        asked.extend(texts)
        return {"results": [{"flagged": "[x]" in t, "categories": {"violence": "[x]" in t}} for t in texts]}

    moderation = ModerationGuardrail("mod", DURING, "omni", moderator, stream_check_chars=16)
    guard = RemoteStreamGuard([_hook(_Policy()), moderation], "chat", {})
    with pytest.raises(GuardrailBlockedError, match="flagged for violence"):
        await _run(guard, _chunks(_words("the opening words are calm, then titan appears")))
    assert any("[x]" in t for t in asked) and not any("titan" in t for t in asked)  # it saw the replacement
    assert {r.guardrail: r.action for r in guard.runs.values()} == {"hook": "mask", "mod": "block"}


async def test_tool_call_arguments_and_several_choices_are_checked_apart() -> None:
    policy = _Policy()
    guard = RemoteStreamGuard([_hook(policy)], "chat", {})
    chunks: list[dict[str, Any]] = [
        {
            "choices": [
                {"index": 0, "delta": {"content": "first answer, calm and fine"}, "finish_reason": None}
            ]
        },
        {
            "choices": [
                {"index": 1, "delta": {"content": "second answer is also fine"}, "finish_reason": None}
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]
                    },
                    "finish_reason": None,
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "titan"}'}}]},
                    "finish_reason": None,
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]},
    ]
    out = [await guard.chunk(copy.deepcopy(c)) for c in chunks]
    assert out[2] is not None  # the tool call's id and name go out at once
    finish = out[4]
    assert finish is not None
    assert finish["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"q": "[x]"}'}}
    ]
    texts = {0: "", 1: ""}
    for chunk in out:
        for choice in (chunk or {}).get("choices", []):
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: "first answer, calm and fine", 1: "second answer is also fine"}
    assert sorted(policy.sent) == sorted(
        ["first answer, calm and ", "fine", "second answer is also ", "fine", '{"q": "titan"}']
    )


async def test_text_completions_are_checked_too() -> None:
    policy = _Policy()
    guard = RemoteStreamGuard([_hook(policy)], "completions", {})
    chunks = [
        {"choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in ["some calm text, ", "and bad"]
    ]
    chunks.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    out = [await guard.chunk(c) for c in chunks[:1]]
    assert out[0] is not None and out[0]["choices"][0]["text"] == "some calm text, "
    with pytest.raises(GuardrailBlockedError):
        for chunk in chunks[1:]:
            await guard.chunk(chunk)
