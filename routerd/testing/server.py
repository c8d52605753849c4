"""Run the real routerd daemon on a free loopback port, in a background thread, for tests.

    with RouterdServer.from_file("configs/example.yaml") as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="...")

The server runs the same app, uvicorn and HTTP protocol as ``routerd serve`` (on asyncio's own loop);
only the process boundary is missing, so tests can reach into ``server.state`` (router, reload status)
to assert on it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from routerd.server.protocol import RouterdHttpProtocol
from routerd.server.state import AppState


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RouterdServer:
    """A uvicorn server for ``app`` on ``127.0.0.1:<free port>`` in a daemon thread."""

    def __init__(self, app: Starlette, *, port: int | None = None, drain_timeout: int = 5) -> None:
        self.app = app
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http=RouterdHttpProtocol,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=drain_timeout,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_file(cls, path: str | Path, **settings: Any) -> RouterdServer:
        from routerd.config import load_config
        from routerd.server.app import create_app
        from routerd.settings import Settings

        table = load_config(Path(path))
        merged = {"config": Path(path), "watch": False, **settings}
        return cls(create_app(table, settings=Settings(**merged), config_path=Path(path)))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.routerd
        return state

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._server.serve())
        finally:
            # a loop left open leaks its self-pipe sockets (a ResourceWarning at garbage collection)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> RouterdServer:
        self._thread = threading.Thread(target=self._run, name=f"routerd-test-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("routerd test server failed to start")
            if time.monotonic() > deadline:
                raise RuntimeError("routerd test server did not start within 20 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> RouterdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
