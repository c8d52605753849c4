"""One call's callbacks (not ``routerd/callbacks/``: ``routerd.callbacks`` is the module setting): who is called, with which arguments, and a raising callback never breaks it.

Callbacks come from ``routerd.callbacks`` (every event), ``routerd.success_callback`` and
``routerd.failure_callback`` (module settings, read when the call starts), or from the daemon's
``litellm_settings.callbacks``. Each entry is

* a :class:`~routerd.integrations.custom_logger.CustomLogger` instance: its hooks are called;
* a function ``fn(kwargs, response_obj, start_time, end_time)`` (sync or ``async def``): called on
  success (and on failure when listed in ``failure_callback`` or ``callbacks``);
* the string ``"otel"``: OpenTelemetry tracing (:mod:`routerd.integrations.otel`, optional extra).

Other strings name LiteLLM's hosted integrations (``"langfuse"``...), which routerd does not ship:
they are logged once and skipped. A callback that raises is logged with its name (never the call's
arguments, which may hold keys) and counted in :func:`callback_error_count`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from routerd.integrations.custom_logger import CustomLogger
from routerd.integrations.redact import hides_messages, redact_kwargs, redact_response

if TYPE_CHECKING:
    from routerd.config.table import Deployment
    from routerd.events import AttemptFinished
    from routerd.routing.attempt import AttemptTracer

__all__ = ["CallbackRun", "attempt_tracer", "call_kwargs", "callback_error_count", "resolve_callbacks"]

log = logging.getLogger("routerd.callbacks")

_errors = 0
_errors_lock = threading.Lock()
_warned: set[str] = set()


def callback_error_count() -> int:
    """How many callback invocations raised since the process started."""
    return _errors


def _count_error(name: str, hook: str) -> None:
    global _errors
    with _errors_lock:
        _errors += 1
    log.exception("callback %s failed in %s; the call goes on", name, hook)


def _name(callback: Any) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__qualname__


def resolve_callbacks(entries: Iterable[Any]) -> list[Any]:
    """Usable callbacks from a settings list: strings resolved (``"otel"``), unknown ones skipped."""
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, str):
            resolved = _named(entry)
            if resolved is not None:
                out.append(resolved)
        elif isinstance(entry, CustomLogger) or callable(entry):
            out.append(entry)
    return out


def _named(name: str) -> Any:
    if name == "otel":
        try:
            from routerd.integrations.otel import default_otel_logger
        except ImportError as exc:
            raise ImportError("callback 'otel' needs OpenTelemetry: pip install 'routerd[otel]'") from exc
        return default_otel_logger()
    if name not in _warned:
        _warned.add(name)
        log.warning("callback %r is not built into routerd; skipped (use a CustomLogger instead)", name)
    return None


def attempt_tracer(loggers: Sequence[CustomLogger], call_id: str) -> AttemptTracer | None:
    """The tracer the router tells of ``call_id``'s upstream attempts: every logger's own
    (``attempt_tracer(call_id)``, e.g. OpenTelemetry's attempt spans) together; None when none has one."""
    tracers: list[AttemptTracer] = []
    for logger in loggers:
        make = getattr(logger, "attempt_tracer", None)
        if make is None:
            continue
        try:
            tracer = make(call_id)
        except Exception:
            _count_error(_name(logger), "attempt_tracer")
            continue
        if tracer is not None:
            tracers.append(tracer)
    if len(tracers) <= 1:
        return tracers[0] if tracers else None
    return _Tracers(tracers)


class _Tracers:
    """Several loggers' attempt tracers as one."""

    def __init__(self, tracers: list[AttemptTracer]) -> None:
        self.tracers = tracers

    def attempt_started(self, deployment: Deployment) -> dict[str, str]:
        headers: dict[str, str] = {}
        for tracer in self.tracers:
            headers.update(tracer.attempt_started(deployment))
        return headers

    def attempt_finished(self, event: AttemptFinished) -> None:
        for tracer in self.tracers:
            tracer.attempt_finished(event)


def call_kwargs(
    endpoint: str, model: str, body: Mapping[str, Any], *, stream: bool, call_id: str | None = None
) -> dict[str, Any]:
    """LiteLLM's callback ``kwargs`` for a call: the request without credentials."""
    optional = {k: v for k, v in body.items() if k not in {"model", "messages", "prompt", "input"}}
    metadata = body.get("metadata")
    return {
        "model": model,
        "messages": body.get("messages"),
        "prompt": body.get("prompt"),
        "input": body.get("messages", body.get("prompt", body.get("input"))),
        "call_type": {"chat": "completion", "completions": "text_completion"}.get(endpoint, endpoint),
        "stream": stream,
        "optional_params": optional,
        "litellm_params": {"metadata": metadata if isinstance(metadata, Mapping) else {}},
        "litellm_call_id": call_id or str(uuid.uuid4()),
        "metadata": metadata if isinstance(metadata, Mapping) else {},
    }


class CallbackRun:
    """The callbacks of one call, and the call's ``kwargs`` and start time they all receive.

    ``is_async`` says whether the call runs on the caller's loop (``acompletion``): then the
    ``async_`` hooks run too. In the synchronous SDK only the synchronous hooks run, and plain
    ``async def`` callbacks are awaited on the SDK's loop. ``redact`` (``turn_off_message_logging``)
    gives every callback copies without prompt and answer text; a ``CustomLogger`` built with
    ``turn_off_message_logging=True`` gets such copies whatever ``redact`` says
    (:mod:`routerd.integrations.redact`).
    """

    def __init__(
        self,
        success: Sequence[Any],
        failure: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        is_async: bool,
        now: Callable[[], datetime] = datetime.now,
        redact: bool = False,
    ) -> None:
        self.success = list(success)
        self.failure = list(failure)
        self.kwargs = kwargs
        self.is_async = is_async
        self.now = now
        self.redact = redact
        self.start_time = now()

    @classmethod
    def from_settings(
        cls, endpoint: str, model: str, body: Mapping[str, Any], *, stream: bool, is_async: bool
    ) -> CallbackRun | None:
        """The run for the module settings, or None when no callback is registered (the common case)."""
        from routerd.module_settings import refuse_raw_logging, setting

        refuse_raw_logging()
        both = resolve_callbacks(setting("callbacks"))
        success = both + resolve_callbacks(setting("success_callback"))
        failure = both + resolve_callbacks(setting("failure_callback"))
        if not success and not failure:
            return None
        kwargs = call_kwargs(endpoint, model, body, stream=stream)
        redact = setting("turn_off_message_logging") is True
        return cls(success, failure, kwargs, is_async=is_async, redact=redact)

    @property
    def loggers(self) -> list[CustomLogger]:
        seen: list[CustomLogger] = []
        for cb in (*self.success, *self.failure):
            if isinstance(cb, CustomLogger) and not any(cb is s for s in seen):
                seen.append(cb)
        return seen

    def outgoing_headers(self) -> dict[str, str]:
        """Headers loggers add to this call's upstream requests (OpenTelemetry's ``traceparent``)."""
        headers: dict[str, str] = {}
        for logger in self.loggers:
            add = getattr(logger, "outgoing_headers", None)
            if add is not None:
                try:
                    headers.update(add(self.kwargs["litellm_call_id"]))
                except Exception:
                    _count_error(_name(logger), "outgoing_headers")
        return headers

    def attempt_tracer(self) -> AttemptTracer | None:
        """The tracer of this call's upstream attempts (OpenTelemetry's attempt spans), if any."""
        return attempt_tracer(self.loggers, self.kwargs["litellm_call_id"])

    # --- events ----------------------------------------------------------------------------------
    def _views(self, response: Any) -> Callable[[Any], tuple[dict[str, Any], Any]]:
        """Which ``(kwargs, response)`` a callback receives for one event: the call's own, or (message
        logging off) redacted copies, made once per event and only when some callback needs them."""
        redacted: list[tuple[dict[str, Any], Any]] = []

        def view(callback: Any) -> tuple[dict[str, Any], Any]:
            if not hides_messages(callback, everywhere=self.redact):
                return self.kwargs, response
            if not redacted:
                redacted.append((redact_kwargs(self.kwargs), redact_response(response)))
            return redacted[0]

        return view

    async def pre_call(self) -> None:
        model = self.kwargs["model"]
        view = self._views(None)
        for logger in self.loggers:
            kwargs, _ = view(logger)
            self._sync(logger, "log_pre_api_call", model, kwargs["input"], kwargs)
            if self.is_async:
                await self._async(logger, "async_log_pre_api_call", model, kwargs["input"], kwargs)

    async def stream_event(self, chunk: Any) -> None:
        end = self.now()
        view = self._views(chunk)
        for logger in self.loggers:
            kwargs, seen = view(logger)
            self._sync(logger, "log_stream_event", kwargs, seen, self.start_time, end)
            if self.is_async:
                await self._async(logger, "async_log_stream_event", kwargs, seen, self.start_time, end)

    async def succeeded(self, response: Any, *, cost: float | None = None) -> None:
        end = self.now()
        self.kwargs["end_time"] = end
        self.kwargs["start_time"] = self.start_time
        self.kwargs["response_cost"] = cost
        if self.kwargs.get("stream"):
            self.kwargs["complete_streaming_response"] = response
        await self._fan_out(self.success, "success", response, end)

    async def failed(self, exc: BaseException) -> None:
        end = self.now()
        self.kwargs.update(
            start_time=self.start_time,
            end_time=end,
            exception=exc,
            traceback_exception="".join(traceback.format_exception(exc)),
        )
        await self._fan_out(self.failure, "failure", None, end)

    async def failed_named(self, error: str, status: int) -> None:
        """A failure known by its error class name and status (the daemon's request events)."""
        end = self.now()
        self.kwargs.update(start_time=self.start_time, end_time=end, exception=error, status_code=status)
        await self._fan_out(self.failure, "failure", None, end)

    async def _fan_out(self, callbacks: Sequence[Any], kind: str, response: Any, end: datetime) -> None:
        view = self._views(response)
        for cb in callbacks:
            args = (*view(cb), self.start_time, end)
            if isinstance(cb, CustomLogger):
                self._sync(cb, f"log_{kind}_event", *args)
                if self.is_async:
                    await self._async(cb, f"async_log_{kind}_event", *args)
            elif inspect.iscoroutinefunction(cb):
                await self._async_fn(cb, *args)
            else:
                self._call(cb, _name(cb), *args)

    # --- guarded invocation ----------------------------------------------------------------------
    def _sync(self, logger: CustomLogger, hook: str, *args: Any) -> None:
        self._call(getattr(logger, hook), f"{_name(logger)}.{hook}", *args)

    @staticmethod
    def _call(fn: Callable[..., Any], name: str, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            _count_error(name, "a synchronous hook")

    async def _async(self, logger: CustomLogger, hook: str, *args: Any) -> None:
        await self._async_fn(getattr(logger, hook), *args, name=f"{_name(logger)}.{hook}")

    @staticmethod
    async def _async_fn(fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        try:
            await fn(*args)
        except Exception:
            _count_error(name or _name(fn), "an async hook")
