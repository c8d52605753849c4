"""The rest of LiteLLM's SDK calls: ``batch_completion``, ``completion_with_retries`` and the
OpenAI-compatible pass-through endpoints ``image_generation``, ``moderation``, ``rerank``, ``responses``.

The pass-through calls resolve the provider, key and base exactly as :func:`routerd.completion` does
(arguments, module settings, environment variables), POST the OpenAI-shaped body to the provider's
endpoint (``/images/generations``, ``/moderations``, ``/rerank``, ``/responses`` under its API base)
and return the answer as an object (attribute and key access). They make one call: no routing,
retries or fallbacks (those are :func:`routerd.completion`'s). Upstream errors are routerd's classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from routerd.errors import BadRequestError
from routerd.module_settings import setting
from routerd.providers.errors import ErrorContext
from routerd.sdk.errors import raises_sdk_errors
from routerd.sdk.loop import background_loop, shared_http
from routerd.sdk.main import completion
from routerd.sdk.params import timeout_seconds
from routerd.sdk.resolve import resolve_target
from routerd.sdk.types import OpenAIObject

__all__ = [
    "BATCH_COMPLETION_WORKERS",
    "aimage_generation",
    "amoderation",
    "arerank",
    "aresponses",
    "batch_completion",
    "completion_with_retries",
    "image_generation",
    "moderation",
    "rerank",
    "responses",
]

#: at most this many ``batch_completion`` calls in flight (a documented constant)
BATCH_COMPLETION_WORKERS = 8
#: the API base used when neither an argument, a module setting nor the environment gives one
DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "text-completion-openai": "https://api.openai.com/v1"}
#: the default timeout of a pass-through call, seconds (LiteLLM's default request timeout)
PASSTHROUGH_TIMEOUT = 600.0


class PassThroughResponse(OpenAIObject):
    """An OpenAI-shaped answer of a pass-through endpoint (fields as the upstream sent them)."""


def batch_completion(model: str, messages: Sequence[list[Any]], **kwargs: Any) -> list[Any]:
    """One :func:`routerd.completion` per message list, run concurrently (``BATCH_COMPLETION_WORKERS``
    at a time); results in order. A failed call's exception takes its place in the list, as in LiteLLM."""

    def one(conversation: list[Any]) -> Any:
        try:
            return completion(model=model, messages=conversation, **kwargs)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=BATCH_COMPLETION_WORKERS) as pool:
        return list(pool.map(one, messages))


def completion_with_retries(*args: Any, **kwargs: Any) -> Any:
    """:func:`routerd.completion` with ``num_retries`` (default 3) spent by routerd's router, with its
    jittered backoff and ``Retry-After`` handling."""
    kwargs.setdefault("num_retries", 3)
    return completion(*args, **kwargs)


async def _post(path: str, model: str, body: dict[str, Any], options: dict[str, Any]) -> PassThroughResponse:
    target = resolve_target(
        model,
        api_key=options.pop("api_key", None) or setting("api_key"),
        api_base=options.pop("api_base", None) or options.pop("base_url", None) or setting("api_base"),
        custom_llm_provider=options.pop("custom_llm_provider", None),
    )
    base = target.params.get("api_base") or DEFAULT_BASES.get(target.provider)
    if not base:
        raise BadRequestError(
            f"{path.strip('/')} needs an api_base for provider {target.provider}",
            model=model,
            param="api_base",
        )
    headers = {"content-type": "application/json"}
    key = target.params.get("api_key")
    if key:
        headers["authorization"] = f"Bearer {key}"
    payload = {**body, "model": target.model}
    timeout = (
        timeout_seconds(options.pop("timeout", None)) or setting("request_timeout") or PASSTHROUGH_TIMEOUT
    )
    errors = ErrorContext(target.provider, target.model, secrets=(key,) if key else ())
    response = await shared_http().request(
        "POST",
        f"{str(base).rstrip('/')}{path}",
        headers=headers,
        content=orjson.dumps(payload),
        timeout=timeout,
    )
    if not 200 <= response.status < 300:
        raise errors.from_response(response.status, response.headers, response.content)
    answer: PassThroughResponse = _objectify(orjson.loads(response.content))
    return answer


def _objectify(value: Any) -> Any:
    """Nested JSON objects as :class:`PassThroughResponse` (attribute access all the way down)."""
    if isinstance(value, dict):
        return PassThroughResponse.model_construct(**{k: _objectify(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_objectify(item) for item in value]
    return value


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    option_keys = {"api_key", "api_base", "base_url", "custom_llm_provider", "timeout"}
    body = {k: v for k, v in kwargs.items() if k not in option_keys and v is not None}
    return body, {k: v for k, v in kwargs.items() if k in option_keys and v is not None}


@raises_sdk_errors
async def aimage_generation(prompt: str, model: str = "dall-e-2", **kwargs: Any) -> PassThroughResponse:
    """Images for ``prompt`` (OpenAI's ``/images/generations``)."""
    body, options = _split({**kwargs, "prompt": prompt})
    return await _post("/images/generations", model, body, options)


@raises_sdk_errors
def image_generation(prompt: str, model: str = "dall-e-2", **kwargs: Any) -> PassThroughResponse:
    """Images for ``prompt``: ``response.data[0].url`` (or ``b64_json``)."""
    return background_loop.run(aimage_generation(prompt, model, **kwargs))


@raises_sdk_errors
async def amoderation(
    input: Any, model: str = "omni-moderation-latest", **kwargs: Any
) -> PassThroughResponse:
    """Moderation of ``input`` (OpenAI's ``/moderations``)."""
    body, options = _split({**kwargs, "input": input})
    return await _post("/moderations", model, body, options)


@raises_sdk_errors
def moderation(input: Any, model: str = "omni-moderation-latest", **kwargs: Any) -> PassThroughResponse:
    """Moderation of ``input``: ``response.results[0].flagged``."""
    return background_loop.run(amoderation(input, model, **kwargs))


@raises_sdk_errors
async def arerank(
    model: str, query: str, documents: list[Any], top_n: int | None = None, **kwargs: Any
) -> PassThroughResponse:
    """``documents`` ranked by relevance to ``query`` (the ``/rerank`` endpoint of Cohere-compatible
    servers: vLLM, Jina, Cohere)."""
    body, options = _split({**kwargs, "query": query, "documents": documents, "top_n": top_n})
    return await _post("/rerank", model, body, options)


@raises_sdk_errors
def rerank(
    model: str, query: str, documents: list[Any], top_n: int | None = None, **kwargs: Any
) -> PassThroughResponse:
    """``documents`` ranked by relevance to ``query``: ``response.results[0].index``."""
    return background_loop.run(arerank(model, query, documents, top_n, **kwargs))


@raises_sdk_errors
async def aresponses(input: Any, model: str, **kwargs: Any) -> PassThroughResponse:
    """OpenAI's Responses API (``/responses``) on an OpenAI-compatible provider."""
    body, options = _split({**kwargs, "input": input})
    if body.get("stream"):
        raise BadRequestError(
            "routerd.responses() does not stream; call it without stream=True", param="stream"
        )
    return await _post("/responses", model, body, options)


@raises_sdk_errors
def responses(input: Any, model: str, **kwargs: Any) -> PassThroughResponse:
    """OpenAI's Responses API: ``response.output_text`` is in ``response.output``."""
    return background_loop.run(aresponses(input, model, **kwargs))
