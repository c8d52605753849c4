"""Streams: failover happens before the first chunk; after it, errors reach the client in-band."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from routerd.config.table import RouterPolicy
from routerd.errors import BadGatewayError, InternalServerError, RateLimitError, Timeout
from routerd.events import AttemptFinished
from routerd.routing.executor import CallRouter
from routerd.routing.health import BreakerState
from routerd.testing.clock import FakeClock

from .fakes import FakeAdapter, Recorder, Step, chat, dep, fail, make_table, ok

RouterFactory = Callable[..., CallRouter]


def server_error() -> InternalServerError:
    return InternalServerError("upstream 500", upstream_status=500)


async def collect(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def two_tier_table(**policy: Any) -> Any:
    return make_table({"g": [dep("a", order=1), dep("b", order=2)]}, policy=RouterPolicy(**policy))


async def test_a_stream_fails_over_before_its_first_chunk(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", fail(server_error))
    adapter.script("b", ok(chunks=4))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    assert result.response is None and result.stream is not None
    assert result.deployment.id == "b" and result.info.retries == 1
    chunks = await collect(result.stream)
    assert [c["by"] for c in chunks] == ["b"] * 4
    attempts = recorder.of(AttemptFinished)
    assert [(a.deployment_id, a.ok, a.stream) for a in attempts] == [("a", False, True), ("b", True, True)]
    assert attempts[1].completion_tokens == 4 and attempts[1].ttft is not None


async def test_an_empty_stream_is_an_upstream_failure(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", Step(chunks=0))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    assert result.deployment.id == "b"
    record = router.state.get("a")
    assert record is not None and record.last_error == BadGatewayError.__name__


async def test_an_error_after_the_first_chunk_is_raised_mid_stream(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", fail(server_error, after=2))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    assert result.deployment.id == "a"
    received = []
    with pytest.raises(InternalServerError):
        async for chunk in result.stream:  # type: ignore[union-attr]
            received.append(chunk)
    assert [c["i"] for c in received] == [0, 1]  # no silent truncation: the error follows the chunks
    assert adapter.calls == ["a"]  # never a second upstream once bytes went out
    last = recorder.of(AttemptFinished)[-1]
    assert not last.ok and last.error == "InternalServerError" and last.completion_tokens == 2
    record = router.state.get("a")
    assert record is not None and record.in_flight == 0 and record.failures == 1


async def test_closing_the_stream_early_closes_the_upstream_and_finishes_accounting(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", ok(chunks=10))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    stream = result.stream
    assert stream is not None
    record = router.state.get("a")
    assert record is not None and record.in_flight == 1
    first = await stream.__anext__()
    second = await stream.__anext__()
    assert (first["i"], second["i"]) == (0, 1)
    await stream.aclose()  # type: ignore[attr-defined]
    assert [(c.model, c.chunks_sent) for c in adapter.closed] == [("a", 2)]
    assert record.in_flight == 0
    finished = recorder.of(AttemptFinished)
    assert len(finished) == 1 and finished[0].ok


async def test_stream_accounting_and_time_to_first_token(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("a", ok(latency=0.5, chunks=5))
    router = make_router(make_table({"g": [dep("a", tpm=10_000)]}))
    result = await router.call("chat", chat(stream=True))
    assert result.info.ttft == pytest.approx(0.5)
    await collect(result.stream)
    record = router.state.get("a")
    assert record is not None
    assert record.ttft == pytest.approx(0.5) and record.successes == 1 and record.in_flight == 0
    # usage from the final chunk replaced the prompt estimate in the tpm window
    assert record.usage.used(clock()) == (1, 5 + 5)


async def test_stream_timeout_before_first_chunk_uses_stream_timeout(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", fail(lambda: Timeout("no first byte")))
    router = make_router(two_tier_table(stream_timeout=7.0))
    result = await router.call("chat", chat(stream=True))
    assert result.deployment.id == "b"
    assert [r.timeout for r in adapter.requests] == [7.0, 7.0]
    await collect(result.stream)


async def test_a_stream_closed_before_it_is_read_still_closes_the_upstream(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", ok(chunks=5))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    assert result.stream is not None
    await result.stream.aclose()  # type: ignore[attr-defined]
    assert [(c.model, c.chunks_sent) for c in adapter.closed] == [("a", 1)]
    record = router.state.get("a")
    assert record is not None and record.in_flight == 0
    assert [a.ok for a in recorder.of(AttemptFinished)] == [True]
    assert [c async for c in result.stream] == []  # closed means closed


async def test_a_stream_dropped_unread_is_accounted_for(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", ok(chunks=5))
    router = make_router(two_tier_table())
    result = await router.call("chat", chat(stream=True))
    record = router.state.get("a")
    assert record is not None and record.in_flight == 1
    result.stream = None  # the only reference: the relay is collected here
    assert record.in_flight == 0
    assert len(recorder.of(AttemptFinished)) == 1


async def test_a_half_open_probe_stream_closes_the_breaker_at_its_first_chunk(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("a", fail(lambda: RateLimitError("429", retry_after=5.0)), ok(chunks=3))
    router = make_router(two_tier_table())
    first = await router.call("chat", chat(stream=True))
    assert first.deployment.id == "b"
    await collect(first.stream)
    clock.advance(5.0)
    probe = await router.call("chat", chat(stream=True))
    assert probe.deployment.id == "a"
    record = router.state.get("a")
    assert record is not None and record.breaker.state is BreakerState.HEALTHY  # before the stream is read
    await collect(probe.stream)
