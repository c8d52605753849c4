"""Helpers of the shared-state tests: routers on one Redis, and bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routerd.config import load_config
from routerd.config.table import RoutingTable
from routerd.errors import APIError
from routerd.routing.executor import Router
from routerd.state.redis import RedisHealthStore, RedisOptions


def table_of(directory: Path, text: str) -> RoutingTable:
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


def mock_config(rpm: int | None = None, tpm: int | None = None, dep_id: str = "m1") -> str:
    limits = "".join(f", {k}: {v}" for k, v in (("rpm", rpm), ("tpm", tpm)) if v is not None)
    return (
        "model_list:\n"
        f"  - model_name: chat\n    litellm_params: {{model: mock/m{limits}}}\n"
        f"    model_info: {{id: {dep_id}}}\n"
    )


def redis_store(url: str, **options: Any) -> RedisHealthStore:
    """A store as ``routerd serve`` builds it (through the settings), with ``options`` overridden."""
    from routerd.state.connect import _single

    merged: dict[str, Any] = {"timeout": 0.5, "sync_interval": 0.05, "reconnect_interval": 0.1}
    merged.update(options)
    client, subscriber = _single(url, merged["timeout"])
    return RedisHealthStore(client, subscriber, RedisOptions(**merged))


async def call(router: Router, **body: Any) -> APIError | None:
    """One chat call; the error it raised, or None when it succeeded."""
    try:
        await router.call("chat", {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **body})
    except APIError as exc:
        return exc
    return None


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (bounded) for an effect another task or process produces."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
