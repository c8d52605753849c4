"""Serving ``/v1/completions`` through chat, and chat through ``/v1/completions``.

Most providers only have a chat endpoint. For them a text completion request becomes one chat request
per prompt (the prompt as the user message), at most ``request.concurrency`` in flight at once
(``ROUTERD_PROMPT_CONCURRENCY``; the router refuses lists longer than ``ROUTERD_MAX_PROMPTS`` and
counts every one of those calls against the deployment's ``rpm``), and the chat answers are returned in ``text_completion``
shape: choice ``i * n + j`` is choice ``j`` of prompt ``i``, as OpenAI numbers them; ``echo`` prefixes
the prompt; ``logprobs: k`` becomes ``logprobs: true, top_logprobs: k`` and the answer's token
log-probabilities are converted back. Parameters chat cannot express (``suffix``, ``best_of`` above
``n``, prompts given as token ids) fail with a 400 naming them, unless ``drop_params`` is set.

The other direction serves chat requests on a text-only model (``text-completion-openai/``,
``azure_text/``): the messages' text is joined into one prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from routerd.errors import BadGatewayError, UnsupportedParamsError
from routerd.providers import shapes
from routerd.providers.answers import malformed
from routerd.providers.openai_parts import content_text

if TYPE_CHECKING:
    from routerd.http import HttpClient
    from routerd.providers.base import Adapter, UpstreamRequest, UpstreamResponse

JSON = dict[str, Any]

__all__ = [
    "chat_chunk_to_text_chunk",
    "chat_request_to_text",
    "chat_to_text_completion",
    "complete_via_chat",
    "prompt_count",
    "stream_via_chat",
    "text_chunk_to_chat_chunk",
    "text_completion_to_chat",
    "text_request_to_chat",
]

# /v1/completions parameters that have no chat equivalent (handled or refused below)
_TEXT_ONLY = frozenset({"prompt", "echo", "suffix", "best_of", "logprobs"})
# chat parameters a text completion model cannot honour: refused unless drop_params
_CHAT_ONLY_REFUSED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "audio",
    "modalities",
    "prediction",
    "reasoning_effort",
    "web_search_options",
)
# chat parameters that are meaningless for a text model and harmless to drop
_CHAT_ONLY_DROPPED = frozenset(
    {
        "messages",
        "parallel_tool_calls",
        "store",
        "metadata",
        "service_tier",
        "top_logprobs",
        "max_completion_tokens",
    }
)
_MAX_TOP_LOGPROBS = 20


# --- text completion request -> chat --------------------------------------------------------------


def text_request_to_chat(
    body: Mapping[str, Any], *, drop_params: bool = False, provider: str = ""
) -> tuple[list[str], list[JSON]]:
    """The prompts of a ``/v1/completions`` request and one chat request body per prompt."""
    prompts = _prompts(body.get("prompt"), drop_params, provider)
    refused = []
    suffix = body.get("suffix")
    if suffix:
        refused.append("suffix")
    best_of = body.get("best_of")
    if best_of is not None and best_of > (body.get("n") or 1):
        refused.append("best_of")
    if refused and not drop_params:
        raise _unsupported(refused, provider, "through chat")

    common = {key: value for key, value in body.items() if key not in _TEXT_ONLY}
    logprobs = body.get("logprobs")
    if isinstance(logprobs, int) and not isinstance(logprobs, bool):
        common["logprobs"] = True
        common["top_logprobs"] = min(max(logprobs, 0), _MAX_TOP_LOGPROBS)
    chat_bodies = [{**common, "messages": [{"role": "user", "content": prompt}]} for prompt in prompts]
    return prompts, chat_bodies


def _prompts(prompt: Any, drop_params: bool, provider: str) -> list[str]:
    if prompt is None:
        return [""]
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list):
        if not prompt:
            return [""]
        if all(isinstance(item, str) for item in prompt):
            return list(prompt)
    # Token ids (a list of ints, or a list of such lists) cannot be decoded without the model's
    # tokenizer, which routerd does not download; there is nothing sensible to drop them to.
    where = f"provider {provider}" if provider else "this provider"
    raise UnsupportedParamsError(
        f"{where} serves /v1/completions through chat and cannot take a prompt given as token ids; "
        "send the prompt as text",
        llm_provider=provider or None,
        param="prompt",
    )


def prompt_count(body: Mapping[str, Any]) -> int:
    """How many chat calls a ``/v1/completions`` body becomes when served through chat (at least 1)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) > 1 and isinstance(prompt[0], str):
        return len(prompt)
    return 1


def chat_to_text_completion(
    request_body: Mapping[str, Any], prompts: Sequence[str], answers: Sequence[Mapping[str, Any]]
) -> JSON:
    """One ``text_completion`` from the chat answers to each prompt (``answers[i]`` answers ``prompts[i]``)."""
    n = request_body.get("n") or 1
    echo = bool(request_body.get("echo"))
    choices = []
    prompt_tokens = completion_tokens = 0
    has_usage = False
    for prompt_index, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        for choice in answer.get("choices") or ():
            message = choice.get("message") or {}
            text = message.get("content") or ""
            prefix = prompt if echo else ""
            choices.append(
                shapes.text_choice(
                    prompt_index * n + (choice.get("index") or 0),
                    prefix + text,
                    _text_finish_reason(choice.get("finish_reason")),
                    _chat_logprobs_to_text(choice.get("logprobs"), len(prefix)),
                )
            )
        answer_usage = answer.get("usage")
        if isinstance(answer_usage, Mapping):
            has_usage = True
            prompt_tokens += answer_usage.get("prompt_tokens") or 0
            completion_tokens += answer_usage.get("completion_tokens") or 0
    choices.sort(key=lambda choice: choice["index"])
    first = answers[0] if answers else {}
    return shapes.text_completion(
        completion_id=_text_id(first.get("id")),
        created=first.get("created") or 0,
        model=first.get("model") or request_body.get("model") or "",
        choices=choices,
        usage_=_usage(prompt_tokens, completion_tokens) if has_usage else None,
    )


def chat_chunk_to_text_chunk(
    chunk: Mapping[str, Any],
    prompt_index: int = 0,
    n_prompts: int = 1,
    *,
    n: int = 1,
    echo_prompt: str | None = None,
    completion_id: str | None = None,
) -> JSON | None:
    """A streamed chat chunk as a ``text_completion`` chunk, or None when it carries nothing.

    The role-only first chunk of each choice carries nothing in text form unless ``echo_prompt`` is
    given, in which case it carries the prompt. A usage chunk (no choices) stays a usage chunk.
    ``n_prompts`` is accepted for symmetry with the non-streamed conversion; indices only need ``n``.
    """
    del n_prompts
    text_choices = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        offset = 0
        if echo_prompt is not None and "role" in delta:
            text = echo_prompt + text
            offset = len(echo_prompt)
        finish_reason = choice.get("finish_reason")
        logprobs = _chat_logprobs_to_text(choice.get("logprobs"), offset)
        if not text and finish_reason is None and logprobs is None:
            continue
        text_choices.append(
            shapes.text_choice(
                prompt_index * n + (choice.get("index") or 0),
                text,
                _text_finish_reason(finish_reason),
                logprobs,
            )
        )
    chunk_usage = chunk.get("usage")
    if not text_choices and not chunk_usage:
        return None
    return shapes.text_completion(
        completion_id=completion_id or _text_id(chunk.get("id")),
        created=chunk.get("created") or 0,
        model=chunk.get("model") or "",
        choices=text_choices,
        usage_=dict(chunk_usage) if isinstance(chunk_usage, Mapping) else None,
    )


async def complete_via_chat(adapter: Adapter, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
    """Serve a text completion request with ``adapter.chat``: one chat call per prompt, concurrently."""
    from routerd.providers.base import UpstreamResponse

    prompts, chat_bodies = text_request_to_chat(
        request.body, drop_params=request.drop_params, provider=adapter.name
    )
    if len(chat_bodies) == 1:
        answers = [await adapter.chat(http, replace(request, body=chat_bodies[0]))]
    else:
        answers = await _chat_all(adapter, http, request, chat_bodies)
    for answer in answers:
        problem = malformed("chat", answer.body)
        if problem is not None:
            dep = request.deployment
            raise BadGatewayError(
                f"the upstream answered 200 with a malformed body: {problem}",
                llm_provider=dep.provider,
                model=dep.model,
                deployment_id=dep.id,
            )
    body = chat_to_text_completion(request.body, prompts, [answer.body for answer in answers])
    return UpstreamResponse(body, answers[-1].headers)


async def _chat_all(
    adapter: Adapter, http: HttpClient, request: UpstreamRequest, chat_bodies: Sequence[JSON]
) -> list[UpstreamResponse]:
    """Every chat call, at most ``request.concurrency`` at a time; the first failure cancels the rest."""
    gate = asyncio.Semaphore(max(request.concurrency, 1))

    async def one(chat_body: JSON) -> UpstreamResponse:
        async with gate:
            return await adapter.chat(http, replace(request, body=chat_body))

    # Tasks wait on the gate before they open a connection, so only ``concurrency`` sockets exist at once.
    tasks = [asyncio.ensure_future(one(b)) for b in chat_bodies]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # gather() leaves the other calls running when one fails; they must not outlive the request
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def stream_via_chat(
    adapter: Adapter, http: HttpClient, request: UpstreamRequest
) -> AsyncIterator[JSON]:
    """Stream a text completion request with ``adapter.chat_stream``, one prompt after the other.

    All chunks carry the id of the first chat stream; usage chunks of the prompts are summed into
    one usage chunk at the end, as OpenAI sends it.
    """
    prompts, chat_bodies = text_request_to_chat(
        request.body, drop_params=request.drop_params, provider=adapter.name
    )
    n = request.body.get("n") or 1
    echo = bool(request.body.get("echo"))
    completion_id: str | None = None
    last_chunk: JSON | None = None
    saw_usage = False
    prompt_tokens = completion_tokens = 0
    for prompt_index, chat_body in enumerate(chat_bodies):
        stream = adapter.chat_stream(http, replace(request, body=chat_body))
        try:
            async for chunk in stream:
                text_chunk = chat_chunk_to_text_chunk(
                    chunk,
                    prompt_index,
                    len(chat_bodies),
                    n=n,
                    echo_prompt=prompts[prompt_index] if echo else None,
                    completion_id=completion_id,
                )
                if text_chunk is None:
                    continue
                if completion_id is None:
                    completion_id = text_chunk["id"]
                last_chunk = text_chunk
                chunk_usage = text_chunk.pop("usage", None)
                if chunk_usage:
                    # held back: the prompts' usages are summed into one chunk at the very end
                    saw_usage = True
                    prompt_tokens += chunk_usage.get("prompt_tokens") or 0
                    completion_tokens += chunk_usage.get("completion_tokens") or 0
                if text_chunk["choices"]:
                    yield text_chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
    if saw_usage and last_chunk is not None:
        yield {**last_chunk, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)}


# --- chat request -> text completion ---------------------------------------------------------------


def chat_request_to_text(body: Mapping[str, Any], *, drop_params: bool = False, provider: str = "") -> JSON:
    """A ``/v1/completions`` body for a chat request: the messages' text joined into one prompt."""
    refused = [key for key in _CHAT_ONLY_REFUSED if _meaningful(key, body.get(key))]
    if refused and not drop_params:
        raise _unsupported(refused, provider, "on a text completion model")
    text_body = {
        key: value
        for key, value in body.items()
        if key not in _CHAT_ONLY_DROPPED and key not in _CHAT_ONLY_REFUSED
    }
    text_body["prompt"] = messages_to_prompt(body.get("messages") or ())
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        text_body["max_tokens"] = body["max_completion_tokens"]
    if body.get("logprobs") is True:
        text_body["logprobs"] = min(body.get("top_logprobs") or 0, 5)  # /v1/completions allows up to 5
    elif "logprobs" in text_body:
        del text_body["logprobs"]
    return text_body


def messages_to_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of chat messages, joined by blank lines (a text model has no notion of roles)."""
    texts = [content_text(message.get("content")) for message in messages]
    return "\n\n".join(text for text in texts if text)


def text_completion_to_chat(response: Mapping[str, Any]) -> JSON:
    """A ``chat.completion`` from a ``text_completion``."""
    choices = [
        {
            "index": choice.get("index") or 0,
            "message": {"role": "assistant", "content": choice.get("text") or "", "refusal": None},
            "logprobs": _text_logprobs_to_chat(choice.get("logprobs")),
            "finish_reason": choice.get("finish_reason") or "stop",
        }
        for choice in response.get("choices") or ()
    ]
    return {
        "id": _chat_id(response.get("id")),
        "object": "chat.completion",
        "created": response.get("created") or 0,
        "model": response.get("model") or "",
        "choices": choices,
        "usage": response.get("usage"),
        "system_fingerprint": response.get("system_fingerprint"),
    }


def text_chunk_to_chat_chunk(chunk: Mapping[str, Any], started: set[int]) -> JSON:
    """A streamed ``text_completion`` chunk as a ``chat.completion.chunk``.

    ``started`` holds the choice indices already streamed (updated here): a choice's first chunk
    carries ``role: assistant`` as OpenAI's chat streams do.
    """
    choices = []
    for choice in chunk.get("choices") or ():
        index = choice.get("index") or 0
        delta: JSON = {"content": choice.get("text") or ""}
        if index not in started:
            started.add(index)
            delta = {"role": "assistant", **delta}
        choices.append(
            {
                "index": index,
                "delta": delta,
                "logprobs": _text_logprobs_to_chat(choice.get("logprobs")),
                "finish_reason": choice.get("finish_reason"),
            }
        )
    result: JSON = {
        "id": _chat_id(chunk.get("id")),
        "object": "chat.completion.chunk",
        "created": chunk.get("created") or 0,
        "model": chunk.get("model") or "",
        "choices": choices,
    }
    if "usage" in chunk:
        result["usage"] = chunk["usage"]
    return result


# --- helpers --------------------------------------------------------------------------------------


def _unsupported(params: list[str], provider: str, how: str) -> UnsupportedParamsError:
    where = f"provider {provider}" if provider else "this provider"
    return UnsupportedParamsError(
        f"{where} cannot honour parameter(s) {', '.join(params)} {how}; remove them or set drop_params: true",
        llm_provider=provider or None,
        param=params[0],
    )


def _meaningful(key: str, value: Any) -> bool:
    if value is None or value == [] or value == {}:
        return False
    if key == "response_format":
        return not (isinstance(value, Mapping) and value.get("type") == "text")
    if key == "modalities":
        return bool(value != ["text"])
    return not (key == "tool_choice" and value == "none")


def _text_finish_reason(reason: Any) -> str | None:
    # /v1/completions only knows stop, length and content_filter
    if reason in ("tool_calls", "function_call"):
        return "stop"
    return reason if isinstance(reason, str) else None


def _usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _text_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return "cmpl-" + chat_id.removeprefix("chatcmpl-")
    return shapes.new_id("cmpl")


def _chat_id(text_id: Any) -> str:
    if isinstance(text_id, str) and text_id:
        return "chatcmpl-" + text_id.removeprefix("cmpl-")
    return shapes.new_id("chatcmpl")


def _chat_logprobs_to_text(logprobs: Any, offset: int) -> JSON | None:
    """Chat ``{"content": [{"token", "logprob", "top_logprobs"}]}`` -> completions' parallel lists."""
    if not isinstance(logprobs, Mapping):
        return None
    content = logprobs.get("content")
    if not isinstance(content, list):
        return None
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top: list[dict[str, float]] = []
    text_offset: list[int] = []
    position = offset
    for item in content:
        token = str(item.get("token", ""))
        tokens.append(token)
        token_logprobs.append(item.get("logprob"))
        top.append({str(t.get("token", "")): t.get("logprob") for t in item.get("top_logprobs") or ()})
        text_offset.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": text_offset,
    }


def _text_logprobs_to_chat(logprobs: Any) -> JSON | None:
    """Completions' parallel lists -> chat's ``{"content": [...]}``."""
    if not isinstance(logprobs, Mapping):
        return None
    tokens = logprobs.get("tokens") or []
    token_logprobs = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    content = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], Mapping) else {}
        content.append(
            {
                "token": token,
                "logprob": token_logprobs[i] if i < len(token_logprobs) else None,
                "bytes": list(str(token).encode("utf-8")),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(str(t).encode("utf-8"))}
                    for t, lp in top.items()
                ],
            }
        )
    return {"content": content, "refusal": None}
