"""Secrets never reach a log line, and the per-request line carries the routing facts."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from routerd.events import RequestFinished
from routerd.logs import JsonFormatter, RedactingFilter, RequestLogger, configure_logging, redact
from routerd.settings import Settings


@pytest.mark.parametrize(
    "text",
    [
        "upstream said: bad key sk-proj-abcdefghijklmnopqrstuvwxyz123456",
        "header Authorization: Bearer abc.def.ghi",
        "GET https://generativelanguage.googleapis.com/v1beta/models/x?key=AIzaSyA-secret-value&alt=sse",
        '{"api_key": "hunter2-secret", "model": "gpt"}',
        "master_key=sk-routerd-topsecret",
    ],
)
def test_redact_removes_credentials(text: str) -> None:
    out = redact(text)
    for secret in (
        "abcdefghijklmnopqrstuvwxyz123456",
        "abc.def.ghi",
        "AIzaSyA-secret-value",
        "hunter2-secret",
        "topsecret",
    ):
        assert secret not in out
    assert "***" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    assert redact("routed gpt-4o to deployment a1b2 in 12 ms") == "routed gpt-4o to deployment a1b2 in 12 ms"


def test_handler_filter_redacts_formatted_arguments() -> None:
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "key was %s", ("sk-ant-api03-verysecretvalue",), None
    )
    assert RedactingFilter().filter(record)
    assert "verysecretvalue" not in record.getMessage()


def test_request_logger_writes_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    event = RequestFinished(
        request_id="req-1",
        endpoint="chat",
        model="gpt-4o",
        group="gpt-4o",
        deployment_id="dep-1",
        provider="openai",
        status=200,
        stream=False,
        attempts=2,
        retries=1,
        fallbacks=0,
        latency=0.0123,
        upstream_latency=0.011,
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.0001,
    )
    with caplog.at_level(logging.INFO, logger="routerd.request"):
        RequestLogger()(event)
        RequestLogger()("not an event")
    assert len(caplog.records) == 1
    line = orjson.loads(JsonFormatter().format(caplog.records[0]))
    assert line["request_id"] == "req-1"
    assert line["attempts"] == 2
    assert line["latency_ms"] == 12.3
    assert line["msg"] == "request"


@pytest.fixture
def daemon_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], io.StringIO]]:
    """configure_logging as ``routerd serve`` calls it, writing to a captured stderr; the root logger
    and uvicorn's loggers are put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # the daemon's loggers as a fresh process has them: no handler of their own, propagating
    for name in ("routerd", "routerd.request"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in UVICORN
    }

    def configure(log_format: str) -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        configure_logging(Settings(log_format=log_format, log_level="info"))
        return stream

    yield configure
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _finished(status: int = 200) -> RequestFinished:
    return RequestFinished(
        "req-7", "chat", "gpt-4o", "gpt-4o", "dep-1", "openai", status, True, 1, 0, 0, 0.002, 0.001,
        ttft=0.0005, prompt_tokens=3, completion_tokens=9, cost=0.00002, key_alias="team-a-key",
    )  # fmt: skip


def test_the_daemons_request_line_is_the_formatters_line(daemon_logging: Any) -> None:
    # the daemon writes the request line itself (no LogRecord): it must be the line JsonFormatter
    # writes for the same record, field for field, in the same order
    stream = daemon_logging("json")
    logger = RequestLogger()
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(args[0])
        return factory(*args, **kwargs)

    logging.setLogRecordFactory(counting)
    try:
        for status in (200, 503):
            logger(_finished(status))
    finally:
        logging.setLogRecordFactory(factory)
    assert made == []  # written directly: no record was made
    written = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert len(written) == 2
    for line, (status, level) in zip(written, ((200, logging.INFO), (503, logging.WARNING)), strict=True):
        record = logging.getLogger("routerd.request").makeRecord(
            "routerd.request", level, __file__, 1, "request", (), None, extra={"fields": line_fields(line)}
        )
        expected = orjson.loads(JsonFormatter().format(record))
        assert list(line) == list(expected)
        assert {k: v for k, v in line.items() if k != "ts"} == {
            k: v for k, v in expected.items() if k != "ts"
        }
        assert line["status"] == status


def line_fields(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("ts", "level", "logger", "msg")}


def test_another_handler_on_the_way_gets_the_record(daemon_logging: Any) -> None:
    # a handler added by an embedding program or a test (here on the "routerd" logger) must see the
    # request as a record: the direct line is only for the daemon's own lone handler
    stream = daemon_logging("json")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    extra = Keep()
    logging.getLogger("routerd").addHandler(extra)
    try:
        RequestLogger()(_finished())
    finally:
        logging.getLogger("routerd").removeHandler(extra)
    assert [r.getMessage() for r in records] == ["request"]
    assert records[0].fields["key_alias"] == "team-a-key"  # type: ignore[attr-defined]
    assert orjson.loads(stream.getvalue())["request_id"] == "req-7"  # the root handler too, once


def test_text_logs_and_raised_levels_go_through_logging(daemon_logging: Any) -> None:
    stream = daemon_logging("text")
    RequestLogger()(_finished())
    assert " INFO routerd.request: request" in stream.getvalue()
    stream = daemon_logging("json")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    RequestLogger()(_finished(200))  # below the handler's level: not written
    RequestLogger()(_finished(502))
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["status"]) for line in lines] == [("warning", 502)]
