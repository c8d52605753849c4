"""The training-file checker: fine-tuning JSONL is checked line by line before it is uploaded.

A provider finds a malformed example only after the upload, when the job fails minutes later with a
message that rarely says where. routerd checks the file first and answers a 400 naming each bad line.

One example per line, every line in the same format. The formats:

* ``chat`` (the default for every provider): ``{"messages": [{"role", "content"}, ...]}`` with optional
  ``tools`` / ``functions`` / ``parallel_tool_calls``; roles system, developer, user, assistant, tool,
  function; at least one assistant message; ``weight`` (0 or 1) only on assistant messages.
* ``preference`` (OpenAI's DPO files): ``{"input": {"messages": [...]}, "preferred_output": [...],
  "non_preferred_output": [...]}``.
* ``completion`` (OpenAI's legacy babbage/davinci files): ``{"prompt": str, "completion": str}``.
* ``gemini`` (Vertex AI's native files): ``{"contents": [{"role": "user"|"model", "parts": [...]}]}``.

Which formats a provider accepts is the caller's choice (:data:`OPENAI_FORMATS`, :data:`VERTEX_FORMATS`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.errors import BadRequestError
from routerd.jsonkind import json_kind

CHAT = "chat"
PREFERENCE = "preference"
COMPLETION = "completion"
GEMINI = "gemini"

OPENAI_FORMATS = frozenset({CHAT, PREFERENCE, COMPLETION})
VERTEX_FORMATS = frozenset({CHAT, GEMINI})

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_GEMINI_ROLES = ("user", "model")
#: problems listed in one error before the checker stops reading
MAX_ISSUES = 10


@dataclass(frozen=True, slots=True)
class LineIssue:
    """One problem in the file; ``line`` is 1-based (0 for problems of the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class TrainingFile:
    """A checked file: its format and its examples with their line numbers."""

    format: str
    examples: tuple[tuple[int, dict[str, Any]], ...]


class InvalidTrainingFileError(BadRequestError):
    """A fine-tuning file with malformed lines; ``issues`` lists them (at most :data:`MAX_ISSUES`)."""

    default_code = "invalid_training_file"

    def __init__(self, issues: list[LineIssue], *, truncated: bool = False) -> None:
        self.issues = tuple(issues)
        listed = "; ".join(str(issue) for issue in issues)
        more = "; more problems not shown" if truncated else ""
        super().__init__(
            f"the fine-tuning file is not valid JSONL training data: {listed}{more}", param="file"
        )


class _Issues(Exception):
    """Raised inside the per-line checks to report the first problem of a line."""


def check_training_file(content: bytes, formats: Collection[str] = OPENAI_FORMATS) -> TrainingFile:
    """Parse and check ``content``; raise :class:`InvalidTrainingFileError` naming the bad lines."""
    issues: list[LineIssue] = []
    examples: list[tuple[int, dict[str, Any]]] = []
    file_format: str | None = None
    for number, raw in _lines(content):
        try:
            example = _parse(raw)
            line_format = _detect(example, formats)
            _CHECKS[line_format](example)
            if file_format is None:
                file_format = line_format
            elif line_format != file_format:
                raise _Issues(
                    f"a {line_format} example in a file of {file_format} examples; use one format per file"
                )
            examples.append((number, example))
        except _Issues as exc:
            issues.append(LineIssue(number, str(exc)))
            if len(issues) >= MAX_ISSUES:
                raise InvalidTrainingFileError(issues, truncated=True) from None
    if issues:
        raise InvalidTrainingFileError(issues)
    if file_format is None:
        raise InvalidTrainingFileError([LineIssue(0, "the file contains no training examples")])
    return TrainingFile(file_format, tuple(examples))


def _lines(content: bytes) -> Iterator[tuple[int, bytes]]:
    if content.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark some editors write
        content = content[3:]
    for index, raw in enumerate(content.split(b"\n"), start=1):
        line = raw.rstrip(b"\r")
        if line.strip():  # blank lines (the trailing newline, mostly) carry no example
            yield index, line


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Issues(f"not valid JSON at column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise _Issues(f"an example must be a JSON object, got {json_kind(value)}")
    return value


def _detect(example: dict[str, Any], formats: Collection[str]) -> str:
    if "messages" in example:
        found = CHAT
    elif "preferred_output" in example or "non_preferred_output" in example:
        found = PREFERENCE
    elif "prompt" in example or "completion" in example:
        found = COMPLETION
    elif "contents" in example:
        found = GEMINI
    else:
        raise _Issues('expected a chat example: {"messages": [{"role": ..., "content": ...}, ...]}')
    if found not in formats:
        accepted = ", ".join(sorted(formats))
        raise _Issues(f"{found} examples are not accepted here (accepted formats: {accepted})")
    return found


# --- chat ----------------------------------------------------------------------------------------


def _check_chat(example: dict[str, Any]) -> None:
    messages = _check_messages(example.get("messages"), "messages")
    if not any(message.get("role") == "assistant" for message in messages):
        raise _Issues("'messages' must contain at least one assistant message to learn from")
    _check_tool_definitions(example)


def _check_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _Issues(f"'{where}' must be a non-empty array of messages")
    for index, message in enumerate(messages):
        _check_message(message, f"{where}[{index}]")
    return messages


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise _Issues(f"'{where}' must be an object, got {json_kind(message)}")
    role = message.get("role")
    if role not in ROLES:
        raise _Issues(f"'{where}.role' must be one of {', '.join(ROLES)}, got {role!r}")
    content = message.get("content")
    calls = message.get("tool_calls") is not None or message.get("function_call") is not None
    if content is None:
        if not (role == "assistant" and calls):
            raise _Issues(
                f"'{where}.content' is required (only an assistant message with tool calls may omit it)"
            )
    elif isinstance(content, list):
        _check_parts(content, f"{where}.content")
    elif not isinstance(content, str):
        raise _Issues(
            f"'{where}.content' must be a string or an array of content parts, got {json_kind(content)}"
        )
    if "weight" in message:
        if role != "assistant":
            raise _Issues(f"'{where}.weight' is only allowed on assistant messages")
        if message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            raise _Issues(f"'{where}.weight' must be 0 or 1, got {message['weight']!r}")
    if role == "assistant" and message.get("tool_calls") is not None:
        _check_tool_calls(message["tool_calls"], f"{where}.tool_calls")
    if role == "function" and not isinstance(message.get("name"), str):
        raise _Issues(f"'{where}.name' is required on function messages")


def _check_parts(parts: list[Any], where: str) -> None:
    if not parts:
        raise _Issues(f"'{where}' must not be an empty array")
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _Issues(f"'{where}[{index}]' must be a content part object with a 'type'")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _Issues(f"'{where}[{index}].text' must be a string")


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise _Issues(f"'{where}' must be an array")
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Issues(f"'{where}[{index}].function.name' is required")
        if not isinstance(function.get("arguments"), str):
            raise _Issues(f"'{where}[{index}].function.arguments' must be a JSON string")


def _check_tool_definitions(example: dict[str, Any]) -> None:
    for key in ("tools", "functions"):
        value = example.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise _Issues(f"'{key}' must be an array of objects")
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        raise _Issues("'parallel_tool_calls' must be a boolean")


# --- the other formats ---------------------------------------------------------------------------


def _check_preference(example: dict[str, Any]) -> None:
    source = example.get("input")
    if not isinstance(source, dict):
        raise _Issues("'input' must be an object holding the prompt's 'messages'")
    _check_messages(source.get("messages"), "input.messages")
    for key in ("preferred_output", "non_preferred_output"):
        outputs = _check_messages(example.get(key), key)
        if any(message.get("role") != "assistant" for message in outputs):
            raise _Issues(f"'{key}' must hold assistant messages only")


def _check_completion(example: dict[str, Any]) -> None:
    for key in ("prompt", "completion"):
        if not isinstance(example.get(key), str):
            raise _Issues(f"'{key}' must be a string")


def _check_gemini(example: dict[str, Any]) -> None:
    contents = example.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _Issues("'contents' must be a non-empty array")
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict) or content.get("role") not in _GEMINI_ROLES:
            raise _Issues(f"'{where}.role' must be 'user' or 'model'")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            raise _Issues(f"'{where}.parts' must be a non-empty array of objects")
    if not any(content.get("role") == "model" for content in contents):
        raise _Issues("'contents' must contain at least one 'model' turn to learn from")


_CHECKS = {
    CHAT: _check_chat,
    PREFERENCE: _check_preference,
    COMPLETION: _check_completion,
    GEMINI: _check_gemini,
}
