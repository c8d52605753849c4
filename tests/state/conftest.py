"""Fixtures of the shared-state tests: private redis-server instances (never the system service)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routerd.testing.redis import RedisClusterNodes, RedisServer, redis_server_binary


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("redis-server is not installed: run .ci/run, which installs Debian's redis-server")
    return binary


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh private Redis on a free loopback port, stopped after the test."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """Three cluster-mode redis-server masters on loopback, joined with ``redis-cli --cluster create``."""
    with RedisClusterNodes(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster
