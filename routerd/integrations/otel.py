"""OpenTelemetry tracing: ``routerd.callbacks = ["otel"]`` (SDK), ``callbacks: ["otel"]`` (daemon).

Optional extra: ``pip install 'routerd[otel]'``. One span per request (``{operation} {model}``, e.g.
``chat gpt-4o``) and one child span per upstream attempt (:class:`AttemptSpans`), with the OpenTelemetry GenAI
semantic-convention attributes: ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older
``gen_ai.system``), ``gen_ai.request.model`` and the request's sampling parameters,
``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, and ``error.type`` on failures. Prompt and answer
text are recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or
``capture_content=True``), as ``gen_ai.input.messages`` (the request's messages) /
``gen_ai.output.messages`` (one OpenAI-shaped assistant message per choice: its ``content`` and its
``tool_calls`` with their arguments) JSON, and never while ``turn_off_message_logging`` is on (the
module or daemon setting, or this logger's own).

Spans are exported by OTLP over HTTP, configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``...). An application that already installed an SDK tracer provider keeps it:
routerd's spans go there. Each upstream request carries its attempt span's ``traceparent``.

Only the synchronous hooks are implemented: they run for ``completion()``, ``acompletion()`` and the
daemon alike, so each span is opened and closed exactly once.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from routerd.events import AttemptFinished
from routerd.integrations.custom_logger import CustomLogger
from routerd.integrations.redact import is_redacted

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "MAX_OPEN_SPANS",
    "AttemptSpans",
    "OpenTelemetryLogger",
    "default_otel_logger",
]

#: the GenAI conventions' switch for recording prompt and answer text
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: request spans open at once; beyond it the oldest is ended (a call whose end was never reported)
MAX_OPEN_SPANS = 10_000

_OPERATIONS = {"completion": "chat", "text_completion": "text_completion", "embeddings": "embeddings"}
_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _output_messages(choices: Any) -> list[dict[str, Any]] | None:
    """One assistant message per choice (OpenAI's shape, as the input messages are recorded): its
    text and its tool calls with their arguments; None when any of them is redacted (message logging
    is off for every callback: record nothing rather than placeholders)."""
    messages: list[dict[str, Any]] = []
    for choice in choices:
        message = _field(choice, "message")
        content = _field(message, "content") if message is not None else None
        entry: dict[str, Any] = {"role": "assistant", "content": content or _field(choice, "text")}
        calls = [_tool_call(call) for call in _field(message, "tool_calls") or ()]
        if calls:
            entry["tool_calls"] = calls
        legacy = _field(message, "function_call")
        if legacy is not None:
            entry["function_call"] = {
                "name": _field(legacy, "name"),
                "arguments": _field(legacy, "arguments"),
            }
        arguments = [call["function"]["arguments"] for call in calls]
        if legacy is not None:
            arguments.append(entry["function_call"]["arguments"])
        if is_redacted(entry["content"]) or any(is_redacted(value) for value in arguments):
            return None
        messages.append(entry)
    return messages


def _tool_call(call: Any) -> dict[str, Any]:
    function = _field(call, "function")
    return {
        "id": _field(call, "id"),
        "type": _field(call, "type") or "function",
        "function": {"name": _field(function, "name"), "arguments": _field(function, "arguments")},
    }


class OpenTelemetryLogger(CustomLogger):
    """A :class:`CustomLogger` that records calls as OpenTelemetry spans."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        capture_content: bool | None = None,
        span_kind: SpanKind = SpanKind.CLIENT,
        turn_off_message_logging: bool = False,
    ) -> None:
        super().__init__(turn_off_message_logging=turn_off_message_logging)
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.provider = provider
        self.tracer = provider.get_tracer("routerd")
        env = os.environ.get(CAPTURE_CONTENT_ENV, "").lower() in {"1", "true", "yes"}
        self.capture_content = env if capture_content is None else capture_content
        self.span_kind = span_kind
        self._spans: OrderedDict[str, Span] = OrderedDict()
        self._lock = threading.Lock()

    # --- request spans ---------------------------------------------------------------------------
    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        operation = _OPERATIONS.get(str(kwargs.get("call_type")), "chat")
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model}
        for key, name in _REQUEST_PARAMS.items():
            value = (kwargs.get("optional_params") or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        # with message logging off the hooks get placeholders: record nothing rather than those
        if self._captures() and messages is not None and not is_redacted(messages):
            attributes["gen_ai.input.messages"] = json.dumps(messages, default=str)
        # a daemon request continues the client's trace (W3C traceparent); an SDK call the caller's
        incoming = ((kwargs.get("litellm_params") or {}).get("proxy_server_request") or {}).get("headers")
        parent = extract(incoming) if incoming else None
        kind = SpanKind.SERVER if incoming is not None else self.span_kind
        span = self.tracer.start_span(
            f"{operation} {model}", context=parent, kind=kind, attributes=attributes
        )
        with self._lock:
            self._spans[kwargs["litellm_call_id"]] = span
            while len(self._spans) > MAX_OPEN_SPANS:
                self._spans.popitem(last=False)[1].end()

    def _captures(self) -> bool:
        return self.capture_content and not self.turn_off_message_logging

    def tracer_provider_flush(self, timeout_millis: int = 10_000) -> None:
        """Export every finished span now (tests, and short scripts before they exit)."""
        flush = getattr(self.provider, "force_flush", None)
        if flush is not None:
            flush(timeout_millis)

    def outgoing_headers(self, call_id: str) -> dict[str, str]:
        """W3C trace-context headers (``traceparent``) for upstream calls made for ``call_id``."""
        span = self._spans.get(call_id)
        headers: dict[str, str] = {}
        if span is not None:
            inject(headers, context=trace.set_span_in_context(span))
        return headers

    def _take(self, kwargs: dict[str, Any]) -> Span | None:
        with self._lock:
            return self._spans.pop(str(kwargs.get("litellm_call_id")), None)

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        span = self._take(kwargs)
        if span is None:
            return
        self._provider(span, kwargs, response_obj)
        span.set_attribute("gen_ai.response.model", str(_field(response_obj, "model") or kwargs.get("model")))
        response_id = _field(response_obj, "id")
        if response_id:
            span.set_attribute("gen_ai.response.id", str(response_id))
        usage = _field(response_obj, "usage")
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", int(_field(usage, "prompt_tokens") or 0))
            span.set_attribute("gen_ai.usage.output_tokens", int(_field(usage, "completion_tokens") or 0))
        choices = _field(response_obj, "choices") or []
        reasons = [str(_field(c, "finish_reason")) for c in choices if _field(c, "finish_reason")]
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", reasons)
        if self._captures() and choices:
            output = _output_messages(choices)
            if output is not None:
                span.set_attribute("gen_ai.output.messages", json.dumps(output, default=str))
        span.end(end_time=_ns(end_time))

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        span = self._take(kwargs)
        if span is None:
            return
        self._provider(span, kwargs, None)
        error = kwargs.get("exception")
        name = error if isinstance(error, str) else type(error).__name__
        span.set_attribute("error.type", name)
        span.set_status(Status(StatusCode.ERROR, name))
        span.end(end_time=_ns(end_time))

    @staticmethod
    def _provider(span: Span, kwargs: dict[str, Any], response_obj: Any) -> None:
        hidden = getattr(response_obj, "_hidden_params", None) or {}
        provider = hidden.get("custom_llm_provider") or (kwargs.get("litellm_params") or {}).get(
            "custom_llm_provider"
        )
        if provider:
            span.set_attribute("gen_ai.provider.name", str(provider))
            span.set_attribute("gen_ai.system", str(provider))

    # --- attempt spans ---------------------------------------------------------------------------
    def attempt_tracer(self, call_id: str) -> AttemptSpans | None:
        """The tracer of ``call_id``'s upstream attempts: one child span of its request span each."""
        parent = self._spans.get(call_id)
        return None if parent is None else AttemptSpans(self.tracer, parent)


class AttemptSpans:
    """One call's attempt spans (a :class:`routerd.routing.attempt.AttemptTracer`): each upstream
    attempt -- retries and fallbacks included -- is a ``CLIENT`` child of the request span, named
    ``attempt {provider} {deployment_id}``, and its request carries that span's ``traceparent``."""

    def __init__(self, tracer: trace.Tracer, parent: Span) -> None:
        self.tracer = tracer
        self.context = trace.set_span_in_context(parent)
        self._open: list[Span] = []  # attempts of one call run one after another: at most one open

    def attempt_started(self, deployment: Any) -> dict[str, str]:
        span = self.tracer.start_span(
            f"attempt {deployment.provider} {deployment.id}",
            context=self.context,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.provider.name": deployment.provider,
                "gen_ai.system": deployment.provider,
                "gen_ai.request.model": deployment.group,
                "routerd.deployment_id": deployment.id,
                "routerd.upstream_model": deployment.model,
            },
        )
        self._open.append(span)
        headers: dict[str, str] = {}
        inject(headers, context=trace.set_span_in_context(span))
        return headers

    def attempt_finished(self, event: AttemptFinished) -> None:
        if not self._open:
            return
        span = self._open.pop(0)
        span.set_attribute("http.response.status_code", event.status)
        span.set_attribute("gen_ai.usage.input_tokens", event.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", event.completion_tokens)
        if not event.ok:
            span.set_attribute("error.type", event.error or "error")
            span.set_status(Status(StatusCode.ERROR, event.error or "error"))
        span.end()


_default: OpenTelemetryLogger | None = None
_default_lock = threading.Lock()


def default_otel_logger() -> OpenTelemetryLogger:
    """The logger behind ``"otel"``: the application's SDK tracer provider if it installed one, else
    routerd's own, exporting by OTLP/HTTP as the ``OTEL_EXPORTER_OTLP_*`` variables say."""
    global _default
    with _default_lock:
        if _default is None:
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                service = os.environ.get("OTEL_SERVICE_NAME", "routerd")
                provider = TracerProvider(resource=Resource.create({"service.name": service}))
                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _default = OpenTelemetryLogger(provider)
        return _default
