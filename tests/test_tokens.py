"""The token estimate: ceil(chars / 4), never fewer than the words, whichever way it is counted."""

from __future__ import annotations

import math
import random

import pytest

from routerd.tokens import estimate_tokens


def _reference(text: str) -> int:
    return max(math.ceil(len(text) / 4), len(text.split())) if text else 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 2),
        ("a b c d e f g h", 8),  # short words outnumber chars / 4
        ("a\x1cb\x1dc\x1ed\x1ff", 5),  # str.split() also splits on the ASCII separators 0x1c-0x1f
        ("a\u00a0b\u3000c d", 4),  # non-ASCII spaces split words too
        ("x" * 400, 100),
    ],
)
def test_estimate_counts_chars_and_words(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected == _reference(text)


def test_estimate_matches_the_plain_formula_on_random_text() -> None:
    rng = random.Random(15)
    alphabet = "ab \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f.é\u00a0\u2003"
    for _ in range(3000):  # bounded: a fixed number of random strings
        text = "".join(
            rng.choice(alphabet[: rng.randint(3, len(alphabet))]) for _ in range(rng.randint(0, 60))
        )
        assert estimate_tokens(text) == _reference(text), repr(text)
