"""Porting suite, part 2: callbacks as LiteLLM's docs register them (functions, CustomLogger
subclasses, sync and async hooks, streams), against loopback fakes and the mock provider."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

import routerd
from routerd.integrations.callbacks import callback_error_count
from routerd.integrations.custom_logger import CustomLogger
from routerd.testing.openai_fake import Reply
from tests.sdk.conftest import OPENAI_KEY

HI = [{"role": "user", "content": "hi"}]


class Recorder(CustomLogger):
    """Records every hook it receives, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any]] = []

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        self.events.append(("pre", model))

    def log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("stream", response_obj))

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        assert start_time <= end_time
        self.events.append(("success", response_obj))

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("failure", kwargs["exception"]))

    async def async_log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        self.events.append(("async_pre", model))

    async def async_log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("async_stream", response_obj))

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("async_success", response_obj))

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("async_failure", kwargs["exception"]))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def test_success_callback_function_gets_litellms_arguments(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[dict[str, Any], Any, datetime, datetime]] = []

    def track_cost(
        kwargs: dict[str, Any], completion_response: Any, start_time: datetime, end_time: datetime
    ) -> None:
        seen.append((kwargs, completion_response, start_time, end_time))

    monkeypatch.setattr(routerd, "success_callback", [track_cost])
    response = routerd.completion(model="gpt-4o", messages=HI)
    assert len(seen) == 1
    kwargs, obj, start, end = seen[0]
    assert obj is response
    assert kwargs["model"] == "gpt-4o"
    assert kwargs["messages"] == HI
    assert "response_cost" in kwargs
    assert isinstance(start, datetime) and start <= end
    assert OPENAI_KEY not in repr(kwargs)  # credentials never reach callbacks


def test_failure_callback_gets_the_exception(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[BaseException] = []
    monkeypatch.setattr(
        routerd, "failure_callback", [lambda kw, resp, s, e: failures.append(kw["exception"])]
    )
    openai_env.enqueue(Reply.error(400, "bad"))
    with pytest.raises(routerd.BadRequestError) as info:
        routerd.completion(model="gpt-4o", messages=HI, num_retries=0)
    assert failures == [info.value]


def test_custom_logger_sync_hooks_for_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(routerd, "callbacks", [recorder])
    routerd.completion(model="gpt-4o", messages=HI, mock_response="hello")
    assert recorder.kinds() == ["pre", "success"]  # the sync SDK runs only the sync hooks


def test_custom_logger_async_hooks_for_acompletion(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(routerd, "callbacks", [recorder])
    asyncio.run(routerd.acompletion(model="gpt-4o", messages=HI, mock_response="hello"))
    assert recorder.kinds() == ["pre", "async_pre", "success", "async_success"]


def test_stream_events_then_success_with_the_assembled_response(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(routerd, "callbacks", [recorder])

    async def consume() -> list[Any]:
        stream = await routerd.acompletion(model="gpt-4o", messages=HI, stream=True)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(consume())
    kinds = recorder.kinds()
    assert kinds.count("stream") == len(chunks) == kinds.count("async_stream")
    assert kinds[-2:] == ["success", "async_success"]
    final = recorder.events[-1][1]
    assert final.choices[0].message.content == "hi"


def test_failure_hooks_on_acompletion(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(routerd, "callbacks", [recorder])
    openai_env.enqueue(Reply.error(401, "no"))
    with pytest.raises(routerd.AuthenticationError):
        asyncio.run(routerd.acompletion(model="gpt-4o", messages=HI, num_retries=0))
    assert recorder.kinds()[-2:] == ["failure", "async_failure"]


def test_async_function_callback_runs_for_sync_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    async def log_async(kwargs: dict[str, Any], response: Any, start: Any, end: Any) -> None:
        seen.append(response)

    monkeypatch.setattr(routerd, "success_callback", [log_async])
    response = routerd.completion(model="gpt-4o", messages=HI, mock_response="hello")
    assert seen == [response]


def test_a_raising_callback_never_breaks_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(CustomLogger):
        def log_success_event(self, *args: Any) -> None:
            raise RuntimeError("callback bug")

    def broken_fn(*args: Any) -> None:
        raise KeyError("also broken")

    monkeypatch.setattr(routerd, "callbacks", [Broken()])
    monkeypatch.setattr(routerd, "success_callback", [broken_fn])
    before = callback_error_count()
    response = routerd.completion(model="gpt-4o", messages=HI, mock_response="still fine")
    assert response.choices[0].message.content == "still fine"
    assert callback_error_count() == before + 2


def test_mock_exception_reaches_failure_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(routerd, "callbacks", [recorder])
    with pytest.raises(routerd.RateLimitError):
        routerd.completion(model="gpt-4o", messages=HI, mock_response="litellm.RateLimitError")
    assert recorder.kinds() == ["pre", "failure"]


def test_unknown_named_callbacks_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routerd, "success_callback", ["langfuse"])
    response = routerd.completion(model="gpt-4o", messages=HI, mock_response="ok")
    assert response.choices[0].message.content == "ok"
