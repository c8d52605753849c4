"""Token counts without a tokenizer download.

routerd runs offline, so it cannot fetch BPE files at run time. Counts here are *estimates*: about
four characters of English per token, plus OpenAI's documented per-message overhead for chat. They
are used where an estimate is good enough: the mock provider's usage, the context-window pre-check
(which keeps a safety margin), and the SDK's ``token_counter``. Usage reported by a real upstream
always wins over these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 3  # role and separators of each chat message
TOKENS_PER_REPLY = 3  # every reply is primed with <|start|>assistant<|message|>


# What str.split() splits ASCII text on: the words of ASCII text are at most one more than these.
_ASCII_SPACE = b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: ceil(chars / 4), and never fewer than the number of words."""
    if not text:
        return 0
    by_chars = math.ceil(len(text) / CHARS_PER_TOKEN)
    if text.isascii():
        # Counting separators costs two C passes and no string per word (this runs on every call of
        # a tpm-limited key): when there are too few of them for the words to outnumber by_chars,
        # the words need not be counted.
        raw = text.encode("ascii")
        if len(raw) - len(raw.translate(None, _ASCII_SPACE)) + 1 <= by_chars:
            return by_chars
    return max(by_chars, len(text.split()))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text, image_url, input_audio, ...
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def count_message_tokens(messages: Iterable[Mapping[str, Any]], tools: Any = None) -> int:
    """Estimated prompt tokens of a chat request."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += estimate_tokens(_content_text(message.get("content")))
        if message.get("name"):
            total += 1
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            total += estimate_tokens(str(function.get("name", ""))) + estimate_tokens(
                str(function.get("arguments", ""))
            )
    if tools:
        total += estimate_tokens(str(tools))
    return total


def count_prompt_tokens(prompt: Any) -> int:
    """Estimated tokens of a text-completion ``prompt`` (string, list of strings, or token ids)."""
    if prompt is None:
        return 0
    if isinstance(prompt, str):
        return estimate_tokens(prompt)
    if isinstance(prompt, list):
        if prompt and all(isinstance(x, int) for x in prompt):
            return len(prompt)  # already tokens
        return sum(count_prompt_tokens(item) for item in prompt)
    return estimate_tokens(str(prompt))


def count_request_tokens(endpoint: str, body: Mapping[str, Any]) -> int:
    """Estimated input tokens of an OpenAI-shaped request for ``endpoint``."""
    if endpoint == "chat":
        return count_message_tokens(body.get("messages") or (), body.get("tools"))
    if endpoint == "completions":
        return count_prompt_tokens(body.get("prompt"))
    return count_prompt_tokens(body.get("input"))
