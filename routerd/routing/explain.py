"""Reports over a router's state: ``routerd explain`` and the deployments of ``GET /health``.

:func:`explain` tells why calls for a model go where they go, without calling any provider;
:func:`health_report` lists every deployment's health. Both read the router's table and health
records and change nothing (no record is created for a deployment that never took a call).

:func:`explain_group` builds a JSON-able report from the routing table and the current health: the
candidates in priority order with weight, tier, health, cooldown remaining and rpm/tpm window usage,
plus the distribution of the next pick over N simulated picks (seeded, so the same state always gives
the same numbers). Simulated picks change nothing: no call is counted, no probe is started.
:func:`format_explain` renders the report for a terminal.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from routerd.config.table import Deployment
from routerd.routing.health import BreakerState, DeploymentHealth, available_at, effective_state
from routerd.routing.options import DEFAULT_OPTIONS
from routerd.routing.plan import Blocked, Candidate, GroupPlan, pick
from routerd.routing.recovery import CONTENT_POLICY, CONTEXT_WINDOW, ERROR, fallback_targets

if TYPE_CHECKING:
    from routerd.routing.attempt import TableView
    from routerd.routing.executor import CallRouter

__all__ = ["explain", "explain_group", "format_explain", "health_entry", "health_report"]


def explain(router: CallRouter, model: str, *, samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Why calls for ``model`` go where they go on ``router``, without calling any provider.

    The candidates in order with weight, tier, health, cooldown remaining and window usage, and the
    distribution of ``samples`` simulated picks (seeded with ``seed``) under the current health.
    Raises :class:`~routerd.errors.NotFoundError` when the router does not serve ``model``.
    """
    from routerd.errors import NotFoundError

    view = router.view
    group = router.resolve(model, view)
    if group is None:
        raise NotFoundError(
            f"model '{model}' is not served by this router; GET /v1/models lists the available models",
            model=model,
            param="model",
            code="model_not_found",
        )
    records = [_peek(router, c.deployment.id) for c in group.plan.candidates]
    return explain_group(
        model=model, plan=group.plan, records=records, view=view, now=router.now(), samples=samples, seed=seed
    )


def health_report(router: CallRouter) -> dict[str, Any]:
    """Per-deployment health for ``GET /health``: state, cooldowns, usage. No secrets."""
    view = router.view
    now = router.now()
    entries = []
    counts = {"healthy": 0, "cooling_down": 0, "half_open": 0}
    seen: set[str] = set()
    deployments: list[Deployment] = []
    for group in view.table.groups.values():
        deployments.extend(group.deployments)
    for prepared in list(view.wildcards.values()):
        deployments.extend(c.deployment for c in prepared.plan.candidates)
    for dep in deployments:
        if dep.id in seen:
            continue
        seen.add(dep.id)
        record = _peek(router, dep.id)
        counts[effective_state(record.breaker, now).value] += 1
        entries.append(health_entry(dep, record, now))
    return {"table": view.table.content_hash, "counts": counts, "deployments": entries}


def _peek(router: CallRouter, deployment_id: str) -> DeploymentHealth:
    # Reports must not create records for deployments that never took a call.
    record = router.state.get(deployment_id)
    return record if record is not None else DeploymentHealth()


def explain_group(
    *,
    model: str,
    plan: GroupPlan,
    records: Sequence[DeploymentHealth],
    view: TableView,
    now: float,
    samples: int,
    seed: int,
) -> dict[str, Any]:
    """The explain report for a request of ``model`` served by ``plan``."""
    policy = view.policy
    samples = max(int(samples), 0)
    rng = random.Random(seed)
    picks = [0] * len(plan.candidates)
    blocked: Blocked | None = None
    for _ in range(samples):
        choice = pick(plan, records, view.strategy, now=now, rng=rng)
        if isinstance(choice, Blocked):
            blocked = choice
            break
        picks[choice.candidate.index] += 1
    best_tier = min(
        (c.tier for c, r in zip(plan.candidates, records, strict=True) if _available(c, r, now)),
        default=math.inf,
    )
    order = sorted(plan.candidates, key=lambda c: (c.tier, c.index))
    candidates = [
        _candidate_entry(c, records[c.index], now, best_tier, picks[c.index], samples) for c in order
    ]
    fallbacks = {
        reason: [name for name, _ in fallback_targets(policy, DEFAULT_OPTIONS, plan.name, reason)]
        for reason in (ERROR, CONTEXT_WINDOW, CONTENT_POLICY)
    }
    return {
        "model": model,
        "group": plan.name,
        "table": view.table.content_hash,
        "strategy": view.strategy.name,
        "num_retries": plan.num_retries if plan.num_retries is not None else policy.num_retries,
        "timeout": policy.timeout,
        "allowed_fails": policy.allowed_fails,
        "cooldown_time": policy.cooldown_time,
        "fallbacks": fallbacks,
        "max_fallbacks": policy.max_fallbacks,
        "samples": samples,
        "seed": seed,
        "blocked": _blocked_entry(blocked, now) if blocked is not None else None,
        "candidates": candidates,
    }


def _available(candidate: Candidate, record: DeploymentHealth, now: float) -> bool:
    if available_at(record.breaker, now) > now:
        return False
    if candidate.rpm is None and candidate.tpm is None:
        return True
    return record.usage.free_at(now, candidate.rpm, candidate.tpm, 0) <= now


def _candidate_entry(
    candidate: Candidate, record: DeploymentHealth, now: float, best_tier: float, picks: int, samples: int
) -> dict[str, Any]:
    dep = candidate.deployment
    entry = health_entry(dep, record, now)
    entry.update(
        weight=candidate.weight,
        tier=dep.order,
        cost_per_token=candidate.cost if math.isfinite(candidate.cost) else None,
        max_input_tokens=candidate.max_input_tokens,
        available=_available(candidate, record, now),
        note=_note(candidate, record, now, best_tier),
        picks=picks,
        share=picks / samples if samples else 0.0,
    )
    return entry


def _note(candidate: Candidate, record: DeploymentHealth, now: float, best_tier: float) -> str:
    breaker = record.breaker
    at = available_at(breaker, now)
    if at > now:
        if breaker.state is BreakerState.HALF_OPEN:
            return "half-open: its probe call is in flight"
        return f"cooling down after {breaker.reason or 'errors'}"
    if candidate.rpm is not None or candidate.tpm is not None:
        free = record.usage.free_at(now, candidate.rpm, candidate.tpm, 0)
        if free > now:
            return f"at its rpm/tpm limit for {free - now:.1f}s"
    if candidate.tier > best_tier:
        return "standby: a lower order tier is available"
    if effective_state(breaker, now) is BreakerState.HALF_OPEN:
        return "half-open: the next call probes it"
    return ""


def _blocked_entry(blocked: Blocked, now: float) -> dict[str, Any]:
    if blocked.rate_limited and not blocked.cooling:
        reason = "every deployment is at its rpm/tpm limit (clients get 429)"
    else:
        reason = "every deployment is cooling down (clients wait or get 503)"
    wait = blocked.until - now
    return {"reason": reason, "retry_after": wait if math.isfinite(wait) else None}


def health_entry(dep: Deployment, record: DeploymentHealth, now: float) -> dict[str, Any]:
    """One deployment's health as JSON. Never includes keys or URLs (they may embed credentials)."""
    breaker = record.breaker
    state = effective_state(breaker, now)
    requests, tokens = record.usage.used(now)
    return {
        "id": dep.id,
        "group": dep.group,
        "provider": dep.provider,
        "model": dep.model,
        "state": state.value,
        "cooldown_remaining": max(breaker.until - now, 0.0) if state is BreakerState.COOLING_DOWN else 0.0,
        "cooldown_reason": breaker.reason if state is not BreakerState.HEALTHY else None,
        "fails_in_window": breaker.failures_in_window,
        "in_flight": record.in_flight,
        "successes": record.successes,
        "failures": record.failures,
        "last_error": record.last_error or None,
        "latency_per_token": record.latency,
        "ttft": record.ttft,
        "rpm": {"used": requests, "limit": dep.rpm},
        "tpm": {"used": tokens, "limit": dep.tpm},
    }


# --- text rendering --------------------------------------------------------------------------------


def format_explain(report: dict[str, Any]) -> str:
    """A terminal rendering of :func:`explain_group`'s report."""
    lines = []
    head = f"model '{report['model']}'"
    if report["group"] != report["model"]:
        head += f" -> group '{report['group']}'"
    lines.append(
        f"{head}: strategy {report['strategy']}, {report['num_retries']} retries, "
        f"timeout {_num(report['timeout'])}s, table {str(report['table'])[:12]}"
    )
    chains = [f"{reason} -> {', '.join(names)}" for reason, names in report["fallbacks"].items() if names]
    lines.append("fallbacks: " + ("; ".join(chains) if chains else "none"))
    gate = report.get("gate")
    if gate:
        ran = [f"{mode}: {', '.join(names)}" for mode, names in gate["guardrails"].items() if names]
        lines.append("guardrails: " + ("; ".join(ran) if ran else "none by default"))
        cache = gate["cache"]
        lines.append(
            "cache: "
            + (
                "looked up (" + f"{cache['backend']}, ttl {_num(cache['ttl'])}s)"
                if cache["looked_up"]
                else f"not looked up ({cache['why']})"
            )
        )
    lines.append("")
    header = [
        "deployment",
        "provider",
        "model",
        "tier",
        "weight",
        "state",
        "cooldown",
        "in-flight",
        "rpm",
        "tpm",
        "picks",
    ]
    rows = [header]
    notes = []
    for c in report["candidates"]:
        rows.append(
            [
                c["id"],
                c["provider"],
                c["model"],
                "-" if c["tier"] is None else str(c["tier"]),
                _num(c["weight"]),
                c["state"],
                f"{c['cooldown_remaining']:.1f}s" if c["cooldown_remaining"] else "-",
                str(c["in_flight"]),
                _usage(c["rpm"]),
                _usage(c["tpm"]),
                f"{100.0 * c['share']:.1f}%",
            ]
        )
        if c["note"]:
            notes.append(f"  {c['id']}: {c['note']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    lines.append("")
    blocked = report["blocked"]
    if blocked is not None:
        retry = blocked["retry_after"]
        lines.append(
            f"no pick possible now: {blocked['reason']}" + (f", retry after {retry:.1f}s" if retry else "")
        )
    else:
        lines.append(
            f"picks: distribution of {report['samples']} simulated next picks (seed {report['seed']})"
        )
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:g}"


def _usage(window: dict[str, Any]) -> str:
    if window["limit"] is None:
        return str(window["used"]) if window["used"] else "-"
    return f"{window['used']}/{window['limit']}"
