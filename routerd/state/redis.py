"""The Redis health store: every process keeps local records and shares what must be shared through Redis.

What is shared, how, and how stale it may be (the README's "Scale-out" section states the bounds):

* rpm/tpm windows of deployments that have limits: the router awaits :attr:`RedisHealthStore.gate`
  before each attempt. A lease -- calls and tokens of the current Redis second this process reserved,
  at most ``lease_fraction`` of each limit split between the processes -- admits it without a round
  trip; otherwise one Lua script (:data:`routerd.state.scripts.ADMIT`) checks and counts in one step
  (and reserves the next lease), so the limit holds over the sum of all processes (reserved counts
  are counted when reserved; the unused rest is given back when its second ends). Token corrections
  after the call come out of the current lease when it can cover them, else are queued and written
  in the background. Deployments without limits never wait on Redis.
* cooldowns: a breaker that opens is written to Redis and published (pub/sub); peers apply it on
  receipt, and a background sync every ``sync_interval`` re-reads all cooldowns as a fallback. The
  half-open probe is taken with ``SET NX`` inside the same admission script, so one process probes.
  Failures counted toward ``allowed_fails`` are added to a per-deployment count in Redis in the
  background, and the reply raises the local count to the fleet's (approximate).
* client-key and team limits: :class:`routerd.state.access.SharedAccess` (same windows and leases,
  plus parallel-request slots).
* in-flight counts and latency averages: each process pushes its own and pulls the others' every
  ``sync_interval`` (stale by up to that, plus one request's duration).

When Redis cannot be reached (at start, or later: any error or a reply slower than ``timeout``), the
store switches to local state at once, with each process enforcing ``limit // processes`` (the
configured count, or the number last seen sharing Redis if larger), logs it,
and reports it in ``/health`` and ``routerd_state_backend_up``; a background task reconnects every
``reconnect_interval`` and, once Redis answers, seeds it with the local windows and resumes sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from routerd.routing.health import FAILURE_WINDOW, HEALTHY, Breaker, BreakerState, DeploymentHealth
from routerd.routing.plan import Pick
from routerd.routing.usage import UsageWindow
from routerd.state import Gate, scripts
from routerd.state.peers import Cooldown, load_payload, parse_message, peer_load
from routerd.state.status import StateStatus

log = logging.getLogger("routerd.state")

# A peer's remote deadline within this many seconds of ours is the same cooldown seen twice.
_SAME_DEADLINE = 0.05
# How long a process's pushed load stays visible after its last sync, in sync intervals.
_LOAD_TTL_INTERVALS = 4


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The store's settings (``ROUTERD_STATE_*``; see :class:`routerd.settings.Settings`)."""

    namespace: str = "routerd:"
    timeout: float = 0.05  # seconds any Redis call may take before local state takes over
    sync_interval: float = 0.5
    reconnect_interval: float = 1.0
    processes: int = 1  # processes sharing the limits, used to divide them while Redis is down
    probe_lease: float = 30.0  # a half-open probe's lock lives this long if its process dies
    queue_max: int = 10_000  # background writes waiting; beyond this, the oldest are dropped
    # rpm and tpm limits (deployments, keys, teams): each process may reserve up to this share of a
    # limit (split between the processes) for the current second, so most calls need no round trip.
    # 0: every call checks.
    lease_fraction: float = 0.05


class _Lease:
    """Calls and tokens of one deployment this process reserved in the shared window for one Redis
    second. ``None``: that dimension has no limit, so the lease never runs out of it."""

    __slots__ = ("left", "pending", "second", "tokens", "until")

    def __init__(self) -> None:
        self.left: int | None = 0
        self.tokens: int | None = 0
        self.until = -math.inf  # local time at which the reserved second ends (or earlier)
        self.second = 0  # the Redis second the calls were counted in
        self.pending: asyncio.Future[None] | None = None  # a reservation in flight

    def serves(self, now: float, calls: int, tokens: int) -> bool:
        """Take ``calls`` calls of ``tokens`` tokens from the lease, if it still holds them."""
        if now >= self.until:
            return False
        if (self.left is not None and self.left < calls) or (
            self.tokens is not None and self.tokens < tokens
        ):
            return False
        if self.left is not None:
            self.left -= calls
        if self.tokens is not None:
            self.tokens -= tokens
        return True

    def absorb(self, now: float, tokens: int) -> bool:
        """Cover ``tokens`` more tokens (a call's usage beyond its estimate) from the lease's, which
        Redis already counts: no write needed. They count in the lease's second, not the call's: later,
        so they leave the window later (the safe side)."""
        if tokens <= 0 or self.tokens is None or self.tokens < tokens or now >= self.until:
            return False
        self.tokens -= tokens
        return True

    def unused(self) -> tuple[int, int]:
        """(calls, tokens) reserved but not used."""
        return max(self.left or 0, 0), max(self.tokens or 0, 0)


def lease_sizes(rpm: int | None, tpm: int | None, fraction: float, processes: int) -> tuple[int, int] | None:
    """(calls, tokens) one process may reserve ahead: ``fraction`` of each limit split between the
    processes, so all reservations together hold at most ``fraction`` of a limit. None: too small to
    help (fewer than 2 calls, or less than 1 token), every call is checked in Redis."""
    calls = tokens = 0
    if rpm is not None:
        calls = math.floor(rpm * fraction / processes)
        if calls < 2:
            return None
    if tpm is not None:
        tokens = math.floor(tpm * fraction / processes)
        if tokens < 1:
            return None
    return calls, tokens


class SharedUsageWindow(UsageWindow):
    """A local window that also queues its token corrections for the shared one."""

    __slots__ = ("_dep_id", "_store", "shared_tokens")

    def __init__(self, store: RedisHealthStore, dep_id: str) -> None:
        super().__init__()
        self._store = store
        self._dep_id = dep_id
        self.shared_tokens = False  # a tpm limit was checked in Redis: corrections go there too

    def adjust(self, now: float, stamp: int, delta: int) -> None:
        super().adjust(now, stamp, delta)
        if self.shared_tokens and delta and not self._store.absorb(self._dep_id, delta):
            self._store.queue_adjust(self._dep_id, stamp, delta)


class RedisHealthStore:
    """Local :class:`DeploymentHealth` records mirrored through Redis (one instance or a Cluster).

    ``client`` is a ``redis.asyncio`` client (``Redis`` or ``RedisCluster``) whose socket timeouts are
    ``options.timeout``; ``subscriber`` is a plain ``Redis`` for pub/sub (with Cluster, any one node:
    Redis forwards published messages to every node). Start it with :meth:`start` on the loop.
    """

    def __init__(
        self,
        client: Any,
        subscriber: Any,
        options: RedisOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        describe: str = "redis",
    ) -> None:
        self._client = client
        self._subscriber = subscriber
        self._options = options
        self._clock = clock
        self._describe = describe
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ns = options.namespace
        self._channel = f"{ns}events"
        self._cooldowns_key = f"{ns}{{shared}}:cooldowns"
        self._load_key = f"{ns}{{shared}}:load"
        self._records: dict[str, DeploymentHealth] = {}
        self._remote: dict[str, tuple[float, str]] = {}  # cooldowns learnt from peers: (until, reason)
        self._queue: dict[tuple[str, ...], Any] = {}  # pending background writes, coalesced
        self._wake = asyncio.Event()
        self._up = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncio.Task[None] | None = None
        self.errors = 0  # Redis failures seen (each switches to local state)
        self.dropped = 0  # background writes dropped because the queue was full
        self._admit = client.register_script(scripts.ADMIT)
        self._adjust = client.register_script(scripts.ADJUST)
        self._seed = client.register_script(scripts.SEED)
        self._cooldown = client.register_script(scripts.COOLDOWN)
        self._recover = client.register_script(scripts.RECOVER)
        self._release = client.register_script(scripts.RELEASE)
        self._refund = client.register_script(scripts.REFUND)
        self._fails = client.register_script(scripts.FAILS)
        self._leases: dict[str, _Lease] = {}
        self._recovered: set[str] = set()  # recoveries heard since the current sync read began
        self._live = 1  # processes seen sharing this Redis at the last sync (this one included)
        self._sync = client.register_script(scripts.SYNC)
        self.gate: Gate | None = None
        from routerd.state.access import SharedAccess  # (it builds on this module)

        self.access = SharedAccess(self)

    @property
    def client(self) -> Any:
        """The Redis connection (other shared state, such as stored responses, uses it too)."""
        return self._client

    @property
    def namespace(self) -> str:
        return self._options.namespace

    @property
    def up(self) -> bool:
        """Redis answers: state is shared."""
        return self._up

    def clock(self) -> float:
        """The store's (monotonic, injectable) clock."""
        return self._clock()

    @property
    def owner(self) -> str:
        """This process's id in Redis (probe locks, parallel slots, load)."""
        return self._id

    @property
    def lease_fraction(self) -> float:
        return self._options.lease_fraction

    @property
    def slot_ttl_ms(self) -> int:
        """How long a process's parallel slots outlive its last sync (then a dead one's are freed)."""
        return math.ceil(self._options.sync_interval * 1000 * _LOAD_TTL_INTERVALS)

    @property
    def processes(self) -> int:
        """How many processes share the limits: the configured count, or more if more were seen.

        It divides the lease sizes (so all reservations together stay within the lease fraction) and,
        while Redis is unreachable, every limit (so the fleet stays within it).
        """
        return max(self._options.processes, self._live)

    # --- keys ----------------------------------------------------------------------------------------

    def _window_key(self, dep_id: str) -> str:
        return f"{self._options.namespace}{{{_tag(dep_id)}}}:w"

    def _probe_key(self, dep_id: str) -> str:
        return f"{self._options.namespace}{{{_tag(dep_id)}}}:p"

    def _fails_key(self, dep_id: str) -> str:
        return f"{self._options.namespace}{{{_tag(dep_id)}}}:f"

    # --- HealthStore ---------------------------------------------------------------------------------

    def record(self, deployment_id: str) -> DeploymentHealth:
        record = self._records.get(deployment_id)
        if record is None:
            record = self._records[deployment_id] = DeploymentHealth()
            record.usage = SharedUsageWindow(self, deployment_id)
            record.usage.share = 1 if self._up else self.processes
            remote = self._remote.get(deployment_id)
            if remote is not None and remote[0] > self._clock():
                record.breaker = Breaker(BreakerState.COOLING_DOWN, until=remote[0], reason=remote[1])
        return record

    def get(self, deployment_id: str) -> DeploymentHealth | None:
        return self._records.get(deployment_id)

    def set_breaker(self, deployment_id: str, record: DeploymentHealth, breaker: Breaker) -> None:
        old = record.breaker
        record.breaker = breaker
        if breaker.state is BreakerState.COOLING_DOWN:
            if old.state is not BreakerState.COOLING_DOWN or breaker.until > old.until:
                remaining = max(breaker.until - self._clock(), 0.0)
                self._put(("cool", deployment_id), (remaining, breaker.reason))
        elif breaker is HEALTHY and old.state is not BreakerState.HEALTHY:
            self._queue.pop(("cool", deployment_id), None)
            self._put(("heal", deployment_id), None)
        elif old.state is BreakerState.HALF_OPEN and old.probe_until and not breaker.probe_until:
            self._put(("release", deployment_id), None)
        elif breaker.state is BreakerState.HEALTHY and breaker.fails != old.fails:
            self._count_failures(deployment_id, old, breaker)

    def _count_failures(self, dep_id: str, old: Breaker, new: Breaker) -> None:
        """Queue the failures ``new`` counts beyond ``old`` for the fleet's ``allowed_fails`` count."""
        if new.window_start != old.window_start:
            added = new.fails  # a new window: its counts are all new
        else:
            added = tuple(max(n - o, 0) for n, o in zip(new.fails, old.fails, strict=True))
        if any(added):
            key = ("fails", dep_id)
            before = self._queue.get(key)
            self._put(
                key, added if before is None else tuple(a + b for a, b in zip(before, added, strict=True))
            )

    def merge_failures(self, dep_id: str, fleet: tuple[int, ...]) -> None:
        """The fleet's failures of ``dep_id`` per error kind in the current window: a healthy
        breaker counts them as its own, so the next failure here opens it if the fleet's exceed
        ``allowed_fails``."""
        record = self._records.get(dep_id)
        if record is None or record.breaker.state is not BreakerState.HEALTHY:
            return
        breaker = record.breaker
        now = self._clock()
        if len(fleet) != len(breaker.fails):
            return  # another routerd version's kinds
        fails = tuple(max(mine, theirs) for mine, theirs in zip(breaker.fails, fleet, strict=True))
        if fails != breaker.fails:
            fresh = now - breaker.window_start < FAILURE_WINDOW
            record.breaker = replace(
                breaker, fails=fails, window_start=breaker.window_start if fresh else now
            )

    def retain(self, keep: Callable[[str], bool]) -> None:
        self._records = {k: v for k, v in self._records.items() if keep(k)}

    def items(self) -> Iterator[tuple[str, DeploymentHealth]]:
        return iter(list(self._records.items()))

    def __len__(self) -> int:
        return len(self._records)

    def status(self) -> StateStatus:
        if self._up:
            return StateStatus(self._describe, "shared", True, 1)
        return StateStatus(self._describe, "local", False, self.processes)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (bounded by the timeout) and start the background tasks; never raises for Redis."""
        await self._try_connect(first=True)
        self._tasks.append(asyncio.create_task(self._supervise(), name="routerd-state-sync"))
        self._tasks.append(asyncio.create_task(self._write_loop(), name="routerd-state-writer"))

    async def aclose(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in {id(self._client): self._client, id(self._subscriber): self._subscriber}.values():
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _try_connect(self, *, first: bool = False) -> bool:
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            await self._client.ping()
            await self._seed_windows()
            await self.access.seed(self._clock())
            # Subscribed before sharing starts, so no cooldown published from now on is missed.
            await asyncio.wait_for(pubsub.subscribe(self._channel), self._options.timeout * 4)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            if first:
                log.error(
                    "state backend %s unreachable at start (%s): serving on local state; each process "
                    "enforces rpm/tpm / %d until it answers",
                    self._describe,
                    _reason(exc),
                    self.processes,
                )
            return False
        self._set_up(True)
        self._listener = asyncio.create_task(self._listen(pubsub), name="routerd-state-listener")
        log.warning("state backend %s connected: rpm/tpm, cooldowns and load are shared", self._describe)
        return True

    def _set_up(self, up: bool) -> None:
        self._up = up
        share = 1 if up else self.processes
        for record in self._records.values():
            record.usage.share = share
        self.gate = self._gate if up else None

    def lost(self, exc: BaseException) -> None:
        """Redis failed or was too slow: switch to local state now; the supervisor reconnects."""
        self.errors += 1
        if not self._up:
            return
        self._set_up(False)
        self.access.reset()
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        log.error(
            "state backend %s lost (%s): serving on local state, rpm/tpm / %d per process; reconnecting "
            "every %gs",
            self._describe,
            _reason(exc),
            self.processes,
            self._options.reconnect_interval,
        )

    async def _supervise(self) -> None:
        while not self._closed:
            if not self._up:
                await asyncio.sleep(self._options.reconnect_interval)
                await self._try_connect()
                continue
            try:
                await self._sync_once()
            except Exception as exc:
                self.lost(exc)
                continue
            await asyncio.sleep(self._options.sync_interval)

    # --- admission (the one awaited round trip) ------------------------------------------------------

    async def _gate(self, choice: Pick, tokens: int, calls: int, now: float) -> bool:
        """Check and count ``choice`` in the shared window (and take the probe). False: pick again."""
        candidate = choice.candidate
        rpm, tpm = candidate.rpm, candidate.tpm
        if rpm is None and tpm is None and not choice.probe:
            return True
        dep_id = candidate.deployment.id
        if not choice.probe:
            sizes = lease_sizes(rpm, tpm, self._options.lease_fraction, self.processes)
            if sizes is not None and calls <= max(sizes[0], 1):
                return await self._leased(choice, dep_id, tokens, calls, sizes)
        lease = math.ceil(self._options.probe_lease * 1000) if choice.probe else 0
        args = (-1 if rpm is None else rpm, -1 if tpm is None else tpm, tokens, lease, self._id, calls, 0)
        try:
            reply = await self._admit(keys=(self._window_key(dep_id), self._probe_key(dep_id)), args=args)
        except Exception as exc:
            self.lost(exc)
            return False  # picked again on local state
        verdict, wait_ms = reply[0], reply[1]
        record = choice.record
        if verdict == 1:
            if tpm is not None:
                usage = record.usage
                if isinstance(usage, SharedUsageWindow):
                    usage.shared_tokens = True
            return True
        until = self._clock() + int(wait_ms) / 1000
        if verdict == -1:  # another process holds the probe
            record.breaker = replace(record.breaker, state=BreakerState.HALF_OPEN, probe_until=until)
        else:
            record.usage.hold(until, calls, tokens)
        return False

    async def _leased(
        self, choice: Pick, dep_id: str, tokens: int, calls: int, sizes: tuple[int, int]
    ) -> bool:
        """Admit from this process's reservation for the current second; reserve more when it ran out.

        Reserved calls and tokens are counted in the shared window when reserved, in the second they
        will be used, so the window bound holds exactly (tokens: as far as they were estimated at
        admission; corrections follow as on the exact path); the unused rest of a reservation is
        given back once its second ends (:meth:`_refund_expired`). Concurrent callers wait for one
        reservation.
        """
        candidate = choice.candidate
        rpm, tpm = candidate.rpm, candidate.tpm
        lease = self._leases.get(dep_id)
        if lease is None:
            lease = self._leases[dep_id] = _Lease()
        for _ in range(4):  # bounded: each turn either admits, refuses, or waited for a reservation
            now = self._clock()
            if lease.serves(now, calls, tokens):
                self._shared_tokens(choice, tpm)
                return True
            if lease.pending is not None:
                await asyncio.shield(lease.pending)
                continue
            self._give_back(dep_id, lease)
            pending = lease.pending = asyncio.get_running_loop().create_future()
            extra_calls = max(sizes[0] - calls, 0) if rpm is not None else 0
            try:
                reply = await self._admit(
                    keys=(self._window_key(dep_id), self._probe_key(dep_id)),
                    args=(
                        -1 if rpm is None else rpm,
                        -1 if tpm is None else tpm,
                        tokens,
                        0,
                        self._id,
                        calls,
                        extra_calls,
                        sizes[1] if tpm is not None else 0,
                    ),
                )
            except Exception as exc:
                self.lost(exc)
                return False
            finally:
                lease.pending = None
                pending.set_result(None)
            if reply[0] != 1:
                choice.record.usage.hold(self._clock() + int(reply[1]) / 1000, calls, tokens)
                return False
            # ``now`` was taken before the call, so the reservation ends no later than its Redis second.
            lease.left = int(reply[1]) - calls if rpm is not None else None
            lease.tokens = int(reply[4]) if tpm is not None else None
            lease.until, lease.second = now + int(reply[2]) / 1000, int(reply[3])
            self._shared_tokens(choice, tpm)
            return True
        return False

    @staticmethod
    def _shared_tokens(choice: Pick, tpm: int | None) -> None:
        # the call's tokens were counted in Redis: its usage correction goes there too
        if tpm is not None:
            usage = choice.record.usage
            if isinstance(usage, SharedUsageWindow):
                usage.shared_tokens = True

    def _give_back(self, dep_id: str, lease: _Lease) -> None:
        calls, tokens = lease.unused()
        if calls or tokens:
            key = ("refund", dep_id, str(lease.second))
            before = self._queue.get(key, (0, 0))
            self._put(key, (before[0] + calls, before[1] + tokens))
        if lease.left is not None:
            lease.left = 0
        if lease.tokens is not None:
            lease.tokens = 0

    def _refund_expired(self) -> None:
        now = self._clock()
        for dep_id, lease in list(self._leases.items()):
            if lease.pending is None and now >= lease.until:
                self._give_back(dep_id, lease)
                if dep_id not in self._records:
                    del self._leases[dep_id]

    # --- background writes ---------------------------------------------------------------------------

    def _put(self, key: tuple[str, ...], value: Any) -> None:
        if not self._up:
            return
        if key not in self._queue and len(self._queue) >= self._options.queue_max:
            self._queue.pop(next(iter(self._queue)))
            self.dropped += 1
        self._queue[key] = value
        self._wake.set()

    def put(self, key: tuple[str, ...], value: Any) -> None:
        """Queue a background write (coalesced by ``key``; dropped while Redis is down)."""
        self._put(key, value)

    def queued(self, key: tuple[str, ...], default: Any) -> Any:
        """The value queued under ``key`` and not yet written, else ``default``."""
        return self._queue.get(key, default)

    def absorb(self, dep_id: str, delta: int) -> bool:
        """Cover a positive token correction from ``dep_id``'s current lease (see :meth:`_Lease.absorb`)."""
        lease = self._leases.get(dep_id)
        return lease is not None and lease.pending is None and lease.absorb(self._clock(), delta)

    def queue_adjust(self, dep_id: str, stamp: int, delta: int) -> None:
        """Queue a token correction for the call counted in local second ``stamp``."""
        key = ("adj", dep_id, str(stamp))
        self._put(key, self._queue.get(key, 0) + delta)

    async def _write_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            pending, self._queue = self._queue, {}
            try:
                await self._write(pending)
            except Exception as exc:
                self.lost(exc)

    async def _write(self, pending: dict[tuple[str, ...], Any]) -> None:
        adjustments: dict[str, list[int]] = {}
        second = math.floor(self._clock())
        access: list[tuple[tuple[str, ...], Any]] = []
        for key, value in pending.items():
            kind, dep_id = key[0], key[1]
            if kind.startswith("access-"):
                access.append((key, value))
            elif kind == "adj":
                adjustments.setdefault(dep_id, []).extend((second - int(key[2]), value))
            elif kind == "cool":
                remaining, reason = value
                await self._cooldown(
                    keys=(self._cooldowns_key,),
                    args=(dep_id, math.ceil(remaining * 1000), reason, self._channel, self._id),
                )
                # a failed probe ends its lock; the cooldown restarts the fleet's failure count
                await self._client.delete(self._probe_key(dep_id), self._fails_key(dep_id))
            elif kind == "heal":
                await self._recover(keys=(self._cooldowns_key,), args=(dep_id, self._channel, self._id))
                await self._client.delete(self._probe_key(dep_id), self._fails_key(dep_id))
            elif kind == "fails":
                window_ms = math.ceil(FAILURE_WINDOW * 1000)
                fleet = await self._fails(keys=(self._fails_key(dep_id),), args=(window_ms, *value))
                self.merge_failures(dep_id, tuple(int(v) for v in fleet))
            elif kind == "refund":
                await self._refund(keys=(self._window_key(dep_id),), args=(key[2], *value))
            elif kind == "release":
                await self._release(keys=(self._probe_key(dep_id),), args=(self._id,))
        for dep_id, pairs in adjustments.items():
            await self._adjust(keys=(self._window_key(dep_id),), args=pairs)
        if access:
            await self.access.write(access, second)

    async def _seed_windows(self) -> None:
        """After (re)connecting: add this process's local counts, so limits hold across the outage.

        Redis may have kept its own counts (a network outage rather than a restart); then these are
        counted twice and the processes admit fewer calls than the limit for up to a minute: safe.
        """
        now = self._clock()
        second = math.floor(now)
        for dep_id, record in list(self._records.items()):
            args: list[int] = []
            for stamp, requests, tokens in record.usage.buckets(now):
                args.extend((second - stamp, requests, tokens))
            if args:
                await self._seed(keys=(self._window_key(dep_id),), args=args)

    # --- learning from peers -------------------------------------------------------------------------

    async def _sync_once(self) -> None:
        self._refund_expired()
        self.access.refund_expired(self._clock())
        await self.access.keep_alive()
        payload = load_payload(self._records) or "{}"  # a heartbeat even without load: peers count us
        ttl_ms = math.ceil(self._options.sync_interval * 1000 * _LOAD_TTL_INTERVALS)
        self._recovered.clear()
        _, cooling, peers = await self._sync(
            keys=(self._cooldowns_key, self._load_key), args=(self._id, payload, ttl_ms)
        )
        for i in range(0, len(cooling), 3):
            dep_id = _text(cooling[i])
            if dep_id not in self._recovered:  # a recovery published meanwhile is newer than this read
                self.merge_cooldown(dep_id, int(cooling[i + 1]) / 1000, _text(cooling[i + 2]))
        self._merge_load(peers)
        self._live = 1 + len(peers)
        now = self._clock()
        self._remote = {k: v for k, v in self._remote.items() if v[0] > now}

    def _merge_load(self, peers: list[Any]) -> None:
        load = peer_load(peers)
        now = self._clock()
        for dep_id, record in self._records.items():
            record.peer_in_flight = load.in_flight.get(dep_id, 0)
            record.peer_latency = load.latency.get(dep_id)
            record.peer_ttft = load.ttft.get(dep_id)
            record.peer_sampled_at = now

    def merge_cooldown(self, dep_id: str, remaining: float, reason: str) -> None:
        """A peer put ``dep_id`` in cooldown for ``remaining`` more seconds."""
        now = self._clock()
        until = now + remaining
        self._remote[dep_id] = (until, reason)
        record = self._records.get(dep_id)
        if record is None:
            return  # applied by record() if this process routes to it before it ends
        breaker = record.breaker
        if breaker.state is BreakerState.COOLING_DOWN and breaker.until >= until - _SAME_DEADLINE:
            return  # deadlines only move later
        record.breaker = Breaker(BreakerState.COOLING_DOWN, until=until, reason=reason, window_start=now)

    def merge_recovery(self, dep_id: str) -> None:
        """A peer's probe of ``dep_id`` succeeded: send to it again, unless our own cooldown runs on."""
        self._remote.pop(dep_id, None)
        self._recovered.add(dep_id)
        record = self._records.get(dep_id)
        if record is None or record.breaker.state is BreakerState.HEALTHY:
            return
        breaker = record.breaker
        if breaker.state is BreakerState.COOLING_DOWN and breaker.until > self._clock() + _SAME_DEADLINE:
            return
        record.breaker = HEALTHY

    async def _listen(self, pubsub: Any) -> None:
        try:
            while not self._closed:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._on_message(_text(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.lost(exc)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _on_message(self, data: str) -> None:
        event = parse_message(data)
        if event is None or event.origin == self._id:
            return
        if isinstance(event, Cooldown):
            self.merge_cooldown(event.deployment_id, event.remaining, event.reason)
        else:
            self.merge_recovery(event.deployment_id)


def _tag(dep_id: str) -> str:
    # Braces would change which part of the key Redis Cluster hashes.
    return dep_id.replace("{", "(").replace("}", ")")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reason(exc: BaseException) -> str:
    # The exception's class and message; redis-py never puts the password into either.
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["RedisHealthStore", "RedisOptions", "SharedUsageWindow"]
