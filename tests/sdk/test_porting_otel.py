"""Porting suite, part 5: OpenTelemetry tracing (``callbacks = ["otel"]``): GenAI attributes on an
in-memory exporter, per-attempt spans and traceparent in the daemon, and OTLP/HTTP export to a real
receiver on loopback (spans decoded with opentelemetry-proto)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import routerd
import routerd.integrations.otel as otel
from routerd.integrations.otel import OpenTelemetryLogger
from routerd.testing.openai_fake import Reply
from routerd.testing.server import RouterdServer
from tests.sdk.conftest import serve_in_thread

HI = [{"role": "user", "content": "secret prompt text"}]


@pytest.fixture
def memory() -> tuple[OpenTelemetryLogger, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetryLogger(provider), exporter


def test_one_span_per_sdk_call_with_genai_attributes(
    openai_env: Any, memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    routerd.completion(model="gpt-4o", messages=HI, temperature=0.2, max_tokens=50)
    span, attempt = sorted(exporter.get_finished_spans(), key=lambda s: s.name != "chat gpt-4o")
    assert attempt.name.startswith("attempt openai ")
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "secret prompt text" not in repr(attrs)  # no prompt text unless enabled
    traceparent = openai_env.requests[-1].headers["traceparent"]
    assert f"{span.context.trace_id:032x}" in traceparent  # the upstream call joins the trace


def test_sdk_request_span_and_one_attempt_span_per_retry(
    openai_env: Any,
    instant_backoff: list[float],
    memory: tuple[OpenTelemetryLogger, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply.error(429, "slow down", code="rate_limit_exceeded"))
    response = routerd.completion(model="gpt-4o", messages=HI, num_retries=1)
    assert response._hidden_params["retries"] == 1
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.name == "chat gpt-4o"]
    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert len(spans) == 3 and len(attempts) == 2
    deployment = response._hidden_params["model_id"]
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
        assert attempt.context.trace_id == request.context.trace_id
        assert attempt.name == f"attempt openai {deployment}"
        assert attempt.attributes["routerd.deployment_id"] == deployment
        assert attempt.attributes["gen_ai.provider.name"] == "openai"
        assert attempt.attributes["gen_ai.request.model"] == "gpt-4o"
    failed, served = sorted(attempts, key=lambda s: s.start_time)
    assert failed.attributes["http.response.status_code"] == 429
    assert failed.attributes["error.type"] == "RateLimitError"
    assert failed.status.status_code.name == "ERROR"
    assert served.attributes["http.response.status_code"] == 200
    assert "error.type" not in served.attributes and served.status.status_code.name != "ERROR"
    assert served.attributes["gen_ai.usage.output_tokens"] > 0
    # each upstream request carries its attempt span's traceparent
    traceparents = [r.headers["traceparent"] for r in openai_env.requests]
    trace_id = f"{request.context.trace_id:032x}"
    assert [tp.rsplit("-", 1)[0] for tp in traceparents] == [
        f"00-{trace_id}-{s.context.span_id:016x}" for s in (failed, served)
    ]


def test_sdk_fallback_attempts_are_spans_of_the_one_request(
    openai_env: Any, memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply.error(500, "down"))
    routerd.completion(model="gpt-4o", messages=HI, num_retries=0, fallbacks=["gpt-4o-mini"])
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if not s.name.startswith("attempt ")]
    attempts = sorted((s for s in spans if s.name.startswith("attempt ")), key=lambda s: s.start_time)
    assert [a.attributes["gen_ai.request.model"] for a in attempts] == ["gpt-4o", "gpt-4o-mini"]
    assert all(a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts)
    assert attempts[0].attributes["error.type"] == "BadGatewayError"
    assert "error.type" not in attempts[1].attributes


def test_a_streamed_call_ends_its_attempt_span_with_the_stream(
    openai_env: Any, memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    stream = routerd.completion(model="gpt-4o", messages=HI, stream=True)
    assert [s.name for s in exporter.get_finished_spans()] == []  # nothing ends before the stream does
    chunks = list(stream)
    assert chunks
    spans = exporter.get_finished_spans()
    (attempt,) = [s for s in spans if s.name.startswith("attempt ")]
    (request,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
    assert attempt.attributes["http.response.status_code"] == 200


def test_prompt_text_only_when_enabled(
    memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    logger.capture_content = True
    monkeypatch.setattr(routerd, "callbacks", [logger])
    asyncio.run(routerd.acompletion(model="gpt-4o", messages=HI, mock_response="answer text"))
    spans = exporter.get_finished_spans()
    # one request span although acompletion runs sync and async hooks (and one attempt span)
    (span,) = [s for s in spans if not s.name.startswith("attempt ")]
    assert len(spans) == 2
    assert "secret prompt text" in span.attributes["gen_ai.input.messages"]
    assert "answer text" in span.attributes["gen_ai.output.messages"]


def test_failures_set_error_type(
    openai_env: Any, memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply.error(400, "bad"))
    with pytest.raises(routerd.BadRequestError):
        routerd.completion(model="gpt-4o", messages=HI, num_retries=0)
    span, attempt = sorted(exporter.get_finished_spans(), key=lambda s: s.name.startswith("attempt "))
    assert span.attributes["error.type"] == attempt.attributes["error.type"] == "BadRequestError"
    assert span.status.status_code.name == "ERROR"


class OTLPReceiver:
    """A minimal OTLP/HTTP trace receiver: decodes each protobuf POST to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    with serve_in_thread(OTLPReceiver()) as fake:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{fake.port}")
        monkeypatch.setattr(otel, "_default", None)  # a fresh "otel" logger reads the variables
        yield fake


def test_otel_exports_to_a_real_otlp_http_receiver(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routerd, "callbacks", ["otel"])
    routerd.completion(model="gpt-4o", messages=HI, mock_response="hi")
    routerd.completion(model="gpt-4o-mini", messages=HI, mock_response="hi")
    assert otel._default is not None
    otel._default.tracer_provider_flush()
    names = sorted(span.name for span in receiver.spans if not span.name.startswith("attempt "))
    assert names == ["chat gpt-4o", "chat gpt-4o-mini"]
    assert sum(span.name.startswith("attempt mock ") for span in receiver.spans) == 2


CLIENT_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN = 0x00F067AA0BA902B7

TRACER_MODULE = textwrap.dedent(
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from routerd.integrations.otel import OpenTelemetryLogger

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = OpenTelemetryLogger(provider)
    """
)


def test_daemon_request_and_attempt_spans_and_traceparent_upstream(
    tmp_path: Path, openai_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "routerd_test_otel_tracer"
    (tmp_path / f"{module}.py").write_text(TRACER_MODULE)
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: gpt-4o
                litellm_params:
                  model: openai/gpt-4o
                  api_key: {openai_fake.api_key}
                  api_base: {openai_fake.base_url}
            litellm_settings:
              callbacks: [{module}.tracer]
            """
        )
    )
    openai_fake.enqueue(Reply.error(503, "busy"))
    try:
        with RouterdServer.from_file(config) as server:
            body = {"model": "gpt-4o", "messages": HI, "num_retries": 1}
            incoming = {"traceparent": f"00-{CLIENT_TRACE:032x}-{CLIENT_SPAN:016x}-01"}
            answer = httpx.post(
                f"{server.base_url}/v1/chat/completions", json=body, headers=incoming, timeout=30
            )
            assert answer.status_code == 200
            exporter = sys.modules[module].exporter
            for _ in range(500):  # bounded: the request span ends in a background task
                if len(exporter.get_finished_spans()) >= 3:
                    break
                time.sleep(0.01)
    finally:
        sys.modules.pop(module, None)
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "chat gpt-4o")
    assert request.context.trace_id == CLIENT_TRACE  # the client's trace goes on in routerd
    assert request.parent is not None and request.parent.span_id == CLIENT_SPAN
    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert len(attempts) == 2
    assert all(a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    traceparents = [r.headers.get("traceparent", "") for r in openai_fake.requests]
    trace_id = f"{request.context.trace_id:032x}"
    # each upstream request carries its own attempt span's traceparent
    assert [tp.rsplit("-", 1)[0] for tp in traceparents] == [
        f"00-{trace_id}-{a.context.span_id:016x}" for a in attempts
    ]


def test_open_request_spans_are_bounded(
    memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(otel, "MAX_OPEN_SPANS", 2)
    for index in range(5):
        logger.log_pre_api_call("m", [], {"litellm_call_id": f"c{index}", "call_type": "completion"})
    assert list(logger._spans) == ["c3", "c4"]
    assert len(exporter.get_finished_spans()) == 3  # the evicted spans were ended, not leaked


SECRET_ARGUMENTS = '{"city": "secret city"}'
TOOL_ANSWER = {
    "id": "chatcmpl-tool",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": SECRET_ARGUMENTS},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}
TOOL_CHUNKS = [
    {
        "id": "chatcmpl-tool",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    for delta, finish in [
        (
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": SECRET_ARGUMENTS[:9]},
                    }
                ],
            },
            None,
        ),
        ({"tool_calls": [{"index": 0, "function": {"arguments": SECRET_ARGUMENTS[9:]}}]}, None),
        ({}, "tool_calls"),
    ]
]
RECORDED_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": SECRET_ARGUMENTS}}
    ],
}


def _request_span_attributes(exporter: InMemorySpanExporter) -> dict[str, Any]:
    (span,) = [s for s in exporter.get_finished_spans() if not s.name.startswith("attempt ")]
    return dict(span.attributes or {})


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_are_recorded_with_content_capture(
    openai_env: Any,
    memory: tuple[OpenTelemetryLogger, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    logger, exporter = memory
    logger.capture_content = True
    monkeypatch.setattr(routerd, "callbacks", [logger])
    if stream:
        openai_env.enqueue(Reply(chunks=TOOL_CHUNKS))
        assert list(routerd.completion(model="gpt-4o", messages=HI, stream=True))
    else:
        openai_env.enqueue(Reply(json=TOOL_ANSWER))
        routerd.completion(model="gpt-4o", messages=HI)
    attributes = _request_span_attributes(exporter)
    assert json.loads(attributes["gen_ai.output.messages"]) == [RECORDED_CALL]


def test_tool_call_arguments_are_not_recorded_without_content_capture(
    openai_env: Any, memory: tuple[OpenTelemetryLogger, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, exporter = memory
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply(json=TOOL_ANSWER))
    routerd.completion(model="gpt-4o", messages=HI)
    attributes = _request_span_attributes(exporter)
    assert "gen_ai.output.messages" not in attributes and "secret city" not in repr(attributes)


@pytest.mark.parametrize("where", ["logger", "module"])
def test_message_logging_off_blanks_tool_call_arguments(
    openai_env: Any,
    memory: tuple[OpenTelemetryLogger, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    logger, exporter = memory
    logger.capture_content = True
    if where == "logger":
        logger.turn_off_message_logging = True
    else:
        monkeypatch.setattr(routerd, "turn_off_message_logging", True)
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply(json=TOOL_ANSWER))
    routerd.completion(model="gpt-4o", messages=HI)
    attributes = _request_span_attributes(exporter)
    assert attributes["gen_ai.usage.output_tokens"] == 3  # the span is recorded, without the text
    assert "gen_ai.output.messages" not in attributes
    assert "secret city" not in repr(attributes) and "redacted" not in repr(attributes)
