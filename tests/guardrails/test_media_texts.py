"""The texts guardrails read on the endpoints besides chat, completions and embeddings."""

from __future__ import annotations

from typing import Any

import pytest

from routerd.guardrails.texts import answer_slots, request_slots


@pytest.mark.parametrize(
    ("endpoint", "body", "texts"),
    [
        ("moderations", {"input": "one"}, ["one"]),
        ("moderations", {"input": ["a", {"type": "text", "text": "b"}, {"type": "image_url"}]}, ["a", "b"]),
        ("images", {"prompt": "a cat", "n": 2}, ["a cat"]),
        ("image_edits", {"prompt": "add a hat", "image": ("i.png", b"x", "image/png")}, ["add a hat"]),
        ("speech", {"input": "say this", "voice": "alloy"}, ["say this"]),
        ("transcriptions", {"prompt": "names: Ada", "file": ("a.wav", b"x", "audio/wav")}, ["names: Ada"]),
        ("rerank", {"query": "q", "documents": ["d1", {"text": "d2"}, {"title": "t"}]}, ["q", "d1", "d2"]),
        ("unknown", {"input": "x"}, []),
    ],
)
def test_request_texts(endpoint: str, body: dict[str, Any], texts: list[str]) -> None:
    slots = request_slots(endpoint, body)
    assert [slot.text for slot in slots] == texts
    for slot in slots:
        slot.replace("[masked]")
    assert [slot.text for slot in request_slots(endpoint, body)] == ["[masked]"] * len(texts)


def test_transcript_texts() -> None:
    body: dict[str, Any] = {"text": "hello all", "segments": [{"text": "hello"}, {"text": " all"}, {"id": 3}]}
    assert [slot.text for slot in answer_slots("transcriptions", body)] == ["hello all", "hello", " all"]
    assert [slot.text for slot in answer_slots("transcriptions", {"content_type": "text/plain"})] == []
    assert answer_slots("speech", {"audio": b"ID3"}) == []
