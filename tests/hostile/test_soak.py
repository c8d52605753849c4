"""Issue 21's soak: the real daemon under 40 clients for 60 s while one deployment of two misbehaves.

The broken upstream cycles through the fault mix the probe used -- 500s, connection resets, hangs
(bounded by the deployment's ``timeout``) and malformed heads -- with an occasional good answer; the
healthy one always answers. Retries and failover must hide every fault: zero client-visible failures.
Afterwards nothing is left in flight. RSS is sampled and reported, and only a gross leak fails the
test (growth after warm-up is bounded generously; the probe's H2 leak grew ~36 KiB per request).

``ROUTERD_TEST_SOAK_SECONDS`` shortens the run (e.g. while developing); the default is 60.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from routerd.testing import run_in_thread
from routerd.testing.server import RouterdServer

from .test_upstream_http import MALFORMED, metric_values, two_deployments
from .upstream import Act, RawUpstream, completion, error_500

CLIENTS = 40
SECONDS = float(os.environ.get("ROUTERD_TEST_SOAK_SECONDS", "60"))
MAX_REQUESTS_PER_CLIENT = 100_000  # a bound on the loop besides its duration
MIB = 1024 * 1024

FAULTS = [
    ("500", Act(error_500())),
    ("reset", Act(reset=True)),
    ("hang", Act(hang=True)),
    ("malformed", Act(MALFORMED["header line without a colon"], hang=True)),
    ("bad status line", Act(MALFORMED["bad status line"], close=True)),
    ("ok", Act(completion("from the broken one"))),
]


class FaultMix:
    """The broken upstream's script: the next fault of the mix for every request, counted."""

    def __init__(self) -> None:
        self.served: Counter[str] = Counter()

    def __call__(self, number: int, request: bytes) -> Act:
        name, act = FAULTS[number % len(FAULTS)]
        self.served[name] += 1
        return act


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def client_loop(http: httpx.AsyncClient, until: float, statuses: Counter[int | str]) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "soak"}]}
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= until:
            return
        try:
            response = await http.post("/v1/chat/completions", json=body)
            statuses[response.status_code] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1


async def sample_rss(until: float, samples: list[float]) -> None:
    while time.monotonic() < until:
        samples.append(rss_mib())
        await asyncio.sleep(1.0)


@pytest.mark.slow
async def test_soak_a_fault_mix_behind_a_healthy_deployment_is_invisible(tmp_path: Path) -> None:
    mix = FaultMix()
    with (
        run_in_thread(RawUpstream(mix), start_timeout=10) as bad,  # type: ignore[arg-type]
        run_in_thread(RawUpstream(lambda n, r: Act(completion())), start_timeout=10) as good,  # type: ignore[arg-type]
    ):
        # short cooldowns bring the broken deployment back often, so the mix keeps being met
        config = two_deployments(
            tmp_path, bad.base_url, good.base_url, "{num_retries: 3, allowed_fails: 3, cooldown_time: 1}"
        )
        with RouterdServer.from_file(config, log_requests=False) as server:
            statuses: Counter[int | str] = Counter()
            samples: list[float] = []
            limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
            async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
                until = time.monotonic() + SECONDS
                await asyncio.gather(
                    sample_rss(until, samples),
                    *(client_loop(http, until, statuses) for _ in range(CLIENTS)),
                )
                metrics = (await http.get("/metrics")).text
    total = sum(statuses.values())
    print(
        f"\nsoak: {total} requests in {SECONDS:g} s, {dict(statuses)}; broken upstream served {dict(mix.served)}"
    )
    warm = samples[len(samples) // 3 :] or samples
    print(f"soak: RSS after warm-up {warm[0]:.0f} -> {warm[-1]:.0f} MiB (max {max(warm):.0f})")
    assert statuses == Counter({200: total})  # zero client-visible failures
    assert total >= CLIENTS
    assert all(mix.served[name] >= 1 for name, _ in FAULTS)  # every fault was met
    assert metric_values(metrics, "routerd_requests_in_flight", endpoint="chat") == [0.0]
    assert max(warm) - warm[0] < 150  # MiB: only a gross leak fails here
