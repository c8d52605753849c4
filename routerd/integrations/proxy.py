"""The daemon's callbacks: ``litellm_settings.callbacks: [module.instance, "otel"]``, as LiteLLM's proxy.

The callbacks belong to the routing table: the config compiler loads them
(:mod:`routerd.integrations.loading`), so a reload adds or removes them with the rest of the file,
and a path that does not import is a config error at its file:line:col (the old table keeps
serving). Each request uses the callbacks of the table it started on. LiteLLM's lists keep their
meaning: ``callbacks`` hear of everything, ``success_callback`` only of successes,
``failure_callback`` only of failures.

What runs, for each request the daemon serves:

* ``async_pre_call_hook(user_api_key_dict, cache, data, call_type)`` of ``callbacks``' loggers before
  routing: it may return a changed body, or raise to reject the request (an :mod:`routerd.errors` class keeps its status;
  anything else answers 400 with its message). It gets the real body even with
  ``turn_off_message_logging`` (it acts on the request, as LiteLLM's does); the logging hooks do not;
* after the request ends (a subscriber of :class:`~routerd.events.RequestFinished`), in a background
  task: ``log_success_event`` / ``async_log_success_event`` or their ``failure`` twins, with
  LiteLLM's ``kwargs`` (``model``, ``messages``, ``litellm_call_id`` = the request id,
  ``response_cost``, ``exception`` = the error class name for failures), a response object with
  ``model`` and ``usage``, and the request's start and end times;
* for each upstream attempt, the attempt tracer of loggers that have one (OpenTelemetry's attempt
  spans, whose ``traceparent`` the attempt's upstream request carries).

A callback that raises is logged and counted (:func:`~routerd.integrations.callbacks.callback_error_count`);
the request is never affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from routerd.errors import BadRequestError, OpenAIError
from routerd.events import RequestFinished
from routerd.integrations.callbacks import CallbackRun, attempt_tracer, call_kwargs
from routerd.integrations.context import REQUEST_HEADERS
from routerd.integrations.custom_logger import CustomLogger
from routerd.integrations.loading import CallbackTable
from routerd.integrations.redact import hides_messages, redact_kwargs
from routerd.routing.attempt import AttemptTracer

__all__ = ["CALLBACK_DRAIN_SECONDS", "MAX_PENDING_CALLBACKS", "ProxyCallbacks", "callbacks_lifespan"]

log = logging.getLogger("routerd.callbacks")

#: request bodies kept between the pre-call hook and the request's end, and callback tasks in flight;
#: beyond it the oldest body is forgotten (its callbacks get no messages) and new tasks are skipped
MAX_PENDING_CALLBACKS = 10_000
#: seconds the shutdown waits for callback tasks still running
CALLBACK_DRAIN_SECONDS = 5.0
#: request headers never handed to callbacks
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})


class ProxyCallbacks:
    """The serving table's callbacks: their pre-call hook and their :class:`RequestFinished` subscriber.

    ``current`` gives the callbacks of the table serving now (read per request, so a reload applies
    to the next request); a request keeps the callbacks it started with until its end is reported.
    """

    def __init__(
        self, current: Callable[[], CallbackTable | None], *, now: Callable[[], datetime] = datetime.now
    ) -> None:
        self.current = current
        self.now = now
        self._bodies: OrderedDict[str, tuple[str, Mapping[str, Any], CallbackTable]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def pre_call(
        self, endpoint: str, body: dict[str, Any], request_id: str, callbacks: CallbackTable | None = None
    ) -> dict[str, Any]:
        """Run every logger's ``async_pre_call_hook``; the body the request continues with."""
        table = callbacks if callbacks is not None else self.current() or CallbackTable()
        call_type = {"chat": "completion", "completions": "text_completion"}.get(endpoint, endpoint)
        model = str(body.get("model", ""))
        kwargs = call_kwargs(endpoint, model, body, stream=bool(body.get("stream")), call_id=request_id)
        # LiteLLM's place for the incoming request; headers only, and never the client's key
        headers = {k: v for k, v in (REQUEST_HEADERS.get() or {}).items() if k not in _SECRET_HEADERS}
        kwargs["litellm_params"]["proxy_server_request"] = {"headers": headers}
        loggers = table.loggers
        redacted = (
            redact_kwargs(kwargs)
            if any(hides_messages(lg, everywhere=table.redact) for lg in loggers)
            else {}
        )
        for logger in loggers:
            seen = redacted if hides_messages(logger, everywhere=table.redact) else kwargs
            try:
                logger.log_pre_api_call(model, seen["input"], seen)
            except Exception:
                log.exception("callback %s failed in log_pre_api_call", type(logger).__qualname__)
        for logger in loggers:
            try:
                changed = await logger.async_pre_call_hook(None, None, body, call_type)
            except OpenAIError:
                raise
            except Exception as exc:
                raise BadRequestError(f"rejected by a pre-call hook: {exc}") from exc
            if isinstance(changed, dict):
                body = changed
        self._bodies[request_id] = (endpoint, body, table)
        while len(self._bodies) > MAX_PENDING_CALLBACKS:
            self._bodies.popitem(last=False)
        return body

    def _loggers(self, request_id: str) -> tuple[CustomLogger, ...]:
        entry = self._bodies.get(request_id)
        return entry[2].loggers if entry is not None else ()

    def outgoing_headers(self, request_id: str) -> dict[str, str]:
        """Headers loggers add to the upstream calls of a request (OpenTelemetry's ``traceparent``)."""
        headers: dict[str, str] = {}
        for logger in self._loggers(request_id):
            add = getattr(logger, "outgoing_headers", None)
            if add is not None:
                try:
                    headers.update(add(request_id))
                except Exception:
                    log.exception("callback %s failed in outgoing_headers", type(logger).__qualname__)
        return headers

    def attempt_tracer(self, request_id: str) -> AttemptTracer | None:
        """The tracer of a request's upstream attempts (OpenTelemetry's attempt spans), if any."""
        return attempt_tracer(self._loggers(request_id), request_id)

    def __call__(self, event: Any) -> None:
        """The event-bus subscriber: one background task per finished request runs the success/failure
        hooks. (Attempts reach tracing loggers through :meth:`attempt_tracer`, not events.)"""
        if not isinstance(event, RequestFinished):
            return
        entry = self._bodies.pop(event.request_id, None)
        if entry is None:  # not seen by pre_call (refused before routing) or forgotten: the table's now
            entry = (event.endpoint, {"model": event.model}, self.current() or CallbackTable())
        endpoint, body, callbacks = entry
        if not callbacks:
            return
        if len(self._tasks) >= MAX_PENDING_CALLBACKS:
            log.warning("%d callback tasks pending; skipping request %s", len(self._tasks), event.request_id)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._report(event, endpoint, body, callbacks))
        except RuntimeError:  # no loop (an event emitted from a thread): nothing to schedule on
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(
        self, event: RequestFinished, endpoint: str, body: Mapping[str, Any], callbacks: CallbackTable
    ) -> None:
        kwargs = call_kwargs(endpoint, event.model, body, stream=event.stream, call_id=event.request_id)
        kwargs["litellm_params"].update(
            {
                "model_group": event.group,
                "model_id": event.deployment_id,
                "custom_llm_provider": event.provider,
            }
        )
        run = CallbackRun(
            callbacks.success, callbacks.failure, kwargs, is_async=True, now=self.now, redact=callbacks.redact
        )
        run.start_time = run.start_time - timedelta(seconds=event.latency)
        if event.error is None:
            response = {
                "model": event.model,
                "usage": {
                    "prompt_tokens": event.prompt_tokens,
                    "completion_tokens": event.completion_tokens,
                    "total_tokens": event.prompt_tokens + event.completion_tokens,
                },
            }
            await run.succeeded(response, cost=event.cost)
        else:
            await run.failed_named(event.error, event.status)

    async def drain(self, timeout: float = CALLBACK_DRAIN_SECONDS) -> None:
        """Wait (at most ``timeout``) for callback tasks still running, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


@contextlib.asynccontextmanager
async def callbacks_lifespan(state: Any) -> AsyncIterator[None]:
    """Put the pre-call hook before the router and subscribe to events. The callbacks are the serving
    table's (loaded when it was compiled), read for each request; a table without any costs a request
    one attribute read."""
    router = state.router
    route = router.call

    def current() -> CallbackTable | None:
        callbacks: CallbackTable | None = router.table.callbacks
        return callbacks

    proxy = ProxyCallbacks(current)

    async def call(endpoint: str, body: dict[str, Any], *, request_id: str = "", **options: Any) -> Any:
        callbacks = current()
        if not callbacks:
            return await route(endpoint, body, request_id=request_id, **options)
        body = await proxy.pre_call(endpoint, body, request_id, callbacks)
        if options.get("native") is not None and callbacks.rewrites_requests:
            # a front door's native request is the client's own body: a hook's changes (masking,
            # defaults) are in the chat body only, so every deployment gets that one, translated
            options["native"] = None
        traced = proxy.outgoing_headers(request_id)
        if traced:
            options["extra_headers"] = {**traced, **(options.get("extra_headers") or {})}
        tracer = proxy.attempt_tracer(request_id)
        if tracer is not None:  # each attempt's span, and its traceparent on the upstream request
            options["tracer"] = tracer
        return await route(endpoint, body, request_id=request_id, **options)

    # an instance attribute in front of the method: the HTTP handlers keep calling state.router.call
    setattr(router, "call", call)  # noqa: B010
    state.events.subscribe(proxy)
    try:
        yield
    finally:
        state.events.unsubscribe(proxy)
        with contextlib.suppress(AttributeError):
            delattr(router, "call")
        await proxy.drain()
