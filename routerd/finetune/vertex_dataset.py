"""OpenAI chat training files rewritten in Vertex AI's (Gemini) supervised tuning format.

Vertex AI tunes Gemini models on ``{"systemInstruction": ..., "contents": [...], "tools": [...]}`` lines.
Users keep one training file in OpenAI's chat format for every provider: when a chat file is uploaded
with ``custom_llm_provider=vertex_ai``, routerd rewrites each line before storing it in GCS. Files
already in Gemini format are stored unchanged.

What has no Gemini equivalent is refused with the line number instead of being silently dropped:
``weight: 0`` (Gemini trains on every model turn) and non-text content parts (Gemini needs ``fileData``
URIs, not the URLs or base64 images OpenAI files carry).
"""

from __future__ import annotations

from typing import Any

import orjson

from routerd.finetune.jsonl import CHAT, GEMINI, InvalidTrainingFileError, LineIssue, TrainingFile

JSON = dict[str, Any]


class _Unconvertible(Exception):
    pass


def to_vertex_jsonl(checked: TrainingFile, original: bytes) -> bytes:
    """The bytes to store for Vertex: ``original`` when already Gemini, else every line rewritten."""
    if checked.format == GEMINI:
        return original
    if checked.format != CHAT:  # the checker only lets chat and gemini through for Vertex
        raise InvalidTrainingFileError([LineIssue(0, f"{checked.format} files cannot be tuned on Vertex AI")])
    lines: list[bytes] = []
    issues: list[LineIssue] = []
    for number, example in checked.examples:
        try:
            lines.append(orjson.dumps(chat_example_to_gemini(example)))
        except _Unconvertible as exc:
            issues.append(LineIssue(number, str(exc)))
    if issues:
        raise InvalidTrainingFileError(issues)
    return b"\n".join(lines) + b"\n"


def chat_example_to_gemini(example: JSON) -> JSON:
    """One checked chat example as a Gemini tuning example."""
    system: list[str] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, for the tool answers that follow
    for index, message in enumerate(example["messages"]):
        role = message["role"]
        where = f"messages[{index}]"
        if message.get("weight") == 0:
            raise _Unconvertible(
                f"'{where}.weight' is 0, but Vertex AI trains on every model turn; remove the message or the weight"
            )
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), where))
        elif role == "user":
            _append(contents, "user", [{"text": _text(message.get("content"), where)}])
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, where, call_names))
        else:  # tool / function answers go back to the model as functionResponse parts
            name = message.get("name") or call_names.get(str(message.get("tool_call_id")), "")
            if not name:
                raise _Unconvertible(
                    f"'{where}' answers a tool call routerd cannot find; set 'tool_call_id' or 'name'"
                )
            response = {"name": name, "response": _tool_result(message.get("content"), where)}
            _append(contents, "user", [{"functionResponse": response}])
    converted: JSON = {"contents": contents}
    if system:
        converted["systemInstruction"] = {"role": "system", "parts": [{"text": "\n\n".join(system)}]}
    declarations = _function_declarations(example)
    if declarations:
        converted["tools"] = [{"functionDeclarations": declarations}]
    return converted


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    # Gemini expects turns to alternate; consecutive messages of one side (parallel tool answers, a
    # user message split in two) become one turn with several parts.
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _model_parts(message: JSON, where: str, call_names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    if message.get("content") is not None:
        parts.append({"text": _text(message["content"], where)})
    calls = list(message.get("tool_calls") or [])
    if message.get("function_call") is not None:
        calls.append({"function": message["function_call"]})
    for call in calls:
        function = call["function"]
        try:
            args = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise _Unconvertible(f"'{where}' has tool call arguments that are not valid JSON") from None
        if call.get("id"):
            call_names[str(call["id"])] = function["name"]
        parts.append({"functionCall": {"name": function["name"], "args": args}})
    return parts


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if part.get("type") != "text":
                raise _Unconvertible(
                    f"'{where}.content' has a {part.get('type')!r} part; Vertex AI tuning files take text only "
                    "(upload a Gemini-format file with fileData parts for images)"
                )
            texts.append(part["text"])
        return "".join(texts)
    return ""


def _tool_result(content: Any, where: str) -> JSON:
    text = _text(content, where)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _function_declarations(example: JSON) -> list[JSON]:
    declarations: list[JSON] = []
    for tool in example.get("tools") or []:
        function = tool.get("function") if tool.get("type", "function") == "function" else None
        if isinstance(function, dict):
            declarations.append(_declaration(function))
    for function in example.get("functions") or []:
        declarations.append(_declaration(function))
    return declarations


def _declaration(function: JSON) -> JSON:
    declaration = {"name": function.get("name", "")}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parameters"] = function["parameters"]
    return declaration
