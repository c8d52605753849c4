"""``routerd serve``: load the routing file, then run uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import inspect
import logging
import math
import os
import signal
from types import FrameType

import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from uvicorn.supervisors.multiprocess import Multiprocess

from routerd.codecache import finish_startup
from routerd.config.table import RoutingTable
from routerd.logs import configure_logging
from routerd.server.limits import raise_open_file_limit
from routerd.server.protocol import RouterdHttpProtocol, check_uvicorn
from routerd.settings import Settings

log = logging.getLogger("routerd.server")


def _export(settings: Settings) -> None:
    """Workers are separate processes that read their settings from ``ROUTERD_*`` variables."""
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):  # master_key, redis_url
            value = value.get_secret_value()
        os.environ[f"ROUTERD_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, drain in-flight requests (bounded), exit.

    The routing file is loaded once here before binding, so a broken file fails the start with its
    file:line:col errors instead of starting a gateway with nothing to route.
    """
    from routerd.config import load_config
    from routerd.metrics.multiprocess import prepare_multiprocess_dir
    from routerd.server.app import app_from_settings, create_app

    configure_logging(settings)
    check_uvicorn()
    raise_open_file_limit()  # before the connection limit is derived from it
    table = load_config(settings.config, limits=settings.config_limits())
    settings = with_file_settings(settings, table)
    log.info(
        "routerd serving %s on %s:%s (%d worker(s))",
        settings.config,
        settings.host,
        settings.port,
        settings.workers,
    )
    app: Starlette | str
    if settings.workers > 1:
        # every worker writes its samples to a shared directory; a scrape of any worker merges them
        prepare_multiprocess_dir()
        _export(settings)
        app = "routerd.server.app:app_from_settings"
    else:
        del app_from_settings
        app = create_app(table, settings=settings, config_path=settings.config)
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=RouterdHttpProtocol,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        # the protocol enforces the connection bounds itself (routerd.server.limits), with its own
        # JSON 503 and idle-first eviction instead of uvicorn's plain-text refusal of every new request
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout),
        limit_concurrency=None,
        log_config=None,
        access_log=settings.access_log,
        lifespan="on",
    )
    if hasattr(config, "timeout_worker_healthcheck"):  # the uvicorn versions with the pinging supervisor
        config.timeout_worker_healthcheck = WORKER_HEALTHCHECK_SECONDS
    collect_from_here()
    if settings.workers > 1:
        _supervisor(config).run()
    else:
        signal.signal(signal.SIGTERM, _exit_cleanly)
        uvicorn.Server(config).run()


def collect_from_here() -> None:
    """Move every object made so far (modules, classes, the routing table, the app: they live as long
    as the process) out of the cyclic collector's way, and let it run for what serving makes.

    ``routerd serve`` pauses the collector while it starts (routerd.cli.run_serve); a worker process
    freezes what its start made too (app_from_settings), so that later full collections do not walk
    it again (CPython's gc.freeze). Start-up's code cache, if the command line installed
    one, is saved and removed here too (routerd.codecache)."""
    finish_startup()
    gc.freeze()
    gc.enable()


#: Seconds a worker may take to start (load a large routing file, import on a busy host) and to answer the
#: supervisor's pings before it is killed and replaced; uvicorn's default of 5 s restarted workers in a
#: loop on a loaded machine.
WORKER_HEALTHCHECK_SECONDS = 60


def _supervisor(config: uvicorn.Config) -> _ReloadingSupervisor:
    """The worker supervisor; uvicorn before 0.5x also wants the function each worker runs."""
    sockets = [config.bind_socket()]
    if "target" in inspect.signature(Multiprocess.__init__).parameters:
        target = uvicorn.Server(config).run
        return _ReloadingSupervisor(config, target=target, sockets=sockets)  # type: ignore[call-arg]
    return _ReloadingSupervisor(config, sockets=sockets)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handler: exit with status 0.

    uvicorn drains on SIGTERM, then restores the previous handler and raises the signal again so that
    its default action ends the process; that would report a clean, drained shutdown as a kill
    (status -15 / 143) to supervisors. With this handler in place the re-raised signal (or one that
    arrives before uvicorn is listening) ends the process with status 0 instead.
    """
    raise SystemExit(0)


def with_file_settings(settings: Settings, table: RoutingTable) -> Settings:
    """Settings with the file's ``general_settings.host/port/workers`` where no flag or env var set them."""
    from_file = {
        name: value
        for name, value in (
            ("host", table.server.host),
            ("port", table.server.port),
            ("workers", table.server.workers),
        )
        if value is not None and name not in settings.model_fields_set
    }
    return settings.model_copy(update=from_file) if from_file else settings


class _ReloadingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, except that SIGHUP reloads the routing file in every worker.

    uvicorn's own answer to SIGHUP is to replace the workers one by one: requests in flight on the old
    workers are cut, and a broken file at that moment would leave workers that cannot start. Each
    worker already reloads on SIGHUP all-or-nothing (keeping its table on error), so forward it.
    """

    def handle_hup(self) -> None:
        log.info("SIGHUP: reloading the routing file in %d workers", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
