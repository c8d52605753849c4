"""Cache keys: everything in a request that can change the answer, and nothing that cannot.

A key is the SHA-256 of a canonical JSON rendering (sorted keys, no whitespace) of: the key's scope
(the client key or team it belongs to, so one tenant never reads another's answers), the namespace,
the endpoint, the model *group* the client named (deployments of a group are interchangeable, which
is the point of a group), and every body field except those in :data:`NOT_IN_KEY` (transport and
routing controls, request ids, the stream flags: a streamed and a plain call of the same request share
an entry), and fields sent as ``null``. ``user`` is left out unless the cache is configured to separate end users.

Embeddings are keyed per input item (:func:`embedding_item_keys`), so a batch whose items were partly
seen before only sends the rest upstream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["NOT_IN_KEY", "cache_key", "embedding_item_keys"]

#: Body fields that never change an answer: how the call is delivered, retried, routed or tracked.
NOT_IN_KEY = frozenset(
    {
        "model",  # replaced by the resolved group name
        "stream",
        "stream_options",
        "cache",
        "metadata",
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "disable_fallbacks",
        "mock_testing_fallbacks",
        "extra_headers",
        "request_id",
        "litellm_call_id",
        "litellm_trace_id",
        "tags",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
    }
)
_EMBEDDING_SHARED = ("encoding_format", "dimensions", "input_type")


def _digest(parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cache_key(
    endpoint: str,
    group: str,
    body: Mapping[str, Any],
    *,
    scope: str = "",
    namespace: str = "",
    include_user: bool = False,
) -> str:
    """The key of a chat or text completion (or any whole-body call) of ``group``."""
    # a field sent as null means the same as a field left out
    fields = {
        k: v
        for k, v in body.items()
        if v is not None and k not in NOT_IN_KEY and (include_user or k != "user")
    }
    return _digest([scope, namespace, endpoint, group, fields])


def embedding_item_keys(
    group: str,
    body: Mapping[str, Any],
    items: Sequence[Any],
    *,
    scope: str = "",
    namespace: str = "",
    include_user: bool = False,
) -> list[str]:
    """One key per input item: the item plus the parameters that shape every vector of the batch."""
    shared = {k: body[k] for k in _EMBEDDING_SHARED if k in body}
    if include_user and "user" in body:
        shared["user"] = body["user"]
    return [_digest([scope, namespace, "embeddings", group, shared, item]) for item in items]
