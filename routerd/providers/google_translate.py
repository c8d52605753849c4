"""Pure translation between OpenAI chat completions and Google's ``generateContent``.

The Gemini API (``gemini/``) and Vertex AI (``vertex_ai/``) share one request and response format;
only URLs and authentication differ. Everything here is free of I/O and tested on stored payloads:

* :func:`to_gemini_request`: an OpenAI chat body -> a ``GenerateContentRequest``.
* :func:`to_openai_completion`: a ``GenerateContentResponse`` -> an OpenAI ``chat.completion``.
* :class:`~routerd.providers.google_stream.StreamTranslator` (its own module): streamed responses
  -> OpenAI chunks.
* :func:`error_from_body`: Google's ``{"error": {"code", "message", "status"}}`` -> routerd errors.

Tool call ids: Gemini identifies calls by function name, so routerd mints OpenAI ids for them. Newer
models attach a ``thoughtSignature`` to function calls that must come back with the call on the next
turn; it travels inside the tool call id (``call_<id>__thought__<signature>``), so routerd stays
stateless and clients need not know about it.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from routerd.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    error_for_status,
)
from routerd.jsonkind import json_kind
from routerd.providers import shapes
from routerd.providers.base import ParamPolicy
from routerd.providers.client_input import client_object, client_objects
from routerd.providers.errors import ErrorContext, parse_retry_after, scrub
from routerd.providers.google_schema import to_gemini_schema
from routerd.providers.openai_parts import parse_data_url, parse_tool_arguments, stop_list

JSON = dict[str, Any]
IdFactory = Callable[[], str]

THOUGHT_SEPARATOR = "__thought__"

#: OpenAI parameters generateContent has no equivalent for.
UNSUPPORTED_PARAMS = frozenset(
    {
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "functions",
        "function_call",
        "audio",
        "modalities",
        "prediction",
        "service_tier",
        "web_search_options",
        "store",
        "parallel_tool_calls",
    }
)
_NEUTRAL_VALUES: Mapping[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "store": (False,),
    "parallel_tool_calls": (True,),  # Gemini may always call several functions at once
}
# Google-native request fields a client may send through the OpenAI API (either spelling).
_PASSTHROUGH = {
    "safetySettings": "safetySettings",
    "safety_settings": "safetySettings",
    "cachedContent": "cachedContent",
    "cached_content": "cachedContent",
    "labels": "labels",
}

# reasoning_effort -> thinkingBudget (tokens). "none" turns thinking off where the model allows it.
REASONING_BUDGETS: Mapping[str, int] = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576}

#: finish reasons that mean the answer was withheld by a policy: a content-policy error
BLOCKING_FINISH_REASONS = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"})
FINISH_REASONS: Mapping[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "OTHER": "stop",
}


def new_call_id() -> str:
    return shapes.new_id("call")


# --- request -------------------------------------------------------------------------------------


def param_policy(provider: str) -> ParamPolicy:
    return ParamPolicy(provider, UNSUPPORTED_PARAMS)


def apply_param_policy(body: JSON, policy: ParamPolicy, drop_params: bool, model: str | None = None) -> JSON:
    """``body`` without neutral values; unsupported parameters dropped or refused (400)."""
    cleaned = {k: v for k, v in body.items() if not (k in _NEUTRAL_VALUES and v in _NEUTRAL_VALUES[k])}
    return policy.apply(cleaned, drop_params, model)


def to_gemini_request(body: Mapping[str, Any]) -> JSON:
    """The ``GenerateContentRequest`` for an OpenAI chat request (after :func:`apply_param_policy`)."""
    system, contents = convert_messages(body.get("messages") or [])
    request: JSON = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = _tools(client_objects(body.get("tools"), "tools"))
    if tools:
        request["tools"] = tools
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            request["toolConfig"] = tool_config
    generation = generation_config(body)
    if generation:
        request["generationConfig"] = generation
    for name, google_name in _PASSTHROUGH.items():
        if body.get(name) is not None:
            request[google_name] = body[name]
    return request


def convert_messages(messages: list[Mapping[str, Any]]) -> tuple[list[JSON], list[JSON]]:
    """OpenAI messages -> (system instruction parts, contents).

    Roles become ``user`` / ``model``; tool results become ``functionResponse`` parts of a user
    turn, named after the call they answer. Consecutive turns of one role are merged.
    """
    system: list[JSON] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, for the tool results
    for index, message in enumerate(client_objects(messages, "messages")):
        role = message.get("role")
        where = f"messages[{index}]"
        if role in ("system", "developer"):
            system.extend(_user_parts(message.get("content"), where))
            continue
        if role == "user":
            google_role, parts = "user", _user_parts(message.get("content"), where)
        elif role == "assistant":
            google_role, parts = "model", _model_parts(message, where, call_names)
        elif role == "tool":
            google_role, parts = "user", [_function_response(message, where, call_names)]
        else:
            raise BadRequestError(f"unsupported message role {role!r}", param=where)
        if not parts:
            continue  # Gemini refuses turns without parts
        if contents and contents[-1]["role"] == google_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": google_role, "parts": parts})
    return system, contents


def _user_parts(content: Any, where: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for part_index, part in enumerate(client_objects(content, f"{where}.content")):
        part_where = f"{where}.content[{part_index}]"
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get("text") or part.get("refusal") or ""
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append(_media_part(url, part_where, default_type="image/jpeg"))
        elif kind == "input_audio":
            audio = client_object(part.get("input_audio"), f"{part_where}.input_audio")
            parts.append(
                {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data")}}
            )
        elif kind == "file":
            file = client_object(part.get("file"), f"{part_where}.file")
            url = file.get("file_data") or file.get("file_id")
            parts.append(_media_part(url, part_where, default_type=file.get("format") or "application/pdf"))
        else:
            raise BadRequestError(f"content of type {kind!r} is not supported here", param=part_where)
    return parts


def _media_part(url: Any, where: str, *, default_type: str) -> JSON:
    if not isinstance(url, str) or not url:
        raise BadRequestError("a media URL is required", param=where)
    data_url = parse_data_url(url)
    if data_url is not None:
        return {"inlineData": {"mimeType": data_url.media_type, "data": data_url.data}}
    # gs:// URIs (Vertex), Files API URIs and public URLs are referenced, not downloaded by routerd.
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return {"fileData": {"mimeType": guessed or default_type, "fileUri": url}}


def _model_parts(message: Mapping[str, Any], where: str, call_names: dict[str, str]) -> list[JSON]:
    parts = [{"text": text} for text in [_text_of(message.get("content"))] if text]
    for call_index, call in enumerate(client_objects(message.get("tool_calls"), f"{where}.tool_calls")):
        function = client_object(call.get("function"), f"{where}.tool_calls[{call_index}].function")
        name = str(function.get("name") or "")
        call_id = str(call.get("id") or "")
        call_names[call_id] = name
        arguments = parse_tool_arguments(function.get("arguments"), param=f"{where}.tool_calls")
        part: JSON = {
            "functionCall": {"name": name, "args": arguments if isinstance(arguments, dict) else {}}
        }
        _, _, signature = call_id.partition(THOUGHT_SEPARATOR)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequestError(f"content must be a string or an array of parts, got {json_kind(content)}")
    return "".join(str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, Mapping))


def _function_response(message: Mapping[str, Any], where: str, call_names: Mapping[str, str]) -> JSON:
    call_id = str(message.get("tool_call_id") or "")
    name = call_names.get(call_id) or message.get("name")
    if not name:
        raise BadRequestError(
            "a tool message must answer a tool call of an earlier assistant message (unknown tool_call_id)",
            param=f"{where}.tool_call_id",
        )
    text = _text_of(message.get("content"))
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        value = text
    # functionResponse.response must be an object; other results are wrapped.
    response = value if isinstance(value, dict) else {"content": value}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(tools: list[Mapping[str, Any]]) -> list[JSON]:
    declarations: list[JSON] = []
    native: list[JSON] = []
    for index, tool in enumerate(tools):
        if tool.get("type") != "function":
            native.append(dict(tool))  # a Google-native tool such as {"googleSearch": {}}
            continue
        function = client_object(tool.get("function"), f"tools[{index}].function")
        declaration: JSON = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = client_object(function.get("parameters"), f"tools[{index}].function.parameters")
        # A function without parameters omits the field: an OBJECT schema without properties is refused.
        if parameters and (parameters.get("properties") or parameters.get("type") not in (None, "object")):
            declaration["parameters"] = to_gemini_schema(parameters)
        declarations.append(declaration)
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def _tool_config(choice: Any) -> JSON | None:
    if choice is None:
        return None
    if choice == "auto":
        config: JSON = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = client_object(choice.get("function"), "tool_choice.function")
        config = {"mode": "ANY", "allowedFunctionNames": [function.get("name")]}
    else:
        raise BadRequestError(f"unsupported tool_choice {choice!r}", param="tool_choice")
    return {"functionCallingConfig": config}


def generation_config(body: Mapping[str, Any]) -> JSON:
    """``generationConfig`` from the OpenAI sampling parameters."""
    config: JSON = {}
    simple = (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    )
    for name, google_name in simple:
        if body.get(name) is not None:
            config[google_name] = body[name]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = int(max_tokens)
    stops = stop_list(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    if body.get("n") is not None:
        config["candidateCount"] = int(body["n"])
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = to_gemini_schema(schema)
    thinking = _thinking_config(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(body: Mapping[str, Any]) -> JSON | None:
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping):  # Anthropic's shape, accepted for portability
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        return {"thinkingBudget": int(thinking.get("budget_tokens") or 1024), "includeThoughts": True}
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in REASONING_BUDGETS:
        raise BadRequestError(
            f"reasoning_effort must be one of {', '.join(REASONING_BUDGETS)}", param="reasoning_effort"
        )
    budget = REASONING_BUDGETS[effort]
    return {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}


# --- response ------------------------------------------------------------------------------------


def to_openai_completion(
    response: Mapping[str, Any],
    *,
    model: str,
    created: int,
    errors: ErrorContext,
    new_id: IdFactory = new_call_id,
) -> JSON:
    """An OpenAI ``chat.completion`` for a ``GenerateContentResponse``.

    Raises :class:`~routerd.errors.ContentPolicyViolationError` when the prompt was blocked or every
    candidate was stopped by a safety filter, so ``content_policy_fallbacks`` apply.
    """
    raise_if_prompt_blocked(response, errors)
    candidates = response.get("candidates") or []
    if candidates and all(c.get("finishReason") in BLOCKING_FINISH_REASONS for c in candidates):
        raise blocked_error(errors, f"the answer was blocked ({candidates[0].get('finishReason')})")
    choices = []
    for position, candidate in enumerate(candidates):
        delta = parts_to_delta((candidate.get("content") or {}).get("parts") or [], 0, new_id)
        message: JSON = {"role": "assistant", "content": delta.get("content")}
        if delta.get("tool_calls"):
            message["tool_calls"] = [_without_index(call) for call in delta["tool_calls"]]
        elif message["content"] is None:
            message["content"] = ""
        if delta.get("reasoning_content"):
            message["reasoning_content"] = delta["reasoning_content"]
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(delta.get("tool_calls"))),
                "logprobs": None,
            }
        )
    if not choices:
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "stop",
                "logprobs": None,
            }
        )
    return {
        "id": completion_id(response),
        "object": "chat.completion",
        "created": created,
        "model": response.get("modelVersion") or model,
        "choices": choices,
        "usage": openai_usage(response.get("usageMetadata") or {}),
    }


def parts_to_delta(parts: list[Mapping[str, Any]], first_tool_index: int, new_id: IdFactory) -> JSON:
    """Text, thoughts and function calls of ``parts`` as an OpenAI message delta.

    Tool calls carry ``index`` (numbered from ``first_tool_index``) as stream deltas do.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"] or {}
            call_id = str(call.get("id") or new_id())
            if part.get("thoughtSignature"):
                call_id = f"{call_id}{THOUGHT_SEPARATOR}{part['thoughtSignature']}"
            calls.append(
                {
                    "index": first_tool_index + len(calls),
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
        elif "text" in part:
            (thoughts if part.get("thought") else texts).append(part["text"])
        # executableCode / codeExecutionResult / inlineData outputs have no OpenAI chat equivalent
    delta: JSON = {}
    if texts:
        delta["content"] = "".join(texts)
    if thoughts:
        delta["reasoning_content"] = "".join(thoughts)
    if calls:
        delta["tool_calls"] = calls
    delta.setdefault("content", None)
    return delta


def finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    """OpenAI's ``finish_reason`` for a Gemini ``finishReason``."""
    mapped = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if has_tool_calls and mapped == "stop" else mapped


def openai_usage(metadata: Mapping[str, Any]) -> JSON:
    """OpenAI ``usage`` from ``usageMetadata``; thinking tokens count as completion tokens."""
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached = int(metadata.get("cachedContentTokenCount") or 0)
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def raise_if_prompt_blocked(response: Mapping[str, Any], errors: ErrorContext) -> None:
    """A prompt refused by Gemini's safety filters is a content-policy error."""
    reason = (response.get("promptFeedback") or {}).get("blockReason")
    if reason:
        raise blocked_error(errors, f"the prompt was blocked ({reason})")


def blocked_error(errors: ErrorContext, what: str) -> OpenAIError:
    """The content-policy error for a safety block."""
    return errors.make(ContentPolicyViolationError, f"{errors.provider}: {what}", upstream_status=200)


def completion_id(response: Mapping[str, Any]) -> str:
    """An OpenAI-style id from the response's ``responseId`` (or a fresh one)."""
    response_id = response.get("responseId")
    return f"chatcmpl-{response_id}" if response_id else shapes.new_id("chatcmpl")


def _without_index(call: JSON) -> JSON:
    return {k: v for k, v in call.items() if k != "index"}


# --- embeddings ----------------------------------------------------------------------------------


def to_batch_embed_request(body: Mapping[str, Any], model_path: str) -> JSON:
    """A ``batchEmbedContents`` request for an OpenAI embeddings body."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequestError("input must be a string or a list of strings", param="input")
    request: JSON = {"model": model_path, "content": {}}
    if body.get("dimensions") is not None:
        request["outputDimensionality"] = int(body["dimensions"])
    task_type = body.get("task_type") or body.get("taskType")
    if task_type:
        request["taskType"] = task_type
    return {"requests": [{**request, "content": {"parts": [{"text": text}]}} for text in texts]}


def embedding_vectors(response: Mapping[str, Any]) -> list[list[float]]:
    """The vectors of a ``batchEmbedContents`` response, in input order."""
    return [list(item.get("values") or []) for item in response.get("embeddings") or []]


# --- errors --------------------------------------------------------------------------------------

_STATUS_CLASSES: Mapping[str, type[OpenAIError]] = {
    "INVALID_ARGUMENT": BadRequestError,
    "FAILED_PRECONDITION": BadRequestError,
    "OUT_OF_RANGE": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": ServiceUnavailableError,
    "INTERNAL": InternalServerError,
    "UNKNOWN": InternalServerError,
    "ABORTED": InternalServerError,
    "DEADLINE_EXCEEDED": Timeout,
}
# A wrong key is a 400 INVALID_ARGUMENT whose ErrorInfo detail says API_KEY_INVALID.
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED"})
# The documented signal for a prompt over the context window is only in the message: Gemini says
# "The input token count (N) exceeds the maximum number of tokens allowed (M)", Vertex "... the input
# token count is N but model only supports up to M". Checked on INVALID_ARGUMENT only.
_CONTEXT_MESSAGE = re.compile(r"input token count|exceeds the maximum number of tokens", re.IGNORECASE)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def error_from_body(
    status: int | None, body: Any, headers: Mapping[str, str], errors: ErrorContext
) -> OpenAIError:
    """The routerd error for a Google error body. ``status`` is None for an in-band stream error."""
    if isinstance(body, list) and body:  # streamGenerateContent without alt=sse wraps it in an array
        body = body[0]
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    google_status = str(error.get("status") or "")
    message = str(error.get("message") or "") or f"upstream answered HTTP {status}"
    if status is None and isinstance(error.get("code"), int):
        status = int(error["code"])
    details = [d for d in error.get("details") or [] if isinstance(d, Mapping)]
    cls = _STATUS_CLASSES.get(google_status)
    if cls is None:
        cls = error_for_status(status) if status is not None else InternalServerError
    if any(d.get("reason") in _AUTH_REASONS for d in details):
        cls = AuthenticationError
    elif google_status == "INVALID_ARGUMENT" and _CONTEXT_MESSAGE.search(message):
        cls = ContextWindowExceededError
    retry_after = parse_retry_after(headers, errors.wall_clock())
    if retry_after is None:
        retry_after = _retry_delay(details)
    message = scrub(message, errors.secrets)
    return errors.make(cls, f"{errors.provider}: {message}", upstream_status=status, retry_after=retry_after)


def _retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    # google.rpc.RetryInfo: {"@type": ".../google.rpc.RetryInfo", "retryDelay": "13s"}
    for detail in details:
        match = _DURATION.match(str(detail.get("retryDelay") or ""))
        if match:
            return float(match.group(1))
    return None
