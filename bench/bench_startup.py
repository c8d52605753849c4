"""Start-up cost of routerd: `import routerd`, `routerd check`, and `routerd serve` until it is ready.

For each of N runs, in fresh processes:

* ``python -c 'import routerd'``: wall time of the whole interpreter run;
* ``routerd check CONFIG``: wall time;
* ``routerd serve --config CONFIG``: from process start to the first 200 from ``/health/readiness``
  (polled every 5 ms), then the resident set size of the idle server (VmRSS, read 0.5 s after ready).

Prints the median (and min/max) of each, as wall time and as CPU time (user + system) of the process:
CPU time is the number a busy shared machine moves least. ``--repo`` measures another checkout (e.g.
main, for a before/after), with that checkout first on ``PYTHONPATH``.

Bytecode: an installed routerd runs from compiled bytecode (``pip install`` writes it, and so does the
container image's build), but a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` compiles every module
from source on every start (~0.3 s of CPU here). By default the runs therefore use a bytecode cache of
their own (``PYTHONPYCACHEPREFIX`` under ``.bench/``, filled by one unmeasured warm-up run), whatever
the environment says; ``--no-bytecode`` measures the compile-every-time case instead.

    .venv/bin/python bench/bench_startup.py [--runs 7] [--config configs/example.yaml] [--repo PATH]
                                            [--no-bytecode]

A benchmark, not a test (targets from issues 19 and 20: ready <= 0.5 s, idle RSS <= 80 MB).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
POLL_INTERVAL = 0.005
READY_TIMEOUT = 30.0
IDLE_SETTLE = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(repo: Path, bytecode: bool) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "ROUTERD_LOG_LEVEL": "warning",
        "ROUTERD_LOG_REQUESTS": "false",
        "ROUTERD_WATCH": "false",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(REPO / ".bench" / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(REPO / ".bench" / "no-pycache")  # empty: nothing cached is read
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``args``."""
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run(args, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, children_cpu() - cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_once(config: Path, env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Seconds from spawning `routerd serve` to readiness 200, its CPU seconds until then, and its
    idle RSS in MB."""
    port = free_port()
    args = [sys.executable, "-m", "routerd.cli", "serve", "--config", str(config), "--port", str(port)]
    started = time.perf_counter()
    daemon = subprocess.Popen(args, env=env, cwd=cwd)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:
                try:
                    if client.get("/health/readiness").status_code == 200:
                        ready = time.perf_counter() - started
                        cpu = cpu_seconds(daemon.pid)
                        break
                except httpx.TransportError:
                    pass
                if daemon.poll() is not None or time.perf_counter() - started > READY_TIMEOUT:
                    raise RuntimeError("routerd serve did not become ready")
                time.sleep(POLL_INTERVAL)
            time.sleep(IDLE_SETTLE)
            return ready, cpu, rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def report(name: str, samples: list[float], unit: str, scale: float = 1.0) -> None:
    values = [s * scale for s in samples]
    print(
        f"{name:<30} median {statistics.median(values):8.1f} {unit}"
        f"   min {min(values):8.1f}   max {max(values):8.1f}   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "example.yaml")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to measure (default: this one)")
    parser.add_argument(
        "--no-bytecode",
        dest="bytecode",
        action="store_false",
        help="compile every module from source on every start (no bytecode cache)",
    )
    args = parser.parse_args()
    repo = args.repo.resolve()
    env = environment(repo, args.bytecode)
    config = args.config.resolve()
    if args.bytecode:  # unmeasured warm-up: fills the bytecode cache for everything serve imports
        serve_once(config, env, repo)

    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    for _ in range(args.runs):
        wall, cpu = timed_run([sys.executable, "-c", "import routerd"], env, repo)
        add("import routerd (wall)", wall)
        add("import routerd (CPU)", cpu)
        wall, cpu = timed_run([sys.executable, "-m", "routerd.cli", "check", str(config)], env, repo)
        add("routerd check (wall)", wall)
        add("routerd check (CPU)", cpu)
        wall, cpu, megabytes = serve_once(config, env, repo)
        add("serve: start -> ready (wall)", wall)
        add("serve: start -> ready (CPU)", cpu)
        add("serve: idle RSS", megabytes)
    print(f"repo {repo}, config {config}, bytecode {'cached' if args.bytecode else 'none'}")
    for name, values in samples.items():
        if name.endswith("RSS"):
            report(name, values, "MB")
        else:
            report(name, values, "ms", 1000)


if __name__ == "__main__":
    main()
