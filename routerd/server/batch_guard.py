"""Guardrails over gateway batches: a batch's lines are checked as the calls they stand for.

**Input** (:func:`guard_input`, at creation, before anything goes upstream): every line's body runs the
``pre_call`` guardrails the same request on the line's endpoint would run -- the ``default_on`` ones,
the key's and its team's, and the line's own selection (``guardrails`` / ``metadata.guardrails``,
validated as on chat, then taken out of the line: it never goes upstream). A block refuses the whole
creation (400 ``guardrail_violation`` naming the line, the guardrail and its rule, never the content);
a mask rewrites the line in the deployment's copy of the file; a fail-closed service that cannot answer
is a 503 ``guardrail_unavailable``. Remote guardrails (webhook, moderation) make one check per line,
:data:`BATCH_GUARD_CONCURRENCY` lines at a time; the number of lines is bounded by
``ROUTERD_BATCH_MAX_LINES`` before this runs.

**Output** (:func:`guard_output`, when the client fetches the output file through routerd): each
answer runs the ``post_call`` (and ``during_call``: the answers are not streamed) guardrails of the
batch's key and team, the ``default_on`` ones and those any of its lines named. A mask rewrites the
answer's text in that line; a block replaces that line's ``response`` with an ``error`` (the other
lines are delivered); a fail-closed service that cannot answer fails the fetch with a 503 (the client
fetches again; nothing is delivered unchecked).

Both count their actions in ``routerd_guardrail_actions_total`` (a :class:`GuardrailsChecked` event)
and write one log line naming the guardrails and how often each acted (no content).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from routerd.access.table import KeyPolicy
from routerd.errors import BadRequestError, OpenAIError
from routerd.events import GuardrailsChecked
from routerd.guardrails.selection import take_selection
from routerd.server.batch_input import ENDPOINT_NAMES, BatchInput
from routerd.server.batch_registry import GatewayBatch
from routerd.server.state import AppState

log = logging.getLogger("routerd.batches")

JSON = dict[str, Any]

#: Lines checked at once: remote guardrails (webhook, moderation) make one request per line, and a
#: batch must not open thousands of them at a time (content filters do no I/O; they run line by line).
BATCH_GUARD_CONCURRENCY = 8


@dataclass(slots=True)
class _Outcome:
    """What the guardrails did over the lines: every run, and each refused line (by index)."""

    runs: list[Any] = field(default_factory=list)
    refusals: dict[int, OpenAIError] = field(default_factory=dict)
    stopped: bool = False


async def _each_line(
    count: int, check: Callable[[int], Awaitable[list[Any]]], *, stop_at_block: bool
) -> _Outcome:
    """Run ``check`` over lines ``0..count-1``, :data:`BATCH_GUARD_CONCURRENCY` at a time, taken in
    order. A refusal is recorded; an unavailable service (or, with ``stop_at_block``, any refusal)
    stops the lines not yet started. Lines are started in order, so every line before a refused one
    has been checked: the lowest refused index is the file's first refused line."""
    from routerd.guardrails.engine import GuardrailBlockedError, GuardrailUnavailableError

    outcome = _Outcome()
    lines = iter(range(count))

    async def worker() -> None:
        for index in lines:
            if outcome.stopped:
                return
            try:
                outcome.runs += await check(index)
            except (GuardrailBlockedError, GuardrailUnavailableError) as exc:
                outcome.runs += exc.runs
                outcome.refusals[index] = exc
                outcome.stopped = stop_at_block or isinstance(exc, GuardrailUnavailableError)
            # content filters never wait: let the daemon's other requests run between lines
            await asyncio.sleep(0)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(BATCH_GUARD_CONCURRENCY, count)):
                group.create_task(worker())
    except ExceptionGroup as failed:
        # the task group wraps what a worker raised; the caller's error handling (its status and
        # shape) needs the error itself, as a call's guardrail would raise it
        raise failed.exceptions[0] from None
    return outcome


def _report(state: AppState, outcome: _Outcome, fields: JSON) -> None:
    """Count the runs like a call's and write the batch's one log line: whose batch, the guardrails and
    how often each acted, the first refused line (never any content)."""
    if not outcome.runs:
        return
    state.events.emit(GuardrailsChecked(tuple(outcome.runs)))
    counts: dict[str, Counter[str]] = {}
    for run in outcome.runs:
        counts.setdefault(run.guardrail, Counter())[run.action] += 1
    fields["guardrails"] = {name: dict(sorted(c.items())) for name, c in counts.items()}
    if outcome.refusals:
        fields["refused_line"] = min(outcome.refusals) + 1
    log.info("batch guardrails", extra={"fields": {k: v for k, v in fields.items() if v is not None}})


def _scoped_context(policy: KeyPolicy | None, model: str, endpoint: str) -> JSON:
    team = policy.team if policy is not None else None
    return {
        "model": model,
        "key_alias": policy.alias if policy is not None else None,
        "team_id": team.team_id if team is not None else None,
        "endpoint": endpoint,
    }


# -- the input file -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardedInput:
    """The input as the deployment gets it (selections taken out, masks applied), and every guardrail
    name a line asked for (the output's guardrails include them)."""

    batch: BatchInput
    requested: tuple[str, ...]


def _line_error(number: int, exc: BadRequestError) -> BadRequestError:
    return BadRequestError(
        f"line {number}: {exc.message}", param="input_file_id", code=exc.code or "invalid_batch_file"
    )


def _take_selections(batch: BatchInput) -> tuple[list[JSON], list[list[str] | None]]:
    """Every line with its selection taken out of its body, and the selections (validated)."""
    lines: list[JSON] = []
    selections: list[list[str] | None] = []
    for number, line in enumerate(batch.lines, 1):
        try:
            body, names = take_selection(line["body"])
        except BadRequestError as exc:
            raise _line_error(number, exc) from None
        lines.append(line if body is line["body"] else {**line, "body": dict(body)})
        selections.append(names)
    return lines, selections


async def guard_input(
    state: AppState, policy: KeyPolicy | None, batch: BatchInput, endpoint: str, file_id: str = ""
) -> GuardedInput:
    """The input file checked by its ``pre_call`` guardrails (see the module docstring); raises the
    refusal: a 400 naming the line, or a 503 for a fail-closed service that did not answer."""
    lines, selections = _take_selections(batch)
    requested = tuple(sorted({name for names in selections if names for name in names}))
    gate = state.gate
    table = state.table
    if gate is None or not (table.guardrails or requested):
        return GuardedInput(BatchInput(batch.model, tuple(lines)), requested)
    kind = ENDPOINT_NAMES[endpoint]
    chosen: dict[tuple[str, ...], tuple[Any, ...]] = {}
    pre_calls: list[tuple[Any, ...]] = []
    for number, names in enumerate(selections, 1):
        key = tuple(names or ())
        if key not in chosen:
            try:
                chosen[key] = gate.choose(table, policy, key)[0]
            except BadRequestError as exc:
                raise _line_error(number, exc) from None
        pre_calls.append(chosen[key])
    context = _scoped_context(policy, batch.model, kind)
    outcome = await _check_lines(lines, pre_calls, kind, context)
    fields: JSON = {"stage": "input", "input_file_id": file_id or None, "endpoint": endpoint}
    fields.update(lines=len(lines), key_alias=context["key_alias"], team=context["team_id"])
    _report(state, outcome, fields)
    if outcome.refusals:
        index = min(outcome.refusals)
        raise _input_refusal(index + 1, outcome.refusals[index])
    return GuardedInput(BatchInput(batch.model, tuple(lines)), requested)


async def _check_lines(
    lines: Sequence[JSON], pre_calls: Sequence[tuple[Any, ...]], kind: str, context: JSON
) -> _Outcome:
    from routerd.guardrails.engine import apply_request

    async def check(index: int) -> list[Any]:
        body = lines[index]["body"]
        user = body.get("user")
        line_context = {**context, "user": user} if isinstance(user, str) and user else context
        return await apply_request(pre_calls[index], kind, body, line_context)

    return await _each_line(len(lines), check, stop_at_block=True)


def _input_refusal(number: int, exc: OpenAIError) -> OpenAIError:
    """The creation's refusal for line ``number``: the guardrail and its rule, never the content."""
    from routerd.guardrails.engine import GuardrailBlockedError, GuardrailUnavailableError

    error: OpenAIError
    if isinstance(exc, GuardrailBlockedError):
        error = GuardrailBlockedError(exc.guardrail, exc.reason, stage="request")
        error.message = (
            f"line {number} of the batch input file was blocked by guardrail {exc.guardrail!r}: "
            f"{exc.reason}; nothing was sent upstream"
        )
    else:
        assert isinstance(exc, GuardrailUnavailableError)
        error = GuardrailUnavailableError(exc.guardrail, exc.reason)
        error.message = (
            f"Guardrail {exc.guardrail!r} could not check line {number} of the batch input file "
            f"({exc.reason}; it is fail-closed); nothing was sent upstream"
        )
    error.args = (error.message,)
    error.param = "input_file_id"
    return error


# -- the output file ----------------------------------------------------------------------------------


def output_guardrails(state: AppState, batch: GatewayBatch) -> tuple[Any, ...]:
    """The guardrails a batch's answers run: post_call and during_call, of the batch's key and team,
    ``default_on``, or named by one of its lines (those the routing file still has), in file order."""
    gate = state.gate
    table = state.table
    if gate is None or not table.guardrails:
        return ()
    access = table.access
    policy = access.by_alias(batch.key_alias) if access is not None and batch.key_alias else None
    runtime = gate.guardrails(table)
    requested = [name for name in batch.guardrails if name in runtime]
    _, post, during = gate.choose(table, policy, requested)
    names = {g.name for g in (*post, *during)}
    return tuple(g for name, g in runtime.items() if name in names)


async def guard_output(state: AppState, batch: GatewayBatch, content: bytes) -> bytes:
    """A batch output file with its answers checked (see the module docstring); raises a 503 when a
    fail-closed service cannot answer."""
    guardrails = output_guardrails(state, batch)
    endpoint = batch.endpoint or str(batch.last.get("endpoint") or "")
    kind = ENDPOINT_NAMES.get(endpoint)
    if not guardrails or kind is None:
        return content
    raws = content.splitlines()
    parsed = [_answer_line(raw) for raw in raws]
    context = {"model": batch.group, "key_alias": batch.key_alias or None, "endpoint": kind}
    context["team_id"] = batch.team_id or None
    changed: set[int] = set()

    async def check(index: int) -> list[Any]:
        from routerd.guardrails.engine import MASK, apply_answer

        line = parsed[index]
        if line is None:
            return []
        runs = await apply_answer(guardrails, kind, line["response"]["body"], context)
        if any(run.action == MASK for run in runs):
            changed.add(index)
        return runs

    outcome = await _each_line(len(raws), check, stop_at_block=False)
    fields: JSON = {"stage": "output", "batch_id": batch.batch_id, "endpoint": endpoint, "lines": len(raws)}
    fields.update(key_alias=batch.key_alias or None, team=batch.team_id or None)
    _report(state, outcome, fields)
    if not (changed or outcome.refusals):
        return content  # as the deployment wrote it, byte for byte
    return _output_bytes(raws, parsed, changed, outcome)


def _answer_line(raw: bytes) -> JSON | None:
    """An output line whose answer the guardrails read (a successful response with a JSON body)."""
    try:
        line = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        return None
    response = line.get("response") if isinstance(line, dict) else None
    if not isinstance(response, dict) or not isinstance(response.get("body"), dict):
        return None
    return line


def _output_bytes(
    raws: list[bytes], parsed: list[JSON | None], changed: set[int], outcome: _Outcome
) -> bytes:
    from routerd.guardrails.engine import GuardrailUnavailableError

    for unavailable in outcome.refusals.values():
        if isinstance(unavailable, GuardrailUnavailableError):
            unavailable.message = (
                f"Guardrail {unavailable.guardrail!r} could not check the batch's answers "
                f"({unavailable.reason}; it is fail-closed); fetch the file again"
            )
            unavailable.args = (unavailable.message,)
            raise unavailable
    out: list[bytes] = []
    for index, raw in enumerate(raws):
        line = parsed[index]
        refusal = outcome.refusals.get(index)
        if line is not None and refusal is not None:
            # the answer is withheld: an error in the line's place, as OpenAI writes a failed request
            line = {**line, "response": None, "error": refusal.to_dict()["error"]}
            out.append(orjson.dumps(line))
        elif line is not None and index in changed:
            out.append(orjson.dumps(line))
        else:
            out.append(raw)
    return b"\n".join(out) + (b"\n" if out else b"")
