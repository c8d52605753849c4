"""Where gateway batches are remembered: which key created a batch, on which deployment, what it last
looked like, whether it was metered; and which key uploaded each batch input file.

:class:`MemoryBatchRegistry` keeps them in this process (bounded by :data:`MAX_GATEWAY_BATCHES` and
:data:`MAX_TRACKED_FILES`, oldest forgotten first; a restart forgets them). When the router's state is
shared in Redis (``ROUTERD_REDIS_URL`` / ``router_settings.redis_*``), :class:`RedisBatchRegistry`
keeps them there instead: every replica answers for every batch, a restart forgets nothing, and a
completed batch is metered once whichever replica sees it first (a ``SET NX`` claim). Records live
:data:`BATCH_RECORD_TTL_SECONDS` there. Owners are key digests, never keys.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from routerd.errors import ServiceUnavailableError

log = logging.getLogger("routerd.batches")

JSON = dict[str, Any]

#: gateway batches remembered; the oldest is forgotten first (per process in memory, in all in Redis)
MAX_GATEWAY_BATCHES = 10_000
#: batch input files whose uploader is remembered (client keys create batches only from their own
#: uploads); the oldest is forgotten first (in memory; in Redis each expires on its own)
MAX_TRACKED_FILES = 10_000
#: how long Redis keeps a batch record, an uploader and a metering claim (30 days: a batch and its
#: files are kept about as long at the provider)
BATCH_RECORD_TTL_SECONDS = 30 * 24 * 3600
#: longest batch or file id looked up in Redis (OpenAI's are ~30 characters)
MAX_ID = 256


@dataclass(slots=True)
class GatewayBatch:
    """A batch routerd created on a deployment, for one key."""

    batch_id: str
    owner: str
    key_alias: str
    team_id: str
    group: str
    deployment_id: str
    input_file_id: str  # the client's file (the deployment's copy has another id)
    last: JSON = field(default_factory=dict)  # the batch object as last seen
    metered: bool = False
    endpoint: str = ""  # the batch's endpoint ("/v1/chat/completions"); "" in records made before it
    # every guardrail name a line of the input asked for (its output's answers run them too)
    guardrails: list[str] = field(default_factory=list)

    def file_ids(self) -> list[str]:
        """Its output and error files, once the deployment named them."""
        ids = [self.last.get("output_file_id"), self.last.get("error_file_id")]
        return [i for i in ids if isinstance(i, str) and i]


class BatchRegistry(Protocol):
    """Gateway batches and batch uploads; every call may reach a shared store."""

    async def add_file(self, file_id: str, owner: str) -> None: ...

    async def file_owner(self, file_id: str) -> str | None: ...

    async def forget_file(self, file_id: str) -> None: ...

    async def put(self, batch: GatewayBatch) -> None:
        """Store (or update) ``batch``, its output and error files included."""
        ...

    async def get(self, batch_id: str) -> GatewayBatch | None: ...

    async def listed(self, owner: str | None) -> list[GatewayBatch]:
        """``owner``'s batches (everyone's for None), newest first."""
        ...

    async def batch_for_file(self, file_id: str) -> str | None:
        """The batch whose output or error file ``file_id`` is."""
        ...

    async def claim_metering(self, batch_id: str) -> bool:
        """True exactly once per batch: the caller meters it."""
        ...

    async def release_metering(self, batch_id: str) -> None:
        """Give a claim back (metering failed before it recorded anything)."""
        ...


class MemoryBatchRegistry:
    """The registry in this process; see the module docstring."""

    def __init__(self, max_batches: int = MAX_GATEWAY_BATCHES, max_files: int = MAX_TRACKED_FILES) -> None:
        self.max_batches = max_batches
        self.max_files = max_files
        self._batches: OrderedDict[str, GatewayBatch] = OrderedDict()
        self._files: OrderedDict[str, str] = OrderedDict()  # uploaded file id -> owner
        self._outputs: dict[str, str] = {}  # output / error file id -> batch id

    async def add_file(self, file_id: str, owner: str) -> None:
        self._files[file_id] = owner
        while len(self._files) > self.max_files:
            self._files.popitem(last=False)

    async def file_owner(self, file_id: str) -> str | None:
        return self._files.get(file_id)

    async def forget_file(self, file_id: str) -> None:
        self._files.pop(file_id, None)

    async def put(self, batch: GatewayBatch) -> None:
        known = self._batches.get(batch.batch_id)
        if known is not None and known is not batch:
            batch.metered = batch.metered or known.metered
        self._batches[batch.batch_id] = batch
        for file_id in batch.file_ids():
            self._outputs[file_id] = batch.batch_id
        while len(self._batches) > self.max_batches:
            _, old = self._batches.popitem(last=False)
            for file_id in old.file_ids():
                self._outputs.pop(file_id, None)

    async def get(self, batch_id: str) -> GatewayBatch | None:
        return self._batches.get(batch_id)

    async def listed(self, owner: str | None) -> list[GatewayBatch]:
        return [b for b in reversed(self._batches.values()) if owner is None or b.owner == owner]

    async def batch_for_file(self, file_id: str) -> str | None:
        return self._outputs.get(file_id)

    async def claim_metering(self, batch_id: str) -> bool:
        batch = self._batches.get(batch_id)
        if batch is None or batch.metered:
            return False
        batch.metered = True
        return True

    async def release_metering(self, batch_id: str) -> None:
        batch = self._batches.get(batch_id)
        if batch is not None:
            batch.metered = False


class RedisBatchRegistry:
    """The registry in Redis, shared by the replicas; see the module docstring. Redis being unreachable
    is a 503 naming the shared state store."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "routerd:batches:",
        ttl: float = BATCH_RECORD_TTL_SECONDS,
        max_batches: int = MAX_GATEWAY_BATCHES,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(int(ttl * 1000), 1)
        self.max_batches = max_batches

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name[:MAX_ID]}"

    async def _run(self, what: str, operation: Any) -> Any:
        try:
            return await operation
        except Exception as exc:  # the connection, not the request: say so rather than "not found"
            raise ServiceUnavailableError(
                f"gateway batches are unreachable ({what}: the shared state store is down); retry shortly",
                code="batch_store_unavailable",
            ) from exc

    async def add_file(self, file_id: str, owner: str) -> None:
        await self._run("upload", self.client.set(self._key("f", file_id), owner, px=self.ttl_ms))

    async def file_owner(self, file_id: str) -> str | None:
        raw = await self._run("upload", self.client.get(self._key("f", file_id)))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def forget_file(self, file_id: str) -> None:
        await self._run("upload", self.client.delete(self._key("f", file_id)))

    async def put(self, batch: GatewayBatch) -> None:
        record = asdict(batch)
        record.pop("metered")  # the claim key is the truth for that
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._key("b", batch.batch_id), orjson.dumps(record), px=self.ttl_ms)
        for file_id in batch.file_ids():
            pipe.set(self._key("o", file_id), batch.batch_id, px=self.ttl_ms)
        for index in (self._key("by", batch.owner), f"{self.prefix}all"):
            pipe.zadd(index, {batch.batch_id: now}, nx=True)
            pipe.zremrangebyrank(index, 0, -self.max_batches - 1)  # bounded: the oldest drop out
            pipe.pexpire(index, self.ttl_ms)
        await self._run("batch", pipe.execute())

    async def get(self, batch_id: str) -> GatewayBatch | None:
        raw = await self._run("batch", self.client.get(self._key("b", batch_id)))
        return GatewayBatch(**orjson.loads(raw)) if raw is not None else None

    async def listed(self, owner: str | None) -> list[GatewayBatch]:
        index = self._key("by", owner) if owner is not None else f"{self.prefix}all"
        ids = await self._run("batch", self.client.zrevrange(index, 0, self.max_batches - 1))
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)  # GETs, not MGET: a Cluster spreads the keys
        for batch_id in ids:
            pipe.get(self._key("b", batch_id.decode() if isinstance(batch_id, bytes) else batch_id))
        raws = await self._run("batch", pipe.execute())
        return [GatewayBatch(**orjson.loads(raw)) for raw in raws if raw is not None]

    async def batch_for_file(self, file_id: str) -> str | None:
        raw = await self._run("batch", self.client.get(self._key("o", file_id)))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def claim_metering(self, batch_id: str) -> bool:
        claimed = await self._run(
            "metering", self.client.set(self._key("m", batch_id), b"1", nx=True, px=self.ttl_ms)
        )
        return bool(claimed)

    async def release_metering(self, batch_id: str) -> None:
        await self._run("metering", self.client.delete(self._key("m", batch_id)))


def batch_registry(shared: Any = None) -> BatchRegistry:
    """In Redis when the router's state store is shared there (``shared`` has a ``client``), else in
    this process."""
    client = getattr(shared, "client", None)
    if client is not None:
        return RedisBatchRegistry(client, prefix=f"{getattr(shared, 'namespace', 'routerd:')}batches:")
    return MemoryBatchRegistry()
