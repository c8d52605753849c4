"""Client-key and team limits shared through Redis: ``rpm_limit``, ``tpm_limit``, ``max_parallel_requests``.

The same design as deployment limits (:mod:`routerd.state.redis`), in the same store:

* rpm/tpm: one sliding window per key and per team in Redis (61 one-second buckets in Redis time).
  Each process reserves a lease per scope -- up to ``lease_fraction`` of each limit, split between the
  processes -- for the current Redis second, so most calls are admitted without a round trip; the
  unused rest is given back when the second ends. A call whose leases cannot serve it makes *one*
  round trip (:data:`~routerd.state.scripts.ACCESS`), which checks the key and its team together and
  counts the call in both only if both have room.
* parallel requests: a count of slots per scope and process in Redis, each process's with an expiry
  that its sync renews (``sync_interval`` x 4: 2 s by default). A process takes a slot (and, for large
  limits, a few spare ones) in the same script, and gives back what it no longer needs in the
  background; a process that dies stops renewing, so its slots are freed within the expiry.

:class:`SharedAccess` is pure bookkeeping plus that one awaited script; everything else (refunds,
slot returns, token corrections, renewals) is queued on the store's background writer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from routerd.state import scripts
from routerd.state.redis import _Lease, lease_sizes

if TYPE_CHECKING:
    from routerd.routing.usage import UsageWindow
    from routerd.state.redis import RedisHealthStore

__all__ = ["Claim", "Refusal", "ScopeLimits", "SharedAccess"]


class ScopeLimits(Protocol):
    """What a key or team policy declares (``routerd.access.table.KeyPolicy`` / ``TeamPolicy``)."""

    @property
    def rpm_limit(self) -> int | None: ...

    @property
    def tpm_limit(self) -> int | None: ...

    @property
    def max_parallel_requests(self) -> int | None: ...


@dataclass(slots=True)
class _Part:
    """One scope's share of a claim: what its lease and slots covered, and what Redis must grant."""

    name: str
    rpm: int | None
    tpm: int | None
    parallel: int | None
    sizes: tuple[int, int] | None = None  # lease sizes (calls, tokens), None: no lease
    leased: _Lease | None = None  # the lease the call was taken from (given back on refusal)
    calls: int = 0  # 1: the call is counted by the script
    need: int = 0  # parallel slots the script must grant (0: a held slot served)
    want: int = 0  # ... and the spare ones it may add


@dataclass(slots=True)
class Claim:
    """A call's claim on its scopes, taken locally first; ``trip`` when Redis must grant the rest."""

    parts: list[_Part]
    tokens: int
    trip: bool = False
    # another call of this process is reserving a lease of one of the scopes: wait for it, claim again
    wait: asyncio.Future[None] | None = None
    tokens_shared: tuple[str, ...] = ()  # scopes whose tpm window in Redis counts this call's tokens
    slots: tuple[str, ...] = ()  # scopes where the call holds a shared parallel slot


@dataclass(frozen=True, slots=True)
class Refusal:
    """Redis refused the call: ``scope`` is full by ``kind`` (``rpm`` | ``tpm`` | ``parallel``)."""

    scope: str
    kind: str
    limit: int
    wait: float  # seconds until it may fit


_KINDS = {"r": "rpm", "t": "tpm", "p": "parallel"}


@dataclass(slots=True)
class _Slots:
    held: int = 0  # slots this process holds in Redis for the scope


class SharedAccess:
    """Key and team windows, leases and parallel slots of one process, on its store's Redis."""

    def __init__(self, store: RedisHealthStore) -> None:
        self._store = store
        client = store.client
        self._access = client.register_script(scripts.ACCESS)
        self._free = client.register_script(scripts.SLOTS_FREE)
        self._keep = client.register_script(scripts.SLOTS_KEEP)
        self._refund = client.register_script(scripts.REFUND)
        self._adjust = client.register_script(scripts.ADJUST_MANY)
        self._seed = client.register_script(scripts.SEED)
        self._leases: dict[str, _Lease] = {}
        self._slots: dict[str, _Slots] = {}
        # scopes whose lease this process is reserving now: concurrent calls wait for that one
        # reservation rather than each reserving its own (which would hold several leases at once)
        self._reserving: dict[str, asyncio.Future[None]] = {}
        # this process's own key/team windows (routerd.access.limits), seeded into Redis on reconnect
        self.windows: Mapping[str, UsageWindow] | None = None

    @property
    def up(self) -> bool:
        """Redis answers: limits are shared (else each process enforces its share locally)."""
        return self._store.up

    def lost(self, exc: BaseException) -> None:
        """Redis failed or was too slow on an admission: the store switches to local state."""
        self._store.lost(exc)

    def _window_key(self, scope: str) -> str:
        return f"{self._store.namespace}{{access}}:w:{scope}"

    def _slots_key(self, scope: str) -> str:
        return f"{self._store.namespace}{{access}}:par:{scope}"

    # --- admission -------------------------------------------------------------------------------

    def claim(
        self,
        scopes: Sequence[tuple[str, ScopeLimits]],
        tokens: int,
        in_flight: Mapping[str, int],
        *,
        wait: bool = True,
    ) -> Claim:
        """Take what leases and held slots cover, now (no await in between, so concurrent calls never
        take the same call or slot twice); the claim says what is left for Redis to grant. With
        ``wait``, a claim that finds a lease of its scopes being reserved takes nothing and says so."""
        fraction, processes = self._store.lease_fraction, self._store.processes
        now = self._store.clock()  # the clock leases end by
        claim = Claim([], tokens)
        if wait and self._reserving:
            for name, _ in scopes:
                pending = self._reserving.get(name)
                if pending is not None:
                    claim.wait = pending
                    return claim
        shared_tokens: list[str] = []
        slots: list[str] = []
        for name, limits in scopes:
            rpm, tpm, parallel = limits.rpm_limit, limits.tpm_limit, limits.max_parallel_requests
            part = _Part(name, rpm, tpm, parallel)
            if rpm is not None or tpm is not None:
                part.sizes = lease_sizes(rpm, tpm, fraction, processes)
                lease = self._leases.get(name) if part.sizes is not None else None
                if lease is not None and lease.serves(now, 1, tokens):
                    part.leased = lease
                else:
                    part.calls = 1
                    claim.trip = True
                if tpm is not None:
                    shared_tokens.append(name)
            if parallel is not None:
                slot = self._slots.setdefault(name, _Slots())
                if in_flight.get(name, 0) >= slot.held:
                    spare = math.floor(parallel * fraction / processes)
                    part.need = in_flight.get(name, 0) + 1 - slot.held
                    part.want = part.need + spare
                    claim.trip = True
                slots.append(name)
            claim.parts.append(part)
        claim.tokens_shared = tuple(shared_tokens)
        claim.slots = tuple(slots)
        return claim

    async def grant(self, claim: Claim) -> Refusal | None:
        """Ask Redis for what the claim's leases and slots did not cover: one script, one round trip.
        None: granted. Raises what the client raised when Redis failed (the caller falls back)."""
        store = self._store
        now = store.clock()  # before the trip: a lease then ends no later than its Redis second
        keys: list[str] = []
        args: list[Any] = [store.owner, store.slot_ttl_ms]
        for part in claim.parts:
            keys += [self._window_key(part.name), self._slots_key(part.name)]
            counted = part.calls > 0
            sizes = part.sizes or (0, 0)
            args += [
                part.rpm if counted and part.rpm is not None else -1,
                part.tpm if counted and part.tpm is not None else -1,
                part.calls,
                claim.tokens if part.tpm is not None else 0,
                max(sizes[0] - 1, 0) if part.rpm is not None else 0,
                sizes[1] if part.tpm is not None else 0,
                part.parallel if part.parallel is not None else -1,
                part.need,
                part.want,
            ]
        reserving = [p.name for p in claim.parts if p.calls and p.sizes is not None]
        pending = asyncio.get_running_loop().create_future() if reserving else None
        for name in reserving:
            self._reserving.setdefault(name, pending)  # type: ignore[arg-type]
        try:
            reply = await self._access(keys=keys, args=args)
        except BaseException:
            self._give_back_claim(claim)
            raise
        finally:
            if pending is not None:
                for name in reserving:
                    if self._reserving.get(name) is pending:
                        del self._reserving[name]
                pending.set_result(None)
        if reply[0] != 1:
            self._give_back_claim(claim)
            part = claim.parts[int(reply[1]) - 1]
            kind = _KINDS.get(_text(reply[2]), "rpm")
            limit = {"rpm": part.rpm, "tpm": part.tpm, "parallel": part.parallel}[kind]
            return Refusal(part.name, kind, limit or 0, int(reply[3]) / 1000)
        left_ms, second = int(reply[1]), int(reply[2])
        for i, part in enumerate(claim.parts):
            granted, more, slots = (int(v) for v in reply[3 + 3 * i : 6 + 3 * i])
            if part.calls and part.sizes is not None:
                self._renew(part, granted, more, now + left_ms / 1000, second)
            if slots:
                self._slots.setdefault(part.name, _Slots()).held += slots
        return None

    def _renew(self, part: _Part, granted: int, more: int, until: float, second: int) -> None:
        old = self._leases.get(part.name)
        if old is not None:
            self._give_back(part.name, old)
        lease = self._leases[part.name] = _Lease()
        lease.left = granted - 1 if part.rpm is not None else None
        lease.tokens = more if part.tpm is not None else None
        lease.until, lease.second = until, second

    def _give_back_claim(self, claim: Claim) -> None:
        # what the claim took from leases goes back to them (held slots were never taken: the caller
        # counts in-flight calls itself and undoes that)
        for part in claim.parts:
            lease = part.leased
            if lease is not None:
                if lease.left is not None:
                    lease.left += 1
                if lease.tokens is not None:
                    lease.tokens += claim.tokens

    # --- after the call --------------------------------------------------------------------------

    def correct(self, scopes: Sequence[str], stamp: int, delta: int) -> None:
        """Correct the tokens counted for a call in local second ``stamp`` (background)."""
        now = self._store.clock()
        for name in scopes:
            lease = self._leases.get(name)
            if lease is not None and lease.absorb(now, delta):
                continue  # covered by tokens Redis already counts
            key = ("access-adj", name, str(stamp))
            self._store.put(key, self._store.queued(key, 0) + delta)

    def release(self, scope: str, in_flight: int, parallel: int | None) -> None:
        """A call holding a slot of ``scope`` ended (``in_flight`` calls remain): give back the slots
        beyond the remaining calls and the spare ones, in the background."""
        slot = self._slots.get(scope)
        if slot is None:
            return
        spare = 0
        if parallel is not None:
            spare = math.floor(parallel * self._store.lease_fraction / self._store.processes)
        surplus = slot.held - in_flight - spare
        if surplus > 0:
            slot.held -= surplus
            key = ("access-free", scope)
            self._store.put(key, self._store.queued(key, 0) + surplus)
        if slot.held <= 0 and in_flight <= 0:
            del self._slots[scope]

    # --- background ------------------------------------------------------------------------------

    def _give_back(self, name: str, lease: _Lease) -> None:
        calls, tokens = lease.unused()
        if calls or tokens:
            key = ("access-refund", name, str(lease.second))
            before = self._store.queued(key, (0, 0))
            self._store.put(key, (before[0] + calls, before[1] + tokens))
        lease.left = 0 if lease.left is not None else None
        lease.tokens = 0 if lease.tokens is not None else None
        lease.until = -math.inf

    def refund_expired(self, now: float) -> None:
        """Give back the unused rest of every lease whose second has ended (on each sync)."""
        for name, lease in list(self._leases.items()):
            if now >= lease.until:
                self._give_back(name, lease)
                del self._leases[name]

    async def write(self, batch: Sequence[tuple[tuple[str, ...], Any]], second: int) -> None:
        """Carry out queued background writes of this module's kinds (``access-*``); the token
        corrections of every key and team in the batch go in one script."""
        keys: list[str] = []
        args: list[Any] = []
        for key, value in batch:
            kind, name = key[0], key[1]
            if kind == "access-refund":
                await self._refund(keys=(self._window_key(name),), args=(key[2], *value))
            elif kind == "access-adj":
                keys.append(self._window_key(name))
                args += [len(keys), second - int(key[2]), value]
            elif kind == "access-free":
                await self._free(
                    keys=(self._slots_key(name),), args=(self._store.owner, value, self._store.slot_ttl_ms)
                )
        if keys:
            await self._adjust(keys=keys, args=args)

    async def keep_alive(self) -> None:
        """Renew the expiry of the slots this process holds (every sync)."""
        held = [self._slots_key(name) for name, slot in self._slots.items() if slot.held > 0]
        if held:
            await self._keep(keys=held, args=(self._store.owner, self._store.slot_ttl_ms))

    def reset(self) -> None:
        """Redis was lost: forget leases and slots (Redis' copies expire or are counted again)."""
        self._leases.clear()
        self._slots.clear()

    async def seed(self, now: float) -> None:
        """After (re)connecting: add this process's local key/team counts to Redis (see the store's
        window seeding: counted twice at worst, which admits fewer calls for up to a minute)."""
        if not self.windows:
            return
        second = math.floor(now)
        for name, window in list(self.windows.items()):
            args: list[int] = []
            for stamp, requests, tokens in window.buckets(now):
                args.extend((second - stamp, requests, tokens))
            if args:
                await self._seed(keys=(self._window_key(name),), args=args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
