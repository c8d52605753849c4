"""``routerd serve``: load the routing file, then run uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging
import math
import os

import uvicorn
from starlette.applications import Starlette

from routerd.logs import configure_logging
from routerd.settings import Settings

log = logging.getLogger("routerd.server")


def _export(settings: Settings) -> None:
    """Workers are separate processes that read their settings from ``ROUTERD_*`` variables."""
    for name, value in settings.model_dump(exclude_none=True).items():
        if name == "master_key" and settings.master_key is not None:
            value = settings.master_key.get_secret_value()
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
    table = load_config(settings.config)
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
    uvicorn.run(
        app,
        factory=settings.workers > 1,
        workers=settings.workers if settings.workers > 1 else None,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        log_config=None,
        access_log=settings.access_log,
        lifespan="on",
    )
