"""Live reload of the routing file: on a file change, SIGHUP, or ``POST /admin/reload``.

All or nothing: the new file is loaded, validated and compiled aside (in a worker thread, so the
event loop keeps serving), then published with one reference swap in the router. Any error leaves
the old table serving; the error, with its file:line:col, is logged, counted, and shown in
``/health`` until a good file arrives. Requests in flight keep the table they started with.

Before loading, the sources' fingerprint (the files' bytes and the environment) is compared with the
serving table's, and the other files it was compiled from (guardrail lists) with their digests: when
nothing changed, the reload is "unchanged" without loading or compiling (a 35,000-deployment file
takes tens of seconds to compile).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.config.files import LoadLimits, UnreadableConfig, read_config_bytes
from routerd.config.loader import current_fingerprint
from routerd.config.table import RoutingTable
from routerd.config.watcher import changes
from routerd.errors import BadRequestError, ConfigError
from routerd.events import ConfigReloaded
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.state import AppState

log = logging.getLogger("routerd.reload")

Loader = Callable[[Path], RoutingTable]
# the fingerprint a table's sources have now (None when one cannot be read): see Reloader
Fingerprint = Callable[[RoutingTable], str | None]


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    result: str  # "success" | "unchanged" | "failure"
    generation: int
    content_hash: str
    error: str | None = None
    duration: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "result": self.result,
            "generation": self.generation,
            "content_hash": self.content_hash,
            "error": self.error,
            "duration_ms": round(self.duration * 1000, 3),
        }


def _file_loader(limits: LoadLimits) -> Loader:
    def load(path: Path) -> RoutingTable:
        from routerd.config import load_config

        return load_config(path, limits=limits)

    return load


def _file_fingerprint(limits: LoadLimits) -> Fingerprint:
    def fingerprint(table: RoutingTable) -> str | None:
        if not all(_digest(path, limits) == digest for path, digest in table.data_files):
            return None  # a guardrail list changed (or went away): load and compile again
        return current_fingerprint(table.sources, os.environ, limits)

    return fingerprint


def _digest(path: str, limits: LoadLimits) -> str | None:
    try:
        return hashlib.sha256(read_config_bytes(Path(path), limits.max_bytes)).hexdigest()
    except UnreadableConfig:
        return None


class Reloader:
    """Serialises reloads of one daemon's routing file and records their outcome in ``state``.

    With the default loader, a reload first compares the sources' fingerprint with the serving
    table's and skips loading when they are equal; an injected ``loader`` is always called.
    """

    def __init__(self, state: AppState, loader: Loader | None = None) -> None:
        self.state = state
        limits = state.settings.config_limits()
        self.loader = loader or _file_loader(limits)
        self.fingerprint: Fingerprint | None = _file_fingerprint(limits) if loader is None else None
        self._lock = asyncio.Lock()
        # what the process started with: host/port/workers/state backend cannot follow a reload
        self._startup_server = state.table.server

    def watched_paths(self) -> list[Path]:
        table = self.state.table
        sources = table.sources or ((table.source,) if table.source else ())
        paths = [Path(p) for p in sources]
        if not paths and self.state.config_path is not None:
            paths = [self.state.config_path]
        return paths

    async def reload(self, reason: str) -> ReloadOutcome:
        """Load the file again and publish it if it is valid and different."""
        path = self.state.config_path
        if path is None:
            raise BadRequestError("this routerd was started without a config file; nothing to reload")
        async with self._lock:
            started = time.perf_counter()
            status = self.state.reload
            status.last_attempt_at = time.time()
            if await self._sources_unchanged():
                status.last_error = None
                return ReloadOutcome(
                    "unchanged", status.generation, status.content_hash, None, time.perf_counter() - started
                )
            try:
                table = await asyncio.to_thread(self.loader, path)
                if table.content_hash != status.content_hash:
                    # publish validates what only the router can (strategy arguments) before swapping
                    self.state.router.publish(table)
            except Exception as exc:
                message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                status.failures += 1
                status.last_error = message
                log.error(
                    "reload (%s) failed; still serving generation %d:\n%s", reason, status.generation, message
                )
                self._emit("failure", message)
                return ReloadOutcome(
                    "failure", status.generation, status.content_hash, message, time.perf_counter() - started
                )
            status.last_error = None
            if table.content_hash == status.content_hash:
                return ReloadOutcome(
                    "unchanged", status.generation, status.content_hash, None, time.perf_counter() - started
                )
            status.restart_required = self._restart_required(table)
            status.generation += 1
            status.content_hash = table.content_hash
            status.loaded_at = time.time()
            for warning in table.warnings:
                log.warning("config: %s", warning)
            log.info(
                "reload (%s): generation %d (%s), %d groups",
                reason,
                status.generation,
                table.content_hash[:12],
                len(table.groups) + len(table.wildcard_groups),
            )
            self._emit("success", None)
            return ReloadOutcome(
                "success", status.generation, status.content_hash, None, time.perf_counter() - started
            )

    async def _sources_unchanged(self) -> bool:
        """True when the serving table's files and environment hash as they did when it was loaded."""
        table = self.state.table
        if self.fingerprint is None or not table.source_fingerprint or not table.sources:
            return False
        if self.state.config_path is not None and table.source != str(self.state.config_path):
            return False  # the table did not come from this file (a test's or an SDK's table)
        # the files are read in a thread: the event loop never waits on file I/O
        now = await asyncio.to_thread(self.fingerprint, table)
        return now == table.source_fingerprint

    def _restart_required(self, table: RoutingTable) -> tuple[str, ...]:
        """Settings the new file changes that only a restart applies; logged, and shown in /health."""
        started = self._startup_server.restart_only()
        changed = tuple(
            name for name, value in table.server.restart_only().items() if value != started.get(name)
        )
        if changed:
            log.warning(
                "reload: general_settings/router_settings %s changed; they take effect only after a restart",
                ", ".join(changed),
            )
        return changed

    def _emit(self, result: str, error: str | None) -> None:
        status = self.state.reload
        self.state.events.emit(
            ConfigReloaded(
                result=result,
                generation=status.generation,
                content_hash=status.content_hash,
                at=time.time(),
                error=error,
            )
        )


@contextlib.asynccontextmanager
async def reload_lifespan(state: AppState) -> AsyncIterator[None]:
    """Start the file watcher (unless ``--no-watch``) and the SIGHUP handler; stop both at shutdown."""
    reloader = Reloader(state)
    state.reloader = reloader
    if state.config_path is None:
        yield
        return
    # asyncio's own task group and events, not anyio's: anyio's asyncio backend is a start-up import
    # (~20 ms) that nothing else needs before the server is ready
    stop = asyncio.Event()
    started: list[asyncio.Task[None]] = []
    async with asyncio.TaskGroup() as tasks:
        if state.settings.watch:
            started.append(tasks.create_task(_watch(reloader, stop), name="routerd-config-watch"))
        if _install_sighup(hup := asyncio.Event()):
            started.append(tasks.create_task(_reload_on_sighup(reloader, hup), name="routerd-sighup-reload"))
        try:
            yield
        finally:
            stop.set()
            for task in started:
                task.cancel()


async def _watch(reloader: Reloader, stop: asyncio.Event) -> None:
    settings = reloader.state.settings
    debounce, max_bytes = settings.reload_debounce_ms, settings.config_max_bytes
    try:
        async for _ in changes(
            reloader.watched_paths,
            debounce_ms=debounce,
            stop_event=stop,
            max_bytes=max_bytes,
            served=reloader.state.table.source_fingerprint,
        ):
            await reloader.reload("file change")
    except Exception:
        log.exception("config watcher stopped; reload with SIGHUP or POST /admin/reload")


def _install_sighup(hup: asyncio.Event) -> bool:
    """Make SIGHUP set ``hup``; False where that is impossible."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, hup.set)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        # not the main thread (tests run the server in a thread) or no SIGHUP on this platform
        log.debug("SIGHUP reload not available in this thread")
        return False
    return True


async def _reload_on_sighup(reloader: Reloader, hup: asyncio.Event) -> None:
    # The signal handler only sets the event: it runs outside any task, where nothing can be awaited.
    while True:
        await hup.wait()
        hup.clear()
        await reloader.reload("SIGHUP")


async def admin_reload(request: Request) -> Response:
    state: AppState = request.app.state.routerd
    try:
        require_key(request.headers, state.master_key)
        reloader = state.reloader
        if reloader is None:
            raise BadRequestError("reload is not available in this process")
        outcome = await reloader.reload("POST /admin/reload")
    except Exception as exc:
        return error_response(exc)
    status = 200 if outcome.result != "failure" else 422
    return Response(orjson.dumps(outcome.to_dict()), status_code=status, media_type="application/json")


def reload_routes() -> list[BaseRoute]:
    return [Route("/admin/reload", admin_reload, methods=["POST"])]
