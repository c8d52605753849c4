"""``during_call`` guardrails that ask a service (a webhook, moderation), over a streamed answer.

A content filter can look at a stream chunk by chunk; a service costs a round trip per question, so
each streamed text is asked about in segments: the text is held back until ``stream_check_chars``
characters of it are waiting, then the segment up to the last whitespace (words are never cut) is
sent as ``texts: [segment]`` with ``input_type: response``, and only the service's answer decides what
the client gets:

- ``NONE`` (allow): the segment is released;
- ``GUARDRAIL_INTERVENED``: the replacement text is released in the segment's place (only that
  segment: text already released is never taken back);
- ``BLOCKED`` (moderation: flagged): :class:`~routerd.guardrails.engine.GuardrailBlockedError` is
  raised and the server ends the stream with an in-band error event, without ``[DONE]`` and without
  any of the held text;
- unavailable (timeout, refused, an answer that is not a decision): fail-open releases the segment,
  fail-closed raises :class:`~routerd.guardrails.engine.GuardrailUnavailableError` (an in-band
  ``guardrail_unavailable`` error event).

When a choice finishes, what is still held is checked before the finish chunk goes out.

Bounds. One check at a time per stream: a check is awaited where the chunk is handled, so while a
service thinks routerd does not read the upstream further (its bytes wait in the connection's
buffers: back-pressure, not a growing buffer). The text held per text of a choice is under
``stream_check_chars`` plus one chunk, or twice that for text without whitespace (then the segment is
cut without a word boundary). A stream asks each guardrail at most :data:`MAX_STREAM_CHECKS` times;
past that the rest of the stream cannot be checked, which counts as the service being unavailable
(fail-open: released unchecked; fail-closed: the stream ends with the unavailable error).

Each service sees each segment on its own, not the whole answer: a phrase split across two segments
is seen in two halves (segments end at whitespace, so never inside a word).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from routerd.guardrails.engine import (
    ALLOW,
    BLOCK,
    MASK,
    UNAVAILABLE,
    Clock,
    GuardrailBlockedError,
    GuardrailRun,
    GuardrailUnavailableError,
    Mode,
    Verdict,
    append_held,
    says_something,
    stream_choices,
)

__all__ = ["MAX_STREAM_CHECKS", "RemoteStreamGuard", "StreamChecked"]

#: Most checks one stream asks of one guardrail (all its choices and tool calls together). With the
#: default ``stream_check_chars`` of 512 that is about 128,000 characters of answer.
MAX_STREAM_CHECKS = 256

_DURING_CALL = Mode.DURING_CALL.value


class StreamChecked(Protocol):
    """What :class:`RemoteStreamGuard` needs of a guardrail that asks a service."""

    @property
    def name(self) -> str: ...

    @property
    def fail_open(self) -> bool: ...

    @property
    def stream_check_chars(self) -> int: ...

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Verdict: ...


@dataclass(slots=True)
class RemoteStreamGuard:
    """The ``during_call`` service guardrails over a streamed chat or text completion, chunk by chunk.

    Each text of each choice (its content, each tool call's arguments) is held per guardrail; the
    guardrails are chained in order (the second sees what the first released). :meth:`chunk` returns
    the chunk with each text replaced by what was released, or None for a chunk that has nothing left
    to say; it raises the guardrail's refusal (see the module docstring)."""

    guardrails: Sequence[StreamChecked]
    endpoint: str
    context: Mapping[str, Any]
    clock: Clock = time.perf_counter
    max_checks: int = MAX_STREAM_CHECKS
    runs: dict[str, GuardrailRun] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)  # checks asked, per guardrail
    _held: dict[tuple[int, str], list[str]] = field(default_factory=dict)

    async def chunk(self, chunk: MutableMapping[str, Any]) -> MutableMapping[str, Any] | None:
        choices = stream_choices(chunk, self.endpoint)
        if choices is None:
            return chunk
        for choice in choices:
            for key, slot in choice.slots:
                slot.replace(await self._feed(choice.index, key, slot.text))
            if choice.finished:
                await self._flush(choice.index, choice.choice, {key for key, _ in choice.slots})
        return chunk if says_something(chunk, choices, self.endpoint) else None

    async def _feed(self, index: int, key: str, text: str) -> str:
        held = self._held.get((index, key))
        if held is None:
            held = self._held[(index, key)] = [""] * len(self.guardrails)
        for position, guardrail in enumerate(self.guardrails):
            waiting = held[position] + text
            cut = _segment_end(waiting, guardrail.stream_check_chars)
            held[position] = waiting[cut:]
            text = await self._check(guardrail, waiting[:cut]) if cut else ""
        return text

    async def _flush(self, index: int, choice: MutableMapping[str, Any], present: set[str]) -> None:
        """A choice finished: check what its texts still hold and put it into its finish chunk."""
        for (i, key), held in list(self._held.items()):
            if i != index:
                continue
            del self._held[(i, key)]
            text = ""
            for position, guardrail in enumerate(self.guardrails):
                text = await self._check(guardrail, held[position] + text)
            if text:
                append_held(choice, self.endpoint, key, text, key in present)

    async def _check(self, guardrail: StreamChecked, segment: str) -> str:
        """Ask ``guardrail`` about one segment; what the client may get in its place."""
        if not segment or segment.isspace():  # nothing a service could object to: no round trip
            return segment
        name = guardrail.name
        run = self.runs.get(name)
        if run is None:
            run = self.runs[name] = GuardrailRun(name, _DURING_CALL, ALLOW, 0.0)
        asked = self.checks.get(name, 0)
        if asked >= self.max_checks:
            why = f"the stream needs more than {self.max_checks} checks"
            verdict = (
                Verdict(ALLOW, f"service unavailable ({why}); fail-open")
                if guardrail.fail_open
                else Verdict(UNAVAILABLE, why)
            )
        else:
            self.checks[name] = asked + 1
            started = self.clock()
            verdict = await guardrail.check([segment], stage="response", context=self.context)
            run.seconds += self.clock() - started
        return self._apply(guardrail, run, verdict, segment)

    def _apply(self, guardrail: StreamChecked, run: GuardrailRun, verdict: Verdict, segment: str) -> str:
        action = verdict.action
        if action == ALLOW:
            if verdict.reason and run.action == ALLOW:
                run.reason = verdict.reason  # a fail-open outage: the log line says so
            return segment
        if action == MASK and verdict.texts is not None and len(verdict.texts) == 1:
            run.action, run.reason = MASK, verdict.reason
            return verdict.texts[0]
        run.action, run.reason = action, verdict.reason
        error: GuardrailBlockedError | GuardrailUnavailableError
        if action == BLOCK:
            error = GuardrailBlockedError(guardrail.name, verdict.reason, stage="response")
        else:
            run.action = UNAVAILABLE
            error = GuardrailUnavailableError(guardrail.name, verdict.reason or "no decision")
        error.runs = list(self.runs.values())
        raise error


def _segment_end(text: str, size: int) -> int:
    """Where the next segment of held ``text`` ends: 0 while fewer than ``size`` characters wait; else
    after its last whitespace, or at ``2 * size`` when a run without whitespace is that long."""
    if len(text) < size:
        return 0
    for index in range(len(text) - 1, -1, -1):
        if text[index].isspace():
            return index + 1
    return len(text) if len(text) >= 2 * size else 0
