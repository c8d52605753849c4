"""``mock/``: an offline provider that answers like OpenAI, with configurable latency and faults.

It serves chat, completions and embeddings without any network, in OpenAI's exact shapes (see
:mod:`routerd.providers.shapes`), with usage counted by :mod:`routerd.tokens`. What it says:

* the request's ``mock_response`` field, else the deployment's ``mock_response``, else an echo of
  the last user message (of the prompt, for completions);
* ``mock_response`` is a string (the text), or a mapping ``{"content": ..., "tool_calls": [...],
  "finish_reason": ...}``, or a list (shorthand for ``{"tool_calls": [...]}``). A tool call is
  ``{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}`` (``arguments`` a mapping
  or JSON text, ``id`` optional) or OpenAI's own ``{"type": "function", "function": {...}}``.

Faults come from provider-specific ``litellm_params`` (``Deployment.extra``), listed in
:class:`MockSettings` and docs/providers.md (the mock provider). Errors are produced by building the error body a real
upstream would send and passing it through the shared translation, so failover, cooldowns and
``Retry-After`` behave exactly as with a real provider. The error rate draws from a ``random.Random``
seeded per deployment (``mock_seed``, else the deployment id), so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.errors import BadRequestError, ConfigError, OpenAIError, Timeout
from routerd.http import HttpClient
from routerd.providers import shapes
from routerd.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    JSON,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.tokens import count_prompt_tokens, count_request_tokens, estimate_tokens

__all__ = ["MockAdapter", "MockSettings", "parse_mock_response"]

DEFAULT_EMBEDDING_DIM = 1536
_PREPARED_CACHE_LIMIT = 4096
_ECHO_WHEN_EMPTY = "This is a mock response from routerd."

# what a real OpenAI error body says, per status (the translation reads type and code from it)
_ERROR_BODIES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (mock)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (mock)."),
    403: ("permission_error", None, "You are not allowed to use this model (mock)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (mock)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock)."),
    500: ("server_error", None, "The server had an error while processing your request (mock)."),
    502: ("server_error", None, "Bad gateway (mock)."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later (mock)."),
}


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Latency and faults of a mock deployment, from its ``mock_*`` litellm_params."""

    latency: float = 0.0  # mock_latency_ms: before answering (before the first chunk of a stream)
    chunk_delay: float = 0.0  # mock_stream_chunk_delay_ms: between streamed chunks
    error_status: int | None = None  # mock_error_status: answer this HTTP status instead
    error_rate: float = 1.0  # mock_error_rate: fraction of calls that fail (with error_status)
    error_code: str | None = None  # mock_error_code: e.g. context_length_exceeded
    error_message: str | None = None  # mock_error_message
    retry_after: float | None = None  # mock_retry_after: seconds, sent as Retry-After on errors
    hang: float | None = None  # mock_hang: true (= past any timeout) or seconds of silence
    stream_cut_after: int | None = None  # mock_stream_cut_after: streams drop after N chunks
    embedding_dim: int = DEFAULT_EMBEDDING_DIM  # mock_embedding_dim
    seed: int | None = None  # mock_seed: seeds the error-rate draws (default: from the deployment id)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: str = "") -> MockSettings:
        """Read and check the ``mock_*`` keys; ConfigError naming the key when one is invalid."""
        try:
            hang = extra.get("mock_hang")
            return cls(
                latency=_millis(extra.get("mock_latency_ms")),
                chunk_delay=_millis(extra.get("mock_stream_chunk_delay_ms")),
                error_status=_optional(int, extra.get("mock_error_status"), "mock_error_status", 400, 599),
                error_rate=_rate(extra.get("mock_error_rate")),
                error_code=_optional(str, extra.get("mock_error_code"), "mock_error_code"),
                error_message=_optional(str, extra.get("mock_error_message"), "mock_error_message"),
                retry_after=_optional(float, extra.get("mock_retry_after"), "mock_retry_after", 0),
                hang=(
                    math.inf
                    if hang is True
                    else None
                    if hang in (None, False)
                    else _nonneg(hang, "mock_hang")
                ),
                stream_cut_after=_optional(
                    int, extra.get("mock_stream_cut_after"), "mock_stream_cut_after", 0
                ),
                embedding_dim=_optional(int, extra.get("mock_embedding_dim"), "mock_embedding_dim", 1)
                or DEFAULT_EMBEDDING_DIM,
                seed=_optional(int, extra.get("mock_seed"), "mock_seed"),
            )
        except ValueError as exc:
            raise ConfigError([f"{where}{exc}"]) from None


def _optional(
    kind: Callable[[Any], Any], value: Any, key: str, low: float | None = None, high: float | None = None
) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or (kind is not str and isinstance(value, str)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} has an invalid value {value!r}") from None
    if (low is not None and converted < low) or (high is not None and converted > high):
        raise ValueError(f"{key} must be between {low} and {high}, got {value!r}")
    return converted


def _millis(value: Any) -> float:
    return 0.0 if value is None else _nonneg(value, "mock latency") / 1000.0


def _nonneg(value: Any, key: str) -> float:
    number = _optional(float, value, key, 0)
    assert number is not None
    return float(number)


def _rate(value: Any) -> float:
    rate = _optional(float, value, "mock_error_rate", 0, 1)
    return 1.0 if rate is None else float(rate)


def parse_mock_response(value: Any) -> shapes.Answer:
    """An :class:`~routerd.providers.shapes.Answer` from a ``mock_response`` (format in the module doc).

    Raises ValueError describing what is wrong with it.
    """
    if isinstance(value, str):
        return shapes.Answer(content=value)
    if isinstance(value, list | tuple):  # the compiled table freezes lists into tuples
        value = {"tool_calls": value}
    if not isinstance(value, Mapping):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return shapes.Answer(content=str(value))
        raise ValueError(f"mock_response must be a string, a mapping or a list, not {type(value).__name__}")
    content = value.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("mock_response.content must be a string")
    calls = tuple(_tool_call(call, i) for i, call in enumerate(value.get("tool_calls") or ()))
    finish_reason = value.get("finish_reason") or ("tool_calls" if calls else "stop")
    if not isinstance(finish_reason, str):
        raise ValueError("mock_response.finish_reason must be a string")
    return shapes.Answer(
        content=content if content is not None or calls else "", tool_calls=calls, finish_reason=finish_reason
    )


def _tool_call(call: Any, index: int) -> shapes.ToolCall:
    if not isinstance(call, Mapping):
        raise ValueError(f"mock_response tool call {index} must be a mapping")
    nested = call.get("function")
    function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else call
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"mock_response tool call {index} needs a name")
    arguments = function.get("arguments")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    call_id = call.get("id")
    return shapes.ToolCall(name=name, arguments=arguments, id=call_id if isinstance(call_id, str) else "")


@dataclass(frozen=True, slots=True)
class MockDeployment:
    """The prepared state of one mock deployment."""

    model: str
    settings: MockSettings
    answer: shapes.Answer | None  # the deployment's mock_response, parsed
    errors: ErrorContext
    rng: random.Random  # error-rate draws; shared by the deployment's calls


class MockAdapter(BaseAdapter):
    """The ``mock/`` provider. ``sleep`` and ``clock`` are injectable (tests pass a FakeClock's)."""

    name = "mock"
    endpoints = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sleep = sleep
        self.clock = clock
        self._on_the_fly: dict[str, MockDeployment] = {}

    def prepare(self, deployment: Deployment) -> MockDeployment:
        where = f"deployment {deployment.id} ({deployment.litellm_model}): "
        settings = MockSettings.from_extra(deployment.extra, where)
        source = deployment.mock_response
        if source is None:
            source = deployment.extra.get("mock_response")
        try:
            answer = parse_mock_response(source) if source is not None else None
        except ValueError as exc:
            raise ConfigError([f"{where}{exc}"]) from None
        seed = settings.seed
        if seed is None:
            seed = int.from_bytes(hashlib.blake2b(deployment.id.encode(), digest_size=8).digest(), "big")
        return MockDeployment(
            model=deployment.model,
            settings=settings,
            answer=answer,
            errors=ErrorContext(provider=self.name, model=deployment.model, deployment_id=deployment.id),
            rng=random.Random(seed),
        )

    def _deployment(self, deployment: Deployment) -> MockDeployment:
        prepared = deployment.prepared
        if isinstance(prepared, MockDeployment):
            return prepared
        # Wildcard deployments come unprepared; keep their state (the error-rate generator) per id.
        cached = self._on_the_fly.get(deployment.id)
        if cached is None:
            if len(self._on_the_fly) >= _PREPARED_CACHE_LIMIT:
                self._on_the_fly.clear()
            try:
                cached = self.prepare(deployment)
            except ConfigError as exc:
                raise BadRequestError(str(exc), llm_provider=self.name, model=deployment.model) from exc
            self._on_the_fly[deployment.id] = cached
        return cached

    # --- faults ----------------------------------------------------------------------------------

    async def _before_answer(self, mock: MockDeployment, timeout: float) -> None:
        """What happens before the first byte: latency, a hang, an error."""
        settings = mock.settings
        if settings.latency:
            await self.sleep(settings.latency)
        if settings.hang is not None:
            if settings.hang >= timeout:
                # A real client gives up when its deadline passes; the transport raises Timeout.
                await self.sleep(timeout)
                raise mock.errors.make(Timeout, "upstream did not answer in time (mock_hang)")
            await self.sleep(settings.hang)
        if settings.error_status is not None and (
            settings.error_rate >= 1.0 or mock.rng.random() < settings.error_rate
        ):
            raise self._error(mock)

    def _error(self, mock: MockDeployment) -> OpenAIError:
        settings = mock.settings
        status = settings.error_status or 500
        error_type, code, message = _ERROR_BODIES.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                f"Mock upstream error {status}.",
            ),
        )
        body = {
            "error": {
                "message": settings.error_message or message,
                "type": error_type,
                "param": None,
                "code": settings.error_code or code,
            }
        }
        headers = {"content-type": "application/json"}
        if settings.retry_after is not None:
            headers["retry-after"] = _format_seconds(settings.retry_after)
            headers["retry-after-ms"] = str(int(settings.retry_after * 1000))
        return mock.errors.from_response(status, headers, orjson.dumps(body))

    async def _paced(self, mock: MockDeployment, chunks: Iterator[JSON]) -> AsyncIterator[JSON]:
        settings = mock.settings
        for sent, chunk in enumerate(chunks):
            if settings.stream_cut_after is not None and sent >= settings.stream_cut_after:
                raise mock.errors.stream_cut(sent)
            if sent and settings.chunk_delay:
                await self.sleep(settings.chunk_delay)
            yield chunk

    # --- chat ------------------------------------------------------------------------------------

    def _chat_answers(self, mock: MockDeployment, body: Mapping[str, Any]) -> list[shapes.Answer]:
        answer = _request_answer(body) or mock.answer or shapes.Answer(content=_last_user_text(body))
        answer = _limit(answer, body.get("max_completion_tokens") or body.get("max_tokens"), body.get("stop"))
        return [answer] * _choice_count(body)

    def _usage(self, body: Mapping[str, Any], answers: list[shapes.Answer]) -> JSON:
        prompt_tokens = count_request_tokens(CHAT, body)
        completion_tokens = sum(_answer_tokens(answer) for answer in answers)
        return shapes.usage(prompt_tokens, completion_tokens)

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        mock = self._deployment(request.deployment)
        answers = self._chat_answers(mock, request.body)
        await self._before_answer(mock, request.timeout)
        body = shapes.chat_completion(
            completion_id=shapes.new_id("chatcmpl"),
            created=int(self.clock()),
            model=mock.model,
            answers=answers,
            usage_=self._usage(request.body, answers),
        )
        return UpstreamResponse(body)

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        mock = self._deployment(request.deployment)
        answers = self._chat_answers(mock, request.body)
        await self._before_answer(mock, request.timeout)
        chunks = shapes.chat_stream(
            completion_id=shapes.new_id("chatcmpl"),
            created=int(self.clock()),
            model=mock.model,
            answers=answers,
            usage_=self._usage(request.body, answers),
            include_usage=_include_usage(request.body),
        )
        async for chunk in self._paced(mock, chunks):
            yield chunk

    # --- completions -----------------------------------------------------------------------------

    def _texts(self, mock: MockDeployment, body: Mapping[str, Any]) -> tuple[list[tuple[str, str]], JSON]:
        prompts = _prompt_texts(body.get("prompt"))
        override = _request_answer(body) or mock.answer
        n = _choice_count(body)
        echo = bool(body.get("echo"))
        texts = []
        completion_tokens = 0
        for prompt in prompts:
            answer = (
                shapes.Answer(content=override.content or "") if override else shapes.Answer(content=prompt)
            )
            answer = _limit(answer, body.get("max_tokens"), body.get("stop"))
            completion_tokens += estimate_tokens(answer.content or "") * n
            text = (prompt if echo else "") + (answer.content or "")
            texts.extend([(text, answer.finish_reason)] * n)
        return texts, shapes.usage(count_prompt_tokens(body.get("prompt")), completion_tokens)

    async def completion(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        mock = self._deployment(request.deployment)
        texts, usage = self._texts(mock, request.body)
        await self._before_answer(mock, request.timeout)
        body = shapes.text_completion(
            completion_id=shapes.new_id("cmpl"),
            created=int(self.clock()),
            model=mock.model,
            choices=[shapes.text_choice(i, text, reason) for i, (text, reason) in enumerate(texts)],
            usage_=usage,
        )
        return UpstreamResponse(body)

    async def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        mock = self._deployment(request.deployment)
        texts, usage = self._texts(mock, request.body)
        await self._before_answer(mock, request.timeout)
        chunks = shapes.text_stream(
            completion_id=shapes.new_id("cmpl"),
            created=int(self.clock()),
            model=mock.model,
            texts=texts,
            usage_=usage,
            include_usage=_include_usage(request.body),
        )
        async for chunk in self._paced(mock, chunks):
            yield chunk

    # --- embeddings ------------------------------------------------------------------------------

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        mock = self._deployment(request.deployment)
        body = request.body
        items = _embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions")
        if dimensions is not None and (
            not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
        ):
            raise mock.errors.make(
                BadRequestError, "dimensions must be a positive integer", param="dimensions"
            )
        await self._before_answer(mock, request.timeout)
        dim = dimensions or mock.settings.embedding_dim
        return UpstreamResponse(
            shapes.embedding_list(
                model=mock.model,
                vectors=[pseudo_vector(item, dim) for item in items],
                prompt_tokens=count_prompt_tokens(body.get("input")),
                encoding_format=body.get("encoding_format"),
            )
        )


def pseudo_vector(text: str, dim: int) -> list[float]:
    """A unit vector determined by ``text`` alone (same text, same vector, on every machine)."""
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


# --- helpers --------------------------------------------------------------------------------------


def _request_answer(body: Mapping[str, Any]) -> shapes.Answer | None:
    value = body.get("mock_response")
    if value is None:
        return None
    try:
        return parse_mock_response(value)
    except ValueError as exc:
        raise BadRequestError(str(exc), llm_provider="mock", param="mock_response") from None


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("text")
                )
            return str(content or "") or _ECHO_WHEN_EMPTY
    return _ECHO_WHEN_EMPTY


def _prompt_texts(prompt: Any) -> list[str]:
    if prompt is None or prompt == []:
        return [""]
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(item, int) for item in prompt):
        return [_tokens_text(prompt)]
    return [item if isinstance(item, str) else _tokens_text(item) for item in prompt]


def _tokens_text(tokens: Any) -> str:
    # token ids cannot be decoded offline; the echo names them instead
    return f"<{len(tokens)} tokens>" if isinstance(tokens, list) else str(tokens)


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return [",".join(map(str, value))]
        return [item if isinstance(item, str) else ",".join(map(str, item)) for item in value]
    raise BadRequestError(
        "input must be a string, a list of strings or token ids", llm_provider="mock", param="input"
    )


def _limit(answer: shapes.Answer, max_tokens: Any, stop: Any) -> shapes.Answer:
    """Apply ``stop`` sequences and ``max_tokens`` to a text answer, as a model would."""
    content = answer.content
    if not content or answer.tool_calls:
        return answer
    finish_reason = answer.finish_reason
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str) and s]
    cuts = [content.find(s) for s in stops if s in content]
    if cuts:
        content = content[: min(cuts)]
        finish_reason = "stop"
    if isinstance(max_tokens, int) and max_tokens >= 0 and estimate_tokens(content) > max_tokens:
        pieces = shapes.split_pieces(content)
        kept = ""
        for piece in pieces:
            if estimate_tokens(kept + piece) > max_tokens:
                break
            kept += piece
        content = kept
        finish_reason = "length"
    return shapes.Answer(content=content, finish_reason=finish_reason)


def _answer_tokens(answer: shapes.Answer) -> int:
    tokens = estimate_tokens(answer.content or "")
    for call in answer.tool_calls:
        tokens += estimate_tokens(call.name) + estimate_tokens(call.arguments)
    return tokens


def _choice_count(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


register(MockAdapter())
