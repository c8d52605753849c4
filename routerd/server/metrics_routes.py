"""``GET /metrics``: the route, the lifespan hook that feeds it, and the optional separate metrics port.

Wiring (``routerd/server/app.py``): add ``metrics_routes(state)`` to the app's routes and
``metrics_lifespan`` to the lifespan hooks. Where ``/metrics`` is served:

* ``ROUTERD_METRICS_PORT`` unset: on the main port, next to the API.
* ``ROUTERD_METRICS_PORT`` set: only on that port (same host), so the API port can be exposed while
  the metrics port stays inside the cluster. With ``--workers N`` every worker binds it with
  ``SO_REUSEPORT`` and any of them answers with the merged view of all workers.

Who may read it: with a master key set, ``/metrics`` on the main port needs the key like every other
endpoint but the probes (Prometheus sends it with ``authorization: {credentials: ...}``), because the
metrics name every deployment, model group and provider behind the gateway. The separate metrics port
is open by default: it exists to be reachable only from inside the cluster. ``ROUTERD_METRICS_REQUIRE_AUTH``
decides either way when set (``false`` opens the main port's ``/metrics``); ``general_settings.
metrics_require_auth: true`` requires the key on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Generator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.metrics.multiprocess import worker_exiting
from routerd.metrics.runtime import MetricsRuntime
from routerd.routing.explain import health_report
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.state import AppState

log = logging.getLogger("routerd.metrics")

# How often each worker re-publishes deployment health in multiprocess mode, where a scrape reaches
# only one worker and the others' gauges would otherwise show their state at their last event.
MULTIPROCESS_REFRESH_SECONDS = 5.0


def metrics_runtime(state: AppState) -> MetricsRuntime:
    """The app's :class:`MetricsRuntime`, created on first use (on a private registry)."""
    if state.metrics is None:
        runtime = MetricsRuntime(
            health_report=lambda: health_report(state.router),
            deployment=lambda deployment_id: state.table.deployments.get(deployment_id),
            max_wildcard_values=state.settings.metrics_max_wildcard_labels,
        )
        # at once, not at startup: in multiprocess mode another worker's scrape may read this
        # process's gauges before its lifespan runs, and "min" would report generation 0
        reload = state.reload
        runtime.recorder.set_config(reload.generation, reload.loaded_at, reload.last_error is None)
        state.metrics = runtime
    return state.metrics


def requires_auth(state: AppState, *, separate_port: bool = False) -> bool:
    """Whether ``/metrics`` needs the master key (see the module docstring)."""
    if state.master_key is None:
        return False
    if state.settings.metrics_require_auth is not None:
        return state.settings.metrics_require_auth
    return state.table.server.metrics_require_auth or not separate_port


def metrics_endpoint(
    state: AppState, *, separate_port: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler for ``state``'s app (or for the separate metrics port)."""

    async def metrics(request: Request) -> Response:
        if requires_auth(state, separate_port=separate_port):
            try:
                require_key(request.headers, state.master_key)
            except Exception as exc:
                return error_response(exc)
        runtime = metrics_runtime(state)
        try:
            runtime.set_state(state.router.state.status())
            runtime.refresh()  # reads the router's health: on the event loop
            if state.gate is not None and state.gate.cache is not None:
                runtime.set_cache_evictions(state.gate.cache.evictions)
        except Exception:  # a scrape still answers, with the health gauges as of the last events
            log.exception("refreshing deployment metrics failed")
        body, headers = await anyio.to_thread.run_sync(
            runtime.render, request.headers.get("accept"), request.headers.get("accept-encoding")
        )
        return Response(body, headers=headers)

    return metrics


def metrics_routes(state: AppState) -> list[BaseRoute]:
    """``GET /metrics`` for the main app; none when a separate metrics port is configured."""
    metrics_runtime(state)
    if state.settings.metrics_port is not None:
        return []
    return [Route("/metrics", metrics_endpoint(state), methods=["GET"])]


@contextlib.asynccontextmanager
async def metrics_lifespan(state: AppState) -> AsyncIterator[None]:
    """Subscribe the recorder to the event bus, publish the startup state, and serve the metrics port."""
    runtime = metrics_runtime(state)
    recorder = runtime.recorder
    reload = state.reload
    recorder.set_config(reload.generation, reload.loaded_at, reload.last_error is None)
    runtime.refresh()  # every served deployment appears, healthy, before its first call
    recorder.on_reloaded(runtime.refresh)
    # bound before anything starts, so "port in use" fails the startup with a plain error
    sock: socket.socket | None = None
    if state.settings.metrics_port is not None:
        # every worker binds the same port in multiprocess mode; the kernel spreads scrapes among them
        sock = _bind(
            state.settings.host, state.settings.metrics_port, reuse_port=runtime.multiprocess_dir is not None
        )
        runtime.port = int(sock.getsockname()[1])
    state.events.subscribe(recorder)
    server: _EmbeddedServer | None = None
    try:
        # asyncio's task group, not anyio's: anyio's asyncio backend is a start-up import (~20 ms)
        # that a server without a metrics port or several workers does not otherwise need
        async with asyncio.TaskGroup() as tasks:
            if sock is not None:
                server = await _start_metrics_server(state, sock, tasks)
            refresher: asyncio.Task[None] | None = None
            if runtime.multiprocess_dir is not None:
                refresher = tasks.create_task(_refresh_periodically(runtime), name="routerd-metrics-refresh")
            try:
                yield
            finally:
                if refresher is not None:
                    refresher.cancel()
                if server is not None:
                    server.should_exit = True  # its task ends after closing its socket
    finally:
        state.events.unsubscribe(recorder)
        if sock is not None and server is None:
            sock.close()  # uvicorn never took it over
        if runtime.multiprocess_dir is not None:
            worker_exiting()


async def _refresh_periodically(runtime: MetricsRuntime) -> None:
    """Re-publish deployment health until cancelled (at shutdown)."""
    while True:
        await asyncio.sleep(MULTIPROCESS_REFRESH_SECONDS)
        try:
            runtime.refresh()
        except Exception:  # metrics must never take the worker down
            log.exception("refreshing deployment metrics failed")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn serving the metrics port inside the main server's event loop.

    It must leave the process's signal handlers to the main server: SIGTERM drains the API server,
    whose shutdown then stops this one through the lifespan.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening socket; binding here (not in uvicorn) turns "port in use" into a clear startup error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


async def _start_metrics_server(
    state: AppState, sock: socket.socket, tasks: asyncio.TaskGroup
) -> _EmbeddedServer:
    app = Starlette(routes=[Route("/metrics", metrics_endpoint(state, separate_port=True), methods=["GET"])])
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=1
    )
    server = _EmbeddedServer(config)
    tasks.create_task(server.serve([sock]), name="routerd-metrics-server")
    async with asyncio.timeout(10):
        await server.ready.wait()
    host, port = sock.getsockname()[:2]
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
