"""The Starlette application: routes, lifespan, and the app factories uvicorn starts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routerd.config.table import RoutingTable
from routerd.errors import MethodNotAllowedError, NotFoundError, OpenAIError, error_for_request_status
from routerd.events import EventBus
from routerd.frontdoors.response_store import response_store
from routerd.http import HttpClient, default_client
from routerd.integrations.proxy import callbacks_lifespan
from routerd.routing.executor import CallRouter
from routerd.routing.limits import CallLimits
from routerd.server import inference, model_info, ops
from routerd.server.access_routes import access_routes, gate_lifespan
from routerd.server.allow import allowed_methods
from routerd.server.errors import error_response
from routerd.server.lazy import LazyEndpoint, LazyRoutes
from routerd.server.limits import ConnectionLimits, new_request_id
from routerd.server.metrics_routes import metrics_lifespan, metrics_routes
from routerd.server.model_info import model_info_routes
from routerd.server.reload import reload_lifespan, reload_routes
from routerd.server.state import AppState, ReloadStatus
from routerd.settings import Settings

log = logging.getLogger("routerd.server")

LifespanHook = Callable[[AppState], contextlib.AbstractAsyncContextManager[None]]


def _both(path: str, endpoint: Callable[..., Any], methods: list[str]) -> list[Route]:
    """Each OpenAI endpoint is served with and without the ``/v1`` prefix."""
    return [Route(f"/v1{path}", endpoint, methods=methods), Route(path, endpoint, methods=methods)]


def core_routes() -> list[BaseRoute]:
    return [
        *_both("/chat/completions", inference.chat_completions, ["POST"]),
        *_both("/completions", inference.completions, ["POST"]),
        *_both("/embeddings", inference.embeddings, ["POST"]),
        *_both("/moderations", inference.moderations, ["POST"]),
        *_both("/images/generations", inference.image_generations, ["POST"]),
        *_both("/rerank", inference.rerank, ["POST"]),
        *_both("/models", ops.list_models, ["GET"]),
        *_both("/models/{model_id:path}", ops.get_model, ["GET"]),
        Route("/health/liveliness", ops.liveliness, methods=["GET"]),
        Route("/health/liveness", ops.liveliness, methods=["GET"]),
        Route("/health/readiness", ops.readiness, methods=["GET"]),
        Route("/health", model_info.health, methods=["GET"]),
        Route("/v1/routerd/explain", ops.explain, methods=["GET"]),
    ]


def _both_prefixes(*paths: str) -> tuple[str, ...]:
    return tuple(prefix + path for path in paths for prefix in ("/v1", ""))


#: Route groups imported on their first request (routerd.server.lazy says why): the path prefixes
#: their routes live under, and the function that lists them. tests/server/test_lazy_routes.py checks
#: that every route of each group lies under its prefixes.
LAZY_ROUTE_GROUPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (_both_prefixes("/files"), "routerd.server.files:files_routes"),
    (_both_prefixes("/fine_tuning"), "routerd.server.fine_tuning:fine_tuning_routes"),
    (_both_prefixes("/batches"), "routerd.server.batches:batches_routes"),
    (_both_prefixes("/audio", "/images/edits"), "routerd.server.media_routes:media_routes"),
    (
        ("/v1/messages", "/v1/responses", "/openai/deployments"),
        "routerd.server.frontdoor_routes:frontdoor_routes",
    ),
)

#: The front doors' POST paths served from the direct dispatch table, and the mapping they come from
#: (imported on the first call); a test keeps this list equal to the mapping's keys.
FRONT_DOOR_FAST_PATHS = ("/v1/messages", "/v1/responses")
FRONT_DOOR_FAST_ROUTES = "routerd.server.frontdoor_routes:FAST_ROUTES"


def lazy_routes() -> list[BaseRoute]:
    """The groups of :data:`LAZY_ROUTE_GROUPS`, each imported with its first request."""
    return [LazyRoutes(prefixes, factory) for prefixes, factory in LAZY_ROUTE_GROUPS]


def lifespan_hooks() -> list[LifespanHook]:
    """What starts with the server and stops with it, in order."""
    return [metrics_lifespan, gate_lifespan, reload_lifespan, callbacks_lifespan]


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(
            NotFoundError(f"no route {request.method} {request.url.path}", code="not_found")
        )
    # each status gets its own class, so the body carries that status's OpenAI type (405 is an
    # invalid_request_error, never an api_error); Starlette's other headers are kept
    cls = error_for_request_status(exc.status_code)
    headers = dict(exc.headers or {})
    if cls is MethodNotAllowedError:
        err: OpenAIError = cls(f"{request.method} is not allowed on {request.url.path}")
        # Starlette's Allow names the first matching route's methods only: list every route's
        if allowed := allowed_methods(request.app.router.routes, request.scope):
            headers["Allow"] = ", ".join(allowed)
    else:
        err = cls(str(exc.detail), status_code=exc.status_code, code="http_error")
    return error_response(err, headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    return error_response(exc)


class MiddlewareBypassedError(RuntimeError):
    """Middleware was registered on a RouterdApp, whose inference endpoints would never run it."""


_BYPASS = (
    "routerd's inference endpoints bypass Starlette's middleware (a measured fast path), so "
    "middleware added to this app would silently not see most requests; wrap the app in your "
    "middleware instead (app = YourMiddleware(create_app(...)))"
)


class RouterdApp(Starlette):
    """Starlette, plus a direct path for the inference endpoints.

    Every request pays for Starlette's middleware layers and its linear route matching; the three
    endpoints that carry nearly all traffic catch their own errors, so they are dispatched straight
    from a dict. Everything else takes the normal way, and every answer on it carries an
    ``x-request-id`` (the client's own, or a new one).

    Because of the direct path, middleware registered on the app is refused (``add_middleware`` and
    at startup): it would run for some routes and not for the ones that matter. Wrap the app instead.
    """

    fast_routes: dict[str, ASGIApp] = {}
    connection_limits: ConnectionLimits = ConnectionLimits()

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        raise MiddlewareBypassedError(_BYPASS)

    def build_middleware_stack(self) -> ASGIApp:
        if self.user_middleware:
            raise MiddlewareBypassedError(_BYPASS)
        return super().build_middleware_stack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST":
                endpoint = self.fast_routes.get(scope["path"])
                if endpoint is not None:
                    scope["app"] = self
                    await endpoint(scope, receive, send)
                    return
            send = _with_request_id(scope, send)
        await super().__call__(scope, receive, send)


def _with_request_id(scope: Scope, send: Send) -> Send:
    """``send`` that adds an ``x-request-id`` to the answer when the handler did not set one."""
    request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
    header = (b"x-request-id", request_id or new_request_id().encode())

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                headers.append(header)
                message = {**message, "headers": headers}
        await send(message)

    return send_with_id


def _fast_routes() -> dict[str, ASGIApp]:
    handlers = {
        "/chat/completions": inference.chat_completions,
        "/completions": inference.completions,
        "/embeddings": inference.embeddings,
    }
    routes: dict[str, ASGIApp] = {
        prefix + path: handler for path, handler in handlers.items() for prefix in ("", "/v1")
    }
    routes.update({path: LazyEndpoint(FRONT_DOOR_FAST_ROUTES, path) for path in FRONT_DOOR_FAST_PATHS})
    return routes


def create_app(
    table: RoutingTable,
    *,
    settings: Settings | None = None,
    router: CallRouter | None = None,
    events: EventBus | None = None,
    config_path: Path | None = None,
) -> Starlette:
    """An app serving ``table``. Tests pass their own router (fake clock, injected HTTP client)."""
    settings = settings or Settings()
    events = events or (router.events if router is not None else EventBus())
    owned_http: HttpClient | None = None
    if router is None:
        from routerd.state.connect import make_store

        # the settings' upstream bounds reach the client here (a router made here owns it)
        owned_http = default_client(settings)
        router = CallRouter(
            table,
            events=events,
            limits=CallLimits.from_settings(settings),
            http=owned_http,
            state=make_store(settings, table.server),
        )
    state = AppState(
        router=router,
        settings=settings,
        events=events,
        config_path=config_path,
        reload=ReloadStatus(content_hash=table.content_hash),
    )
    state.responses = response_store(settings, shared=router.state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.master_key is None:
            log.warning(
                "no master key configured: this gateway is open to anyone who can reach it; "
                "set general_settings.master_key or ROUTERD_MASTER_KEY"
            )
        await state.router.state.start()  # a shared store connects (bounded) or serves locally
        async with contextlib.AsyncExitStack() as stack:
            for hook in lifespan_hooks():
                await stack.enter_async_context(hook(state))
            try:
                yield
            finally:
                state.draining = True
                try:
                    await state.router.aclose()
                finally:
                    if owned_http is not None:
                        await owned_http.aclose()

    routes: list[BaseRoute] = [
        *core_routes(),
        *reload_routes(),
        *lazy_routes(),
        *access_routes(),
        *model_info_routes(),
        *metrics_routes(state),
    ]
    app = RouterdApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
    )
    if settings.log_requests:
        from routerd.logs import RequestLogger

        events.subscribe(RequestLogger())
    app.fast_routes = _fast_routes()
    app.connection_limits = ConnectionLimits.from_settings(settings)
    app.state.routerd = state
    return app


def app_from_settings() -> Starlette:
    """The uvicorn factory (``--workers N`` imports this in every worker): config from ``ROUTERD_CONFIG``."""
    from routerd.config import load_config
    from routerd.logs import configure_logging
    from routerd.server.run import collect_from_here

    settings = Settings()
    configure_logging(settings)
    table = load_config(settings.config, limits=settings.config_limits())
    app = create_app(table, settings=settings, config_path=settings.config)
    collect_from_here()
    return app
