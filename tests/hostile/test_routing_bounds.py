"""Issue 21, the router's part: every finding reproduced against loopback fakes, with its bound asserted.

H1 fan-out of a prompt list, M6 client-chosen retries/timeouts and cancellation, L6 streams that drip
or never end, M3 wildcard model names, L1 malformed 200 answers. Each test is bounded in count and in
time (an ``asyncio.timeout`` turns a regression into a failure, not a hang); none asserts a duration.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from routerd.config import check_text
from routerd.config.table import RoutingTable
from routerd.errors import BadRequestError, RateLimitError, ServiceUnavailableError, Timeout
from routerd.events import AttemptFinished, EventBus
from routerd.metrics.labels import OVERFLOW
from routerd.metrics.runtime import MetricsRuntime
from routerd.routing.executor import CallRouter
from routerd.routing.health import CooldownRules, classify, on_failure
from routerd.routing.limits import CallLimits
from routerd.server.app import create_app
from routerd.server.metrics_routes import metrics_runtime
from routerd.settings import Settings
from routerd.testing import FakeClock, FakeOpenAI, Reply, run_in_thread
from routerd.testing.server import RouterdServer

KEY = "sk-hostile-test"
BOUND = 30.0  # seconds any one test may take before it counts as hung


def table_of(yaml: str) -> RoutingTable:
    result = check_text(yaml)
    assert result.table is not None, result.errors
    return result.table


def chat_group(name: str, base: str, dep_id: str, extra: str = "") -> str:
    return f"""
  - model_name: {name}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}
      api_key: {KEY}
      {extra}
    model_info: {{id: {dep_id}}}
"""


class CountingFake(FakeOpenAI):
    """A FakeOpenAI that remembers how many calls it was answering at once, at most."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.active = 0
        self.peak = 0

    async def answer_call(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await super().answer_call(request, endpoint)
        finally:
            self.active -= 1


@pytest.fixture
async def fake() -> AsyncIterator[CountingFake]:
    async with CountingFake(api_key=KEY) as upstream:
        yield upstream


@pytest.fixture
async def routers() -> AsyncIterator[list[CallRouter]]:
    made: list[CallRouter] = []
    yield made
    for router in made:
        await router.aclose()


async def eventually(condition: Callable[[], bool], tries: int = 2000) -> None:
    """Poll ``condition`` on the event loop (bounded: ``tries`` polls of 10 ms)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def attempts_of(bus: EventBus) -> list[AttemptFinished]:
    seen: list[AttemptFinished] = []
    bus.subscribe(lambda event: seen.append(event) if isinstance(event, AttemptFinished) else None)
    return seen


# --- H1: a prompt list fans out to one upstream call per prompt ------------------------------------


async def test_h1_prompt_list_longer_than_the_maximum_is_refused_before_any_call(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "c")), limits=CallLimits(max_prompts=4)
    )
    routers.append(router)
    with pytest.raises(BadRequestError) as caught:
        await router.call("completions", {"model": "chat", "prompt": ["p"] * 5})
    assert caught.value.status_code == 400 and caught.value.param == "prompt"
    assert "at most 4" in caught.value.message
    assert fake.requests == []
    # at the maximum it is served
    result = await router.call("completions", {"model": "chat", "prompt": ["p"] * 4})
    assert result.response is not None and len(result.response.body["choices"]) == 4


async def test_h1_fan_out_is_bounded_in_concurrency_and_counted_as_attempts(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    bus = EventBus()
    finished = attempts_of(bus)
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "c")),
        events=bus,
        limits=CallLimits(prompt_concurrency=2),
    )
    routers.append(router)
    fake.enqueue(*[Reply(delay=0.05) for _ in range(6)])
    async with asyncio.timeout(BOUND):
        result = await router.call("completions", {"model": "chat", "prompt": [f"p{i}" for i in range(6)]})
    assert len(fake.requests) == 6
    assert fake.peak == 2  # never more than prompt_concurrency calls at once (6 without the bound)
    assert result.info.attempts == 6  # what x-routerd-attempts says
    assert [event.calls for event in finished] == [6]  # the metrics count 6 upstream requests
    assert router.state.record("c").usage.used(router.now())[0] == 6  # and so does the rpm window


async def test_h1_every_fanned_out_call_counts_against_rpm(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    clock = FakeClock()
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "c", "rpm: 5")),
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    routers.append(router)
    await router.call("completions", {"model": "chat", "prompt": ["a", "b", "c", "d"]})
    with pytest.raises(Exception) as caught:  # 4 calls in the window: 4 more do not fit rpm 5
        await router.call("completions", {"model": "chat", "prompt": ["a", "b", "c", "d"]})
    assert getattr(caught.value, "status_code", None) == 429
    assert len(fake.requests) == 4  # before the fix: 8 (each request counted once)


def test_h1_the_daemon_answers_400_in_openai_shape_and_reports_the_attempts(tmp_path: Path) -> None:
    with run_in_thread(FakeOpenAI(api_key=KEY)) as upstream:
        table = table_of("model_list:" + chat_group("chat", upstream.base_url, "c"))
        settings = Settings(config=tmp_path / "unused.yaml", watch=False, max_prompts=3, log_requests=False)
        with (
            RouterdServer(create_app(table, settings=settings)) as server,
            httpx.Client(timeout=BOUND) as client,
        ):
            url = server.base_url + "/v1/completions"
            refused = client.post(url, json={"model": "chat", "prompt": ["x"] * 4})
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert (error["param"], error["code"], error["type"]) == (
                "prompt",
                "too_many_prompts",
                "invalid_request_error",
            )
            served = client.post(url, json={"model": "chat", "prompt": ["x", "y", "z"]})
            assert served.status_code == 200
            assert served.headers["x-routerd-attempts"] == "3"
            assert len(upstream.requests) == 3


# --- M6: client-chosen retries and timeouts; cancellation -----------------------------------------


async def test_m6_a_clients_num_retries_is_capped(fake: CountingFake, routers: list[CallRouter]) -> None:
    clock = FakeClock()
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "c")),
        clock=clock.monotonic,
        sleep=clock.sleep,
        limits=CallLimits(max_num_retries=2),
    )
    routers.append(router)
    fake.enqueue(*[Reply.error(500, "down") for _ in range(50)])
    with pytest.raises(Exception) as caught:
        await router.call(
            "chat", {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "num_retries": 1000}
        )
    assert getattr(caught.value, "upstream_status", None) == 500
    assert len(fake.requests) == 3  # 1 + 2 retries, not 1 + 1000
    assert caught.value.routing.retries == 2


async def test_m6_a_clients_timeout_is_capped(fake: CountingFake, routers: list[CallRouter]) -> None:
    clock = FakeClock()
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "c")),
        clock=clock.monotonic,
        sleep=clock.sleep,
        limits=CallLimits(max_timeout=60.0),
    )
    routers.append(router)
    record = router.state.record("c")
    failure = classify(RateLimitError("slow down", retry_after=5000.0))
    cooled = on_failure(record.breaker, clock.monotonic(), failure, CooldownRules(), 100.0)
    router.state.set_breaker("c", record, cooled)
    assert record.breaker.until > clock.monotonic() + 60  # cooling for longer than the cap
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "timeout": 86_400}
    # A day-long timeout would wait the cooldown out; capped to 60 s the call gives up at once.
    with pytest.raises(ServiceUnavailableError):
        await router.call("chat", body)
    assert clock.sleeps == []
    assert fake.requests == []
    # with a larger cap the same request waits the cooldown out and is served
    patient = CallRouter(
        router.table, clock=clock.monotonic, sleep=clock.sleep, limits=CallLimits(max_timeout=1000.0)
    )
    routers.append(patient)
    patient_record = patient.state.record("c")
    patient.state.set_breaker("c", patient_record, cooled)
    result = await patient.call("chat", body)
    assert result.response is not None and clock.sleeps and len(fake.requests) == 1


async def test_m6_cancelling_a_call_mid_attempt_stops_it_and_releases_in_flight(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(
        table_of(
            "model_list:" + chat_group("chat", fake.base_url, "a") + chat_group("chat", fake.base_url, "b")
        )
    )
    routers.append(router)
    fake.enqueue(Reply(hang=True))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "num_retries": 5}
    async with asyncio.timeout(BOUND):
        task = asyncio.ensure_future(router.call("chat", body))
        await eventually(lambda: bool(fake.requests))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.wait_disconnect()
    assert len(fake.requests) == 1  # no retry, no failover to the other deployment
    assert [router.state.record(d).in_flight for d in ("a", "b")] == [0, 0]


async def test_m6_cancelling_a_call_during_its_backoff_stops_it(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    slept: list[float] = []
    asleep = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        slept.append(seconds)
        asleep.set()
        await asyncio.Event().wait()

    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "a")),
        sleep=sleep_forever,
        rng=random.Random(1),
    )
    routers.append(router)
    fake.enqueue(Reply.error(500, "down"), Reply.error(500, "down"))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "num_retries": 5}
    async with asyncio.timeout(BOUND):
        task = asyncio.ensure_future(router.call("chat", body))
        await asyncio.wait_for(asleep.wait(), BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(slept) == 1 and len(fake.requests) == 1
    assert router.state.record("a").in_flight == 0


async def test_m6_cancelling_a_fanned_out_completion_cancels_every_prompt(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(table_of("model_list:" + chat_group("chat", fake.base_url, "c")))
    routers.append(router)
    fake.enqueue(*[Reply(hang=True) for _ in range(3)])
    async with asyncio.timeout(BOUND):
        task = asyncio.ensure_future(router.call("completions", {"model": "chat", "prompt": ["a", "b", "c"]}))
        await eventually(lambda: len(fake.requests) == 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: fake.active == 0)
    assert router.state.record("c").in_flight == 0


# --- L6: streams that drip before their first chunk, or never end ----------------------------------


def _chat_chunk(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


async def test_l6_pings_before_the_first_chunk_count_as_a_timeout_and_fail_over(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    bus = EventBus()
    finished = attempts_of(bus)
    yaml = (
        "model_list:"
        + chat_group("chat", fake.base_url, "dripping", "stream_timeout: 0.3\n      order: 1")
        + chat_group("chat", fake.base_url, "healthy", "order: 2")
    )
    router = CallRouter(table_of(yaml), events=bus)
    routers.append(router)
    # a ping every 50 ms resets a per-read timeout of 300 ms forever (10,000 pings: ~8 minutes)
    fake.enqueue(Reply(chunks=[b": ping\n\n"] * 10_000, chunk_delay=0.05, done=False))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert result.stream is not None
        chunks = [chunk async for chunk in result.stream]
    assert chunks and result.deployment.id == "healthy"
    failed = [event for event in finished if not event.ok]
    assert [(event.deployment_id, event.error) for event in failed] == [("dripping", "Timeout")]


async def test_l6_an_endless_stream_ends_with_an_error_after_the_longest_duration(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "endless")),
        limits=CallLimits(max_stream_duration=0.5),
    )
    routers.append(router)
    fake.enqueue(Reply(chunks=[_chat_chunk("x")] * 10_000, chunk_delay=0.02, done=False))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    received = 0
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert result.stream is not None
        with pytest.raises(Timeout) as caught:
            async for _ in result.stream:
                received += 1
    assert "ROUTERD_MAX_STREAM_DURATION" in caught.value.message
    assert 0 < received < 10_000
    assert router.state.record("endless").in_flight == 0
    await fake.wait_disconnect()  # the upstream connection was closed


async def test_l6_the_longest_duration_also_ends_a_stream_whose_reader_is_slow(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    # the upstream has sent everything; the bound passes while the reader is busy, not waiting on it
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "slow-reader")),
        limits=CallLimits(max_stream_duration=0.3),
    )
    routers.append(router)
    fake.enqueue(Reply(chunks=[_chat_chunk("x")] * 40))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    received = 0
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert result.stream is not None
        with pytest.raises(Timeout) as caught:
            async for _ in result.stream:
                received += 1
                await asyncio.sleep(0.05)
    assert "ROUTERD_MAX_STREAM_DURATION" in caught.value.message
    assert 0 < received < 40
    assert router.state.record("slow-reader").in_flight == 0


async def test_l6_a_stream_may_outlast_the_bound_on_its_first_chunk(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    # one timer per stream: armed for the first chunk (0.2 s), it fires mid-stream and is re-armed
    # for the duration bound, which this stream stays within
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "long", "stream_timeout: 0.2")),
        limits=CallLimits(max_stream_duration=3600),
    )
    routers.append(router)
    fake.enqueue(Reply(chunks=[_chat_chunk("x")] * 30, chunk_delay=0.02))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert result.stream is not None
        chunks = [chunk async for chunk in result.stream]
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 30
    assert router.state.record("long").in_flight == 0


async def test_l6_the_duration_bound_holds_after_the_first_chunk_bound_fired(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    # the first chunk's bound (0.1 s) passes mid-stream; the same timer then ends it at 0.4 s
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "endless", "stream_timeout: 0.1")),
        limits=CallLimits(max_stream_duration=0.4),
    )
    routers.append(router)
    fake.enqueue(Reply(chunks=[_chat_chunk("x")] * 10_000, chunk_delay=0.02, done=False))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    received = 0
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert result.stream is not None
        with pytest.raises(Timeout) as caught:
            async for _ in result.stream:
                received += 1
    assert "ROUTERD_MAX_STREAM_DURATION" in caught.value.message
    assert 0 < received < 10_000
    assert router.state.record("endless").in_flight == 0


async def test_l6_the_stream_timer_does_not_keep_an_abandoned_relay_alive(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(
        table_of("model_list:" + chat_group("chat", fake.base_url, "dropped")),
        limits=CallLimits(max_stream_duration=3600),
    )
    routers.append(router)
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with asyncio.timeout(BOUND):
        result = await router.call("chat", body)
        assert router.state.record("dropped").in_flight == 1
        del (
            result
        )  # dropped unread: the relay's finaliser accounts for it, the pending timer does not hold it
        gc.collect()
        for _ in range(100):  # the adapter's generator is closed by the loop's finaliser
            await asyncio.sleep(0)
    assert router.state.record("dropped").in_flight == 0


def test_l6_the_daemon_ends_an_endless_stream_with_an_in_band_error(tmp_path: Path) -> None:
    with run_in_thread(FakeOpenAI(api_key=KEY)) as upstream:
        upstream.enqueue(Reply(chunks=[_chat_chunk("x")] * 10_000, chunk_delay=0.02, done=False))
        table = table_of("model_list:" + chat_group("chat", upstream.base_url, "endless"))
        settings = Settings(
            config=tmp_path / "unused.yaml", watch=False, max_stream_duration=0.5, log_requests=False
        )
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with (
            RouterdServer(create_app(table, settings=settings)) as server,
            httpx.Client(timeout=BOUND) as client,
            client.stream("POST", server.base_url + "/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert len(events) < 10_000
    last = orjson.loads(events[-1])
    assert "ROUTERD_MAX_STREAM_DURATION" in last["error"]["message"]


# --- M3: wildcard model names are client-chosen --------------------------------------------------


def wildcard_yaml(base: str) -> str:
    return f"""
model_list:
  - model_name: "openai/*"
    litellm_params:
      model: "openai/*"
      api_base: {base}
      api_key: {KEY}
    model_info: {{id: wild}}
"""


async def test_m3_wildcard_models_are_kept_lru_and_evicted_with_their_health(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(table_of(wildcard_yaml(fake.base_url)), limits=CallLimits(max_wildcard_models=3))
    routers.append(router)

    async def ask(name: str) -> None:
        await router.call(
            "chat", {"model": f"openai/{name}", "messages": [{"role": "user", "content": "hi"}]}
        )

    for name in ("m0", "m1", "m2"):
        await ask(name)
    await ask("m0")  # used again: now the most recent
    for i in range(3, 40):
        await ask(f"m{i}")
        if i == 3:
            assert set(router.view.wildcards) == {
                "openai/m2",
                "openai/m0",
                "openai/m3",
            }  # m1 was least recent
    assert len(router.view.wildcards) == 3
    records = [dep_id for dep_id, _ in router.state.items()]
    assert len(records) <= 3, records  # 40 without the bound


async def test_m3_a_model_evicted_with_calls_in_flight_drops_its_health_when_the_last_ends(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(table_of(wildcard_yaml(fake.base_url)), limits=CallLimits(max_wildcard_models=2))
    routers.append(router)

    def body(name: str, stream: bool = False) -> dict[str, Any]:
        return {"model": f"openai/{name}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}

    async with asyncio.timeout(BOUND):
        held = await router.call("chat", body("m0", stream=True))  # in flight until read to the end
        assert held.stream is not None
        await router.call("chat", body("m1"))
        await router.call("chat", body("m2"))  # evicts m0 while its stream is open
        assert "openai/m0" not in router.view.wildcards
        record = router.state.get("wild:m0")
        assert record is not None and record.in_flight == 1  # still held: it is not dropped under the call
        async for _ in held.stream:
            pass
        assert record.in_flight == 0
        assert router.state.get("wild:m0") is None  # gone with its last call, not at the next reload
        assert {dep_id for dep_id, _ in router.state.items()} == {"wild:m1", "wild:m2"}


async def test_m3_a_model_asked_for_again_before_its_last_call_ends_keeps_its_health(
    fake: CountingFake, routers: list[CallRouter]
) -> None:
    router = CallRouter(table_of(wildcard_yaml(fake.base_url)), limits=CallLimits(max_wildcard_models=2))
    routers.append(router)

    def body(name: str, stream: bool = False) -> dict[str, Any]:
        return {"model": f"openai/{name}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}

    async with asyncio.timeout(BOUND):
        held = await router.call("chat", body("m0", stream=True))
        assert held.stream is not None
        await router.call("chat", body("m1"))
        await router.call("chat", body("m2"))  # m0 evicted, busy
        await router.call("chat", body("m0"))  # back again (evicting m1) while the stream is open
        record = router.state.get("wild:m0")
        assert record is not None and record.successes == 1
        async for _ in held.stream:
            pass
        assert router.state.get("wild:m0") is record  # in use again: kept with its history
        assert record.successes == 2


def test_m3_metric_labels_of_wildcard_models_fold_past_their_budget() -> None:
    table = table_of(
        wildcard_yaml("http://127.0.0.1:9") + chat_group("chat", "http://127.0.0.1:9", "configured")
    )
    runtime = MetricsRuntime(deployment=table.deployments.get, process_metrics=False, max_wildcard_values=5)
    record = runtime.recorder
    for i in range(50):
        record(
            AttemptFinished("r", f"openai/m{i}", f"wild:m{i}", "openai", "chat", False, True, 200, None, 0.01)
        )
    record(AttemptFinished("r", "chat", "configured", "openai", "chat", False, True, 200, None, 0.01))
    text = runtime.render()[0].decode()
    deployments = {
        line.split('deployment="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("routerd_upstream_requests_total{")
    }
    assert OVERFLOW in deployments and "configured" in deployments
    assert len(deployments) == 5 + 2  # five wildcard names, the fold, and the configured one


# --- L1: a 200 with the wrong shape is an upstream error -------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"choices": "nope"},
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
            "usage": {"prompt_tokens": "x"},
        },
        [1, 2],
    ],
    ids=["empty", "choices-not-a-list", "usage-not-int", "not-an-object"],
)
async def test_l1_a_malformed_200_fails_over_and_counts_against_the_deployment(
    fake: CountingFake, routers: list[CallRouter], answer: Any
) -> None:
    bus = EventBus()
    finished = attempts_of(bus)
    yaml = (
        "model_list:"
        + chat_group("chat", fake.base_url, "broken", "order: 1")
        + chat_group("chat", fake.base_url, "fine", "order: 2")
    )
    router = CallRouter(table_of(yaml), events=bus)
    routers.append(router)
    fake.enqueue(Reply(json=answer))
    result = await router.call("chat", {"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert result.deployment.id == "fine" and result.response is not None
    assert isinstance(result.response.body["choices"], list)
    assert [(e.deployment_id, e.ok) for e in finished] == [("broken", False), ("fine", True)]
    assert finished[0].error is not None
    assert router.state.record("broken").failures == 1


def test_l1_the_daemon_answers_502_in_openai_shape_for_a_malformed_200(tmp_path: Path) -> None:
    with run_in_thread(FakeOpenAI(api_key=KEY)) as upstream:
        upstream.enqueue(Reply(json={"choices": "nope", "usage": {"prompt_tokens": "x"}}))
        table = table_of("model_list:" + chat_group("chat", upstream.base_url, "broken", "num_retries: 0"))
        settings = Settings(config=tmp_path / "unused.yaml", watch=False, log_requests=False)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        with (
            RouterdServer(create_app(table, settings=settings)) as server,
            httpx.Client(timeout=BOUND) as client,
        ):
            response = client.post(server.base_url + "/v1/chat/completions", json=body)
    assert response.status_code == 502
    assert "malformed" in response.json()["error"]["message"]
    assert response.headers.get("x-request-id")


# --- the settings reach the router ----------------------------------------------------------------


def test_the_daemons_settings_set_the_routers_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {
        "ROUTERD_MAX_PROMPTS": "7",
        "ROUTERD_PROMPT_CONCURRENCY": "3",
        "ROUTERD_MAX_NUM_RETRIES": "4",
        "ROUTERD_MAX_REQUEST_TIMEOUT": "30",
        "ROUTERD_MAX_STREAM_DURATION": "90",
        "ROUTERD_MAX_WILDCARD_MODELS": "11",
        "ROUTERD_METRICS_MAX_WILDCARD_LABELS": "2",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings(config=tmp_path / "unused.yaml", watch=False, log_requests=False)
    app = create_app(table_of(wildcard_yaml("http://127.0.0.1:9")), settings=settings)
    state = app.state.routerd
    assert state.router.limits == CallLimits(
        max_prompts=7,
        prompt_concurrency=3,
        max_num_retries=4,
        max_timeout=30.0,
        max_stream_duration=90.0,
        max_wildcard_models=11,
    )
    recorder = metrics_runtime(state).recorder
    for i in range(5):
        recorder(
            AttemptFinished("r", f"openai/m{i}", f"wild:m{i}", "openai", "chat", False, True, 200, None, 0.01)
        )
    assert len(recorder._wild_deployment) == 2  # the third and later names were folded


def test_the_defaults_are_the_documented_ones() -> None:
    assert CallLimits.from_settings(Settings()) == CallLimits()
