"""Choose and build the health store from the daemon settings and the routing file.

* ``ROUTERD_REDIS_URL``, else ``router_settings.redis_startup_nodes`` (Redis Cluster), else
  ``router_settings.redis_url`` / ``redis_host``...: a :class:`~routerd.state.redis.RedisHealthStore`;
* nothing: a :class:`~routerd.state.MemoryHealthStore`, which with ``--workers N`` enforces
  ``limit // N`` per worker so that the host as a whole stays within each limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from routerd.config.table import ServerSettings
from routerd.settings import Settings
from routerd.state import HealthStore, MemoryHealthStore


def make_store(settings: Settings, server: ServerSettings) -> HealthStore:
    """The store ``settings`` and the file's ``router_settings.redis_*`` ask for (not yet started)."""
    url = settings.redis_url.get_secret_value() if settings.redis_url is not None else None
    nodes = server.redis_startup_nodes if url is None else ()
    url = url or server.redis_url
    if not url and not nodes:
        return MemoryHealthStore(share=settings.workers)
    from routerd.state.redis import RedisHealthStore, RedisOptions

    options = RedisOptions(
        namespace=settings.state_namespace,
        timeout=settings.state_timeout_ms / 1000,
        sync_interval=settings.state_sync_interval,
        reconnect_interval=settings.state_reconnect_interval,
        processes=settings.state_processes or settings.workers,
        probe_lease=settings.state_probe_lease,
        queue_max=settings.state_queue_max,
        lease_fraction=settings.state_lease_fraction,
    )
    if nodes:
        client, subscriber = _cluster(nodes, server.redis_password, options.timeout)
        where = f"redis-cluster {nodes[0][0]}:{nodes[0][1]}"
    else:
        assert url is not None
        client, subscriber = _single(url, options.timeout)
        where = f"redis {_where(url)}"
    return RedisHealthStore(client, subscriber, options, describe=where)


def shared_client(
    settings: Settings,
    server: ServerSettings,
    *,
    url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    password: str | None = None,
    timeout: float = 0.05,
) -> Any | None:
    """A Redis client for other shared state (the response cache, the spend ledger): the given
    ``url`` or ``host``/``port``, else the shared-state store's own Redis (``ROUTERD_REDIS_URL``,
    ``router_settings.redis_*``, or its Cluster). None when no Redis is configured anywhere."""
    if url is None and host is not None:
        auth = f":{quote(password, safe='')}@" if password else ""
        url = f"redis://{auth}{host}:{port or 6379}/0"
    if url is None and settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
    if url is None and server.redis_startup_nodes:
        client, _ = _cluster(server.redis_startup_nodes, server.redis_password, timeout)
        return client
    url = url or server.redis_url
    if not url:
        return None
    client, subscriber = _single(url, timeout)
    del subscriber
    return client


def _no_retry() -> Any:
    # A failed or slow call switches to local state at once; retrying would multiply the timeout.
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 0)


def _single(url: str, timeout: float) -> tuple[Any, Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=_no_retry())
    # The subscriber blocks on reads by design: no read timeout, only a connect timeout.
    subscriber = Redis.from_url(url, socket_connect_timeout=timeout, retry=_no_retry())
    return client, subscriber


def _cluster(nodes: tuple[tuple[str, int], ...], password: str | None, timeout: float) -> tuple[Any, Any]:
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.cluster import ClusterNode

    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_no_retry(),
    )
    # Published messages reach every node of a cluster, so one node's subscription hears them all.
    host, port = nodes[0]
    subscriber = Redis(host=host, port=port, password=password, socket_connect_timeout=timeout)
    return client, subscriber


def _where(url: str) -> str:
    """``host:port/db`` of a Redis URL, for logs and ``/health``: never its password."""
    parts = urlsplit(url)
    path = parts.path.lstrip("/") or "0"
    scheme = "tls " if parts.scheme == "rediss" else ""
    return f"{scheme}{parts.hostname or 'localhost'}:{parts.port or 6379}/{path}"
