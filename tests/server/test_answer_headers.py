"""The successful-answer headers, rendered as bytes on the hot path, say what routing_headers says."""

from __future__ import annotations

from routerd.routing.types import RoutingInfo
from routerd.server.inference import _answer_headers, routing_headers


def test_answer_headers_match_routing_headers() -> None:
    info = RoutingInfo()
    info.deployment_id, info.attempts, info.retries, info.fallbacks = "dep-1", 3, 1, 1
    raw = _answer_headers("req-\u00e9", info, 272)
    assert raw[:2] == [(b"content-type", b"application/json"), (b"content-length", b"272")]
    rendered = {name.decode(): value.decode("latin-1") for name, value in raw[2:]}
    assert rendered == routing_headers("req-\u00e9", info)
