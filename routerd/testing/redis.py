"""Private ``redis-server`` instances on free loopback ports, for tests and benchmarks (never the system one).

    with RedisServer(tmp_path) as server:          # a single instance
        url = server.url
    with RedisClusterNodes(tmp_path) as cluster:   # three masters, slots spread by redis-cli
        nodes = cluster.startup_nodes

Each instance keeps nothing on disk (``--save '' --appendonly no``) and lives in its own directory.
:meth:`RedisServer.kill` and :meth:`RedisServer.start` (same port) let a test take Redis away and
bring it back.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from routerd.testing.server import free_port

__all__ = ["RedisClusterNodes", "RedisServer", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The ``redis-server`` executable, or None when it is not installed."""
    return shutil.which("redis-server")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A free port for a cluster node: Redis also listens on port + 10000 (the cluster bus)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 55535)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) for a Redis cluster node")


def command(port: int, *args: str, timeout: float = 10.0) -> str:
    """Run one command with ``redis-cli`` against the instance on ``port``; its output."""
    result = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:<port>`` in ``directory``."""

    def __init__(
        self, directory: Path, *, port: int | None = None, cluster: bool = False, tls: bool = False
    ) -> None:
        self.directory = directory
        self.port = port or (_cluster_port() if cluster else free_port())
        self.cluster = cluster
        self.tls = tls  # TLS only, with a self-signed certificate for 127.0.0.1 (clients trust it by URL)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def certificate(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.certificate}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _tls_args(self) -> list[str]:
        key = self.directory / "key.pem"
        if not self.certificate.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", str(key), "-out", str(self.certificate), "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"],
                capture_output=True, check=True, timeout=60,
            )  # fmt: skip
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(self.certificate), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(self.certificate), "--tls-auth-clients", "no",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs Debian's redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--enable-debug-command", "local",  # DEBUG SLEEP: tests make Redis slow
        ]  # fmt: skip
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        if self.tls:
            args += self._tls_args()  # the later --port 0 wins: no plain-text listener
        log = (self.directory / "redis.log").open("ab")
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not (self._tls_ready() if self.tls else _ping(self.port)):
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.02)
        return self

    def _tls_ready(self) -> bool:
        import ssl

        context = ssl.create_default_context(cafile=str(self.certificate))
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None

    def command(self, *args: str) -> str:
        if self.tls:
            return command(self.port, "--tls", "--cacert", str(self.certificate), *args)
        return command(self.port, *args)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisClusterNodes:
    """Three cluster-mode ``redis-server`` masters joined into one cluster (no replicas)."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.servers = [RedisServer(directory / f"node{i}", cluster=True) for i in range(size)]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", server.port) for server in self.servers]

    def start(self, timeout: float = 30.0) -> RedisClusterNodes:
        try:
            for server in self.servers:
                server.start()
            addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=timeout,
                check=True,
            )
            deadline = time.monotonic() + timeout
            while not all("cluster_state:ok" in s.command("CLUSTER", "INFO") for s in self.servers):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisClusterNodes:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
