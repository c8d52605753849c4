"""The gate's life in the server: created at start-up (the spend ledger opened, flushed every second in
a worker thread, closed at shutdown), its HTTP edges (guardrail webhooks and moderation calls), and the
routes that show keys and spend: ``GET /key/info`` and ``GET /v1/routerd/spend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.access.ledger import GROUPINGS, SpendLedger
from routerd.access.limits import AccessLimits
from routerd.access.periods import period_bounds
from routerd.access.table import KeyPolicy, authenticate
from routerd.cache.local import LocalCache
from routerd.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OpenAIError,
    ServiceUnavailableError,
)
from routerd.server.auth import presented_key, require_key
from routerd.server.errors import error_response
from routerd.server.gate import Gate
from routerd.server.state import AppState
from routerd.state.connect import shared_client

if TYPE_CHECKING:
    import httpx

    from routerd.access.shared import SharedSpend

__all__ = ["access_routes", "gate_lifespan", "spend_db_path"]

log = logging.getLogger("routerd.gate")

#: Longest answer read from a guardrail webhook or a moderation endpoint.
MAX_SERVICE_ANSWER_BYTES = 1024 * 1024
SPEND_FILE = "routerd-spend.sqlite"
#: ``GET /v1/routerd/spend?scope=``: every replica's spend (through Redis), or this replica's own.
SPEND_SCOPES = ("fleet", "replica")


def spend_db_path(state: AppState) -> Path | None:
    """Where spend is kept: ``ROUTERD_SPEND_DB``; else beside the routing file when it declares keys,
    teams or end-user budgets; else nowhere (an in-memory ledger)."""
    if state.settings.spend_db is not None:
        return state.settings.spend_db
    table = state.table
    if (table.access is not None or table.end_user_budget is not None) and state.config_path is not None:
        return state.config_path.parent / SPEND_FILE
    return None


class _ServiceClient:
    """The HTTP client of guardrail webhooks and moderation calls, made on the first call: making one
    loads the CA bundle (tens of ms of start-up), and most gateways never call such a service."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _poster(client: _ServiceClient):  # type: ignore[no-untyped-def]
    async def post(
        url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
    ) -> tuple[int, Any]:
        async with client.get().stream(
            "POST", url, headers=dict(headers), content=orjson.dumps(body), timeout=timeout
        ) as response:
            raw = b""
            async for piece in response.aiter_bytes():
                raw += piece
                if len(raw) > MAX_SERVICE_ANSWER_BYTES:
                    raise ValueError("guardrail service answer too large")
            try:
                return response.status_code, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return response.status_code, None

    return post


def _moderator(state: AppState, post: Any):  # type: ignore[no-untyped-def]
    async def moderate(model: str, texts: Sequence[str], timeout: float) -> Mapping[str, Any]:
        import httpx  # its error classes (the service client loads it anyway)

        from routerd.providers.openai import OpenAIEndpoint

        group = state.table.resolve(model)
        if group is None:
            raise NotFoundError(f"moderation model group {model!r} is not in the routing file")
        last: Exception | None = None
        # the group's deployments in order, the next one when one fails
        for deployment in group.deployments:
            endpoint = deployment.prepared
            if not isinstance(endpoint, OpenAIEndpoint):
                continue
            url = endpoint.embeddings_url.rsplit("/embeddings", 1)[0] + "/moderations"
            try:
                status, answer = await post(
                    url, endpoint.headers, {"model": endpoint.model, "input": list(texts)}, timeout
                )
            except (httpx.HTTPError, OSError, ValueError) as exc:
                last = exc
                continue
            if status == 200 and isinstance(answer, Mapping):
                return answer
            last = ServiceUnavailableError(f"moderation deployment {deployment.id} answered {status}")
        raise last or BadRequestError(
            f"model group {model!r} has no OpenAI-compatible deployment for moderation"
        )

    return moderate


def gate_lifespan(state: AppState) -> contextlib.AbstractAsyncContextManager[None]:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[None]:
        settings = state.settings
        path = spend_db_path(state)
        ledger = SpendLedger(path)
        if path is None:  # in memory: opened by the first spend it writes (no sqlite3 at start-up)
            ledger.open_on_first_use(time.time())
        else:
            try:
                await asyncio.to_thread(ledger.open, time.time())
            except Exception as exc:  # an unwritable path must not keep the gateway from serving
                log.error("spend ledger %s could not be opened (%s); spend is kept in memory only", path, exc)
                ledger = SpendLedger(None)
                ledger.open_on_first_use(time.time())
        cache = LocalCache(
            max_bytes=settings.cache_max_mb * 1024 * 1024, max_entry_bytes=settings.cache_max_entry_kb * 1024
        )
        client = _ServiceClient()
        post = _poster(client)
        state.gate = Gate(
            ledger,
            # key and team limits: shared through the Redis store while it answers; otherwise each
            # process enforces its share (limit // processes: the Redis store's count of live
            # replicas, else --workers), so the fleet stays within them
            AccessLimits(
                divisor=lambda: getattr(state.router.state, "processes", settings.workers),
                shared=lambda: getattr(state.router.state, "access", None),
            ),
            cache,
            post,
            _moderator(state, post),
            redis_client=lambda params: shared_client(
                settings,
                state.table.server,
                url=params.url,
                host=params.host,
                port=params.port,
                password=params.password,
            ),
        )
        state.gate.prepare(state.table)
        spend_client = shared_client(settings, state.table.server, timeout=1.0)
        shared = None
        if spend_client is not None:
            from routerd.access.shared import SharedSpend  # replicas sharing Redis only

            ledger.shared = True
            shared = SharedSpend(spend_client, namespace=settings.state_namespace)
            state.gate.shared_spend = shared
        flusher = asyncio.create_task(
            _flush_forever(state, ledger, settings.spend_flush_seconds, shared), name="routerd-spend-flush"
        )
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await client.aclose()
            await state.gate.aclose()
            if shared is not None:
                await shared.sync(ledger)  # what this replica spent since the last exchange
                await shared.client.aclose()
            await asyncio.to_thread(ledger.close)

    return run()


async def _flush_forever(
    state: AppState, ledger: SpendLedger, interval: float, shared: SharedSpend | None
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(ledger.flush)
            ledger.forget_ended(time.time())
        except Exception:
            log.exception("writing the spend ledger failed; retrying in %s s", interval)
        if shared is not None:
            from routerd.access.shared import declared_budgets  # imported with SharedSpend already

            now = time.time()
            await shared.sync(ledger, now, declared_budgets(state.table.access, now))


def _gate(request: Request) -> tuple[AppState, Gate]:
    state: AppState = request.app.state.routerd
    if state.gate is None:
        raise ServiceUnavailableError("the gateway is starting")
    return state, state.gate


def _iso(moment: float | None) -> str | None:
    if moment is None or moment == float("inf"):
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat()


def key_info(policy: KeyPolicy, gate: Gate, now: float) -> dict[str, Any]:
    """LiteLLM's ``/key/info`` shape: ``{"key": <hash>, "info": {...}}``, spend of the current period."""
    start, end = period_bounds(policy.budget, now)
    info: dict[str, Any] = {
        "key_alias": policy.alias,
        "key_name": policy.alias,
        "team_id": policy.team_id,
        "user_id": policy.user_id,
        "models": list(policy.models),
        "spend": round(gate.ledger.spent(f"key:{policy.alias}", start), 10),
        # the replicas' spend together when they share it through Redis (as of the last exchange)
        "spend_scope": "fleet" if gate.shared_spend is not None else "replica",
        "max_budget": policy.max_budget,
        "budget_duration": policy.budget.text if policy.budget else None,
        "budget_reset_at": _iso(end),
        "rpm_limit": policy.rpm_limit,
        "tpm_limit": policy.tpm_limit,
        "max_parallel_requests": policy.max_parallel_requests,
        "expires": _iso(policy.expires),
        "blocked": policy.blocked,
        "tags": list(policy.tags),
        "metadata": dict(policy.metadata),
        "guardrails": list(policy.guardrails),
    }
    if policy.team is not None:
        team = policy.team
        team_start, team_end = period_bounds(team.budget, now)
        info["team"] = {
            "team_id": team.team_id,
            "team_alias": team.alias,
            "spend": round(gate.ledger.spent(f"team:{team.team_id}", team_start), 10),
            "max_budget": team.max_budget,
            "budget_duration": team.budget.text if team.budget else None,
            "budget_reset_at": _iso(team_end),
            "rpm_limit": team.rpm_limit,
            "tpm_limit": team.tpm_limit,
            "models": list(team.models),
        }
    return {"key": "sha256:" + policy.digest.hex(), "info": info}


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def key_info_route(request: Request) -> Response:
    try:
        state, gate = _gate(request)
        access = state.table.access
        token = presented_key(request.headers)
        master = state.master_key
        now = time.time()
        if master is not None and token is not None and _is_master(token, master):
            if access is None:
                raise NotFoundError("no client keys are declared in the routing file")
            wanted = request.query_params.get("key")
            alias = request.query_params.get("key_alias")
            policy = access.lookup(wanted) if wanted else access.by_alias(alias) if alias else None
            if policy is None:
                raise NotFoundError("no such key: pass ?key=<key> or ?key_alias=<alias>", param="key")
        else:
            if access is None or token is None:
                raise AuthenticationError("send a client key to see its info", code="invalid_api_key")
            policy = authenticate(access, token, now)
        return _json(key_info(policy, gate, now))
    except OpenAIError as exc:
        return error_response(exc, {})


def _is_master(token: str, master: str) -> bool:
    import hmac

    return hmac.compare_digest(token.encode(), master.encode())


def _moment(value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(
            f"{value!r} is not a Unix time or an ISO 8601 date/time", param="start/end"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def spend_route(request: Request) -> Response:
    try:
        state, gate = _gate(request)
        require_key(request.headers, state.master_key)
        group_by = request.query_params.get("group_by", "key")
        if group_by not in GROUPINGS:
            raise BadRequestError(f"group_by must be one of {', '.join(GROUPINGS)}", param="group_by")
        now = time.time()
        end = _moment(request.query_params.get("end"), now)
        start = _moment(request.query_params.get("start"), end - 30 * 86400)
        if start > end:
            raise BadRequestError("start is after end", param="start")
        scope = request.query_params.get("scope", "fleet")
        if scope not in SPEND_SCOPES:
            raise BadRequestError(f"scope must be one of {', '.join(SPEND_SCOPES)}", param="scope")
        answer: dict[str, Any] = {"group_by": group_by, "start": _iso(start), "end": _iso(end)}
        shared = gate.shared_spend
        if scope == "fleet" and shared is not None:
            try:
                await shared.sync(gate.ledger)  # this replica's latest spend first
                rows = await shared.report(group_by, start, end)
                return _json({**answer, "scope": "fleet", "data": rows})
            except Exception as exc:  # Redis away: this replica's own record, marked as such
                log.warning("the fleet's spend report is unavailable (%s); reporting this replica's",
                            type(exc).__name__)  # fmt: skip
        rows = await asyncio.to_thread(gate.ledger.report, group_by, start, end)
        return _json({**answer, "scope": "replica", "data": rows})
    except OpenAIError as exc:
        return error_response(exc, {})


def access_routes() -> list[BaseRoute]:
    return [
        Route("/key/info", key_info_route, methods=["GET"]),
        Route("/v1/key/info", key_info_route, methods=["GET"]),
        Route("/v1/routerd/spend", spend_route, methods=["GET"]),
    ]
