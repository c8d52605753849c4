"""Between streams and whole answers: a completed stream becomes one answer to cache, and a cached
answer is replayed as a stream of the same chunk shape a live upstream sends.

Only a stream that finished normally is cached: :func:`answer_from_chunks` returns None unless every
choice reached a ``finish_reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["answer_from_chunks", "chunks_from_answer"]

JSON = dict[str, Any]


def answer_from_chunks(endpoint: str, chunks: Iterable[Mapping[str, Any]]) -> JSON | None:
    """The whole answer a sequence of chat or text-completion chunks adds up to, or None if incomplete."""
    head: Mapping[str, Any] | None = None
    usage: Any = None
    choices: dict[int, JSON] = {}
    for chunk in chunks:
        head = head or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            if endpoint == "completions":
                _add_text(
                    choices.setdefault(
                        index, {"index": index, "text": "", "logprobs": None, "finish_reason": None}
                    ),
                    choice,
                )
            else:
                _add_delta(
                    choices.setdefault(
                        index,
                        {
                            "index": index,
                            "message": {"role": "assistant", "content": None},
                            "finish_reason": None,
                        },
                    ),
                    choice,
                )
    if head is None or not choices or any(c["finish_reason"] is None for c in choices.values()):
        return None
    answer: JSON = {
        "id": head.get("id"),
        "object": "text_completion" if endpoint == "completions" else "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [_finish(choices[i]) for i in sorted(choices)],
    }
    if head.get("system_fingerprint") is not None:
        answer["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        answer["usage"] = usage
    return answer


def _add_text(into: JSON, choice: Mapping[str, Any]) -> None:
    into["text"] += choice.get("text") or ""
    if choice.get("finish_reason") is not None:
        into["finish_reason"] = choice["finish_reason"]


def _add_delta(into: JSON, choice: Mapping[str, Any]) -> None:
    delta = choice.get("delta") or {}
    message = into["message"]
    if delta.get("role"):
        message["role"] = delta["role"]
    for field in ("content", "refusal", "reasoning_content"):
        if delta.get(field):
            message[field] = (message.get(field) or "") + delta[field]
    for call in delta.get("tool_calls") or ():
        calls = message.setdefault("tool_calls", {})
        entry = calls.setdefault(
            int(call.get("index", 0)),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            entry["id"] = call["id"]
        if call.get("type"):
            entry["type"] = call["type"]
        function = call.get("function") or {}
        entry["function"]["name"] += function.get("name") or ""
        entry["function"]["arguments"] += function.get("arguments") or ""
    if choice.get("finish_reason") is not None:
        into["finish_reason"] = choice["finish_reason"]


def _finish(choice: JSON) -> JSON:
    message = choice.get("message")
    if message is not None and isinstance(message.get("tool_calls"), dict):
        message["tool_calls"] = [message["tool_calls"][i] for i in sorted(message["tool_calls"])]
    return choice


def chunks_from_answer(
    endpoint: str, answer: Mapping[str, Any], *, include_usage: bool = False
) -> list[JSON]:
    """Replay ``answer`` as chunks: per choice, an opening delta, its content (and tool calls), its
    finish; then the usage chunk when the client asked for one."""
    base = {
        k: answer[k] for k in ("id", "created", "model", "system_fingerprint") if answer.get(k) is not None
    }
    chunks: list[JSON] = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        if endpoint == "completions":
            chunks.append(
                {
                    **base,
                    "object": "text_completion",
                    "choices": [
                        {
                            "index": index,
                            "text": choice.get("text") or "",
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
            chunks.append(
                {
                    **base,
                    "object": "text_completion",
                    "choices": [
                        {
                            "index": index,
                            "text": "",
                            "logprobs": None,
                            "finish_reason": choice.get("finish_reason"),
                        }
                    ],
                }
            )
            continue
        message = choice.get("message") or {}
        opening: JSON = {"role": message.get("role") or "assistant", "content": ""}
        chunks.append(_chat_chunk(base, index, opening))
        for field in ("content", "refusal", "reasoning_content"):
            if message.get(field):
                chunks.append(_chat_chunk(base, index, {field: message[field]}))
        for position, call in enumerate(message.get("tool_calls") or ()):
            delta_call = {
                "index": position,
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": dict(call.get("function") or {}),
            }
            chunks.append(_chat_chunk(base, index, {"tool_calls": [delta_call]}))
        chunks.append(_chat_chunk(base, index, {}, choice.get("finish_reason") or "stop"))
    if include_usage and answer.get("usage") is not None:
        obj = "text_completion" if endpoint == "completions" else "chat.completion.chunk"
        chunks.append({**base, "object": obj, "choices": [], "usage": answer["usage"]})
    return chunks


def _chat_chunk(base: Mapping[str, Any], index: int, delta: JSON, finish: str | None = None) -> JSON:
    return {
        **base,
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
