"""``--workers N``: every worker writes its own files; any worker's scrape shows the sum of all of them.

prometheus_client picks multiprocess mode when it is imported, so each worker here is a real
subprocess with ``PROMETHEUS_MULTIPROC_DIR`` set, as uvicorn's workers are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from routerd.metrics import multiprocess
from routerd.metrics.multiprocess import ENV, forget_dead_workers, prepare_multiprocess_dir

WORKER = textwrap.dedent(
    """
    import sys
    from routerd.events import ConfigReloaded, RequestFinished, RequestStarted
    from routerd.metrics import MetricsRuntime

    requests, generation, state = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    runtime = MetricsRuntime()
    recorder = runtime.recorder
    recorder.set_config(generation, 1_700_000_000.0 + generation, True)
    for i in range(requests):
        recorder(RequestFinished(str(i), "chat", "g", "g", "d1", "mock", 200, False, 1, 0, 0, 0.1, 0.05))
    recorder(RequestStarted("still-running", "chat"))
    report = {"deployments": [{"id": "d1", "group": "g", "provider": "mock", "state": state, "in_flight": 1}]}
    recorder.apply_health_report(report)
    if "--wait" in sys.argv:
        print("ready", flush=True)
        sys.stdin.readline()
    """
)

SCRAPE = textwrap.dedent(
    """
    import sys
    from routerd.metrics import MetricsRuntime
    runtime = MetricsRuntime()  # the worker that gets the scrape: itself serving generation 9
    runtime.recorder.set_config(9, 1_700_000_009.0, True)
    sys.stdout.write(runtime.render()[0].decode())
    """
)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _env(directory: Path) -> dict[str, str]:
    return {**os.environ, ENV: str(directory)}


def run_worker(directory: Path, requests: int, generation: int, state: str) -> None:
    subprocess.run(
        [sys.executable, "-c", WORKER, str(requests), str(generation), state],
        env=_env(directory),
        check=True,
        timeout=60,
    )


def scrape(directory: Path) -> tuple[str, Samples]:
    out = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=_env(directory), check=True, timeout=60, capture_output=True
    ).stdout.decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
    }
    return out, samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


REQ = {"model_group": "g", "deployment": "d1", "provider": "mock", "endpoint": "chat", "status": "200"}
DEP = {"model_group": "g", "deployment": "d1", "provider": "mock"}


@pytest.fixture(scope="module")
def two_finished_workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Samples]:
    """Two workers that served 3 and 4 requests and exited; then one scrape."""
    directory = tmp_path_factory.mktemp("multiproc")
    run_worker(directory, 3, 2, "healthy")
    run_worker(directory, 4, 3, "cooling_down")
    return scrape(directory)


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_counters_sum_across_workers_and_dead_workers_live_gauges_go(
    two_finished_workers: tuple[str, Samples],
) -> None:
    _, samples = two_finished_workers
    assert value(samples, "routerd_requests_total", **REQ) == 7
    assert value(samples, "routerd_request_duration_seconds_count", model_group="g", endpoint="chat") == 7
    # both workers exited: their in-flight requests and views of health are not counted any more
    assert value(samples, "routerd_requests_in_flight", endpoint="chat") is None
    assert value(samples, "routerd_deployment_state", **DEP, state="cooling_down") is None


def test_promtool_accepts_multiprocess_output(
    two_finished_workers: tuple[str, Samples], promtool: str
) -> None:
    body, _ = two_finished_workers
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_live_gauges_combine_by_their_mode(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, "1", str(generation), state, "--wait"],
            env=_env(tmp_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for generation, state in ((4, "healthy"), (5, "cooling_down"))
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == b"ready"
        _, samples = scrape(tmp_path)
        assert value(samples, "routerd_requests_in_flight", endpoint="chat") == 2  # livesum
        assert value(samples, "routerd_deployment_in_flight", **DEP) == 2  # livesum
        # livemax: a deployment one worker sees cooling down shows as cooling down
        assert value(samples, "routerd_deployment_state", **DEP, state="cooling_down") == 1
        assert value(samples, "routerd_config_generation") == 4  # livemin: the oldest config served
    finally:
        for worker in workers:
            worker.communicate(b"\n", timeout=60)
    _, samples = scrape(tmp_path)
    assert value(samples, "routerd_requests_in_flight", endpoint="chat") is None


def test_prepare_creates_and_exports_a_fresh_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first, so that monkeypatch restores the variable's absence after the test
    monkeypatch.setenv(ENV, "")
    path = prepare_multiprocess_dir(cleanup=False)
    try:
        assert os.environ[ENV] == str(path)
        assert path.is_dir() and not any(path.iterdir())
        assert multiprocess.multiprocess_dir() == path
    finally:
        path.rmdir()


def test_prepare_reuses_a_given_directory_and_clears_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "metrics"
    monkeypatch.setenv(ENV, str(directory))
    assert prepare_multiprocess_dir() == directory
    (directory / "counter_12345.db").write_bytes(b"stale")
    (directory / "keep.txt").write_text("not ours")
    assert prepare_multiprocess_dir() == directory
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_forget_dead_workers_only_touches_dead_pids(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    dead_pid = int(dead.stdout)
    alive_pid = os.getppid()
    for pid in (dead_pid, alive_pid):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    assert forget_dead_workers(tmp_path) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead_pid}.db", f"counter_{alive_pid}.db", f"gauge_livesum_{alive_pid}.db"]
    )
