"""What the router hands back to its callers (the server and the SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from routerd.config.table import Deployment
from routerd.providers.base import UpstreamResponse


@dataclass(slots=True)
class RoutingInfo:
    """How a call was routed; becomes the ``x-routerd-*`` response headers and the log line."""

    group: str = ""  # the group that answered (or was last tried)
    deployment_id: str = ""
    provider: str = ""
    attempts: int = 0
    retries: int = 0
    fallbacks: int = 0
    upstream_latency: float = 0.0  # seconds spent in upstream calls
    ttft: float | None = None
    tried_groups: list[str] = field(default_factory=list)


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
