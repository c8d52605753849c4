"""The daemon's callbacks: ``litellm_settings.callbacks: [module.instance, "otel"]``, as LiteLLM's proxy.

At startup every entry of ``litellm_settings.callbacks`` / ``success_callback`` / ``failure_callback``
that is a dotted path is imported -- the module is looked up next to the config file first, as
LiteLLM's proxy does -- and must name a :class:`~routerd.integrations.custom_logger.CustomLogger`
instance or a function; ``"otel"`` is the OpenTelemetry tracer; ``"prometheus"`` is routerd's own
metrics. A path that does not import stops the startup with an error naming it. Callbacks are read at
startup only: a reload does not change them (restart to). The three LiteLLM lists are merged by the
config compiler, so every loaded callback hears of successes and failures alike.

What runs, for each request the daemon serves:

* ``async_pre_call_hook(user_api_key_dict, cache, data, call_type)`` before routing: it may return a
  changed body, or raise to reject the request (an :mod:`routerd.errors` class keeps its status;
  anything else answers 400 with its message);
* after the request ends (a subscriber of :class:`~routerd.events.RequestFinished`), in a background
  task: ``log_success_event`` / ``async_log_success_event`` or their ``failure`` twins, with
  LiteLLM's ``kwargs`` (``model``, ``messages``, ``litellm_call_id`` = the request id,
  ``response_cost``, ``exception`` = the error class name for failures), a response object with
  ``model`` and ``usage``, and the request's start and end times.

A callback that raises is logged and counted (:func:`~routerd.integrations.callbacks.callback_error_count`);
the request is never affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from routerd.errors import BadRequestError, ConfigError, OpenAIError
from routerd.events import RequestFinished
from routerd.integrations.callbacks import CallbackRun, attempt_tracer, call_kwargs, resolve_callbacks
from routerd.integrations.context import REQUEST_HEADERS
from routerd.integrations.custom_logger import CustomLogger
from routerd.routing.attempt import AttemptTracer

__all__ = ["MAX_PENDING_CALLBACKS", "ProxyCallbacks", "callbacks_lifespan", "load_callbacks"]

log = logging.getLogger("routerd.callbacks")

#: request bodies kept between the pre-call hook and the request's end, and callback tasks in flight;
#: beyond it the oldest body is forgotten (its callbacks get no messages) and new tasks are skipped
MAX_PENDING_CALLBACKS = 10_000
#: seconds the shutdown waits for callback tasks still running
CALLBACK_DRAIN_SECONDS = 5.0
#: request headers never handed to callbacks
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})
#: names handled elsewhere (routerd's metrics), not callbacks to load
BUILT_IN = frozenset({"prometheus"})


def load_callbacks(names: tuple[str, ...], config_dir: Path | None) -> list[Any]:
    """The callbacks ``names`` refer to: dotted paths imported, ``"otel"`` resolved, built-ins skipped.

    Raises :class:`~routerd.errors.ConfigError` naming every path that does not import.
    """
    loaded: list[Any] = []
    problems: list[str] = []
    for name in names:
        if name in BUILT_IN:
            continue
        try:
            if "." not in name:
                loaded.extend(resolve_callbacks([name]))
            else:
                loaded.append(_import(name, config_dir))
        except Exception as exc:
            problems.append(f"litellm_settings.callbacks: cannot load {name!r}: {type(exc).__name__}: {exc}")
    if problems:
        raise ConfigError(problems)
    return loaded


def _import(path: str, config_dir: Path | None) -> Any:
    module_name, _, attribute = path.rpartition(".")
    added = config_dir is not None and str(config_dir) not in sys.path
    if added:
        sys.path.insert(0, str(config_dir))
    try:
        module = importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(str(config_dir))
    target = getattr(module, attribute)
    if not (isinstance(target, CustomLogger) or callable(target)):
        raise TypeError(f"{path} is neither a CustomLogger instance nor a function")
    return target


class ProxyCallbacks:
    """The loaded callbacks, their pre-call hook and their :class:`RequestFinished` subscriber."""

    def __init__(self, callbacks: list[Any], *, now: Callable[[], datetime] = datetime.now) -> None:
        self.callbacks = callbacks
        self.loggers = [cb for cb in callbacks if isinstance(cb, CustomLogger)]
        self.now = now
        self._bodies: OrderedDict[str, tuple[str, Mapping[str, Any]]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def pre_call(self, endpoint: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Run every logger's ``async_pre_call_hook``; the body the request continues with."""
        call_type = {"chat": "completion", "completions": "text_completion"}.get(endpoint, endpoint)
        model = str(body.get("model", ""))
        kwargs = call_kwargs(endpoint, model, body, stream=bool(body.get("stream")), call_id=request_id)
        # LiteLLM's place for the incoming request; headers only, and never the client's key
        headers = {k: v for k, v in (REQUEST_HEADERS.get() or {}).items() if k not in _SECRET_HEADERS}
        kwargs["litellm_params"]["proxy_server_request"] = {"headers": headers}
        for logger in self.loggers:
            try:
                logger.log_pre_api_call(model, kwargs["input"], kwargs)
            except Exception:
                log.exception("callback %s failed in log_pre_api_call", type(logger).__qualname__)
        for logger in self.loggers:
            try:
                changed = await logger.async_pre_call_hook(None, None, body, call_type)
            except OpenAIError:
                raise
            except Exception as exc:
                raise BadRequestError(f"rejected by a pre-call hook: {exc}") from exc
            if isinstance(changed, dict):
                body = changed
        self._bodies[request_id] = (endpoint, body)
        while len(self._bodies) > MAX_PENDING_CALLBACKS:
            self._bodies.popitem(last=False)
        return body

    def outgoing_headers(self, request_id: str) -> dict[str, str]:
        """Headers loggers add to the upstream calls of a request (OpenTelemetry's ``traceparent``)."""
        headers: dict[str, str] = {}
        for logger in self.loggers:
            add = getattr(logger, "outgoing_headers", None)
            if add is not None:
                try:
                    headers.update(add(request_id))
                except Exception:
                    log.exception("callback %s failed in outgoing_headers", type(logger).__qualname__)
        return headers

    def attempt_tracer(self, request_id: str) -> AttemptTracer | None:
        """The tracer of a request's upstream attempts (OpenTelemetry's attempt spans), if any."""
        return attempt_tracer(self.loggers, request_id)

    def __call__(self, event: Any) -> None:
        """The event-bus subscriber: one background task per finished request runs the success/failure
        hooks. (Attempts reach tracing loggers through :meth:`attempt_tracer`, not events.)"""
        if not isinstance(event, RequestFinished):
            return
        endpoint, body = self._bodies.pop(event.request_id, (event.endpoint, {"model": event.model}))
        if len(self._tasks) >= MAX_PENDING_CALLBACKS:
            log.warning("%d callback tasks pending; skipping request %s", len(self._tasks), event.request_id)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._report(event, endpoint, body))
        except RuntimeError:  # no loop (an event emitted from a thread): nothing to schedule on
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, event: RequestFinished, endpoint: str, body: Mapping[str, Any]) -> None:
        kwargs = call_kwargs(endpoint, event.model, body, stream=event.stream, call_id=event.request_id)
        kwargs["litellm_params"].update(
            {
                "model_group": event.group,
                "model_id": event.deployment_id,
                "custom_llm_provider": event.provider,
            }
        )
        run = CallbackRun(self.callbacks, self.callbacks, kwargs, is_async=True, now=self.now)
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


def _config_dir(config_path: Path | None) -> Path | None:
    """The config file's directory (relative paths as the daemon reads the file: from the cwd)."""
    return Path(config_path).absolute().parent if config_path else None


@contextlib.asynccontextmanager
async def callbacks_lifespan(state: Any) -> AsyncIterator[None]:
    """Load the table's callbacks, put the pre-call hook before the router and subscribe to events."""
    # importing user modules is blocking work too; it happens once, before the server accepts requests
    callbacks = load_callbacks(state.table.server.callbacks, _config_dir(state.config_path))
    if not callbacks:
        yield
        return
    proxy = ProxyCallbacks(callbacks)
    router = state.router
    route = router.call

    async def call(endpoint: str, body: dict[str, Any], *, request_id: str = "", **options: Any) -> Any:
        body = await proxy.pre_call(endpoint, body, request_id)
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
