"""Builders of OpenAI's response objects, exactly as OpenAI shapes them.

Used wherever routerd synthesizes an answer instead of relaying one: the offline ``mock/`` provider,
the text-completion <-> chat conversions, and the fake upstreams in :mod:`routerd.testing`. Keeping
one definition means the fake, the mock and the conversions cannot drift apart from each other, and
the tests that parse these objects with the official ``openai`` types guard all of them at once.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

SYSTEM_FINGERPRINT = "fp_routerd"

_PIECES = re.compile(r"\s*\S+|\s+$")


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``chatcmpl-...``, ``cmpl-...``, ``call_...``."""
    sep = "_" if prefix == "call" else "-"
    return f"{prefix}{sep}{os.urandom(12).hex()}"  # cheaper than a uuid4 object, as unique


def split_pieces(text: str) -> list[str]:
    """``text`` cut into the word-sized pieces a model would stream (joining them gives ``text``)."""
    return _PIECES.findall(text) if text else []


def usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    """A ``usage`` object with OpenAI's detail fields."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call of an assistant message; ``arguments`` is the JSON text."""

    name: str
    arguments: str = "{}"
    id: str = ""

    def to_dict(self, call_id: str) -> JSON:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """What one choice says: text, tool calls, and why it stopped."""

    content: str | None = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"

    def ids(self) -> list[str]:
        """Tool call ids: the given ones, else fresh ``call_...`` ids."""
        return [call.id or new_id("call") for call in self.tool_calls]


def assistant_message(answer: Answer, call_ids: Sequence[str] = ()) -> JSON:
    message: JSON = {"role": "assistant", "content": answer.content, "refusal": None, "annotations": []}
    if answer.tool_calls:
        ids = list(call_ids) or answer.ids()
        message["tool_calls"] = [call.to_dict(ids[i]) for i, call in enumerate(answer.tool_calls)]
    return message


def chat_completion(
    *, completion_id: str, created: int, model: str, answers: Sequence[Answer], usage_: JSON | None
) -> JSON:
    """A ``chat.completion`` object with one choice per answer."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": assistant_message(answer),
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
            for index, answer in enumerate(answers)
        ],
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_chunk(
    *,
    completion_id: str,
    created: int,
    model: str,
    choices: list[JSON],
    include_usage: bool,
    usage_: JSON | None = None,
) -> JSON:
    """A ``chat.completion.chunk``; with ``include_usage`` every chunk carries ``usage`` (null but last)."""
    chunk: JSON = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = usage_
    return chunk


def chunk_choice(index: int, delta: JSON, finish_reason: str | None = None) -> JSON:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def chat_stream(
    *,
    completion_id: str,
    created: int,
    model: str,
    answers: Sequence[Answer],
    usage_: JSON,
    include_usage: bool,
) -> Iterator[JSON]:
    """The chunks OpenAI streams for ``answers``: per choice a role chunk, content pieces, tool call
    pieces and a finish chunk; then, with ``include_usage``, a final chunk with no choices and the
    usage."""

    def chunk(choices: list[JSON], usage_value: JSON | None = None) -> JSON:
        return chat_chunk(
            completion_id=completion_id,
            created=created,
            model=model,
            choices=choices,
            include_usage=include_usage,
            usage_=usage_value,
        )

    for index, answer in enumerate(answers):
        first_content = "" if answer.content is not None or not answer.tool_calls else None
        yield chunk([chunk_choice(index, {"role": "assistant", "content": first_content, "refusal": None})])
        for piece in split_pieces(answer.content or ""):
            yield chunk([chunk_choice(index, {"content": piece})])
        for call_index, (call, call_id) in enumerate(zip(answer.tool_calls, answer.ids(), strict=True)):
            head = {"index": call_index, "id": call_id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            yield chunk([chunk_choice(index, {"tool_calls": [head]})])
            for piece in _argument_pieces(call.arguments):
                delta = {"tool_calls": [{"index": call_index, "function": {"arguments": piece}}]}
                yield chunk([chunk_choice(index, delta)])
        yield chunk([chunk_choice(index, {}, answer.finish_reason)])
    if include_usage:
        yield chunk([], usage_)


def _argument_pieces(arguments: str, size: int = 16) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def text_choice(index: int, text: str, finish_reason: str | None, logprobs: JSON | None = None) -> JSON:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}


def text_completion(
    *, completion_id: str, created: int, model: str, choices: list[JSON], usage_: JSON | None
) -> JSON:
    """A ``text_completion`` object (``/v1/completions``)."""
    body: JSON = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def text_stream(
    *,
    completion_id: str,
    created: int,
    model: str,
    texts: Sequence[tuple[str, str]],
    usage_: JSON,
    include_usage: bool,
) -> Iterator[JSON]:
    """The chunks OpenAI streams for ``/v1/completions``; ``texts`` holds (text, finish_reason) per
    choice index. Every chunk is a ``text_completion`` object with one choice."""
    for index, (text, finish_reason) in enumerate(texts):
        for piece in split_pieces(text):
            yield text_completion(
                completion_id=completion_id,
                created=created,
                model=model,
                choices=[text_choice(index, piece, None)],
                usage_=None,
            )
        yield text_completion(
            completion_id=completion_id,
            created=created,
            model=model,
            choices=[text_choice(index, "", finish_reason)],
            usage_=None,
        )
    if include_usage:
        yield text_completion(
            completion_id=completion_id, created=created, model=model, choices=[], usage_=usage_
        )


def embedding_list(
    *, model: str, vectors: Sequence[Sequence[float]], prompt_tokens: int, encoding_format: str | None
) -> JSON:
    """An embeddings ``list``; ``encoding_format="base64"`` packs each vector as little-endian float32."""
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = list(vector)
        if encoding_format == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_object(model_id: str, created: int, owned_by: str = "routerd") -> JSON:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}
