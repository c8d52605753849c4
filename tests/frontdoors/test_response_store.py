"""The in-memory response store: owner scoping, TTL on a fake clock, and its bounds."""

from __future__ import annotations

from routerd.frontdoors.limits import (
    RESPONSE_STORE_MAX_ENTRIES,
    RESPONSE_STORE_MAX_ENTRY_BYTES,
    RESPONSE_STORE_MAX_TOTAL_BYTES,
)
from routerd.frontdoors.response_store import MemoryResponseStore, StoredResponse


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(text: str = "x") -> StoredResponse:
    return StoredResponse(
        {"id": "r", "output": [{"type": "message", "text": text}]}, [{"role": "user", "content": text}]
    )


async def test_put_get_delete_scoped_by_owner() -> None:
    store = MemoryResponseStore()
    assert await store.put("resp_1", "a", record("hello"))
    got = await store.get("resp_1", "a")
    assert got is not None and got.conversation() == [
        {"role": "user", "content": "hello"},
        {"type": "message", "text": "hello"},
    ]
    assert await store.get("resp_1", "b") is None
    assert not await store.delete("resp_1", "b")
    assert await store.delete("resp_1", "a")
    assert await store.get("resp_1", "a") is None
    assert store.total_bytes == 0


async def test_stored_records_cannot_be_changed_afterwards() -> None:
    store = MemoryResponseStore()
    original = record("v1")
    await store.put("r", "a", original)
    original.input_items.append({"role": "user", "content": "mutated"})
    got = await store.get("r", "a")
    assert got is not None and len(got.input_items) == 1


async def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    await store.put("old", "a", record())
    clock.now += 30
    await store.put("new", "a", record())
    clock.now += 31
    assert await store.get("old", "a") is None
    assert await store.get("new", "a") is not None
    assert len(store) == 1


async def test_entry_count_bound_evicts_the_oldest() -> None:
    store = MemoryResponseStore(max_entries=3)
    for index in range(5):
        await store.put(f"r{index}", "a", record())
    assert len(store) == 3
    assert [await store.get(f"r{i}", "a") is not None for i in range(5)] == [False, False, True, True, True]


async def test_byte_bounds() -> None:
    size = len(
        b'{"response":{"id":"r","output":[{"type":"message","text":"xxxxxxxxxx"}]},"input_items":[{"role":"user","content":"xxxxxxxxxx"}]}'
    )
    store = MemoryResponseStore(max_entry_bytes=size, max_total_bytes=2 * size)
    assert not await store.put("big", "a", record("x" * 11))  # one byte over the entry bound
    assert await store.get("big", "a") is None
    for index in range(3):
        assert await store.put(f"r{index}", "a", record("x" * 10))
    assert store.total_bytes == 2 * size and len(store) == 2
    assert await store.get("r0", "a") is None


async def test_replacing_an_id_keeps_the_byte_count_exact() -> None:
    store = MemoryResponseStore()
    await store.put("r", "a", record("short"))
    await store.put("r", "a", record("a much longer text"))
    await store.delete("r", "a")
    assert store.total_bytes == 0 and len(store) == 0


def test_default_bounds_are_the_documented_constants() -> None:
    store = MemoryResponseStore()
    assert (store.max_entries, store.max_entry_bytes, store.max_total_bytes) == (
        RESPONSE_STORE_MAX_ENTRIES,
        RESPONSE_STORE_MAX_ENTRY_BYTES,
        RESPONSE_STORE_MAX_TOTAL_BYTES,
    )
