"""The ``routerd`` command line: ``serve``, ``check``, ``explain`` and ``schema``.

Each subcommand is added by an ``_add_<name>(subparsers)`` function that registers its arguments and
its handler (``args.handler``); a handler returns the process exit code. Only :func:`main`'s callers
exit the process (the console script, ``python -m routerd.cli``), so tests call ``main([...])``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import orjson

from routerd import __version__
from routerd.codecache import startup_code_cache

Handler = Callable[[argparse.Namespace], int]

DEFAULT_SCHEMA_PATH = Path("schemas/config.schema.json")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routerd",
        description="A declarative, config-driven LLM router speaking the OpenAI API.",
    )
    parser.add_argument("--version", action="version", version=f"routerd {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(subparsers)
    _add_check(subparsers)
    _add_explain(subparsers)
    _add_schema(subparsers)
    return parser


# -- routerd serve ----------------------------------------------------------------------------------


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OpenAI-compatible gateway",
        description="Serve the OpenAI API on CONFIG's routing table. Flags override ROUTERD_* environment "
        "variables, which override defaults. SIGHUP reloads the file; SIGTERM drains and exits.",
    )
    parser.add_argument("config_path", nargs="?", metavar="CONFIG", help="the routing file (or --config)")
    parser.add_argument("--config", "-c", dest="config", help="the routing file (ROUTERD_CONFIG)")
    parser.add_argument("--host", help="listen address (ROUTERD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", "-p", type=int, help="listen port (ROUTERD_PORT, default 4000)")
    parser.add_argument("--workers", "-w", type=int, help="worker processes (ROUTERD_WORKERS, default 1)")
    parser.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        default=None,
        help="do not reload when the file changes",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["json", "text"])
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port instead")
    _add_connection_bounds(parser)
    parser.set_defaults(handler=run_serve)


# flag -> (settings field, type, help); the defaults live in routerd.settings.Settings
_BOUND_FLAGS: dict[str, tuple[str, type, str]] = {
    "--max-header-bytes": ("max_header_bytes", int, "largest request head (ROUTERD_MAX_HEADER_BYTES)"),
    "--header-timeout": ("header_timeout", float, "seconds for a request head (ROUTERD_HEADER_TIMEOUT)"),
    "--body-timeout": ("body_timeout", float, "seconds for a request body (ROUTERD_BODY_TIMEOUT)"),
    "--keep-alive-timeout": (
        "keep_alive_timeout",
        float,
        "seconds an idle connection stays open (ROUTERD_KEEP_ALIVE_TIMEOUT)",
    ),
    "--max-connections": ("max_connections", int, "open connections per worker (ROUTERD_MAX_CONNECTIONS)"),
}


def _add_connection_bounds(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection bounds (per worker)")
    for flag, (dest, kind, text) in _BOUND_FLAGS.items():
        group.add_argument(flag, dest=dest, type=kind, help=text)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused, and restored on the way out.

    Start-up (imports, the routing file, the app) makes ~55,000 objects that live as long as the
    process; the collector walked them over and over while they were made, about an eighth of the
    CPU ``serve`` and ``check`` spent. ``serve`` resumes it just before uvicorn starts, with those
    objects frozen out of its way (routerd.server.run.collect_from_here)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def run_serve(args: argparse.Namespace) -> int:
    """``routerd serve --config FILE [--host] [--port] [--workers N] [--no-watch]``."""
    # the start-up code cache (routerd.codecache) is finished by serve once start-up is over
    with _collector_paused(), startup_code_cache():
        return _run_serve(args)


def _run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from routerd.errors import ConfigError
    from routerd.server.run import serve
    from routerd.settings import Settings

    overrides = {
        "config": args.config or args.config_path,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "watch": args.watch,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "metrics_port": args.metrics_port,
        **{dest: getattr(args, dest) for dest, _, _ in _BOUND_FLAGS.values()},
    }
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        sys.stderr.write(f"routerd: invalid settings:\n{exc}\n")
        return 2
    try:
        serve(settings)
    except ConfigError as exc:
        sys.stderr.write(f"routerd: cannot start: {settings.config} is invalid:\n{exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"routerd: cannot start: {exc}\n")
        return 1
    return 0


# -- routerd explain --------------------------------------------------------------------------------


def _add_explain(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show how a model name would be routed, without calling any provider",
        description="Resolve MODEL in CONFIG and print its candidates in order with weight, tier, health, "
        "cooldown and window usage, and the pick distribution over N simulated picks.",
    )
    parser.add_argument("--config", "-c", required=True, help="the routing file (YAML)")
    parser.add_argument("--model", "-m", required=True, help="the model name a client would send")
    parser.add_argument("--samples", "-n", type=int, default=1000, help="simulated picks (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_explain)


def run_explain(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``routerd explain --config FILE --model NAME [--samples N] [--json]``."""
    import asyncio

    from routerd.config import load_config
    from routerd.errors import ConfigError
    from routerd.routing.executor import CallRouter
    from routerd.routing.explain import explain, format_explain

    out = out or sys.stdout
    try:
        table = load_config(Path(args.config))
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if table.resolve(args.model) is None:
        sys.stderr.write(
            f"routerd: '{args.model}' is not served by {args.config}; names: {', '.join(table.public_names())}\n"
        )
        return 1
    if args.samples < 1:
        sys.stderr.write("routerd: --samples must be at least 1\n")
        return 2
    from routerd.server.gate import preview

    router = CallRouter(table)
    try:
        report = explain(router, args.model, samples=args.samples)
    finally:
        asyncio.run(router.aclose())
    report["gate"] = preview(table, args.model)
    if args.json:
        out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_explain(report) + "\n")
    return 0


# -- routerd check ----------------------------------------------------------------------------------


def _add_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a routing file and report every problem",
        description="Load, validate and compile CONFIG. Exit status 0 when it is valid, 1 when it is not; "
        "warnings are shown either way (with --strict they fail the check too).",
    )
    parser.add_argument("config", metavar="CONFIG", help="the routing file (YAML)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors: exit status 1 when there is any warning (for CI)",
    )
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``routerd check CONFIG [--json] [--strict]``."""
    with _collector_paused(), startup_code_cache():
        return _run_check(args, out)


def _run_check(args: argparse.Namespace, out: TextIO | None) -> int:
    from pydantic import ValidationError

    from routerd.config import check_config
    from routerd.settings import Settings

    out = out or sys.stdout
    try:
        limits = Settings().config_limits()  # the bounds serve would apply (ROUTERD_CONFIG_MAX_*)
    except ValidationError as exc:
        sys.stderr.write(f"routerd: invalid settings:\n{exc}\n")
        return 2
    result = check_config(args.config, limits=limits)
    strict_failure = bool(getattr(args, "strict", False) and result.warnings)
    if args.json:
        out.write(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0 if result.ok and not strict_failure else 1
    for error in result.errors:
        out.write(f"error: {error}\n")
    for warning in result.warnings:
        out.write(f"warning: {warning}\n")
    if result.ok:
        summary = result.summary()
        verdict = "invalid (--strict: warnings count as errors)" if strict_failure else "OK"
        out.write(
            f"{args.config}: {verdict}: {_count(summary['groups'], 'group')}, "
            f"{_count(summary['deployments'], 'deployment')}, {_count(summary['aliases'], 'alias')}, "
            f"{_count(summary['warnings'], 'warning')}\n"
        )
        return 1 if strict_failure else 0
    out.write(
        f"{args.config}: invalid: {_count(len(result.errors), 'error')}, "
        f"{_count(len(result.warnings), 'warning')}\n"
    )
    return 1


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n} {noun if n == 1 else plural}"


# -- routerd schema ---------------------------------------------------------------------------------


def _add_schema(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="write the JSON Schema of the routing file",
        description="Write the JSON Schema of the routing file, generated from routerd's config models, "
        "for editors (yaml-language-server) and CI.",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        default=str(DEFAULT_SCHEMA_PATH),
        help=f"where to write it; '-' for standard output (default: {DEFAULT_SCHEMA_PATH})",
    )
    parser.set_defaults(handler=run_schema)


def run_schema(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``routerd schema [--output PATH]``."""
    from routerd.config.schema import render_schema

    out = out or sys.stdout
    text = render_schema()
    if args.output == "-":
        out.write(text)
        return 0
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    out.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
