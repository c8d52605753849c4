"""Gateway batches: ``/v1/batches`` keyed, routed to a deployment and metered like every call.

A batch created without ``custom_llm_provider`` is routerd's own:

1. the caller's key is identified (client keys may create batches, the master key too);
2. its input file -- uploaded through ``/v1/files`` (``purpose=batch``) to the ``files_settings``
   provider -- is read back (bounded: ``ROUTERD_BATCH_MAX_FILE_BYTES``, ``ROUTERD_BATCH_MAX_LINES``) and
   every line checked (:mod:`routerd.server.batch_input`); the key must be allowed the model the lines
   name (403), within its budgets (400 ``budget_exceeded``); every line runs the pre_call guardrails
   the call it stands for would run (:mod:`routerd.server.batch_guard`: a block refuses the batch, a
   mask rewrites the line, a line's guardrail selection is taken out);
3. the model group's first deployment that has the Batch API (OpenAI, Azure OpenAI) gets the file, its
   upstream model id written into every line, uploaded with its own credentials, and the batch created
   there (an upstream that is down or busy -- a retryable error -- passes to the group's next one);
4. the batch is recorded here for the key that created it: only that key (or the master key) sees it,
   and its output and error files are fetched from the deployment through ``/v1/files/{id}/content``
   (the output's answers checked by the batch's post_call guardrails on the way);
5. when the batch is seen completed (a ``GET /v1/batches/{id}``, or its output file fetched), the usage
   of its output lines is recorded against the key and team, at the deployment's batch prices when it has
   them (:func:`routerd.server.batch_input.batch_cost`).

The records live in a :mod:`routerd.server.batch_registry`: this process's memory, or Redis when the
router's state is shared there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from routerd.access.ledger import BudgetScope, SpendEvent
from routerd.access.periods import period_bounds
from routerd.access.table import KeyPolicy, check_budget, check_model
from routerd.config.table import Deployment, ProviderSettings, RoutingTable
from routerd.errors import BadRequestError, NotFoundError, OpenAIError, PermissionDeniedError
from routerd.finetune.providers import make_client
from routerd.finetune.serving import ManagementCall
from routerd.finetune.types import FileUpload, PageQuery, slice_after
from routerd.server.auth import require_key
from routerd.server.batch_guard import guard_input, guard_output
from routerd.server.batch_input import (
    BatchInput,
    batch_cost,
    output_usage,
    read_batch_input,
    rewrite_for,
)
from routerd.server.batch_registry import BatchRegistry, GatewayBatch, batch_registry
from routerd.server.frontdoor_serve import owner_of
from routerd.server.gate import identify
from routerd.server.state import AppState

log = logging.getLogger("routerd.batches")

JSON = dict[str, Any]

#: providers whose deployments run batches (OpenAI's Batch API; Azure serves it under /openai/batches)
BATCH_PROVIDERS = frozenset({"openai", "azure"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a files or batches endpoint: a client key's policy, or None for the master key (or an
    open gateway), and the owner digest records are kept under."""

    policy: KeyPolicy | None
    owner: str

    @property
    def admin(self) -> bool:
        return self.policy is None


def caller_of(state: AppState, headers: Mapping[str, str]) -> Caller:
    """The caller (401 for a missing or unknown key)."""
    if state.gate is None:
        require_key(headers, state.master_key)
        return Caller(None, owner_of(headers))
    return Caller(identify(state.table, state.master_key, headers, time.time()), owner_of(headers))


def require_admin(caller: Caller, what: str) -> None:
    """403 unless the master key calls: ``what`` is a provider-level operation."""
    if not caller.admin:
        raise PermissionDeniedError(
            f"{what} needs the master key; client keys use gateway batches (no custom_llm_provider)",
            code="master_key_required",
        )


def registry(state: AppState) -> BatchRegistry:
    """The daemon's registry: in Redis when the router's state is shared there, else in memory."""
    if state.batches is None:
        state.batches = batch_registry(shared=getattr(state.router, "state", None))
    found: BatchRegistry = state.batches
    return found


async def visible(state: AppState, batch_id: str, caller: Caller) -> GatewayBatch | None:
    """The batch, if ``caller`` may see it (its creator, or the master key)."""
    batch = await registry(state).get(batch_id)
    if batch is None or not (caller.admin or batch.owner == caller.owner):
        return None
    return batch


async def batch_of_file(state: AppState, file_id: str, caller: Caller) -> GatewayBatch | None:
    """The gateway batch whose output or error file ``file_id`` is, if ``caller`` may see it."""
    batch_id = await registry(state).batch_for_file(file_id)
    return await visible(state, batch_id, caller) if batch_id is not None else None


def _not_found(batch_id: str) -> NotFoundError:
    return NotFoundError(
        f"No batch found with id {batch_id[:128]!r}", param="batch_id", code="batch_not_found"
    )


# -- the deployment ----------------------------------------------------------------------------------


def batch_deployments(table: RoutingTable, model: str) -> tuple[str, list[Deployment]]:
    """(group name, the group's deployments with the Batch API, in file order); 404 / 400 naming the
    group's providers when there are none."""
    group = table.resolve(model)
    if group is None:
        raise NotFoundError(
            f"model {model[:256]!r} (named by the input file) is not served by this router",
            param="input_file_id",
            code="model_not_found",
        )
    found = [d for d in group.deployments if d.provider in BATCH_PROVIDERS and "*" not in d.model]
    if found:
        return group.name, found
    providers = sorted({d.provider for d in group.deployments})
    raise BadRequestError(
        f"model group {group.name!r} has no deployment that runs batches ({', '.join(providers)} "
        f"{'does' if len(providers) == 1 else 'do'} not support batches; openai and azure do)",
        param="input_file_id",
        code="batches_not_supported",
    )


def deployment_client(call: ManagementCall, deployment: Deployment) -> Any:
    """A files-and-batches client speaking to ``deployment`` with its own credentials."""
    settings = ProviderSettings(
        custom_llm_provider=deployment.provider,
        api_key=deployment.api_key,
        api_base=deployment.api_base,
        api_version=deployment.api_version,
        organization=deployment.organization,
    )
    return make_client(settings, call.http())


def _deployment(state: AppState, batch: GatewayBatch) -> Deployment:
    deployment = state.table.deployments.get(batch.deployment_id)
    if deployment is None:
        raise NotFoundError(
            f"batch {batch.batch_id!r} ran on deployment {batch.deployment_id!r}, which the routing file "
            "no longer has",
            param="batch_id",
            code="deployment_not_found",
        )
    return deployment


# -- the operations ----------------------------------------------------------------------------------


async def create(call: ManagementCall, caller: Caller, body: JSON, files_client: Any) -> JSON:
    """Create a gateway batch from a validated batch body (see the module docstring)."""
    state = call.state
    file_id = body["input_file_id"]
    owner = await registry(state).file_owner(file_id)
    if not caller.admin and owner != caller.owner:
        raise NotFoundError(
            f"No such File object: {file_id[:128]} (upload it with this key, purpose 'batch')",
            param="input_file_id",
            code="file_not_found",
        )
    content = (await files_client.file_content(file_id)).content
    settings = state.settings
    batch_input = read_batch_input(
        content,
        body["endpoint"],
        max_lines=settings.batch_max_lines,
        max_bytes=settings.batch_max_file_bytes,
    )
    table = state.table
    if caller.policy is not None:
        group = table.resolve(batch_input.model)
        check_model(
            caller.policy,
            batch_input.model,
            group.name if group else batch_input.model,
            table.groups,
            table.access.access_groups,
        )
        _check_budgets(state, caller.policy)
    group_name, deployments = batch_deployments(table, batch_input.model)
    # the lines as the calls they stand for: pre_call guardrails, selections taken out (batch_guard)
    guarded = await guard_input(state, caller.policy, batch_input, body["endpoint"], file_id)
    batch_input = guarded.batch
    for index, deployment in enumerate(deployments):
        try:
            created = await _create_on(call, deployment, batch_input, body)
            break
        except OpenAIError as exc:
            # an upstream that is down or busy: the group's next batch deployment, as a call fails over
            if not exc.retryable or index == len(deployments) - 1:
                raise
            log.warning(
                "batch creation failed over",
                extra={"fields": {"deployment": deployment.id, "error": type(exc).__name__}},
            )
    policy = caller.policy
    batch = GatewayBatch(
        batch_id=str(created["id"]),
        owner=caller.owner,
        key_alias=policy.alias if policy else "",
        team_id=(policy.team_id or "") if policy else "",
        group=group_name,
        deployment_id=deployment.id,
        input_file_id=file_id,
        endpoint=body["endpoint"],
        guardrails=list(guarded.requested),
    )
    return await _seen(state, batch, created)


async def _create_on(
    call: ManagementCall, deployment: Deployment, batch_input: BatchInput, body: JSON
) -> JSON:
    """Upload the input file (the deployment's model id in every line) and create the batch there."""
    client = deployment_client(call, deployment)
    upload = FileUpload(
        "batch_input.jsonl", rewrite_for(batch_input, deployment.model), "batch", "application/jsonl"
    )
    copy = await client.create_file(upload)
    created: JSON = await client.create_batch({**body, "input_file_id": copy["id"]})
    return created


def _check_budgets(state: AppState, policy: KeyPolicy) -> None:
    gate = state.gate
    if gate is None:
        return
    now = gate.clock()
    for scope, label, max_budget, duration in _budget_checks(policy):
        if max_budget is not None:
            start, _ = period_bounds(duration, now)
            check_budget(label, gate.ledger.spent(scope, start), max_budget, duration, now)


def _budget_checks(policy: KeyPolicy) -> list[tuple[str, str, float | None, Any]]:
    checks: list[tuple[str, str, float | None, Any]] = [
        (f"key:{policy.alias}", f"key {policy.alias!r}", policy.max_budget, policy.budget)
    ]
    if policy.team is not None:
        team = policy.team
        checks.append((f"team:{team.team_id}", f"team {team.team_id!r}", team.max_budget, team.budget))
    return checks


async def _seen(state: AppState, batch: GatewayBatch, upstream: JSON) -> JSON:
    """Record the batch as the deployment answered it; the client's answer (its own input file id)."""
    batch.last = {**upstream, "input_file_id": batch.input_file_id}
    await registry(state).put(batch)
    return dict(batch.last)


async def retrieve(call: ManagementCall, caller: Caller, batch_id: str) -> JSON:
    """The batch from its deployment; metered the first time it is seen completed."""
    state = call.state
    batch = await visible(state, batch_id, caller)
    if batch is None:
        raise _not_found(batch_id)
    client = deployment_client(call, _deployment(state, batch))
    answer = await _seen(state, batch, await client.retrieve_batch(batch_id))
    output = answer.get("output_file_id")
    if answer.get("status") == "completed" and isinstance(output, str) and output:
        await _meter_once(state, batch, lambda: client.file_content(output))
    return answer


async def _meter_once(state: AppState, batch: GatewayBatch, fetch: Any) -> Any:
    """Meter ``batch`` with the output file ``fetch()`` returns, unless it was metered already (the
    claim comes first: two replicas, or two polls, never count it twice); the fetched content, or None."""
    if not await registry(state).claim_metering(batch.batch_id):
        return None
    try:
        content = await fetch()
    except BaseException:
        await registry(state).release_metering(batch.batch_id)
        raise
    meter(state, batch, content.content)
    return content


async def cancel(call: ManagementCall, caller: Caller, batch_id: str) -> JSON:
    state = call.state
    batch = await visible(state, batch_id, caller)
    if batch is None:
        raise _not_found(batch_id)
    client = deployment_client(call, _deployment(state, batch))
    return await _seen(state, batch, await client.cancel_batch(batch_id))


async def page(call: ManagementCall, caller: Caller, query: PageQuery) -> JSON:
    """The caller's gateway batches as last seen, newest first (cursor paging as OpenAI's)."""
    listed = await registry(call.state).listed(None if caller.admin else caller.owner)
    return slice_after([dict(b.last) for b in listed], query, 20)


async def output_content(call: ManagementCall, batch: GatewayBatch, file_id: str) -> Any:
    """An output or error file of a gateway batch, from its deployment; an output file fetched before
    the batch was metered meters it (on the deployment's own answers), and its answers are checked by
    the batch's post_call guardrails before the client gets them (:func:`guard_output`)."""
    client = deployment_client(call, _deployment(call.state, batch))
    if file_id != batch.last.get("output_file_id"):
        return await client.file_content(file_id)
    content = await _meter_once(call.state, batch, lambda: client.file_content(file_id))
    if content is None:
        content = await client.file_content(file_id)
    checked = await guard_output(call.state, batch, content.content)
    return content if checked is content.content else replace(content, content=checked)


async def output_file(call: ManagementCall, batch: GatewayBatch, file_id: str) -> JSON:
    """The file object of a gateway batch's output or error file, from its deployment."""
    client = deployment_client(call, _deployment(call.state, batch))
    found: JSON = await client.retrieve_file(file_id)
    return found


def meter(state: AppState, batch: GatewayBatch, output: bytes) -> None:
    """Record a completed batch's usage against its key and team (nothing without the gate)."""
    gate = state.gate
    if gate is None:
        return
    prompt, completion = output_usage(output)
    deployment = state.table.deployments.get(batch.deployment_id)
    cost = batch_cost(deployment, prompt, completion) if deployment is not None else None
    now = gate.clock()
    scopes: list[BudgetScope] = []
    policy = state.table.access.by_alias(batch.key_alias) if state.table.access and batch.key_alias else None
    if policy is not None:
        for scope, _, _, duration in _budget_checks(policy):
            start, end = period_bounds(duration, now)
            scopes.append(BudgetScope(scope, start, end))
    gate.ledger.record(
        SpendEvent(
            at=now,
            key_alias=batch.key_alias,
            team_id=batch.team_id,
            end_user="",
            model_group=batch.group,
            usd=cost or 0.0,
            prompt_tokens=prompt,
            completion_tokens=completion,
            estimated=False,
            budgets=tuple(scopes),
        )
    )
    log.info(
        "batch metered",
        extra={
            "fields": {
                "batch_id": batch.batch_id,
                "key_alias": batch.key_alias or None,
                "team": batch.team_id or None,
                "group": batch.group,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost_usd": cost,
            }
        },
    )
