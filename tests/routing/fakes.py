"""A scripted in-process provider adapter and table builders for router tests.

The adapter is registered under a test-only provider name; each deployment's behaviour is scripted
by its upstream ``model`` name. No sockets, no sleeps: latency is simulated by advancing a FakeClock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routerd.config.table import (
    Deployment,
    Group,
    ModelInfo,
    RouterPolicy,
    RoutingTable,
    ServerSettings,
)
from routerd.errors import OpenAIError
from routerd.http import HttpClient
from routerd.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
)
from routerd.testing.clock import FakeClock

FAKE = "fake-routing-test"

JSON = dict[str, Any]


@dataclass
class Step:
    """One scripted answer: an error to raise, or a success (optionally after simulated latency)."""

    error: Callable[[], OpenAIError] | None = None
    latency: float = 0.0  # fake seconds the call takes (advances the clock)
    completion_tokens: int = 10
    prompt_tokens: int = 5
    chunks: int = 3  # streams: chunks to send
    fail_after: int | None = None  # streams: raise ``error`` after this many chunks
    gate: asyncio.Event | None = None  # the call waits for this before answering


def ok(
    latency: float = 0.0,
    completion_tokens: int = 10,
    chunks: int = 3,
    prompt_tokens: int = 5,
    gate: asyncio.Event | None = None,
) -> Step:
    return Step(
        latency=latency,
        completion_tokens=completion_tokens,
        chunks=chunks,
        prompt_tokens=prompt_tokens,
        gate=gate,
    )


def fail(error: Callable[[], OpenAIError], latency: float = 0.0, after: int | None = None) -> Step:
    return Step(error=error, latency=latency, fail_after=after)


@dataclass
class Script:
    """Steps for one deployment, consumed in order; the last one repeats."""

    steps: list[Step]
    index: int = 0

    def next(self) -> Step:
        step = self.steps[min(self.index, len(self.steps) - 1)]
        self.index += 1
        return step


@dataclass
class Closed:
    model: str
    chunks_sent: int


FAKE2 = "fake-routing-test-2"


class FakeAdapter(BaseAdapter):
    """Answers from scripts keyed by deployment model; records every call."""

    name = FAKE
    endpoints = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.scripts: dict[str, Script] = {}
        self.calls: list[str] = []  # deployment ids, in call order
        self.requests: list[UpstreamRequest] = []
        self.closed: list[Closed] = []  # streams whose generator was closed
        self.prepared: list[str] = []

    def script(self, model: str, *steps: Step) -> None:
        self.scripts[model] = Script(list(steps))

    def prepare(self, deployment: Deployment) -> Any:
        self.prepared.append(deployment.model)
        return {"url": f"fake://{deployment.model}"}

    async def _take(self, seconds: float) -> None:
        # Simulated upstream latency: the clock moves, nothing waits (and clock.sleeps stays the
        # router's own sleeps).
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def _step(self, request: UpstreamRequest) -> Step:
        self.calls.append(request.deployment.id)
        self.requests.append(request)
        script = self.scripts.get(request.deployment.model)
        return script.next() if script is not None else ok()

    async def _answer(self, request: UpstreamRequest, kind: str) -> UpstreamResponse:
        step = self._step(request)
        if step.gate is not None:
            await step.gate.wait()
        await self._take(step.latency)
        if step.error is not None:
            raise step.error()
        usage = {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        }
        body: JSON = {
            "object": kind,
            "model": request.deployment.model,
            "usage": usage,
            "answered_by": request.deployment.id,
            **_payload(kind),
        }
        return UpstreamResponse(body, {"x-fake": "1"})

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        return await self._answer(request, "chat.completion")

    async def completion(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        return await self._answer(request, "text_completion")

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        return await self._answer(request, "list")

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        return self._stream(request)

    def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        return self._stream(request)

    async def _stream(self, request: UpstreamRequest) -> AsyncIterator[JSON]:
        step = self._step(request)
        sent = 0
        try:
            if step.gate is not None:
                await step.gate.wait()
            await self._take(step.latency)
            if step.error is not None and step.fail_after is None:
                raise step.error()
            for i in range(step.chunks):
                if step.error is not None and step.fail_after == i:
                    raise step.error()
                chunk: JSON = {"object": "chat.completion.chunk", "i": i, "by": request.deployment.id}
                if i == step.chunks - 1:
                    chunk["usage"] = {"prompt_tokens": step.prompt_tokens, "completion_tokens": step.chunks}
                sent += 1
                yield chunk
            if step.error is not None and step.fail_after is not None and step.fail_after >= step.chunks:
                raise step.error()
        finally:
            self.closed.append(Closed(request.deployment.model, sent))


def dep(
    dep_id: str,
    group: str = "g",
    *,
    provider: str = FAKE,
    model: str | None = None,
    max_input_tokens: int | None = None,
    input_cost: float | None = None,
    output_cost: float | None = None,
    **kwargs: Any,
) -> Deployment:
    upstream = model or dep_id
    info = ModelInfo(
        max_input_tokens=max_input_tokens, input_cost_per_token=input_cost, output_cost_per_token=output_cost
    )
    return Deployment(
        id=dep_id,
        group=group,
        provider=provider,
        model=upstream,
        litellm_model=f"{provider}/{upstream}",
        info=info,
        **kwargs,
    )


def make_table(
    groups: Mapping[str, Sequence[Deployment]],
    *,
    policy: RouterPolicy | None = None,
    aliases: Mapping[str, str] | None = None,
    wildcards: Iterable[tuple[str, Sequence[Deployment]]] = (),
    content_hash: str = "test-table",
) -> RoutingTable:
    exact = {name: Group(name, tuple(deps)) for name, deps in groups.items()}
    wild = tuple(Group(name, tuple(deps)) for name, deps in wildcards)
    everything = {d.id: d for g in (*exact.values(), *wild) for d in g.deployments}
    return RoutingTable(
        groups=exact,
        wildcard_groups=wild,
        aliases=dict(aliases or {}),
        policy=policy or RouterPolicy(),
        server=ServerSettings(),
        content_hash=content_hash,
        deployments=everything,
    )


def chat(model: str = "g", **extra: Any) -> JSON:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


@dataclass
class Recorder:
    """An EventBus subscriber that keeps every event."""

    events: list[Any] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def close_to(value: float, expected: float, tolerance: float = 1e-9) -> bool:
    return math.isclose(value, expected, abs_tol=tolerance)


class SecondFakeAdapter(FakeAdapter):
    """The same fake under a second provider name, for cross-provider fallbacks."""

    name = FAKE2


def _payload(kind: str) -> JSON:
    """The answer's content in the real wire shape (the router checks it)."""
    if kind == "chat.completion":
        message = {"role": "assistant", "content": "ok"}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    if kind == "text_completion":
        return {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}
    return {"data": [{"object": "embedding", "index": 0, "embedding": [0.0]}]}
