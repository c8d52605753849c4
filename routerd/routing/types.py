"""What the router hands back to its callers (the server and the SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from routerd.config.table import Deployment
from routerd.providers.base import UpstreamResponse


@dataclass(slots=True)
class RoutingInfo:
    """How a call was routed; becomes the ``x-routerd-*`` response headers and the log line.

    Callers read the fields; only the methods below write them (one writer per fact), so the headers
    and the log can be trusted to mean the same thing everywhere.
    """

    group: str = ""  # the group that answered (or was last tried)
    deployment_id: str = ""
    provider: str = ""
    api_base: str = ""  # the deployment's configured api_base ("" when the provider's default)
    attempts: int = 0  # upstream calls made (a text completion fanned out to N chat calls counts N)
    retries: int = 0
    fallbacks: int = 0
    upstream_latency: float = 0.0  # seconds spent in upstream calls
    ttft: float | None = None
    tried_groups: list[str] = field(default_factory=list)

    def entered(self, group: str, *, fallback: bool) -> None:
        """The call moved to ``group``: the requested one, or a fallback."""
        if fallback:
            self.fallbacks += 1
        self.group = group
        self.tried_groups.append(group)

    def retried(self) -> None:
        """A retry (after a failure, in the same group) is about to start."""
        self.retries += 1

    def started(self, group: str, deployment: Deployment, calls: int) -> None:
        """An attempt of ``calls`` upstream calls started on ``deployment``."""
        self.attempts += calls
        self.group = group
        self.deployment_id = deployment.id
        self.provider = deployment.provider
        self.api_base = deployment.api_base or ""

    def first_chunk(self, ttft: float) -> None:
        """A stream's first chunk arrived ``ttft`` seconds after its attempt started."""
        self.ttft = ttft
        self.upstream_latency += ttft

    def waited(self, seconds: float) -> None:
        """Time spent waiting on an upstream (besides a stream's time to first chunk)."""
        self.upstream_latency += seconds


@dataclass(frozen=True, slots=True)
class NativeCall:
    """A request in a provider's own API (``api``: ``"messages"`` or ``"responses"``), sent as it is to
    deployments whose adapter speaks that API (``providers.base.speaks_natively``); every other deployment gets the
    call's chat body. ``headers`` go with the native request only (``anthropic-version``, say)."""

    api: str
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CallResult:
    """A successful call: a complete response, or a stream whose first chunk has already arrived.

    ``stream`` yields OpenAI chunk dicts, starting with the one already received (so failover before
    the first byte happened inside the router). Errors after that are raised mid-iteration as
    :mod:`routerd.errors` classes; closing the iterator cancels the upstream call.
    """

    deployment: Deployment
    info: RoutingInfo
    response: UpstreamResponse | None = None
    stream: AsyncIterator[dict[str, Any]] | None = None
    # the answer is in the native API's shape (a NativeCall was served natively), not chat's
    native: bool = False
