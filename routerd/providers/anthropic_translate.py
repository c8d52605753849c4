"""Pure translation between OpenAI chat completions and Anthropic's Messages API.

Three directions, all free of I/O and tested on stored payloads:

* :func:`to_anthropic_request`: an OpenAI ``/v1/chat/completions`` body -> a ``POST /v1/messages`` body.
* :func:`to_openai_completion`: an Anthropic ``Message`` -> an OpenAI ``chat.completion``.
* :class:`~routerd.providers.anthropic_stream.StreamTranslator` (its own module): Anthropic stream
  events -> OpenAI ``chat.completion.chunk`` dicts, one event at a time, so nothing is buffered.

Upstream error bodies become :mod:`routerd.errors` classes in :func:`error_from_body`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.errors import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    Timeout,
    error_for_status,
)
from routerd.providers.base import ParamPolicy
from routerd.providers.client_input import client_object, client_objects
from routerd.providers.errors import ErrorContext, parse_retry_after, scrub
from routerd.providers.openai_parts import parse_data_url, parse_tool_arguments, stop_list

JSON = dict[str, Any]

PROVIDER = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients usually omit it. 4096 is within every Claude model's
# output limit (the oldest, claude-3-haiku/opus, top out at exactly 4096).
DEFAULT_MAX_TOKENS = 4096
#: the text of the user turn ``modify_params`` puts first when a conversation does not start with one
PLACEHOLDER_TURN = "."
# reasoning_effort -> extended-thinking budget (1024 is the API's minimum). On models with adaptive
# thinking the effort is sent as such and the budget only sizes the default max_tokens.
REASONING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 2048,
    "high": 4096,
    "xhigh": 8192,
    "max": 16384,
}
_ADAPTIVE_EFFORT: Mapping[str, str] = {"minimal": "low"}  # OpenAI's "minimal" has no Anthropic twin
_NO_REASONING = frozenset({"none", "disable", "disabled"})
#: sampling parameters that Claude Opus 4.7 and later models refuse
SAMPLING_PARAMS = frozenset({"temperature", "top_p", "top_k"})
_SAMPLING_POLICY = ParamPolicy(PROVIDER, SAMPLING_PARAMS)

#: OpenAI parameters the Messages API has no equivalent for.
UNSUPPORTED_PARAMS = frozenset(
    {
        "n",
        "logit_bias",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "seed",
        "audio",
        "modalities",
        "prediction",
        "functions",
        "function_call",
        "service_tier",
        "web_search_options",
        "store",
    }
)
PARAM_POLICY = ParamPolicy(PROVIDER, UNSUPPORTED_PARAMS)
_RESPONSE_FORMAT_POLICY = ParamPolicy(PROVIDER, frozenset({"response_format"}))

# Values that ask for nothing beyond the default: sending them to a provider that lacks the knob
# changes nothing, so they are removed instead of failing the request.
_NEUTRAL_VALUES: Mapping[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "store": (False,),
}

# Anthropic-native request fields a client may send through the OpenAI API; forwarded unchanged.
_PASSTHROUGH = (
    "top_k",
    "container",
    "mcp_servers",
    "inference_geo",
    "speed",
    "cache_control",
    "context_management",
)

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# --- model generations ---------------------------------------------------------------------------

# "claude-3-5-sonnet-20241022" (version first) and "claude-opus-4-1-20250805" (family first).
_VERSION_FIRST = re.compile(r"^claude-(\d+)(?:-(\d))?-[a-z]")
_FAMILY_FIRST = re.compile(r"^claude-[a-z]+-(\d+)(?:-(\d{1,2}))?(?!\d)")


@dataclass(frozen=True, slots=True)
class ClaudeModel:
    """What a Claude model generation accepts, as far as translation needs to know.

    * Claude 4.6 models think adaptively (``thinking: {"type": "adaptive"}`` with
      ``output_config.effort``); fixed budgets are deprecated there and gone after.
    * Claude Opus 4.7 and later refuse ``temperature`` / ``top_p`` / ``top_k`` with a 400.

    Names routerd cannot read (a proxy's alias, say) get the conservative defaults: requests are
    translated as for the older models, and the upstream has the last word.
    """

    version: tuple[int, int] | None

    @property
    def adaptive_thinking(self) -> bool:
        return self.version is not None and self.version >= (4, 6)

    @property
    def rejects_sampling(self) -> bool:
        return self.version is not None and self.version >= (4, 7)


def claude_model(model: str) -> ClaudeModel:
    """The generation of an upstream model name (``claude-sonnet-4-5``, ``claude-3-haiku-...``)."""
    name = model.rsplit("/", 1)[-1].lower()
    match = _VERSION_FIRST.match(name) or _FAMILY_FIRST.match(name)
    if match is None:
        return ClaudeModel(None)
    return ClaudeModel((int(match.group(1)), int(match.group(2) or 0)))


# --- request -------------------------------------------------------------------------------------


def apply_param_policy(body: JSON, drop_params: bool, model: str | None = None) -> JSON:
    """``body`` without neutral values; unsupported parameters dropped or refused (400).

    ``model`` is the upstream model: newer generations refuse the sampling parameters too.
    """
    cleaned = {k: v for k, v in body.items() if not (k in _NEUTRAL_VALUES and v in _NEUTRAL_VALUES[k])}
    if claude_model(model or "").rejects_sampling:
        if cleaned.get("temperature") == 1:  # the default: leaving it out changes nothing
            del cleaned["temperature"]
        cleaned = _SAMPLING_POLICY.apply(cleaned, drop_params, model)
    fmt = cleaned.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "text":
        del cleaned["response_format"]
    elif isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
        # JSON mode without a schema has no Messages API equivalent (structured outputs need one).
        cleaned = _RESPONSE_FORMAT_POLICY.apply(cleaned, drop_params, model)
    return PARAM_POLICY.apply(cleaned, drop_params, model)


def to_anthropic_request(
    body: Mapping[str, Any],
    model: str,
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    stream: bool = False,
    modify_params: bool = False,
) -> JSON:
    """The Messages API body for an OpenAI chat request (after :func:`apply_param_policy`).

    ``modify_params`` (LiteLLM's setting) also fixes what the API would refuse: see :func:`user_first`.
    """
    system, messages = convert_messages(body.get("messages") or [])
    if modify_params:
        messages = user_first(messages)
    request: JSON = {"model": model, "messages": messages}
    if system:
        request["system"] = _system_field(system)

    thinking, effort = _thinking(body, claude_model(model))
    explicit_max = body.get("max_completion_tokens") or body.get("max_tokens")
    if explicit_max is not None:
        request["max_tokens"] = int(explicit_max)
    elif thinking is not None and thinking.get("type") == "enabled":
        # The thinking budget counts toward max_tokens and must be below it: leave room for the answer.
        request["max_tokens"] = int(thinking.get("budget_tokens", 0)) + default_max_tokens
    elif effort is not None:
        request["max_tokens"] = REASONING_BUDGETS.get(effort, 0) + default_max_tokens
    else:
        request["max_tokens"] = default_max_tokens
    if thinking is not None:
        request["thinking"] = thinking

    stops = [s for s in stop_list(body.get("stop")) if s.strip()]  # whitespace-only ones are rejected
    if stops:
        request["stop_sequences"] = stops
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    for name in _PASSTHROUGH:
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}

    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(client_objects(body.get("tools"), "tools"))]
    if tools:
        request["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            request["tool_choice"] = choice

    output_config = dict(client_object(body.get("output_config"), "output_config"))
    if effort is not None:
        output_config["effort"] = _ADAPTIVE_EFFORT.get(effort, effort)
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        json_schema = client_object(fmt.get("json_schema"), "response_format.json_schema")
        schema = json_schema.get("schema") or {"type": "object"}
        output_config["format"] = {"type": "json_schema", "schema": schema}
    if output_config:
        request["output_config"] = output_config

    if stream:
        request["stream"] = True
    return request


def convert_messages(messages: list[Mapping[str, Any]]) -> tuple[list[JSON], list[JSON]]:
    """OpenAI messages -> (system text blocks, Anthropic turns).

    System and developer messages move to the top-level ``system``. Tool results become
    ``tool_result`` blocks of a user turn. Consecutive turns of one role are merged into one, since
    the API expects user and assistant turns to alternate.
    """
    system: list[JSON] = []
    turns: list[JSON] = []
    for index, message in enumerate(client_objects(messages, "messages")):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"messages[{index}].content"))
            continue
        if role == "user":
            anthropic_role, blocks = "user", _user_blocks(message.get("content"), index)
        elif role == "assistant":
            anthropic_role, blocks = "assistant", _assistant_blocks(message, index)
        elif role == "tool":
            anthropic_role, blocks = "user", [_tool_result(message, index)]
        else:
            raise BadRequestError(
                f"unsupported message role {role!r} for {PROVIDER}", param=f"messages[{index}]"
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    return system, turns


def user_first(turns: list[JSON]) -> list[JSON]:
    """``turns`` starting with a user turn, as the Messages API requires: a :data:`PLACEHOLDER_TURN`
    user turn goes first when the conversation starts with the assistant, or has no turn at all (only
    system messages, or only messages with empty content, which :func:`convert_messages` drops)."""
    if turns and turns[0]["role"] == "user":
        return turns
    return [{"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_TURN}]}, *turns]


def _system_field(blocks: list[JSON]) -> str | list[JSON]:
    # A plain string unless a block carries cache_control, which only the block form can express.
    if any("cache_control" in block for block in blocks):
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


def _text_blocks(content: Any, where: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in client_objects(content, where):
        if part.get("type") not in ("text", "refusal"):
            raise BadRequestError(f"only text content is allowed here for {PROVIDER}", param=where)
        text = part.get("text") or part.get("refusal") or ""
        if not isinstance(text, str):
            raise BadRequestError(f"text content must be a string for {PROVIDER}", param=where)
        if text:
            blocks.append(_with_cache_control({"type": "text", "text": text}, part))
    return blocks


def _user_blocks(content: Any, index: int) -> list[JSON]:
    if content is None or isinstance(content, str):
        return _text_blocks(content, f"messages[{index}].content")
    blocks = []
    for part_index, part in enumerate(client_objects(content, f"messages[{index}].content")):
        where = f"messages[{index}].content[{part_index}]"
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_blocks([part], where))
        elif kind == "image_url":
            blocks.append(_with_cache_control(_image_block(part.get("image_url"), where), part))
        elif kind == "file":
            file = client_object(part.get("file"), f"{where}.file")
            blocks.append(_with_cache_control(_document_block(file, where), part))
        else:
            raise BadRequestError(f"{PROVIDER} does not accept content of type {kind!r}", param=where)
    return blocks


def _image_block(image_url: Any, where: str) -> JSON:
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str) or not url:
        raise BadRequestError("image_url.url is required", param=where)
    data_url = parse_data_url(url)
    if data_url is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    if data_url.media_type not in _IMAGE_TYPES:
        raise BadRequestError(
            f"{PROVIDER} accepts images of type {', '.join(sorted(_IMAGE_TYPES))}, not {data_url.media_type}",
            param=where,
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": data_url.media_type, "data": data_url.data},
    }


def _document_block(file: Mapping[str, Any], where: str) -> JSON:
    data_url = parse_data_url(str(file.get("file_data") or ""))
    if data_url is None or data_url.media_type != "application/pdf":
        raise BadRequestError(
            f"{PROVIDER} accepts files as base64 PDF data URLs (file.file_data)", param=where
        )
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data_url.data},
    }


def _assistant_blocks(message: Mapping[str, Any], index: int) -> list[JSON]:
    # Thinking blocks come first: the API wants them before the text and tool use they led to.
    where = f"messages[{index}]"
    blocks: list[JSON] = [
        dict(block) for block in client_objects(message.get("thinking_blocks"), f"{where}.thinking_blocks")
    ]
    blocks.extend(_text_blocks(message.get("content"), f"{where}.content"))
    calls = client_objects(message.get("tool_calls"), f"{where}.tool_calls")
    for call_index, call in enumerate(calls):
        function = client_object(call.get("function"), f"{where}.tool_calls[{call_index}].function")
        arguments = parse_tool_arguments(function.get("arguments"), param=f"messages[{index}].tool_calls")
        if not isinstance(arguments, dict):
            raise BadRequestError(
                f"{PROVIDER} needs tool call arguments to be a JSON object",
                param=f"messages[{index}].tool_calls",
            )
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}
        )
    return blocks


def _tool_result(message: Mapping[str, Any], index: int) -> JSON:
    content = message.get("content")
    block: JSON = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        block["content"] = _user_blocks(content, index)
    return block


def _with_cache_control(block: JSON, part: Mapping[str, Any]) -> JSON:
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _tool(tool: Mapping[str, Any], where: str) -> JSON:
    if tool.get("type") != "function":
        return dict(tool)  # an Anthropic-native tool (web search, bash, ...) written by the client
    function = client_object(tool.get("function"), f"{where}.function")
    parameters = client_object(function.get("parameters"), f"{where}.function.parameters")
    schema = dict(parameters or {"type": "object", "properties": {}})
    schema.setdefault("type", "object")
    out: JSON = {"name": function.get("name"), "input_schema": schema}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is not None:
        out["strict"] = bool(function["strict"])
    return _with_cache_control(out, tool)


def _tool_choice(choice: Any, parallel_tool_calls: Any) -> JSON | None:
    out: JSON | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        out = {
            "type": "tool",
            "name": client_object(choice.get("function"), "tool_choice.function").get("name"),
        }
    elif isinstance(choice, Mapping) and choice.get("type") in ("auto", "any", "tool", "none"):
        out = dict(choice)  # already Anthropic's shape
    else:
        raise BadRequestError(f"unsupported tool_choice {choice!r}", param="tool_choice")
    if parallel_tool_calls is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _thinking(body: Mapping[str, Any], claude: ClaudeModel) -> tuple[JSON | None, str | None]:
    """(``thinking``, adaptive effort): the client's own ``thinking`` wins over ``reasoning_effort``."""
    if body.get("thinking") is not None:
        return dict(client_object(body["thinking"], "thinking")), None
    effort = body.get("reasoning_effort")
    if effort is None or effort in _NO_REASONING:
        return None, None
    if effort not in REASONING_BUDGETS:
        raise BadRequestError(
            f"reasoning_effort must be one of {', '.join(REASONING_BUDGETS)}", param="reasoning_effort"
        )
    if claude.adaptive_thinking:
        return {"type": "adaptive"}, str(effort)
    return {"type": "enabled", "budget_tokens": REASONING_BUDGETS[effort]}, None


# --- response ------------------------------------------------------------------------------------


def to_openai_completion(message: Mapping[str, Any], *, created: int) -> JSON:
    """An OpenAI ``chat.completion`` for an Anthropic ``Message``."""
    texts: list[str] = []
    tool_calls: list[JSON] = []
    reasoning: list[str] = []
    thinking_blocks: list[JSON] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append(_openai_tool_call(block))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(
                {
                    "type": "thinking",
                    "thinking": block.get("thinking", ""),
                    "signature": block.get("signature", ""),
                }
            )
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
        # Server-tool blocks (web search results, code execution) have no OpenAI equivalent; what
        # they found reaches the client through the text blocks that cite them.

    out_message: JSON = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        out_message["thinking_blocks"] = thinking_blocks
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": finish_reason(message.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(message.get("usage") or {}),
    }


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def openai_usage(usage: Mapping[str, Any]) -> JSON:
    """OpenAI ``usage`` from Anthropic's. OpenAI's prompt_tokens include cached tokens; Anthropic's
    input_tokens do not, so the cache reads and writes are added back."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = int(usage.get("output_tokens") or 0)
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cache_read or cache_write:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
        out["cache_creation_input_tokens"] = cache_write
        out["cache_read_input_tokens"] = cache_read
    return out


def _openai_tool_call(block: Mapping[str, Any]) -> JSON:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


# --- errors --------------------------------------------------------------------------------------

_ERROR_TYPES: Mapping[str, type[OpenAIError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "billing_error": PermissionDeniedError,  # the account cannot pay: this deployment is unusable
    "not_found_error": NotFoundError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "overloaded_error": ServiceUnavailableError,
    "timeout_error": Timeout,
}
# The documented signal for a prompt over the context window: an invalid_request_error whose message
# starts "prompt is too long: N tokens > M maximum". Nothing structured carries it.
_PROMPT_TOO_LONG = "prompt is too long"


def error_from_body(
    status: int | None, body: Any, headers: Mapping[str, str], errors: ErrorContext
) -> OpenAIError:
    """The routerd error for an Anthropic error body (``{"type": "error", "error": {...}}``).

    ``status`` is None for an ``error`` event inside a stream; the error type decides alone then.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    error_type = str(error.get("type") or "") if isinstance(error, Mapping) else ""
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    cls = _ERROR_TYPES.get(error_type)
    if cls is None:
        cls = error_for_status(status) if status is not None else BadGatewayError
    if cls is BadRequestError and _PROMPT_TOO_LONG in message.lower():
        cls = ContextWindowExceededError
    if not message:
        message = f"upstream answered HTTP {status}" if status is not None else "upstream stream error"
    message = scrub(message, errors.secrets)
    return errors.make(
        cls,
        f"{errors.provider}: {message}",
        upstream_status=status,
        retry_after=parse_retry_after(headers, errors.wall_clock()),
    )
