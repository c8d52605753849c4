"""What processes tell each other through Redis, as pure functions: load payloads and event messages.

Every process pushes one load payload per sync (``{deployment id: [in flight, latency, ttft]}``) and
publishes one message per breaker transition (``origin|c|id|ms|reason`` for a cooldown of ``ms`` more
milliseconds, ``origin|h|id`` for a successful probe). Entries that do not parse (a damaged value, or
another routerd version's) are skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from routerd.routing.health import DeploymentHealth

__all__ = ["Cooldown", "PeerLoad", "Recovery", "load_payload", "parse_message", "peer_load"]


def load_payload(records: Mapping[str, DeploymentHealth]) -> str:
    """This process's in-flight counts and latency averages, for the deployments that have any."""
    load = {
        dep_id: [r.in_flight, r.latency, r.ttft]
        for dep_id, r in records.items()
        if r.in_flight or r.latency is not None
    }
    return orjson.dumps(load).decode() if load else ""


@dataclass(slots=True)
class PeerLoad:
    """The other processes' load per deployment: summed in-flight calls, mean latency and ttft."""

    in_flight: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    ttft: dict[str, float] = field(default_factory=dict)


def peer_load(payloads: Iterable[Any]) -> PeerLoad:
    """Sum and average the other processes' payloads (str or bytes); damaged ones are skipped."""
    in_flight: dict[str, int] = {}
    latency: dict[str, list[float]] = {}
    ttft: dict[str, list[float]] = {}
    for payload in payloads:
        try:
            load = orjson.loads(payload)
            entries = [(str(k), int(v[0]), _number(v[1]), _number(v[2])) for k, v in load.items()]
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError):
            continue  # another version's or a damaged entry: skip that peer, keep sharing
        for dep_id, flying, lat, first in entries:
            in_flight[dep_id] = in_flight.get(dep_id, 0) + flying
            if lat is not None:
                latency.setdefault(dep_id, []).append(lat)
            if first is not None:
                ttft.setdefault(dep_id, []).append(first)
    return PeerLoad(in_flight, _means(latency), _means(ttft))


@dataclass(frozen=True, slots=True)
class Cooldown:
    origin: str
    deployment_id: str
    remaining: float  # seconds
    reason: str


@dataclass(frozen=True, slots=True)
class Recovery:
    origin: str
    deployment_id: str


def parse_message(data: str) -> Cooldown | Recovery | None:
    """A published breaker event, or None when it does not parse."""
    origin, kind, rest = [*data.split("|", 2), "", ""][:3]
    if kind == "h" and rest:
        return Recovery(origin, rest)
    if kind == "c":
        parts = rest.rsplit("|", 2)  # the id may contain "|"; the ms and the reason do not
        if len(parts) == 3:
            try:
                return Cooldown(origin, parts[0], int(parts[1]) / 1000, parts[2])
            except ValueError:
                return None
    return None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _means(samples: Mapping[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in samples.items() if v}
