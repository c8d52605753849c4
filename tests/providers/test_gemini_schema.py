"""What routerd sends to and reads from generateContent, checked against the documented schema.

Google publishes no Python types to validate against, so the request and response objects are
written down here from the API reference (ai.google.dev/api/generate-content, and Vertex AI's
``GenerateContentRequest``): the fields each object may carry, their JSON types and enums. The checker
refuses unknown fields, wrong types and values outside the enums; a ``Part`` must hold exactly one
data field. Translated requests, stored upstream payloads and the fake's answers all pass through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from routerd.providers import google_translate as translate
from routerd.testing.gemini_fake import GeminiReply, generate_responses

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "gemini"

# --- the schema, from the API reference ----------------------------------------------------------

STRING, NUMBER, INTEGER, BOOLEAN, ANY = "string", "number", "integer", "boolean", "any"


def obj(
    fields: dict[str, Any], *, required: tuple[str, ...] = (), one_of: frozenset[str] | None = None
) -> dict[str, Any]:
    return {"object": fields, "required": required, "one_of": one_of}


def arr(items: Any) -> dict[str, Any]:
    return {"array": items}


def enum(*values: str) -> dict[str, Any]:
    return {"enum": frozenset(values)}


MAP = {"map": True}  # a free-form JSON object (google.protobuf.Struct / map<string, string>)

SCHEMA_TYPE = enum("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
SCHEMA: dict[str, Any] = obj({})  # recursive; filled in below
SCHEMA["object"].update(
    {
        "type": SCHEMA_TYPE,
        "format": STRING,
        "title": STRING,
        "description": STRING,
        "nullable": BOOLEAN,
        "enum": arr(STRING),
        "maxItems": ANY,  # int64, serialized as a string or a number
        "minItems": ANY,
        "properties": {"map_of": SCHEMA},
        "required": arr(STRING),
        "minProperties": ANY,
        "maxProperties": ANY,
        "minLength": ANY,
        "maxLength": ANY,
        "pattern": STRING,
        "example": ANY,
        "anyOf": arr(SCHEMA),
        "propertyOrdering": arr(STRING),
        "default": ANY,
        "items": SCHEMA,
        "minimum": NUMBER,
        "maximum": NUMBER,
    }
)
BLOB = obj({"mimeType": STRING, "data": STRING}, required=("mimeType", "data"))
FILE_DATA = obj({"mimeType": STRING, "fileUri": STRING}, required=("fileUri",))
FUNCTION_CALL = obj({"id": STRING, "name": STRING, "args": MAP}, required=("name",))
FUNCTION_RESPONSE = obj({"id": STRING, "name": STRING, "response": MAP}, required=("name", "response"))
PART_DATA = {
    "text": STRING,
    "inlineData": BLOB,
    "fileData": FILE_DATA,
    "functionCall": FUNCTION_CALL,
    "functionResponse": FUNCTION_RESPONSE,
    "executableCode": MAP,
    "codeExecutionResult": MAP,
}
PART = obj(
    {**PART_DATA, "thought": BOOLEAN, "thoughtSignature": STRING, "videoMetadata": MAP},
    one_of=frozenset(PART_DATA),
)
CONTENT = obj({"role": enum("user", "model"), "parts": arr(PART)}, required=("parts",))
FUNCTION_DECLARATION = obj(
    {
        "name": STRING,
        "description": STRING,
        "parameters": SCHEMA,
        "parametersJsonSchema": ANY,
        "response": SCHEMA,
    },
    required=("name",),
)
TOOL = obj(
    {
        "functionDeclarations": arr(FUNCTION_DECLARATION),
        "googleSearch": MAP,
        "googleSearchRetrieval": MAP,
        "codeExecution": MAP,
        "urlContext": MAP,
    }
)
TOOL_CONFIG = obj(
    {
        "functionCallingConfig": obj(
            {
                "mode": enum("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"),
                "allowedFunctionNames": arr(STRING),
            }
        )
    }
)
THINKING_CONFIG = obj({"includeThoughts": BOOLEAN, "thinkingBudget": INTEGER, "thinkingLevel": STRING})
GENERATION_CONFIG = obj(
    {
        "stopSequences": arr(STRING),
        "responseMimeType": STRING,
        "responseSchema": SCHEMA,
        "responseJsonSchema": ANY,
        "responseModalities": arr(STRING),
        "candidateCount": INTEGER,
        "maxOutputTokens": INTEGER,
        "temperature": NUMBER,
        "topP": NUMBER,
        "topK": INTEGER,
        "seed": INTEGER,
        "presencePenalty": NUMBER,
        "frequencyPenalty": NUMBER,
        "responseLogprobs": BOOLEAN,
        "logprobs": INTEGER,
        "thinkingConfig": THINKING_CONFIG,
        "mediaResolution": STRING,
    }
)
SAFETY_SETTING = obj({"category": STRING, "threshold": STRING}, required=("category", "threshold"))
REQUEST = obj(
    {
        "contents": arr(CONTENT),
        "tools": arr(TOOL),
        "toolConfig": TOOL_CONFIG,
        "safetySettings": arr(SAFETY_SETTING),
        "systemInstruction": CONTENT,
        "generationConfig": GENERATION_CONFIG,
        "cachedContent": STRING,
        "labels": MAP,  # Vertex AI only
    },
    required=("contents",),
)

FINISH_REASON = enum(
    "FINISH_REASON_UNSPECIFIED",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
)
SAFETY_RATING = obj(
    {
        "category": STRING,
        "probability": STRING,
        "blocked": BOOLEAN,
        "probabilityScore": NUMBER,
        "severity": STRING,
    }
)
CANDIDATE = obj(
    {
        "content": CONTENT,
        "finishReason": FINISH_REASON,
        "finishMessage": STRING,
        "safetyRatings": arr(SAFETY_RATING),
        "citationMetadata": MAP,
        "tokenCount": INTEGER,
        "groundingMetadata": MAP,
        "avgLogprobs": NUMBER,
        "logprobsResult": MAP,
        "index": INTEGER,
    }
)
USAGE = obj(
    {
        "promptTokenCount": INTEGER,
        "cachedContentTokenCount": INTEGER,
        "candidatesTokenCount": INTEGER,
        "toolUsePromptTokenCount": INTEGER,
        "thoughtsTokenCount": INTEGER,
        "totalTokenCount": INTEGER,
        "promptTokensDetails": ANY,
        "cacheTokensDetails": ANY,
        "candidatesTokensDetails": ANY,
        "toolUsePromptTokensDetails": ANY,
    }
)
PROMPT_FEEDBACK = obj(
    {
        "blockReason": enum(
            "BLOCK_REASON_UNSPECIFIED", "SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"
        ),
        "safetyRatings": arr(SAFETY_RATING),
    }
)
RESPONSE = obj(
    {
        "candidates": arr(CANDIDATE),
        "promptFeedback": PROMPT_FEEDBACK,
        "usageMetadata": USAGE,
        "modelVersion": STRING,
        "responseId": STRING,
        "createTime": STRING,  # Vertex AI only
    }
)
ERROR = obj(
    {
        "error": obj(
            {"code": INTEGER, "message": STRING, "status": STRING, "details": arr(MAP)},
            required=("code", "message"),
        )
    }
)


def problems(value: Any, spec: Any, path: str = "$") -> list[str]:
    """Where ``value`` departs from ``spec`` (empty when it conforms)."""
    if spec == ANY:
        return []
    if isinstance(spec, str):
        ok = {
            STRING: isinstance(value, str),
            NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
            INTEGER: isinstance(value, int) and not isinstance(value, bool),
            BOOLEAN: isinstance(value, bool),
        }[spec]
        return [] if ok else [f"{path}: expected {spec}, got {value!r}"]
    if "enum" in spec:
        return [] if value in spec["enum"] else [f"{path}: {value!r} is not one of the documented values"]
    if "map" in spec:
        return [] if isinstance(value, dict) else [f"{path}: expected an object"]
    if "map_of" in spec:
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        return [p for key, item in value.items() for p in problems(item, spec["map_of"], f"{path}.{key}")]
    if "array" in spec:
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        return [p for i, item in enumerate(value) for p in problems(item, spec["array"], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: expected an object"]
    found = [f"{path}.{key}: unknown field" for key in value if key not in spec["object"]]
    found += [f"{path}.{key}: required" for key in spec["required"] if key not in value]
    if spec["one_of"] is not None and len(spec["one_of"] & set(value)) != 1:
        found.append(f"{path}: exactly one of {sorted(spec['one_of'])} is required")
    for key, item in value.items():
        if key in spec["object"]:
            found += problems(item, spec["object"][key], f"{path}.{key}")
    return found


# --- the checks ----------------------------------------------------------------------------------


def test_checker_catches_departures() -> None:
    # guards the guard: each of these must be reported
    bad_requests = [
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        {
            "contents": [
                {"role": "user", "parts": [{"text": "x", "inlineData": {"mimeType": "a", "data": "b"}}]}
            ]
        },
        {"contents": [], "generationConfig": {"max_tokens": 5}},
        {
            "contents": [],
            "tools": [
                {"functionDeclarations": [{"name": "f", "parameters": {"additionalProperties": False}}]}
            ],
        },
        {"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}},
        {"messages": []},
    ]
    for request in bad_requests:
        assert problems(request, REQUEST), request


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


REQUEST_BODIES = [
    load("chat_request_full.openai.json"),
    {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}, "top_k": 3},
    {
        "messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "hi"}],
        "tools": [{"googleSearch": {}}],
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "reasoning_effort": "none",
    },
]


@pytest.mark.parametrize("body", REQUEST_BODIES)
def test_translated_requests_follow_the_documented_schema(body: dict[str, Any]) -> None:
    policy = translate.param_policy("gemini")
    request = translate.to_gemini_request(translate.apply_param_policy(body, policy, drop_params=True))
    assert problems(request, REQUEST) == []


@pytest.mark.parametrize(
    "name",
    [
        "response_function_call.gemini.json",
        "response_prompt_blocked.gemini.json",
        "response_answer_blocked.gemini.json",
        "chat_request_full.gemini.json",
        "error_resource_exhausted.json",
        "error_token_limit.json",
        "error_api_key_invalid.json",
    ],
)
def test_stored_payloads_follow_the_documented_schema(name: str) -> None:
    spec = REQUEST if "request" in name else ERROR if name.startswith("error") else RESPONSE
    assert problems(load(name), spec) == []


def test_stored_stream_events_follow_the_documented_schema() -> None:
    for line in (FIXTURES / "stream_text_tool.sse").read_bytes().split(b"\r\n"):
        if line.startswith(b"data: "):
            assert problems(orjson.loads(line[6:]), RESPONSE) == []


@pytest.mark.parametrize(
    "reply",
    [
        GeminiReply(),
        GeminiReply.text("a fairly long answer split over several events"),
        GeminiReply.function_call("lookup", {"q": "x"}, text="looking", signature="c2ln"),
        GeminiReply(prompt_block="SAFETY"),
        GeminiReply.text("stopped", finish_reason="SAFETY"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_fake_answers_follow_the_documented_schema(reply: GeminiReply, stream: bool) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"candidateCount": 2},
    }
    answers = list(generate_responses(body, reply, "gemini-2.0-flash", stream=stream))
    assert answers
    for answer in answers:
        assert problems(answer, RESPONSE) == []
