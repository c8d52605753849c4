"""Guardrails at run time: which ones a request runs, what each decides, and how a decision is applied.

A guardrail answers one question about a list of texts -- allow, mask (here are the new texts) or
block (and why, never quoting the matched content) -- through :meth:`Guardrail.check`. The content
filter decides locally; the webhook and moderation types ask a service (their I/O is injected, so
their decisions are tested against loopback fakes). Applying a decision to a request or an answer body
is :func:`apply_request` / :func:`apply_answer`; streams go through :class:`StreamGuard`.

Modes, as in LiteLLM's config: ``pre_call`` checks the request before routing (a block is a 400 that
is never retried or failed over; a mask rewrites what goes upstream), ``post_call`` checks a complete
answer, ``during_call`` checks a streamed answer as it arrives (and, on a call that is not streamed,
the answer like ``post_call``), ``logging_only`` masks what routerd logs and changes nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from routerd.errors import BadRequestError, OpenAIError
from routerd.guardrails.content_filter import ContentFilter, StreamScanner
from routerd.guardrails.modes import Mode
from routerd.guardrails.texts import Slot, answer_slots, request_slots

__all__ = [
    "ContentFilterGuardrail",
    "Guardrail",
    "GuardrailBlockedError",
    "GuardrailRun",
    "GuardrailUnavailableError",
    "Mode",
    "Verdict",
    "apply_answer",
    "apply_request",
]


ALLOW = "allow"
MASK = "mask"
BLOCK = "block"
#: A guardrail service that could not answer, declared fail-closed: the call fails with a 503.
UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guardrail's decision on a list of texts. ``texts`` (for a mask) has one entry per input
    text; ``reason`` is safe to show the client and to log (rule names, never matched content)."""

    action: str
    reason: str = ""
    texts: tuple[str, ...] | None = None


#: The verdict of a check that found nothing (frozen, so one is shared).
_ALLOWED = Verdict(ALLOW)


@dataclass(slots=True)
class GuardrailRun:
    """What one guardrail did to one call, for metrics and the request log."""

    guardrail: str
    mode: str
    action: str
    seconds: float
    reason: str = ""


class GuardrailBlockedError(BadRequestError):
    """A guardrail blocked the request or the answer: 400, never retried, never failed over."""

    error_type = "guardrail_violation"
    default_code = "guardrail_blocked"

    def __init__(self, guardrail: str, reason: str, *, stage: str) -> None:
        what = "request" if stage == "request" else "answer"
        self.guardrail = guardrail  # before OpenAIError's constructor, which renders the body
        self.reason = reason
        super().__init__(f"The {what} was blocked by guardrail {guardrail!r}: {reason}", param="guardrails")
        self.runs: list[GuardrailRun] = []
        # who was refused (key_alias, team, end_user), set by the gate for the refusal's log line
        self.caller: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["guardrail"] = self.guardrail
        return body


class GuardrailUnavailableError(OpenAIError):
    """A fail-closed guardrail's service did not answer in time (or answered nonsense): 503."""

    status_code = 503
    default_code = "guardrail_unavailable"

    def __init__(self, guardrail: str, reason: str) -> None:
        super().__init__(f"Guardrail {guardrail!r} could not check the call ({reason}); it is fail-closed")
        self.guardrail = guardrail
        self.reason = reason
        self.runs: list[GuardrailRun] = []
        self.caller: dict[str, str] = {}  # as GuardrailBlockedError.caller


class Guardrail(Protocol):
    """A configured guardrail."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def modes(self) -> frozenset[Mode]: ...

    @property
    def default_on(self) -> bool: ...

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Verdict:
        """Decide on ``texts`` (``stage`` is ``request`` or ``response``)."""
        ...


@dataclass(frozen=True, slots=True)
class ContentFilterGuardrail:
    """``litellm_content_filter``: local patterns, keywords and categories."""

    name: str
    content_filter: ContentFilter
    modes: frozenset[Mode]
    default_on: bool = False
    stream_window: int = 256
    kind: ClassVar[str] = "litellm_content_filter"

    async def check(self, texts: Sequence[str], *, stage: str, context: Mapping[str, Any]) -> Verdict:
        return self.decide(texts)

    def decide(self, texts: Sequence[str]) -> Verdict:
        """The synchronous decision (the content filter does no I/O)."""
        if len(texts) == 1:  # most calls: one message, one answer
            result = self.content_filter.scan(texts[0])
            if result.blocked is not None:
                return Verdict(BLOCK, _reason([result.blocked.rule]))
            if not result.masked:
                return _ALLOWED
            return Verdict(MASK, _reason((f.rule for f in result.masked), verb="masked"), (result.text,))
        new_texts: list[str] | None = None
        rules: list[str] = []
        for index, text in enumerate(texts):
            result = self.content_filter.scan(text)
            if result.blocked is not None:
                return Verdict(BLOCK, _reason([result.blocked.rule]))
            if result.masked:
                if new_texts is None:
                    new_texts = list(texts)
                new_texts[index] = result.text
                rules.extend(f.rule for f in result.masked)
        if new_texts is None:
            return _ALLOWED
        return Verdict(MASK, _reason(rules, verb="masked"), tuple(new_texts))


def _reason(rules: Iterable[str], verb: str = "detected") -> str:
    names = sorted(set(rules))
    return f"{', '.join(names)} {verb}"


Clock = Callable[[], float]

# the modes' values, looked up once (an enum member's .value is a Python-level property)
_PRE_CALL = Mode.PRE_CALL.value
_POST_CALL = Mode.POST_CALL.value
_DURING_CALL = Mode.DURING_CALL.value


async def _apply(
    guardrails: Sequence[Guardrail],
    slots: list[Slot],
    stage: str,
    modes: Sequence[str],
    context: Mapping[str, Any],
    clock: Clock,
) -> list[GuardrailRun]:
    """Run ``guardrails`` (the n-th in mode ``modes[n]``) in order over the texts of ``slots``; a mask
    rewrites the slots and the next guardrail sees the masked texts. The texts are read once, not once
    per guardrail, and a content filter (no I/O) is asked directly, without a coroutine."""
    runs: list[GuardrailRun] = []
    texts = [slot.text for slot in slots]
    for guardrail, mode in zip(guardrails, modes, strict=True):
        started = clock()
        if type(guardrail) is ContentFilterGuardrail:
            verdict = guardrail.decide(texts)
        else:
            verdict = await guardrail.check(texts, stage=stage, context=context)
        run = GuardrailRun(guardrail.name, mode, verdict.action, clock() - started, verdict.reason)
        action = verdict.action
        if action == ALLOW:
            runs.append(run)
            continue
        if action == BLOCK:
            error = GuardrailBlockedError(guardrail.name, verdict.reason, stage=stage)
            error.runs = [*runs, run]
            raise error
        if action == UNAVAILABLE:
            unavailable = GuardrailUnavailableError(guardrail.name, verdict.reason)
            unavailable.runs = [*runs, run]
            raise unavailable
        if action == MASK and verdict.texts is not None:
            if len(verdict.texts) != len(slots):
                raise ValueError(
                    f"guardrail {guardrail.name!r} returned {len(verdict.texts)} texts for {len(slots)}"
                )
            for slot, old, text in zip(slots, texts, verdict.texts, strict=True):
                if old != text:
                    slot.replace(text)
            texts = list(verdict.texts)
        runs.append(run)
    return runs


async def apply_request(
    guardrails: Sequence[Guardrail],
    endpoint: str,
    body: MutableMapping[str, Any],
    context: Mapping[str, Any],
    clock: Clock = time.perf_counter,
) -> list[GuardrailRun]:
    """Run the ``pre_call`` guardrails over the request's texts, in order; masks rewrite ``body`` in
    place (the next guardrail sees the masked text). Raises :class:`GuardrailBlockedError`."""
    if not guardrails:
        return []
    slots = request_slots(endpoint, body)
    if not slots:
        return []
    return await _apply(guardrails, slots, "request", [_PRE_CALL] * len(guardrails), context, clock)


async def apply_answer(
    guardrails: Sequence[Guardrail],
    endpoint: str,
    body: MutableMapping[str, Any],
    context: Mapping[str, Any],
    clock: Clock = time.perf_counter,
) -> list[GuardrailRun]:
    """Run the ``post_call`` (and, for a call that was not streamed, ``during_call``) guardrails over a
    complete answer; masks rewrite ``body`` in place. Raises :class:`GuardrailBlockedError`."""
    if not guardrails:
        return []
    slots = answer_slots(endpoint, body)
    if not slots:
        return []
    modes = [_POST_CALL if Mode.POST_CALL in g.modes else _DURING_CALL for g in guardrails]
    return await _apply(guardrails, slots, "response", modes, context, clock)


class Selectable(Protocol):
    """What :func:`select` needs of a guardrail."""

    @property
    def modes(self) -> frozenset[Mode]: ...

    @property
    def default_on(self) -> bool: ...


G = TypeVar("G", bound=Selectable)


def select(
    guardrails: Mapping[str, G],
    mode: Mode,
    requested: Iterable[str] = (),
    scoped: Iterable[str] = (),
) -> tuple[G, ...]:
    """The guardrails a call runs in ``mode``: every ``default_on`` one, those the request names
    (``guardrails: [...]``), and those of its key and team (``scoped``), in configuration order.
    Names must exist (the caller validates requested names first: see :func:`unknown_names`)."""
    wanted = set(requested) | set(scoped)
    return tuple(g for name, g in guardrails.items() if mode in g.modes and (g.default_on or name in wanted))


def unknown_names(guardrails: Mapping[str, Guardrail], requested: Iterable[str]) -> list[str]:
    """Names a request asked for that are not configured (the request is a 400, not silently unguarded)."""
    return [name for name in requested if name not in guardrails]


@dataclass(slots=True)
class StreamGuard:
    """The ``during_call`` content filters over a streamed chat or text completion, chunk by chunk.

    Each choice's text (and each tool call's arguments) gets its own :class:`StreamScanner` per
    guardrail; a chunk's text is replaced by what the scanners release (held-back text comes out in
    later chunks, the rest at the choice's finish). :meth:`chunk` returns None for a chunk that has
    nothing left to say, and raises :class:`GuardrailBlockedError` when a block fires; the relay then
    ends the stream with an in-band error event.
    """

    guardrails: Sequence[ContentFilterGuardrail]
    endpoint: str
    clock: Clock = time.perf_counter
    runs: dict[str, GuardrailRun] = field(default_factory=dict)
    _scanners: dict[tuple[int, str], list[StreamScanner]] = field(default_factory=dict)

    def chunk(self, chunk: MutableMapping[str, Any]) -> MutableMapping[str, Any] | None:
        choices = stream_choices(chunk, self.endpoint)
        if choices is None:
            return chunk
        for choice in choices:
            for key, slot in choice.slots:
                slot.replace(self._feed(choice.index, key, slot.text, choice.finished))
            if choice.finished:
                self._flush(choice.index, choice.choice, {key for key, _ in choice.slots})
        return chunk if says_something(chunk, choices, self.endpoint) else None

    def finish(self) -> str:
        """The end of the stream without a finish chunk: whatever is still held, for choice 0's text."""
        out = ""
        for (index, key), scanners in list(self._scanners.items()):
            if index == 0 and key == "text":
                out += self._drain(scanners)
        self._scanners.clear()
        return out

    def _feed(self, index: int, key: str, text: str, finished: bool) -> str:
        scanners = self._scanners.get((index, key))
        if scanners is None:
            scanners = [StreamScanner(g.content_filter, g.stream_window) for g in self.guardrails]
            self._scanners[(index, key)] = scanners
        for guardrail, scanner in zip(self.guardrails, scanners, strict=True):
            started = self.clock()
            text = scanner.feed(text)
            self._account(guardrail, scanner, started)
        return text

    def _flush(self, index: int, choice: MutableMapping[str, Any], present: set[str]) -> None:
        for (i, key), scanners in list(self._scanners.items()):
            if i != index:
                continue
            rest = self._drain(scanners)
            del self._scanners[(i, key)]
            if rest:
                append_held(choice, self.endpoint, key, rest, key in present)

    def _drain(self, scanners: list[StreamScanner]) -> str:
        # each scanner's remainder passes through the scanners after it
        text = ""
        for guardrail, scanner in zip(self.guardrails, scanners, strict=True):
            started = self.clock()
            text = scanner.feed(text) + scanner.finish() if text else scanner.finish()
            self._account(guardrail, scanner, started)
        return text

    def _account(self, guardrail: ContentFilterGuardrail, scanner: StreamScanner, started: float) -> None:
        run = self.runs.get(guardrail.name)
        if run is None:
            run = self.runs[guardrail.name] = GuardrailRun(guardrail.name, Mode.DURING_CALL.value, ALLOW, 0.0)
        run.seconds += self.clock() - started
        if scanner.blocked is not None:
            run.action = BLOCK
            run.reason = _reason([scanner.blocked.rule])
            error = GuardrailBlockedError(guardrail.name, run.reason, stage="response")
            error.runs = list(self.runs.values())
            raise error
        if scanner.masked and run.action == ALLOW:
            run.action = MASK
            run.reason = _reason([f.rule for f in scanner.masked], verb="masked")


@dataclass(slots=True)
class StreamChoice:
    """One choice of a streamed chunk, as the stream guards read it."""

    choice: MutableMapping[str, Any]
    index: int
    finished: bool  # it carries a finish reason: what is held for it must be released now
    slots: list[tuple[str, Slot]]  # its texts (stream_slots)


def stream_choices(chunk: Mapping[str, Any], endpoint: str) -> list[StreamChoice] | None:
    """The choices of a streamed chunk and their texts; None when the chunk has no choices list (it is
    handed on as it is)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return None
    return [
        StreamChoice(c, c.get("index", 0), c.get("finish_reason") is not None, stream_slots(c, endpoint))
        for c in choices
        if isinstance(c, MutableMapping)
    ]


def says_something(chunk: Mapping[str, Any], choices: Sequence[StreamChoice], endpoint: str) -> bool:
    """Whether a guarded chunk is still worth handing on: it carries usage or no choices at all, or a
    choice finishes, says more than its texts, or has text left after the guard held some back."""
    return (
        bool(chunk.get("usage"))
        or not chunk.get("choices")
        or any(
            c.finished or has_more_than_text(c.choice, endpoint) or any(slot.text for _, slot in c.slots)
            for c in choices
        )
    )


def stream_slots(choice: MutableMapping[str, Any], endpoint: str) -> list[tuple[str, Slot]]:
    """The texts of one streamed choice, each under its key: ``text`` for the answer's text (a chat
    delta's content, a text completion's text), ``toolN`` for the arguments of tool call N."""
    if endpoint == "completions":
        return [("text", Slot(choice, "text"))] if isinstance(choice.get("text"), str) else []
    delta = choice.get("delta")
    if not isinstance(delta, MutableMapping):
        return []
    slots: list[tuple[str, Slot]] = []
    if isinstance(delta.get("content"), str):
        slots.append(("text", Slot(delta, "content")))
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, MutableMapping) else None
            if isinstance(function, MutableMapping) and isinstance(function.get("arguments"), str):
                slots.append((f"tool{call.get('index', 0)}", Slot(function, "arguments")))
    return slots


def append_held(choice: MutableMapping[str, Any], endpoint: str, key: str, rest: str, present: bool) -> None:
    """Put held-back text released at a choice's finish into that choice's chunk: after the chunk's own
    text under ``key`` when it has one (``present``), else as that text."""
    if key == "text":
        target = choice if endpoint == "completions" else choice.setdefault("delta", {})
        field_name = "text" if endpoint == "completions" else "content"
        target[field_name] = (target.get(field_name) or "") + rest if present else rest
    # held-back tool-call arguments: appended to a tool call entry of this chunk
    else:
        delta = choice.setdefault("delta", {})
        calls = delta.setdefault("tool_calls", [])
        calls.append({"index": int(key[4:]), "function": {"arguments": rest}})


def has_more_than_text(choice: Mapping[str, Any], endpoint: str) -> bool:
    """Whether a streamed choice says something besides its texts (a role, a tool call's id or name,
    logprobs): a chunk that does is handed on even when all its text is held back."""
    if endpoint == "completions":
        return bool(choice.get("logprobs"))
    delta = choice.get("delta")
    if not isinstance(delta, Mapping):
        return False
    return any(k not in ("content", "tool_calls") and v is not None for k, v in delta.items()) or any(
        isinstance(c, Mapping) and (c.get("id") or (c.get("function") or {}).get("name"))
        for c in delta.get("tool_calls") or ()
    )


Poster = Callable[[str, Mapping[str, str], Mapping[str, Any], float], Awaitable[tuple[int, Any]]]
"""POSTs JSON to a URL with headers and a timeout; returns (status, parsed JSON body)."""
