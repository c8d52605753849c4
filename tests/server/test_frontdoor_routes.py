"""The front doors' server pieces in-process: the stored-response lifetime setting, the owner digest,
and the usage read from native streams (the doors end to end are in tests/e2e/test_frontdoors_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from routerd.config import load_config
from routerd.frontdoors.response_store import StoredResponse
from routerd.server.app import create_app
from routerd.server.frontdoor_routes import response_store
from routerd.server.frontdoor_serve import _native_event_usage, owner_of
from routerd.settings import Settings
from routerd.testing import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "example.yaml"


async def test_responses_ttl_sets_how_long_a_stored_response_lives() -> None:
    clock = FakeClock()
    store = response_store(Settings(responses_ttl=10), clock=clock.monotonic)
    record = StoredResponse({"id": "resp_1", "output": []}, [])
    await store.put("resp_1", "owner", record)
    clock.advance(9)
    assert await store.get("resp_1", "owner") == record
    clock.advance(2)
    assert await store.get("resp_1", "owner") is None


def test_the_daemons_store_uses_responses_ttl() -> None:
    app = create_app(load_config(EXAMPLE), settings=Settings(responses_ttl=42, watch=False))
    assert app.state.routerd.responses.ttl == 42


def test_owner_is_a_digest_never_the_key() -> None:
    alice = owner_of({"authorization": "Bearer sk-alice-secret-key"})
    assert "sk-alice" not in alice and len(alice) == 64
    assert owner_of({"x-api-key": "sk-alice-secret-key"}) == alice  # same key, whichever header
    assert owner_of({"authorization": "Bearer sk-bob-secret-key-00"}) != alice


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"type": "message_start", "message": {"usage": {"input_tokens": 12, "output_tokens": 1}}}, (12, 1)),
        ({"type": "message_delta", "usage": {"output_tokens": 30}}, (5, 30)),
        (
            {"type": "response.completed", "response": {"usage": {"input_tokens": 7, "output_tokens": 9}}},
            (7, 9),
        ),
        ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}, (5, 0)),
    ],
)
def test_usage_is_read_from_native_stream_events(event: dict, expected: tuple[int, int]) -> None:
    assert _native_event_usage(event, 5, 0) == expected
