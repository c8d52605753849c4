"""Where the texts are: every text a request carries and every text an answer returns, as slots that
can be read and rewritten in place (a MASK writes back into the same body).

Request texts (``pre_call``): chat message contents (plain strings and the ``text`` parts of multi-part
contents), tool results, the arguments of earlier assistant tool calls, text-completion prompts and
embedding inputs (token-id arrays are not text and are left alone); moderation inputs (strings and
``text`` parts), image generation and edit prompts, the text to speak, a transcription's prompt, a
rerank's query and documents (strings, or the ``text`` of document objects); a Responses API request's
instructions and input (a string, or its items' texts: see :func:`responses_request_slots`). Answer
texts (``post_call``): each choice's message content, refusal and tool-call arguments, a text
completion's text, a transcript's text (and its segments' texts), or a Responses API answer's output
texts and function-call arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

#: What a JSON object may be: a dict first, as parsed bodies hold (isinstance of an ABC alone costs a
#: Python-level call per check, several per request for every guardrail's texts).
_OBJECT = (dict, MutableMapping)

__all__ = [
    "Slot",
    "answer_slots",
    "media_request_slots",
    "request_slots",
    "responses_answer_slots",
    "responses_request_slots",
    "transcript_slots",
]

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
MODERATIONS = "moderations"
IMAGES = "images"
IMAGE_EDITS = "image_edits"
SPEECH = "speech"
TRANSCRIPTIONS = "transcriptions"
RERANK = "rerank"
#: OpenAI's Responses API, read natively (batch lines of ``/v1/responses``; the ``/v1/responses`` door
#: translates its requests to chat before the gate, so it never needs these)
RESPONSES = "responses"


@dataclass(frozen=True, slots=True)
class Slot:
    """One text inside a JSON body: ``container[key]`` is a string."""

    container: Any  # a dict or a list holding the text
    key: Any  # str for dicts, int for lists

    @property
    def text(self) -> str:
        value: str = self.container[self.key]
        return value

    def replace(self, text: str) -> None:
        self.container[self.key] = text


def _content_slots(message: MutableMapping[str, Any], key: str = "content") -> Iterator[Slot]:
    content = message.get(key)
    if isinstance(content, str):
        yield Slot(message, key)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, _OBJECT) and isinstance(part.get("text"), str):
                yield Slot(part, "text")


def _tool_call_slots(message: MutableMapping[str, Any]) -> Iterator[Slot]:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, _OBJECT) else None
            if isinstance(function, _OBJECT) and isinstance(function.get("arguments"), str):
                yield Slot(function, "arguments")
    function_call = message.get("function_call")
    if isinstance(function_call, _OBJECT) and isinstance(function_call.get("arguments"), str):
        yield Slot(function_call, "arguments")


def _message_slots(message: MutableMapping[str, Any], slots: list[Slot], *, refusal: bool = False) -> None:
    """Add a chat message's texts to ``slots``: its content, its refusal (an answer's), the arguments of
    its tool calls. A plain string content, the usual message, is taken without a generator; the tool
    call fields are only looked at when the message has one (most have neither)."""
    content = message.get("content")
    if isinstance(content, str):
        slots.append(Slot(message, "content"))
    elif content is not None:
        slots.extend(_content_slots(message))
    if refusal and isinstance(message.get("refusal"), str):
        slots.append(Slot(message, "refusal"))
    if "tool_calls" in message or "function_call" in message:
        slots.extend(_tool_call_slots(message))


def _strings(body: MutableMapping[str, Any], key: str) -> Iterator[Slot]:
    value = body.get(key)
    if isinstance(value, str):
        yield Slot(body, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield Slot(value, index)


def request_slots(endpoint: str, body: MutableMapping[str, Any]) -> list[Slot]:
    """The texts of a request body of ``endpoint`` (chat, completions or embeddings)."""
    if endpoint == CHAT:
        slots: list[Slot] = []
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, _OBJECT):
                    _message_slots(message, slots)
        return slots
    if endpoint == COMPLETIONS:
        return list(_strings(body, "prompt"))
    if endpoint == EMBEDDINGS:
        return list(_strings(body, "input"))
    if endpoint == RESPONSES:
        return responses_request_slots(body)
    return media_request_slots(endpoint, body)


def answer_slots(endpoint: str, body: MutableMapping[str, Any]) -> list[Slot]:
    """The texts of a non-streamed answer of ``endpoint``."""
    if endpoint == TRANSCRIPTIONS:
        return transcript_slots(body)
    if endpoint == RESPONSES:
        return responses_answer_slots(body)
    slots: list[Slot] = []
    choices = body.get("choices")
    if not isinstance(choices, list):
        return slots
    for choice in choices:
        if not isinstance(choice, _OBJECT):
            continue
        if endpoint == COMPLETIONS:
            if isinstance(choice.get("text"), str):
                slots.append(Slot(choice, "text"))
            continue
        message = choice.get("message")
        if isinstance(message, _OBJECT):
            _message_slots(message, slots, refusal=True)
    return slots


def _text_items(body: MutableMapping[str, Any], key: str) -> Iterator[Slot]:
    """Strings under ``key``, and the ``text`` of the objects listed there (multi-modal inputs, rerank
    documents given as ``{"text": ...}``)."""
    value = body.get(key)
    if isinstance(value, str):
        yield Slot(body, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield Slot(value, index)
            elif isinstance(item, _OBJECT) and isinstance(item.get("text"), str):
                yield Slot(item, "text")


#: the request fields holding text, per endpoint that is not chat, completions or embeddings
_MEDIA_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    MODERATIONS: ("input",),
    IMAGES: ("prompt",),
    IMAGE_EDITS: ("prompt",),
    SPEECH: ("input",),
    TRANSCRIPTIONS: ("prompt",),
    RERANK: ("query", "documents"),
}


def media_request_slots(endpoint: str, body: MutableMapping[str, Any]) -> list[Slot]:
    """The texts of a moderation, image, speech, transcription or rerank request (none for others)."""
    slots: list[Slot] = []
    for key in _MEDIA_TEXT_FIELDS.get(endpoint, ()):
        slots.extend(_text_items(body, key))
    return slots


def transcript_slots(body: MutableMapping[str, Any]) -> list[Slot]:
    """A transcript's text (JSON, or a text format routerd holds as ``text``) and its segments' texts."""
    slots: list[Slot] = []
    if isinstance(body.get("text"), str):
        slots.append(Slot(body, "text"))
    segments = body.get("segments")
    if isinstance(segments, list):
        for segment in segments:
            if isinstance(segment, _OBJECT) and isinstance(segment.get("text"), str):
                slots.append(Slot(segment, "text"))
    return slots


def _item_slots(item: MutableMapping[str, Any], slots: list[Slot]) -> None:
    """The texts of one Responses item: a message's content (a string, or its parts' ``text``), a
    function call's arguments, a function call output (a string, or its parts' ``text``)."""
    for key in ("content", "output"):
        if key in item:
            slots.extend(_content_slots(item, key))
    if isinstance(item.get("arguments"), str):
        slots.append(Slot(item, "arguments"))


def responses_request_slots(body: MutableMapping[str, Any]) -> list[Slot]:
    """The texts of a Responses API request: ``instructions``, and ``input`` (a string, or items)."""
    slots: list[Slot] = []
    if isinstance(body.get("instructions"), str):
        slots.append(Slot(body, "instructions"))
    value = body.get("input")
    if isinstance(value, str):
        slots.append(Slot(body, "input"))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, _OBJECT):
                _item_slots(item, slots)
    return slots


def responses_answer_slots(body: MutableMapping[str, Any]) -> list[Slot]:
    """The texts of a Responses API answer: its output messages' texts (and refusals), function calls'
    arguments."""
    slots: list[Slot] = []
    output = body.get("output")
    if not isinstance(output, list):
        return slots
    for item in output:
        if not isinstance(item, _OBJECT):
            continue
        _item_slots(item, slots)
        content = item.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, _OBJECT) and isinstance(part.get("refusal"), str):
                    slots.append(Slot(part, "refusal"))
    return slots
