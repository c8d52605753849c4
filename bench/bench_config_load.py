"""Time to load, validate and compile a large routing file (35,000 deployments by default).

Generates a file shaped like a big real one: deployments under a few thousand model names, each
with an ``api_base``, an ``api_key`` from the environment, rpm/tpm limits and a ``model_info`` id.
Times each stage in this process (CPU seconds, best of ``--rounds``) and prints the file's size:

* ``load``: YAML to a plain tree (routerd.config.load), includes and ``os.environ/`` resolved;
* ``validate``: schema and cross-checks; ``compile``: the frozen table.

``--round-trip`` forces the round-trip (line/column keeping) parser for the load, as before the fast
path existed, for a before/after comparison in one run.

    .venv/bin/python bench/bench_config_load.py [--deployments 35000] [--rounds 1] [--round-trip]

A benchmark, not a test: it asserts nothing and prints numbers for the closing notes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from routerd.config import compile_config, load, validate
from routerd.config import loader as loader_module


def config_text(deployments: int) -> str:
    lines = ["model_list:"]
    for index in range(deployments):
        group = index // 10
        lines += [
            f"  - model_name: group-{group}",
            "    litellm_params:",
            f"      model: openai/gpt-4o-mini-{group}",
            f"      api_base: https://region-{index % 50}.example.invalid/v1",
            "      api_key: os.environ/BENCH_API_KEY",
            f"      rpm: {600 + index % 7}",
            "      tpm: 200000",
            "    model_info:",
            f"      id: deployment-{index}",
        ]
    lines += ["router_settings:", "  routing_strategy: simple-shuffle", "  num_retries: 2", ""]
    return "\n".join(lines)


def best_of(rounds: int, step: object) -> tuple[float, object]:
    """The least CPU time (this process's) of ``rounds`` runs of ``step``, and its result.

    CPU time rather than wall time: on a machine shared with other work, waiting for a core is not
    the loader's cost.
    """
    assert callable(step)
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.process_time()
        result = step()
        best = min(best, time.process_time() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=35_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--round-trip", action="store_true", help="force the round-trip parser")
    args = parser.parse_args()
    if args.round_trip:
        loader_module.FAST_PARSE = False
    env = {**os.environ, "BENCH_API_KEY": "sk-bench-not-a-real-key"}
    with tempfile.TemporaryDirectory(prefix="routerd-load-bench-") as directory:
        path = Path(directory) / "big.yaml"
        path.write_text(config_text(args.deployments), encoding="utf-8")
        size = path.stat().st_size
        load_s, loaded = best_of(args.rounds, lambda: load(path, env))
        validate_s, validated = best_of(args.rounds, lambda: validate(loaded))  # type: ignore[arg-type]
        compile_s, table = best_of(args.rounds, lambda: compile_config(validated))  # type: ignore[arg-type]
    assert not loaded.errors, loaded.errors[:3]  # type: ignore[attr-defined]
    parser_name = "round-trip" if args.round_trip else "fast path"
    print(
        f"{args.deployments} deployments, {size / 1e6:.1f} MB ({parser_name}), CPU: load {load_s:.2f} s  "
        f"validate {validate_s:.2f} s  compile {compile_s:.2f} s  "
        f"total {load_s + validate_s + compile_s:.2f} s  ({len(table.deployments)} in the table)"  # type: ignore[attr-defined]
    )


if __name__ == "__main__":
    main()
