"""The line runner of batch guardrails (bounded concurrency, the first refused line found), the output
file's rewriting, and the Responses API texts the guardrails read in batch lines."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from routerd.guardrails.content_filter import ContentFilter
from routerd.guardrails.engine import (
    ContentFilterGuardrail,
    GuardrailBlockedError,
    GuardrailRun,
    GuardrailUnavailableError,
    Mode,
    apply_answer,
    apply_request,
)
from routerd.guardrails.filter_spec import ContentFilterParams, compile_content_filter
from routerd.server.batch_guard import (
    BATCH_GUARD_CONCURRENCY,
    _answer_line,
    _each_line,
    _input_refusal,
    _Outcome,
    _output_bytes,
)


def _content_filter(**params: Any) -> ContentFilter:
    return compile_content_filter(ContentFilterParams.model_validate(params), lambda name: {})


EMAILS = ContentFilterGuardrail(
    "emails",
    _content_filter(patterns=[{"pattern_type": "prebuilt", "pattern_name": "email", "action": "MASK"}]),
    frozenset(Mode),
)


async def test_lines_run_at_most_the_bound_at_once() -> None:
    running = peak = 0
    release = asyncio.Event()

    async def check(index: int) -> list[Any]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return [GuardrailRun("hook", "pre_call", "allow", 0.0)]

    task = asyncio.ensure_future(_each_line(3 * BATCH_GUARD_CONCURRENCY, check, stop_at_block=True))
    for _ in range(50):  # bounded: the workers reach their first wait within a few turns
        await asyncio.sleep(0)
    assert running == BATCH_GUARD_CONCURRENCY
    release.set()
    outcome = await task
    assert peak == BATCH_GUARD_CONCURRENCY
    assert len(outcome.runs) == 3 * BATCH_GUARD_CONCURRENCY and not outcome.refusals


@pytest.mark.parametrize("stop_at_block", [True, False])
async def test_the_first_refused_line_is_found_and_a_block_stops_the_input(stop_at_block: bool) -> None:
    started: list[int] = []

    async def check(index: int) -> list[Any]:
        started.append(index)
        await asyncio.sleep(0)
        if index in (5, 30):
            raise GuardrailBlockedError("hook", "policy 1", stage="request")
        return []

    outcome = await _each_line(40, check, stop_at_block=stop_at_block)
    assert min(outcome.refusals) == 5 and set(range(5)) <= set(started)
    if stop_at_block:  # the lines in flight finish; no new one starts
        assert max(started) < 5 + BATCH_GUARD_CONCURRENCY and 30 not in outcome.refusals
    else:  # the output: every line is checked
        assert sorted(started) == list(range(40)) and set(outcome.refusals) == {5, 30}


async def test_an_unavailable_service_stops_the_output_too() -> None:
    started: list[int] = []

    async def check(index: int) -> list[Any]:
        started.append(index)
        await asyncio.sleep(0)
        if index == 2:
            raise GuardrailUnavailableError("hook", "HTTP 500")
        return []

    outcome = await _each_line(100, check, stop_at_block=False)
    assert list(outcome.refusals) == [2] and max(started) < 2 + BATCH_GUARD_CONCURRENCY + 1


def test_the_input_refusal_names_the_line_not_the_content() -> None:
    blocked = _input_refusal(7, GuardrailBlockedError("secrets", "aws_access_key detected", stage="request"))
    body = blocked.to_dict()["error"]
    assert blocked.status_code == 400 and body["type"] == "guardrail_violation"
    assert body["guardrail"] == "secrets" and body["param"] == "input_file_id"
    assert body["message"].startswith("line 7 of the batch input file was blocked by guardrail 'secrets'")
    down = _input_refusal(2, GuardrailUnavailableError("hook", "HTTP 500"))
    assert down.status_code == 503 and down.code == "guardrail_unavailable"
    assert "line 2" in down.message and "HTTP 500" in down.message


def _output_line(custom_id: str, text: str) -> bytes:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    line = {"custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}
    return orjson.dumps(line)


def test_the_output_keeps_unread_lines_and_replaces_refused_answers() -> None:
    failed = orjson.dumps({"custom_id": "f", "response": None, "error": {"code": "x", "message": "m"}})
    raws = [_output_line("a", "ok"), b"not json", failed, _output_line("b", "secret")]
    parsed = [_answer_line(raw) for raw in raws]
    assert parsed[1] is None and parsed[2] is None  # not answers: handed on as they are
    outcome = _Outcome(refusals={3: GuardrailBlockedError("answers", "rule x detected", stage="response")})
    out = _output_bytes(raws, parsed, set(), outcome).splitlines()
    assert out[:3] == raws[:3]
    replaced = orjson.loads(out[3])
    assert replaced["response"] is None and replaced["error"]["guardrail"] == "answers"
    assert "secret" not in out[3].decode()
    unavailable = _Outcome(refusals={0: GuardrailUnavailableError("hook", "HTTP 502")})
    with pytest.raises(GuardrailUnavailableError, match="could not check the batch's answers"):
        _output_bytes(raws, parsed, set(), unavailable)


async def test_responses_request_texts_are_read_and_masked() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "instructions": "reply to a@example.com",
        "input": [
            {"role": "user", "content": "from b@example.com"},
            {"role": "user", "content": [{"type": "input_text", "text": "c@example.com"}]},
            {"type": "function_call", "call_id": "1", "name": "f", "arguments": '{"to": "d@example.com"}'},
            {"type": "function_call_output", "call_id": "1", "output": "e@example.com"},
        ],
    }
    runs = await apply_request([EMAILS], "responses", body, {})
    assert runs[0].action == "mask" and "example.com" not in orjson.dumps(body).decode()
    plain: dict[str, Any] = {"model": "m", "input": "write f@example.com"}
    await apply_request([EMAILS], "responses", plain, {})
    assert "example.com" not in plain["input"]


async def test_responses_answer_texts_are_read_and_masked() -> None:
    body: dict[str, Any] = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "mail g@example.com"}]},
            {"type": "function_call", "name": "f", "arguments": '{"to": "h@example.com"}'},
        ]
    }
    runs = await apply_answer([EMAILS], "responses", body, {})
    assert runs[0].action == "mask" and "example.com" not in orjson.dumps(body).decode()


async def test_an_unexpected_error_of_a_line_is_raised_as_itself_not_as_a_group() -> None:
    # the request's error handling gives each error its status and shape: a task group's wrapper
    # would reach it as an ExceptionGroup and be answered as an anonymous 500
    async def check(index: int) -> list[Any]:
        if index == 5:
            raise LookupError("the service answered something unreadable")
        return []

    with pytest.raises(LookupError, match="unreadable"):
        await _each_line(20, check, stop_at_block=False)
