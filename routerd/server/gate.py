"""The gate in front of the router: who calls, whether they may, whether there is room and budget, what
the guardrails say, and whether the cache already holds the answer -- and, once the call is done, the
same stations in reverse (guardrails on the answer, the cache, the spend ledger, the limits).

Every decision here is a pure function from :mod:`routerd.access`, :mod:`routerd.guardrails` and
:mod:`routerd.cache`; this module only strings them together for one request (a :class:`Passage`) and
owns the per-process state they need (:class:`Gate`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from routerd.access.ledger import BudgetScope, SpendEvent, SpendLedger
from routerd.access.periods import Duration, period_bounds
from routerd.access.table import (
    AccessTable,
    EndUserBudget,
    KeyPolicy,
    authenticate,
    check_budget,
    check_model,
)
from routerd.cache.controls import CacheControls, parse_controls
from routerd.cache.spec import CacheConfig, CacheParams
from routerd.config.table import RoutingTable
from routerd.cost import request_cost
from routerd.errors import AuthenticationError, BadRequestError
from routerd.guardrails.config import CONTENT_FILTER, MODERATION, WEBHOOK, CompiledGuardrail
from routerd.guardrails.modes import Mode
from routerd.guardrails.selection import MAX_REQUESTED_GUARDRAILS, check_selection, selection_of
from routerd.server.auth import presented_key, require_key
from routerd.tokens import count_request_tokens

if TYPE_CHECKING:
    # Imported when a table first has them (_load_guardrails, _load_cache), not with this module:
    # a gateway without guardrails, a cache or shared spend does not pay for them at start-up.
    from routerd.access.limits import AccessLimits, Admission
    from routerd.access.shared import SharedSpend
    from routerd.cache.key import cache_key, embedding_item_keys
    from routerd.cache.local import AsyncLocalCache, CachedValue, LocalCache
    from routerd.cache.redis_cache import RedisCache
    from routerd.cache.replay import JSON, answer_from_chunks, chunks_from_answer
    from routerd.guardrails.engine import (
        ContentFilterGuardrail,
        Guardrail,
        GuardrailBlockedError,
        GuardrailRun,
        GuardrailUnavailableError,
        StreamGuard,
        apply_answer,
        apply_request,
        select,
        unknown_names,
    )
    from routerd.guardrails.network import ModerationGuardrail, Moderator, Poster, WebhookGuardrail
    from routerd.guardrails.remote_stream import RemoteStreamGuard, StreamChecked

    # (id of the table, its guardrails bound to this process, the default_on ones per mode)
    _Binding = tuple[int, dict[str, Guardrail], tuple[tuple[Guardrail, ...], ...]]

__all__ = ["MAX_REQUESTED_GUARDRAILS", "Gate", "Passage"]

log = logging.getLogger("routerd.gate")

EMBEDDINGS = "embeddings"
#: Bytes counted per streamed chunk kept for the cache, besides its text (ids, model, framing).
_CHUNK_ENVELOPE = 160


def _load_guardrails() -> None:
    """Bind the guardrail engine's names in this module, the first time a table with guardrails is
    bound (or a call names a guardrail, or ``explain`` previews them). Until then they are not
    imported; from then on the request path finds them as plain globals, with no import per call."""
    from routerd.guardrails import engine, network, remote_stream

    names = (
        *("ContentFilterGuardrail", "GuardrailBlockedError", "GuardrailUnavailableError", "StreamGuard"),
        *("apply_answer", "apply_request", "select", "unknown_names"),
    )
    globals().update({name: getattr(engine, name) for name in names})
    globals().update(
        ModerationGuardrail=network.ModerationGuardrail,
        WebhookGuardrail=network.WebhookGuardrail,
        RemoteStreamGuard=remote_stream.RemoteStreamGuard,
    )


def _load_cache() -> None:
    """Bind the cache's key and replay functions in this module, when the gate first makes a cache
    backend (as :func:`_load_guardrails` does for guardrails)."""
    from routerd.cache import key, replay

    globals().update(
        cache_key=key.cache_key,
        embedding_item_keys=key.embedding_item_keys,
        answer_from_chunks=replay.answer_from_chunks,
        chunks_from_answer=replay.chunks_from_answer,
    )


class CacheBackend(Protocol):
    """The cache as the gate uses it: this process's LRU or a Redis shared by the replicas."""

    max_entry_bytes: int

    async def get(self, key: str, *, max_age: float | None = None) -> CachedValue | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class KeyBudgets:
    """A key's budget scopes (its own, then its team's) for the periods running from ``since`` to
    ``until``, and those of them that have a ``max_budget`` to check."""

    policy: KeyPolicy
    since: float
    until: float
    scopes: tuple[BudgetScope, ...]
    capped: tuple[tuple[BudgetScope, str, float, Duration | None], ...]

    @classmethod
    def of(cls, policy: KeyPolicy, now: float) -> KeyBudgets:
        owners: list[tuple[str, str, float | None, Duration | None]] = [
            (policy.scope, f"key {policy.alias!r}", policy.max_budget, policy.budget)
        ]
        team = policy.team
        if team is not None:
            owners.append((team.scope, f"team {team.team_id!r}", team.max_budget, team.budget))
        scopes: list[BudgetScope] = []
        capped: list[tuple[BudgetScope, str, float, Duration | None]] = []
        for scope, label, max_budget, duration in owners:
            start, end = period_bounds(duration, now)
            scopes.append(BudgetScope(scope, start, end))
            if max_budget is not None:
                capped.append((scopes[-1], label, max_budget, duration))
        since = max(s.period_start for s in scopes)
        until = min(s.period_end for s in scopes)
        return cls(policy, since, until, tuple(scopes), tuple(capped))


@dataclass(slots=True)
class Gate:
    """This process's gate state: limits, the ledger, the local cache and the bound guardrails."""

    ledger: SpendLedger
    limits: AccessLimits
    cache: LocalCache | None
    poster: Poster
    moderator: Moderator
    clock: Callable[[], float] = time.time
    # builds a redis.asyncio client for a `cache_params.type: redis` cache (None: no Redis available)
    redis_client: Callable[[CacheParams], Any] | None = None
    # spend shared by the replicas through Redis (budgets, the fleet's spend report); None: this one's
    shared_spend: SharedSpend | None = None
    _bound: _Binding | None = None
    # (id of the table, key scope -> its budget periods while they run): see budgets()
    _budgets: tuple[int, dict[str, KeyBudgets]] | None = None
    _local: AsyncLocalCache | None = None
    _redis: dict[str, RedisCache] = field(default_factory=dict)

    def cache_backend(self, config: CacheConfig) -> CacheBackend | None:
        """Where this table's cache lives: this process's LRU, or a Redis shared by the replicas."""
        if config.params.type == "redis":
            where = (
                config.params.url or f"{config.params.host}:{config.params.port}/{config.params.namespace}"
            )
            backend = self._redis.get(where)
            if backend is None and self.redis_client is not None:
                client = self.redis_client(config.params)
                if client is None:
                    return None
                from routerd.cache.redis_cache import RedisCache

                _load_cache()
                limit = self.cache.max_entry_bytes if self.cache is not None else 1 << 20
                namespace = f"routerd:{config.params.namespace + ':' if config.params.namespace else ''}"
                backend = self._redis[where] = RedisCache(
                    client, namespace=namespace, max_entry_bytes=limit, timeout=0.05
                )
            return backend
        if self.cache is None:
            return None
        if self._local is None:
            from routerd.cache.local import AsyncLocalCache

            _load_cache()
            self._local = AsyncLocalCache(self.cache)
        return self._local

    def prepare(self, table: RoutingTable) -> None:
        """Load what ``table`` uses before its first call needs it (the server calls this at start-up):
        its guardrails bound, the cache's code imported. A table without them imports neither."""
        if table.guardrails:
            self.guardrails(table)
        if table.cache is not None:
            _load_cache()

    async def aclose(self) -> None:
        for backend in self._redis.values():
            await backend.aclose()

    def budgets(self, table: RoutingTable, policy: KeyPolicy, now: float) -> KeyBudgets:
        """The budget scopes of ``policy`` (its own and its team's) for the periods ``now`` falls in.

        Built once per key and period rather than on every call: the scopes' names, period bounds
        and records are the same for every call of the key until the first of its periods ends. At
        most one entry per key of the current table (a new table starts afresh)."""
        if self._budgets is None or self._budgets[0] != id(table):
            self._budgets = (id(table), {})
        known = self._budgets[1]
        budgets = known.get(policy.scope)
        if budgets is None or budgets.policy is not policy or not budgets.since <= now < budgets.until:
            budgets = known[policy.scope] = KeyBudgets.of(policy, now)
        return budgets

    def guardrails(self, table: RoutingTable) -> dict[str, Guardrail]:
        """The table's guardrails bound to this process's I/O (once per table)."""
        return self._binding(table)[1]

    def default_guardrails(self, table: RoutingTable) -> tuple[tuple[Guardrail, ...], ...]:
        """What a call that names no guardrails (and whose key and team have none) runs: the
        ``default_on`` guardrails of each mode (pre_call, post_call, during_call), chosen once per table."""
        return self._binding(table)[2]

    def choose(
        self, table: RoutingTable, policy: KeyPolicy | None, requested: Sequence[str] = ()
    ) -> tuple[tuple[Guardrail, ...], ...]:
        """The guardrails a call of ``policy``'s key naming ``requested`` runs, per mode (pre_call,
        post_call, during_call): the ``default_on`` ones, the key's and its team's, the requested ones.
        A requested name the table does not have is a 400 ``unknown_guardrail``."""
        guardrails = self.guardrails(table)
        missing = unknown_names(guardrails, requested)
        if missing:
            raise BadRequestError(
                f"unknown guardrail {missing[0]!r}", param="guardrails", code="unknown_guardrail"
            )
        scoped = [*policy.guardrails, *(policy.team.guardrails if policy.team else ())] if policy else []
        if not (requested or scoped):
            return self.default_guardrails(table)
        return tuple(
            select(guardrails, mode, requested, scoped)
            for mode in (Mode.PRE_CALL, Mode.POST_CALL, Mode.DURING_CALL)
        )

    def _binding(self, table: RoutingTable) -> _Binding:
        bound = self._bound
        if bound is not None and bound[0] == id(table):
            return bound
        _load_guardrails()
        runtime = {name: self._bind(g) for name, g in table.guardrails.items()}
        defaults = tuple(select(runtime, mode) for mode in (Mode.PRE_CALL, Mode.POST_CALL, Mode.DURING_CALL))
        self._bound = (id(table), runtime, defaults)
        return self._bound

    def _bind(self, compiled: CompiledGuardrail) -> Guardrail:
        if compiled.kind == CONTENT_FILTER:
            assert compiled.content_filter is not None
            return ContentFilterGuardrail(
                compiled.name,
                compiled.content_filter,
                compiled.modes,
                compiled.default_on,
                compiled.stream_window,
            )
        if compiled.kind == WEBHOOK:
            return WebhookGuardrail(
                compiled.name,
                compiled.modes,
                compiled.url or "",
                self.poster,
                compiled.headers,
                compiled.timeout,
                compiled.fail_open,
                compiled.params,
                compiled.default_on,
                compiled.stream_check_chars,
            )
        if compiled.kind == MODERATION:
            return ModerationGuardrail(
                compiled.name,
                compiled.modes,
                compiled.model or "",
                self.moderator,
                compiled.categories,
                compiled.timeout,
                compiled.fail_open,
                compiled.default_on,
                compiled.stream_check_chars,
            )
        raise ValueError(f"guardrail type {compiled.kind!r} has no runtime")


class Unidentified:
    """The type of :data:`UNIDENTIFIED`: :meth:`Passage.enter` identifies the caller itself."""


UNIDENTIFIED = Unidentified()


def caller_of(
    gate: Gate | None, table: RoutingTable, master_key: str | None, headers: Mapping[str, str]
) -> KeyPolicy | Unidentified | None:
    """Who is calling, known from the headers alone: called before a request's body is read, so that
    a missing or unknown key is a 401 that costs no body read or parse. The key policy (None: the
    master key or an open gateway) to hand to :meth:`Passage.enter`; without a gate (an app without
    its lifespan), the master key is required and :data:`UNIDENTIFIED` returned."""
    if gate is None:
        require_key(headers, master_key)
        return UNIDENTIFIED
    return identify(table, master_key, headers, gate.clock())


def identify(
    table: RoutingTable, master_key: str | None, headers: Mapping[str, str], now: float
) -> KeyPolicy | None:
    """The caller's key policy; None for the master key, or when the gateway is open (no master key
    and no client keys). Raises 401 otherwise."""
    access: AccessTable | None = table.access
    if master_key is None and (access is None or not access.enabled):
        return None
    token = presented_key(headers)
    if token is None:
        raise AuthenticationError(
            "missing API key: send it as 'Authorization: Bearer <key>'", code="invalid_api_key"
        )
    if master_key is not None and hmac.compare_digest(token.encode(), master_key.encode()):
        return None
    if access is None or not access.enabled:
        raise AuthenticationError("invalid API key", code="invalid_api_key")
    return authenticate(access, token, now)


def _requested_guardrails(body: MutableMapping[str, Any]) -> list[str]:
    # the front doors put theirs here too (routerd.guardrails.selection.take_selection)
    names = selection_of(body)
    body.pop("guardrails", None)
    return [] if names is None else check_selection(names)


def _usage_of(answer: Mapping[str, Any]) -> tuple[int, int]:
    usage = answer.get("usage")
    if not isinstance(usage, Mapping):
        return 0, 0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)


def _embedding_items(body: Mapping[str, Any]) -> list[Any] | None:
    """The input items of an embeddings request (a single string or token list is one item)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    if isinstance(value, list):
        return list(value)
    return None


def preview(
    table: RoutingTable,
    model: str,
    endpoint: str = "chat",
    requested: Sequence[str] = (),
    key_alias: str | None = None,
) -> dict[str, Any]:
    """What the gate would do for a call of ``model`` (for ``explain``): the guardrails it would run per
    mode, and whether the response cache would be consulted. No call is made and nothing is counted."""
    access: AccessTable | None = table.access
    policy = access.by_alias(key_alias) if access is not None and key_alias else None
    scoped = [*policy.guardrails, *(policy.team.guardrails if policy.team else ())] if policy else []
    _load_guardrails()
    guardrails = {name: _Named(g.name, g.modes, g.default_on) for name, g in table.guardrails.items()}
    modes = {
        mode.value: [g.name for g in select(guardrails, mode, requested, scoped)]
        for mode in (Mode.PRE_CALL, Mode.POST_CALL, Mode.DURING_CALL)
    }
    config: CacheConfig | None = table.cache
    if config is None:
        cache = {"looked_up": False, "why": "caching is off"}
    elif endpoint not in config.endpoints:
        cache = {"looked_up": False, "why": f"{endpoint} is not among the cached call types"}
    elif config.params.mode == "default_off":
        cache = {"looked_up": False, "why": "mode default_off: only requests with cache: {use-cache: true}"}
    else:
        cache = {"looked_up": True, "backend": config.params.type, "ttl": config.params.ttl}
    return {"guardrails": modes, "cache": cache, "key": policy.alias if policy else None}


@dataclass(frozen=True, slots=True)
class _Named:
    """A guardrail as :func:`select` sees it, without binding its I/O."""

    name: str
    modes: frozenset[Mode]
    default_on: bool
    kind: str = ""


@dataclass(slots=True)
class Passage:
    """One request through the gate: what was decided on the way in, and what to do on the way out."""

    gate: Gate
    table: RoutingTable
    endpoint: str
    policy: KeyPolicy | None
    group: str
    end_user: str
    runs: list[GuardrailRun] = field(default_factory=list)
    post: tuple[Guardrail, ...] = ()
    during: tuple[ContentFilterGuardrail, ...] = ()
    # during_call guardrails that ask a service (webhook, moderation): on streams, checked per segment
    during_remote: tuple[StreamChecked, ...] = ()
    admission: Admission | None = None
    budgets: tuple[BudgetScope, ...] = ()
    cache: CacheConfig | None = None
    backend: CacheBackend | None = None
    cache_key: str | None = None
    controls: CacheControls = field(default_factory=CacheControls)
    cache_status: str | None = None  # "hit" | "miss" | None (not looked up)
    # embeddings: one key per input item, the items answered from the cache (by original index) and
    # the original indices of the items sent upstream
    stream_options: Mapping[str, Any] | None = None
    item_keys: list[str] | None = None
    cached_items: dict[int, Any] = field(default_factory=dict)
    sent_items: list[int] = field(default_factory=list)
    hit_usage: tuple[int, int] | None = None  # a cache hit: the usage the cached answer reports
    finished: bool = False
    key_alias: str = field(init=False)  # "" for the master key (or an open gateway)
    team_id: str = field(init=False)  # "" without a team

    def __post_init__(self) -> None:
        policy = self.policy
        self.key_alias = policy.alias if policy is not None else ""
        team = policy.team if policy is not None else None
        self.team_id = team.team_id if team is not None else ""

    def caller(self) -> dict[str, str]:
        """Who made the call, as the request log names them (empty values left out)."""
        fields = {"key_alias": self.key_alias, "team": self.team_id, "end_user": self.end_user}
        return {name: value for name, value in fields.items() if value}

    # -- on the way in --------------------------------------------------------------------------

    @classmethod
    async def enter(
        cls,
        gate: Gate,
        table: RoutingTable,
        master_key: str | None,
        endpoint: str,
        headers: Mapping[str, str],
        body: MutableMapping[str, Any],
        caller: KeyPolicy | Unidentified | None = UNIDENTIFIED,
    ) -> Passage:
        """Authenticate (unless ``caller`` is the :func:`caller_of` the request, already known),
        authorise, check budgets and limits, run ``pre_call`` guardrails (which may rewrite ``body``)
        and strip the gate's own fields from ``body``. Raises the refusal."""
        now = gate.clock()
        policy = identify(table, master_key, headers, now) if isinstance(caller, Unidentified) else caller
        requested = _requested_guardrails(body)
        controls = parse_controls(body.pop("cache", None))
        model = str(body.get("model", ""))
        resolved = table.resolve(model)
        group = resolved.name if resolved is not None else model
        user = body.get("user")
        passage = cls(gate, table, endpoint, policy, group, user if isinstance(user, str) else "")
        options = body.get("stream_options")
        passage.stream_options = options if isinstance(options, Mapping) else None
        if policy is not None and not policy.all_models:  # a key that may call every model: nothing to check
            access: AccessTable = table.access
            check_model(policy, model, group, table.groups, access.access_groups)
        passage.budgets = passage._check_budgets(now)
        if table.guardrails or requested:
            try:
                await passage._guard_request(requested, model, body)
            except (GuardrailBlockedError, GuardrailUnavailableError) as exc:
                exc.caller = passage.caller()  # the refusal's request-log line names who was refused
                raise
        if policy is not None and policy.limited:
            # tokens only matter where a tpm limit counts them
            tokens = count_request_tokens(endpoint, body) if policy.counts_tokens else 0
            limits, at = gate.limits, time.monotonic()
            # the memory store decides without a coroutine; a shared store may need a round trip
            admission = limits.admit_local(policy, tokens, at)
            passage.admission = (
                admission if admission is not None else await limits.acquire(policy, tokens, at)
            )
        passage._prepare_cache(body, controls)
        return passage

    async def _guard_request(self, requested: list[str], model: str, body: MutableMapping[str, Any]) -> None:
        """Run the pre_call guardrails and choose the post_call and during_call ones."""
        pre, post, during = self.gate.choose(self.table, self.policy, requested)
        context = {
            "model": model,
            "user": self.end_user or None,
            "key_alias": self.key_alias or None,
            "team_id": self.team_id or None,
            "endpoint": self.endpoint,
        }
        if pre:
            self.runs = await apply_request(pre, self.endpoint, body, context)
        self.post = post
        if during:
            self.during = tuple(g for g in during if isinstance(g, ContentFilterGuardrail))
            remote = tuple(g for g in during if not isinstance(g, ContentFilterGuardrail))
            # on streams they check the text in segments (stream_check_chars); on a call that is not
            # streamed, the complete answer, as post_call guardrails do
            self.during_remote = tuple(
                g for g in remote if isinstance(g, WebhookGuardrail | ModerationGuardrail)
            )
            self.post += tuple(g for g in remote if g not in self.post)

    def _check_budgets(self, now: float) -> tuple[BudgetScope, ...]:
        """400 ``budget_exceeded`` if a budget of the key, its team or the end user is spent; else the
        budget scopes the call's spend counts against (key, team, end user, in that order)."""
        ledger = self.gate.ledger
        policy = self.policy
        scopes: tuple[BudgetScope, ...] = ()
        if policy is not None:
            budgets = self.gate.budgets(self.table, policy, now)
            for scope, label, max_budget, duration in budgets.capped:
                spent = ledger.spent_on(scope)
                if spent >= max_budget:
                    check_budget(label, spent, max_budget, duration, now)
            scopes = budgets.scopes
        end_user: EndUserBudget | None = self.table.end_user_budget
        if end_user is not None and self.end_user:
            name = f"user:{self.end_user}"
            start, end = period_bounds(end_user.budget, now)
            spent = ledger.spent(name, start)
            check_budget("end user", spent, end_user.max_budget, end_user.budget, now)
            scopes += (BudgetScope(name, start, end),)
        return scopes

    def _prepare_cache(self, body: Mapping[str, Any], controls: CacheControls) -> None:
        config: CacheConfig | None = self.table.cache
        if config is None or self.endpoint not in config.endpoints:
            return
        backend = self.gate.cache_backend(config)
        if backend is None:
            return
        if config.params.mode == "default_off" and not controls.use_cache:
            return
        if controls.use_cache is False:
            return
        scope = f"team:{self.team_id}" if self.team_id else f"key:{self.key_alias}"
        namespace = controls.namespace or config.params.namespace or ""
        self.cache = config
        self.backend = backend
        self.controls = controls
        include_user = config.params.key_includes_user
        self.cache_key = cache_key(
            self.endpoint, self.group, body, scope=scope, namespace=namespace, include_user=include_user
        )
        if self.endpoint == EMBEDDINGS:
            items = _embedding_items(body)
            if items is not None:
                self.item_keys = embedding_item_keys(
                    self.group, body, items, scope=scope, namespace=namespace, include_user=include_user
                )

    async def cached_answer(self, body: MutableMapping[str, Any]) -> dict[str, Any] | None:
        """The cached answer to this request, if the cache holds one it may use. For embeddings whose
        items are partly cached, ``body``'s input is cut to the items still to fetch."""
        cache = self.backend
        if self.cache_key is None or cache is None:
            return None
        self.cache_status = "miss"
        if self.controls.no_cache:
            return None
        max_age = self.controls.s_maxage
        if self.item_keys is not None:
            return await self._cached_embeddings(cache, body, max_age)
        entry = await cache.get(self.cache_key, max_age=max_age)
        if entry is None:
            return None
        self.cache_status = "hit"
        answer: dict[str, Any] = orjson.loads(entry.value)
        self.hit_usage = _usage_of(answer)
        return answer

    async def _cached_embeddings(
        self, cache: CacheBackend, body: MutableMapping[str, Any], max_age: float | None
    ) -> dict[str, Any] | None:
        assert self.item_keys is not None
        for index, key in enumerate(self.item_keys):
            entry = await cache.get(key, max_age=max_age)
            if entry is not None:
                self.cached_items[index] = orjson.loads(entry.value)
        items = _embedding_items(body) or []
        self.sent_items = [i for i in range(len(items)) if i not in self.cached_items]
        if not self.sent_items:
            self.cache_status = "hit"
            data = [{**self.cached_items[i], "index": i} for i in range(len(items))]
            return {
                "object": "list",
                "data": data,
                "model": self.group,
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        if self.cached_items:
            body["input"] = [items[i] for i in self.sent_items]
        return None

    # -- on the way out -------------------------------------------------------------------------

    async def answer(self, body: MutableMapping[str, Any]) -> None:
        """Run ``post_call`` guardrails over a complete answer (masks rewrite ``body``) and store it in
        the cache. Raises a guardrail's refusal."""
        if self.post:
            context = {"model": self.group, "user": self.end_user or None, "endpoint": self.endpoint}
            try:
                self.runs += await apply_answer(self.post, self.endpoint, body, context)
            except (GuardrailBlockedError, GuardrailUnavailableError) as exc:
                self.runs += exc.runs  # a refusal is counted and logged like any other action
                raise
        if self.item_keys is not None:
            await self._merge_embeddings(body)
        else:
            await self._store(body)

    def _ttl(self) -> float:
        assert self.cache is not None
        return self.controls.ttl if self.controls.ttl is not None else self.cache.params.ttl

    def _storing(self) -> bool:
        return self.cache_key is not None and self.backend is not None and not self.controls.no_store

    async def _store(self, body: Mapping[str, Any]) -> None:
        if self._storing() and self.cache_status != "hit":
            assert self.backend is not None and self.cache_key is not None
            await self.backend.set(self.cache_key, orjson.dumps(body), self._ttl())

    async def _merge_embeddings(self, body: MutableMapping[str, Any]) -> None:
        """Store each fetched item under its own key and put the cached ones back in their places."""
        assert self.item_keys is not None
        data = body.get("data")
        if not isinstance(data, list):
            return
        sent = self.sent_items or list(range(len(self.item_keys)))
        fetched: dict[int, Any] = {}
        for item in data:
            position = item.get("index") if isinstance(item, Mapping) else None
            if isinstance(position, int) and 0 <= position < len(sent):
                fetched[sent[position]] = item
        if self._storing():
            assert self.backend is not None
            ttl = self._ttl()
            for original, item in fetched.items():
                stored = {k: v for k, v in item.items() if k != "index"}
                await self.backend.set(self.item_keys[original], orjson.dumps(stored), ttl)
        if self.cached_items:
            merged = {**{i: {**v, "index": i} for i, v in self.cached_items.items()}}
            merged.update({i: {**v, "index": i} for i, v in fetched.items()})
            body["data"] = [merged[i] for i in sorted(merged)]

    @property
    def reads_stream(self) -> bool:
        """Whether :meth:`relay` must read a stream's chunks (during_call guardrails, or the cache
        keeping the answer); when not, the server may hand the upstream's bytes on unread."""
        return (
            bool(self.during)
            or bool(self.during_remote)
            or (self.cache_key is not None and not self.controls.no_store)
        )

    def replayed(self, answer: Mapping[str, Any], *, include_usage: bool) -> list[JSON]:
        """A cached answer as the chunks of a stream (a hit: the cache's code is loaded)."""
        return chunks_from_answer(self.endpoint, answer, include_usage=include_usage)

    def stream_guard(self) -> StreamGuard | None:
        return StreamGuard(self.during, self.endpoint) if self.during else None

    def remote_stream_guard(self) -> RemoteStreamGuard | None:
        """The during_call service guardrails over this call's stream (None: it has none)."""
        if not self.during_remote:
            return None
        context = {"model": self.group, "user": self.end_user or None, "endpoint": self.endpoint}
        return RemoteStreamGuard(self.during_remote, self.endpoint, context)

    async def relay(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """The stream as the client gets it: during_call guardrails applied chunk by chunk (content
        filters first, then the service guardrails on what the filters released), and the chunks kept
        (bounded by the cache's entry size) to store a completed answer."""
        guard = self.stream_guard()
        remote = self.remote_stream_guard()
        keep: list[Mapping[str, Any]] | None = (
            [] if self.cache_key is not None and not self.controls.no_store else None
        )
        kept_bytes = 0
        limit = self.backend.max_entry_bytes if self.backend is not None else 0
        try:
            async for chunk in chunks:
                out = guard.chunk(chunk) if guard is not None else chunk
                if out is None:
                    continue
                if remote is not None:  # one service check at a time: the upstream waits meanwhile
                    out = await remote.chunk(out)
                    if out is None:
                        continue
                if keep is not None:
                    # an estimate, not a second serialisation of every chunk: the text plus the envelope
                    kept_bytes += _CHUNK_ENVELOPE + sum(
                        len(str(c.get("delta") or c.get("text") or "")) for c in out.get("choices") or ()
                    )
                    if kept_bytes > limit:
                        keep = None
                    else:
                        keep.append(out)
                yield dict(out)
        finally:
            if guard is not None:  # a block ends the stream: its runs are counted all the same
                self.runs += list(guard.runs.values())
            if remote is not None:
                self.runs += list(remote.runs.values())
        if keep is not None:
            answer = answer_from_chunks(self.endpoint, keep)
            if answer is not None:
                await self._store(answer)

    def log_fields(self, cost: float | None) -> dict[str, Any]:
        """What the request's log line and metrics say about the gate."""
        fields: dict[str, Any] = {
            "key_alias": self.key_alias,
            "team": self.team_id,
            "end_user": self.end_user,
            "cache": self.cache_status,
            "guardrails": tuple(self.runs),
        }
        if self.cache_status == "hit":
            fields["saved_cost"] = self._saved_cost()
        return fields

    def _saved_cost(self) -> float | None:
        """What a cached answer cost when it was fetched, at the group's first deployment's price."""
        group = self.table.resolve(self.group)
        if group is None or not group.deployments or self.hit_usage is None:
            return None
        return request_cost(group.deployments[0], *self.hit_usage)

    def finish(
        self, tokens: tuple[int, int], cost: float | None, *, estimated: bool = False, ok: bool = True
    ) -> None:
        """Account for the call once: limits released (tokens settled), spend recorded."""
        if self.finished:
            return
        self.finished = True
        if self.admission is not None:
            self.gate.limits.end(self.admission, tokens[0] + tokens[1], time.monotonic())
        if not ok and tokens == (0, 0):
            return
        self.gate.ledger.record(
            SpendEvent(
                at=self.gate.clock(),
                key_alias=self.key_alias,
                team_id=self.team_id,
                end_user=self.end_user,
                model_group=self.group,
                usd=0.0 if self.cache_status == "hit" else (cost or 0.0),
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                estimated=estimated,
                budgets=self.budgets,
            )
        )
