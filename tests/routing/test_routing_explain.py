from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from routerd.config.table import RouterPolicy
from routerd.errors import NotFoundError, RateLimitError
from routerd.routing import format_explain
from routerd.routing.executor import CallRouter
from routerd.routing.explain import explain

from .fakes import FakeAdapter, chat, dep, fail, make_table

RouterFactory = Callable[..., CallRouter]


def table() -> object:
    return make_table(
        {
            "gpt-4o": [
                dep("azure-eu", "gpt-4o", weight=3, rpm=100, order=1),
                dep("openai", "gpt-4o", weight=1, order=1),
                dep("standby", "gpt-4o", order=2),
            ],
            "mini": [dep("m", "mini")],
        },
        policy=RouterPolicy(fallbacks={"gpt-4o": ("mini",)}, context_window_fallbacks={"gpt-4o": ("mini",)}),
        aliases={"best": "gpt-4o"},
    )


async def test_explain_reports_candidates_and_the_pick_distribution(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    router = make_router(table())
    report = explain(router, "best", samples=4000)
    assert adapter.calls == []  # no provider is called
    orjson.dumps(report)  # JSON-able
    assert report["group"] == "gpt-4o" and report["strategy"] == "simple-shuffle"
    assert report["fallbacks"] == {"error": ["mini"], "context_window": ["mini"], "content_policy": []}
    by_id = {c["id"]: c for c in report["candidates"]}
    assert [c["id"] for c in report["candidates"]] == ["azure-eu", "openai", "standby"]
    assert by_id["azure-eu"]["share"] == pytest.approx(0.75, abs=0.03)
    assert by_id["openai"]["share"] == pytest.approx(0.25, abs=0.03)
    assert by_id["standby"]["picks"] == 0 and "standby" in by_id["standby"]["note"]
    assert report == explain(router, "best", samples=4000)  # seeded: same state, same numbers


async def test_explain_shows_cooldowns_and_usage(make_router: RouterFactory, adapter: FakeAdapter) -> None:
    adapter.script("azure-eu", fail(lambda: RateLimitError("429", retry_after=30.0)))
    router = make_router(table())
    while "azure-eu" not in adapter.calls:
        await router.call("chat", chat("gpt-4o"))
    report = explain(router, "gpt-4o", samples=100)
    by_id = {c["id"]: c for c in report["candidates"]}
    assert by_id["azure-eu"]["state"] == "cooling_down"
    assert by_id["azure-eu"]["cooldown_remaining"] == pytest.approx(30.0)
    assert by_id["azure-eu"]["rpm"]["used"] == 1 and by_id["azure-eu"]["picks"] == 0
    assert by_id["openai"]["share"] == 1.0
    text = format_explain(report)
    assert "azure-eu" in text and "cooling_down" in text and "30.0s" in text and "100.0%" in text
    assert "fallbacks: error -> mini; context_window -> mini" in text


async def test_explain_when_nothing_can_be_picked(make_router: RouterFactory, adapter: FakeAdapter) -> None:
    adapter.script("m", fail(lambda: RateLimitError("429", retry_after=12.0)))
    router = make_router(table())
    with pytest.raises(RateLimitError):
        await router.call("chat", chat("mini"))
    report = explain(router, "mini", samples=10)
    assert report["blocked"]["retry_after"] == pytest.approx(12.0)
    assert "no pick possible now" in format_explain(report)


async def test_explain_unknown_model(make_router: RouterFactory) -> None:
    with pytest.raises(NotFoundError):
        explain(make_router(table()), "nope")
