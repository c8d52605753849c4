"""deploy/Dockerfile: small, non-root, listening on all interfaces, with a healthcheck that works.

No Docker engine runs here, so the file is parsed, and its HEALTHCHECK command is run against a real
routerd on loopback.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tomllib

from routerd.testing.server import RouterdServer, free_port

from .conftest import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, args in steps:
        if keyword == "ENV":
            for pair in args.split():
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def healthcheck_command() -> list[str]:
    (args,) = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    command: list[str] = json.loads(args[args.index("CMD") + 3 :].strip())
    return command


def test_every_stage_is_python_311_slim() -> None:
    bases = [args.split()[0] for keyword, args in instructions() if keyword == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [args for keyword, args in final_stage() if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0


def test_listens_on_all_interfaces_and_serves_a_bundled_config() -> None:
    env = env_of(final_stage())
    assert env["ROUTERD_HOST"] == "0.0.0.0"
    copies = [args.split() for keyword, args in final_stage() if keyword == "COPY" and "--from" not in args]
    assert [env["ROUTERD_CONFIG"]] in [[dest] for *_, dest in copies]
    exposed = [args for keyword, args in final_stage() if keyword == "EXPOSE"]
    assert exposed == [env["ROUTERD_PORT"]]


def test_the_entrypoint_is_the_routerd_console_script() -> None:
    (entrypoint,) = [json.loads(args) for keyword, args in final_stage() if keyword == "ENTRYPOINT"]
    assert entrypoint == ["routerd", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "routerd" in scripts


def test_copied_sources_exist_and_survive_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:  # the last matching pattern wins, as in Docker
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert included(source.rstrip("/")), source


def test_the_healthcheck_probes_liveliness_and_passes_against_routerd() -> None:
    command = healthcheck_command()
    assert "/health/liveliness" in " ".join(command)
    assert command[0] == "python"
    with RouterdServer.from_file(ROOT / "configs" / "example.yaml") as server:
        env = {**os.environ, "ROUTERD_PORT": str(server.port)}
        passed = subprocess.run([sys.executable, *command[1:]], env=env, timeout=30, check=False)
        assert passed.returncode == 0


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    command = healthcheck_command()
    env = {**os.environ, "ROUTERD_PORT": str(free_port())}
    failed = subprocess.run(
        [sys.executable, *command[1:]], env=env, timeout=30, check=False, capture_output=True
    )
    assert failed.returncode != 0


def test_the_context_is_deny_by_default() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # nothing reaches the build unless listed
    assert not [line for line in lines if line.startswith("!.")]  # no dotfiles (.env, .venv, .git)
