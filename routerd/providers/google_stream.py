"""``streamGenerateContent?alt=sse`` responses -> OpenAI ``chat.completion.chunk`` dicts.

Pure and incremental, one streamed ``GenerateContentResponse`` at a time (see
:mod:`routerd.providers.google_translate` for requests, complete responses and errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.providers.errors import ErrorContext
from routerd.providers.google_translate import (
    BLOCKING_FINISH_REASONS,
    IdFactory,
    blocked_error,
    completion_id,
    error_from_body,
    finish_reason,
    new_call_id,
    openai_usage,
    parts_to_delta,
)

JSON = dict[str, Any]


class StreamTranslator:
    """``streamGenerateContent`` responses in, OpenAI chunks out; one instance per stream.

    Each response holds the next piece of every candidate. Function calls arrive whole, so each
    becomes one tool-call delta with its arguments complete. A safety block before anything was
    sent raises :class:`~routerd.errors.ContentPolicyViolationError` (the router can still fall
    back); after that it ends the choice with ``finish_reason: "content_filter"``, as OpenAI does.
    """

    def __init__(
        self,
        *,
        created: int,
        model: str,
        errors: ErrorContext,
        include_usage: bool = False,
        new_id: IdFactory = new_call_id,
    ) -> None:
        self.created = created
        self.model = model
        self.errors = errors
        self.include_usage = include_usage
        self.new_id = new_id
        self.id = ""
        self._usage: JSON = {}
        self._started: set[int] = set()  # candidates whose role chunk was sent
        self._tool_counts: dict[int, int] = {}
        self._finished: set[int] = set()
        self._candidate_count = 1

    @property
    def finished(self) -> bool:
        """Whether every candidate reported a finish reason."""
        return len(self._finished) >= self._candidate_count

    def feed(self, response: Mapping[str, Any]) -> list[JSON]:
        """The chunks for one streamed ``GenerateContentResponse``."""
        if isinstance(response.get("error"), Mapping):
            raise error_from_body(None, response, {}, self.errors)
        if not self.id:
            self.id = completion_id(response)
        self.model = response.get("modelVersion") or self.model
        if response.get("usageMetadata"):
            self._usage = dict(response["usageMetadata"])
        reason = (response.get("promptFeedback") or {}).get("blockReason")
        if reason:
            if not self._started:
                raise blocked_error(self.errors, f"the prompt was blocked ({reason})")
            open_candidates = sorted(self._started - self._finished)
            self._finished.update(open_candidates)
            return [self._chunk(i, {}, "content_filter") for i in open_candidates]
        candidates = response.get("candidates") or []
        self._candidate_count = max(self._candidate_count, len(candidates))
        chunks: list[JSON] = []
        for position, candidate in enumerate(candidates):
            chunks.extend(self._candidate_chunks(int(candidate.get("index", position)), candidate))
        return chunks

    def close(self) -> list[JSON]:
        """The closing chunks (usage) once the body ended; raises when the stream was cut short."""
        if not self.finished:
            raise self.errors.stream_cut(len(self._started))
        return [self._usage_chunk()] if self.include_usage else []

    def _candidate_chunks(self, index: int, candidate: Mapping[str, Any]) -> list[JSON]:
        reason = candidate.get("finishReason")
        if reason in BLOCKING_FINISH_REASONS and not self._started:
            raise blocked_error(self.errors, f"the answer was blocked ({reason})")
        tool_count = self._tool_counts.get(index, 0)
        delta = parts_to_delta((candidate.get("content") or {}).get("parts") or [], tool_count, self.new_id)
        if delta["content"] is None:
            del delta["content"]
        self._tool_counts[index] = tool_count + len(delta.get("tool_calls") or ())
        chunks = []
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", "content": delta.pop("content", ""), **delta}
            chunks.append(self._chunk(index, delta))
        elif delta:
            chunks.append(self._chunk(index, delta))
        if reason and index not in self._finished:
            self._finished.add(index)
            chunks.append(self._chunk(index, {}, finish_reason(reason, self._tool_counts[index] > 0)))
        return chunks

    def _chunk(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def _usage_chunk(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": openai_usage(self._usage),
        }
