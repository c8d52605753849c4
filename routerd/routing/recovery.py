"""What to do after a failed call: how many retries an error gets, and which group to fall back to.

Retries stay inside a group; fallbacks move to another group. Both are decided by the error's class
(never its message):

* client errors (not ``retryable``, not ``cools_down``: 400, 413, 422, context window, content policy)
  are never retried on the same group: another deployment would reject the same request;
* ``retryable`` errors (429, 5xx, timeouts, connection errors) get the retry budget, on another
  deployment without sleeping when one is available, else on the same ones after a backoff;
* 401/403/404 from an upstream (``cools_down`` but not ``retryable``) mean that one deployment is
  misconfigured: they get the retry budget too, but only on *other* deployments (the executor never
  sleeps to retry them on the same one).

Precedence of the retry budget: the request's ``num_retries``, then ``retry_policy`` for the error's
class, then the deployments' ``num_retries``, then ``router_settings.num_retries``.

Fallback targets are read from the *requested* group's lists, chosen by the last error: context-window
errors use ``context_window_fallbacks``, content-policy errors ``content_policy_fallbacks``, other
deployment-side errors ``fallbacks`` (else ``default_fallbacks``). A group already tried is skipped, so a
chain never loops, and at most ``max_fallbacks`` are taken.
"""

from __future__ import annotations

from collections.abc import Collection

from routerd.config.table import RetryPolicy, RouterPolicy
from routerd.errors import ContentPolicyViolationError, ContextWindowExceededError, OpenAIError
from routerd.routing.health import error_kind
from routerd.routing.options import RequestOptions

__all__ = [
    "CONTENT_POLICY",
    "CONTEXT_WINDOW",
    "DEFAULT",
    "ERROR",
    "fallback_reason",
    "next_fallback",
    "retries_allowed",
]

# FallbackTaken.reason values
ERROR = "error"
CONTEXT_WINDOW = "context_window"
CONTENT_POLICY = "content_policy"
DEFAULT = "default"


def retries_allowed(
    exc: OpenAIError, budget: int, retry_policy: RetryPolicy, request_retries: int | None
) -> int:
    """Retries a group may spend on errors like ``exc``; ``budget`` is the group's num_retries."""
    if not exc.retryable and not exc.cools_down:
        return 0
    if request_retries is not None:
        return request_retries
    explicit: int | None = getattr(retry_policy, error_kind(exc).value)
    return explicit if explicit is not None else budget


def fallback_reason(exc: OpenAIError) -> str | None:
    """Which fallback list an error moves to; None when no other group would do better."""
    if isinstance(exc, ContextWindowExceededError):
        return CONTEXT_WINDOW
    if isinstance(exc, ContentPolicyViolationError):
        return CONTENT_POLICY
    if exc.retryable or exc.cools_down:
        return ERROR
    return None


def fallback_targets(
    policy: RouterPolicy, options: RequestOptions, root: str, reason: str
) -> tuple[tuple[str, str], ...]:
    """Ordered ``(group, reason)`` targets for an error of ``reason`` on a request for ``root``."""
    if reason == CONTEXT_WINDOW:
        names = options.context_window_fallbacks
        if names is None:
            names = policy.context_window_fallbacks.get(root, ())
        return tuple((name, CONTEXT_WINDOW) for name in names)
    if reason == CONTENT_POLICY:
        names = options.content_policy_fallbacks
        if names is None:
            names = policy.content_policy_fallbacks.get(root, ())
        return tuple((name, CONTENT_POLICY) for name in names)
    names = options.fallbacks if options.fallbacks is not None else policy.fallbacks.get(root)
    if names is not None:
        return tuple((name, ERROR) for name in names)
    return tuple((name, DEFAULT) for name in policy.default_fallbacks)


def next_fallback(
    policy: RouterPolicy,
    options: RequestOptions,
    root: str,
    reason: str | None,
    tried: Collection[str],
    taken: int,
) -> tuple[str, str] | None:
    """The next ``(group, reason)`` to try, or None: fallbacks disabled, exhausted, or none apply."""
    if reason is None or options.disable_fallbacks or taken >= policy.max_fallbacks:
        return None
    for name, why in fallback_targets(policy, options, root, reason):
        if name not in tried:
            return name, why
    return None
