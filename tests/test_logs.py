"""Secrets never reach a log line, and the per-request line carries the routing facts."""

from __future__ import annotations

import logging

import orjson
import pytest

from routerd.events import RequestFinished
from routerd.logs import JsonFormatter, RedactingFilter, RequestLogger, redact


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
