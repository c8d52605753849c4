"""Fake OpenAI and Azure OpenAI upstreams: real HTTP servers on loopback speaking the wire format.

Adapters, the router and the daemon are tested against these instead of mocks, through the same
transports they use in production::

    async with FakeOpenAI(api_key="sk-test") as fake:
        deployment = Deployment(..., api_base=fake.base_url, api_key="sk-test")
        fake.enqueue(Reply.error(429, "slow down", retry_after=2))   # the next call fails
        ...
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"

Without a scripted reply every endpoint answers like OpenAI (``/v1/chat/completions`` plain and
streamed with a usage chunk, ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``,
``/v1/moderations``), echoing the last user message unless ``answer=`` is given. A moderation result is
flagged (category ``violence``) when its input contains :data:`MODERATION_MARKER`. :class:`Reply` scripts one call: status, body or raw
bytes, headers (``Retry-After``), a delay, a hang, and for streams explicit chunks, a cut connection
or an in-band error after N chunks.

Other fakes extend this one by subclassing and returning more routes from :meth:`FakeOpenAI.routes`
(files, fine-tuning), reusing :meth:`FakeOpenAI.record`, the reply queue and the JSON helpers.
Synchronous tests run a fake in a background thread with :func:`run_in_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from routerd.providers import shapes
from routerd.providers.mock import pseudo_vector
from routerd.providers.sse import DONE_EVENT, encode_event
from routerd.testing import responses_fake
from routerd.tokens import count_prompt_tokens, count_request_tokens, estimate_tokens

__all__ = [
    "MODERATION_MARKER",
    "FakeAzureOpenAI",
    "FakeOpenAI",
    "Recorded",
    "Reply",
    "run_in_thread",
]

JSON = dict[str, Any]
_CHAT, _COMPLETIONS, _EMBEDDINGS = "chat", "completions", "embeddings"
#: The word that makes the fake's ``/v1/moderations`` flag an input.
MODERATION_MARKER = "kaboom"
_MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


@dataclass(slots=True)
class Recorded:
    """One request the fake received. Header names are lower-cased; ``json`` is None if not JSON."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass(slots=True)
class Reply:
    """How the fake answers one call (consumed from the queue in order).

    A reply with ``json`` or ``body`` is sent as it is; otherwise the endpoint's default answer is
    sent (with ``content`` as its text when given), shaped by the stream options below.
    """

    status: int = 200
    json: Any = None  # the body, as JSON
    body: bytes | None = None  # the body, raw (a non-JSON answer)
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response head is sent
    hang: bool = False  # never answer; wait until the client gives up
    content: str | None = None  # text of the default answer
    path: str | None = None  # only answer requests to this path (others skip this reply)
    # streams ----------------------------------------------------------------------------------
    chunks: Sequence[Any] | None = None  # dicts (sent as data events) or raw bytes, instead of the default
    chunk_delay: float = 0.0  # seconds between chunks
    cut_after: int | None = None  # drop the connection after this many chunks
    hang_after: int | None = None  # stop sending after this many chunks (connection stays open)
    error_after: int | None = None  # send ``inband_error`` as an event after this many chunks, then end
    inband_error: Any = None
    done: bool = True  # end with ``data: [DONE]``

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "",
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> Reply:
        """An error in OpenAI's shape, with ``Retry-After`` / ``retry-after-ms`` headers if given."""
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            all_headers["retry-after-ms"] = f"{retry_after_ms:g}"
        body = {
            "error": {
                "message": message or f"fake upstream error {status}",
                "type": type or _error_type(status),
                "param": param,
                "code": code,
            }
        }
        return cls(status=status, json=body, headers=all_headers, path=path)


def _error_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class FakeOpenAI:
    """An OpenAI-compatible upstream on ``127.0.0.1`` and a free port.

    ``api_key``: when set, requests must carry ``Authorization: Bearer <api_key>`` (else a 401 like
    OpenAI's, which echoes part of the wrong key). ``answer``: the text of default answers (default:
    echo the last user message / the prompt). ``models``: what ``/v1/models`` lists.
    """

    #: path prefix of the OpenAI API on this server; ``base_url`` includes it
    api_prefix = "/v1"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        answer: str | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"),
        embedding_dim: int = 8,
    ) -> None:
        self.api_key = api_key
        self.answer = answer
        self.models = list(models)
        self.embedding_dim = embedding_dim
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        #: calls whose client went away before the answer was complete (a cancelled stream, say)
        self.disconnects = 0
        self.port = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.add_routes(self.routes())
        self._runner: web.AppRunner | None = None
        self._disconnected: asyncio.Event | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client's ``base_url`` / a deployment's ``api_base`` should be."""
        return self.origin + self.api_prefix

    async def start(self) -> Self:
        # handler_cancellation: a client that goes away cancels its handler, which counts it
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        for address in self._runner.addresses:
            self.port = int(address[1])
            break
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- scripting -------------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Script the next calls, in order (a reply with ``path`` waits for a call to that path)."""
        self.replies.extend(replies)

    def next_reply(self, path: str) -> Reply | None:
        for index, reply in enumerate(self.replies):
            if reply.path is None or reply.path == path:
                return self.replies.pop(index)
        return None

    async def wait_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until a client has gone away mid-answer (raises TimeoutError otherwise)."""
        if self.disconnects:
            return
        async with asyncio.timeout(timeout):
            await self._disconnect_event().wait()

    def _disconnect_event(self) -> asyncio.Event:
        if self._disconnected is None:
            self._disconnected = asyncio.Event()
        return self._disconnected

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnect_event().set()

    # --- routes ----------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """The routes served; subclasses add theirs (``return [*super().routes(), ...]``)."""
        prefix = self.api_prefix
        return [
            web.post(f"{prefix}/chat/completions", self._chat),
            web.post(f"{prefix}/completions", self._completions),
            web.post(f"{prefix}/embeddings", self._embeddings),
            web.get(f"{prefix}/models", self._models),
            web.get(f"{prefix}/models/{{model_id:.+}}", self._model),
            web.post(f"{prefix}/moderations", self._moderations),
            web.post(f"{prefix}/responses", self._responses),
            web.post(f"{prefix}/images/generations", self._images),
            web.post(f"{prefix}/rerank", self._rerank),
            web.post(f"{prefix}/audio/speech", self._speech),
            web.post(f"{prefix}/audio/transcriptions", self._transcriptions),
            web.post(f"{prefix}/images/edits", self._image_edits),
        ]

    async def record(self, request: web.Request) -> Recorded:
        """Read and remember a request (every handler calls this first)."""
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
        )
        self.requests.append(recorded)
        return recorded

    def check_auth(self, request: web.Request) -> web.Response | None:
        """None when the request may proceed, else the 401 to send."""
        if self.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        given = header.removeprefix("Bearer ").strip()
        masked = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
        return json_response(
            {
                "error": {
                    "message": f"Incorrect API key provided: {masked}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            401,
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self.answer_call(request, _CHAT)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self.answer_call(request, _COMPLETIONS)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self.answer_call(request, _EMBEDDINGS)

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's moderation shape: one result per input, ``violence`` flagged on the marker word."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        reply = self.next_reply(request.path)
        if reply is not None:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.json is not None or reply.body is not None or reply.status >= 300:
                return raw_response(reply)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        given = body.get("input", "")
        inputs = given if isinstance(given, list) else [given]
        results = []
        for item in inputs:
            flagged = MODERATION_MARKER in str(item).lower()
            categories = {name: flagged and name == "violence" for name in _MODERATION_CATEGORIES}
            scores = {name: 0.97 if hit else 0.001 for name, hit in categories.items()}
            results.append({"flagged": flagged, "categories": categories, "category_scores": scores})
        model = body.get("model") or "omni-moderation-latest"
        return json_response({"id": f"modr-fake-{len(self.requests)}", "model": model, "results": results})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/responses`` (see :mod:`routerd.testing.responses_fake`); scripted replies with a
        body or an error status are sent as they are, ``Reply.content`` sets the answer's text."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        reply = self.next_reply(request.path)
        if reply is not None and (reply.json is not None or reply.body is not None or reply.status >= 300):
            return raw_response(reply)
        if denied is not None:
            return denied
        problem = responses_fake.check_request(recorded.json)
        if problem is not None:
            return json_response(problem[1], problem[0])
        final = responses_fake.answer(recorded.json, reply.content if reply is not None else None)
        if not recorded.json.get("stream"):
            return json_response(final)
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in responses_fake.events(final):
            await response.write(responses_fake.encode(event))
        await response.write_eof()
        return response

    async def _images(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/images/generations``: ``n`` images, as URLs or ``b64_json`` of a fixed PNG header."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        reply = self.next_reply(request.path)
        if reply is not None and (reply.json is not None or reply.body is not None or reply.status >= 300):
            return raw_response(reply)
        if denied is not None:
            return denied
        body = recorded.json if isinstance(recorded.json, dict) else {}
        count = body.get("n") or 1
        if body.get("response_format") == "b64_json":
            data = [{"b64_json": "iVBORw0KGgo=", "revised_prompt": body.get("prompt")} for _ in range(count)]
        else:
            data = [
                {"url": f"https://images.example/{i}.png", "revised_prompt": body.get("prompt")}
                for i in range(count)
            ]
        return json_response({"created": 1_700_000_000, "data": data})

    async def _rerank(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/rerank`` (Cohere's shape, as vLLM serves it): documents scored by the share of the
        query's words they contain, best first, ``top_n`` of them."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        body = recorded.json if isinstance(recorded.json, dict) else {}
        words = set(str(body.get("query", "")).lower().split())
        scored: list[tuple[float, int, str]] = []
        for index, document in enumerate(body.get("documents") or []):
            text = document if isinstance(document, str) else str(document.get("text", ""))
            scored.append((len(words & set(text.lower().split())) / max(len(words), 1), index, text))
        scored.sort(key=lambda item: -item[0])
        results = [
            {"index": index, "relevance_score": score, "document": {"text": text}}
            for score, index, text in scored[: body.get("top_n") or len(scored)]
        ]
        return json_response({"id": shapes.new_id("rerank"), "model": body.get("model"), "results": results})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/audio/speech``: a few bytes of "audio" that spell the input, as audio/mpeg."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        reply = self.next_reply(request.path)
        if reply is not None and (reply.json is not None or reply.body is not None or reply.status >= 300):
            return raw_response(reply)
        if denied is not None:
            return denied
        text = str((recorded.json or {}).get("input", ""))
        return web.Response(body=b"ID3" + text.encode(), content_type="audio/mpeg")

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/audio/transcriptions`` (multipart): "transcript of <n> bytes"; ``srt`` as text."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        if not request.content_type.startswith("multipart/form-data") or b'name="file"' not in recorded.body:
            return json_response(
                {
                    "error": {
                        "message": "file is required",
                        "type": "invalid_request_error",
                        "param": "file",
                        "code": None,
                    }
                },
                400,
            )
        size = len(recorded.body)
        if b'name="response_format"\r\n\r\nsrt' in recorded.body:
            return web.Response(
                text=f"1\n00:00:00,000 --> 00:00:01,000\ntranscript of {size} bytes\n",
                content_type="text/plain",
            )
        return json_response({"text": f"transcript of {size} bytes"})

    async def _image_edits(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/images/edits`` (multipart with an ``image`` part): one edited image as a URL."""
        recorded = await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        if b'name="image"' not in recorded.body:
            return json_response(
                {
                    "error": {
                        "message": "image is required",
                        "type": "invalid_request_error",
                        "param": "image",
                        "code": None,
                    }
                },
                400,
            )
        return json_response(
            {"created": 1_700_000_000, "data": [{"url": "https://images.example/edited.png"}]}
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        return json_response(
            {"object": "list", "data": [shapes.model_object(m, 1_700_000_000, "fake") for m in self.models]}
        )

    async def _model(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            return json_response(
                {
                    "error": {
                        "message": f"The model '{model_id}' does not exist",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": "model_not_found",
                    }
                },
                404,
            )
        return json_response(shapes.model_object(model_id, 1_700_000_000, "fake"))

    # --- answering -------------------------------------------------------------------------------

    async def answer_call(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """Record, authenticate, then answer with the next scripted reply or the default answer."""
        try:
            recorded = await self.record(request)
            denied = self.check_call(request, endpoint)
            reply = self.next_reply(request.path)
            if reply is not None:
                if reply.hang:
                    await asyncio.Event().wait()  # until the client disconnects (handler cancelled)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.json is not None or reply.body is not None or reply.status >= 300:
                    return raw_response(reply)
            if denied is not None:
                return denied
            body = recorded.json if isinstance(recorded.json, dict) else {}
            if body.get("stream") and endpoint != _EMBEDDINGS:
                return await self._stream(request, endpoint, body, reply or Reply())
            return json_response(
                self.default_answer(endpoint, body, reply), headers=dict(reply.headers) if reply else None
            )
        except asyncio.CancelledError:
            self._note_disconnect()
            raise

    def check_call(self, request: web.Request, endpoint: str) -> web.Response | None:
        """Checks before answering an API call; Azure adds its own. None when the call may proceed."""
        return self.check_auth(request)

    def default_answer(self, endpoint: str, body: JSON, reply: Reply | None) -> JSON:
        """The complete (non-streamed) answer OpenAI would give to ``body``."""
        model = str(body.get("model") or "fake-model")
        created = 1_700_000_000
        if endpoint == _EMBEDDINGS:
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dim = body.get("dimensions") or self.embedding_dim
            return shapes.embedding_list(
                model=model,
                vectors=[pseudo_vector(str(item), dim) for item in items],
                prompt_tokens=count_prompt_tokens(inputs),
                encoding_format=body.get("encoding_format"),
            )
        n = body.get("n") or 1
        if endpoint == _COMPLETIONS:
            texts = self._texts(body, reply)
            choices = [shapes.text_choice(i, text, "stop") for i, (text, _) in enumerate(texts)]
            completion_tokens = sum(estimate_tokens(text) for text, _ in texts)
            return shapes.text_completion(
                completion_id=shapes.new_id("cmpl"),
                created=created,
                model=model,
                choices=choices,
                usage_=shapes.usage(count_prompt_tokens(body.get("prompt")), completion_tokens),
            )
        answers = [shapes.Answer(content=self._chat_text(body, reply))] * n
        return shapes.chat_completion(
            completion_id=shapes.new_id("chatcmpl"),
            created=created,
            model=model,
            answers=answers,
            usage_=self._chat_usage(body, answers),
        )

    def default_chunks(self, endpoint: str, body: JSON, reply: Reply) -> Iterator[Any]:
        """The chunks OpenAI would stream for ``body``."""
        model = str(body.get("model") or "fake-model")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if endpoint == _COMPLETIONS:
            texts = self._texts(body, reply)
            return shapes.text_stream(
                completion_id=shapes.new_id("cmpl"),
                created=1_700_000_000,
                model=model,
                texts=texts,
                usage_=shapes.usage(
                    count_prompt_tokens(body.get("prompt")), sum(estimate_tokens(t) for t, _ in texts)
                ),
                include_usage=include_usage,
            )
        answers = [shapes.Answer(content=self._chat_text(body, reply))] * (body.get("n") or 1)
        return shapes.chat_stream(
            completion_id=shapes.new_id("chatcmpl"),
            created=1_700_000_000,
            model=model,
            answers=answers,
            usage_=self._chat_usage(body, answers),
            include_usage=include_usage,
        )

    async def _stream(
        self, request: web.Request, endpoint: str, body: JSON, reply: Reply
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"content-type": "text/event-stream", "cache-control": "no-cache", **reply.headers},
        )
        await response.prepare(request)
        chunks = (
            list(reply.chunks)
            if reply.chunks is not None
            else list(self.default_chunks(endpoint, body, reply))
        )
        for sent, chunk in enumerate(chunks):
            if reply.cut_after is not None and sent >= reply.cut_after:
                _abort(request)
                return response
            if reply.hang_after is not None and sent >= reply.hang_after:
                await asyncio.Event().wait()
            if reply.error_after is not None and sent >= reply.error_after:
                await response.write(encode_event(reply.inband_error))
                await response.write_eof()
                return response
            if sent and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            try:
                await response.write(chunk if isinstance(chunk, bytes) else encode_event(chunk))
            except ConnectionResetError:
                self._note_disconnect()
                return response
        if reply.cut_after is not None and reply.cut_after >= len(chunks):
            _abort(request)
            return response
        if reply.hang_after is not None and reply.hang_after >= len(chunks):
            await asyncio.Event().wait()
        if reply.error_after is not None and reply.error_after >= len(chunks):
            await response.write(encode_event(reply.inband_error))
        elif reply.done:
            await response.write(DONE_EVENT)
        await response.write_eof()
        return response

    def _chat_text(self, body: JSON, reply: Reply | None) -> str:
        if reply is not None and reply.content is not None:
            return reply.content
        if self.answer is not None:
            return self.answer
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
        return ""

    def _texts(self, body: JSON, reply: Reply | None) -> list[tuple[str, str]]:
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt or [""]]
        n = body.get("n") or 1
        texts = []
        for text in prompts:
            answer = reply.content if reply is not None and reply.content is not None else self.answer
            completion = text if answer is None else answer
            texts.extend([((text if body.get("echo") else "") + completion, "stop")] * n)
        return texts

    @staticmethod
    def _chat_usage(body: JSON, answers: Sequence[shapes.Answer]) -> JSON:
        completion = sum(estimate_tokens(answer.content or "") for answer in answers)
        return shapes.usage(count_request_tokens(_CHAT, body), completion)


class FakeAzureOpenAI(FakeOpenAI):
    """Azure OpenAI: ``/openai/deployments/{deployment}/...?api-version=...`` with an ``api-key`` header.

    ``base_url`` is the resource endpoint (what Azure calls ``api_base``). Requests without
    ``api-version`` get Azure's 404, a wrong ``api-key`` its 401, an unknown deployment (when
    ``deployments`` is given) ``DeploymentNotFound``. Streams start with Azure's
    ``prompt_filter_results`` chunk. The version-less ``/openai/v1/...`` API is served too.
    """

    api_prefix = ""

    def __init__(
        self, *, api_key: str | None = None, deployments: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        self.deployments = set(deployments) if deployments is not None else None
        super().__init__(api_key=api_key, **kwargs)

    def routes(self) -> list[web.RouteDef]:
        deployment = "/openai/deployments/{deployment}"
        return [
            web.post(f"{deployment}/chat/completions", self._chat),
            web.post(f"{deployment}/completions", self._completions),
            web.post(f"{deployment}/embeddings", self._embeddings),
            web.post("/openai/v1/chat/completions", self._chat),
            web.post("/openai/v1/completions", self._completions),
            web.post("/openai/v1/embeddings", self._embeddings),
        ]

    def check_auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None or request.headers.get("api-key") == self.api_key:
            return None
        return json_response(
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                    "to provide a valid key for an active subscription and use a correct regional API endpoint "
                    "for your resource.",
                }
            },
            401,
        )

    def check_call(self, request: web.Request, endpoint: str) -> web.Response | None:
        name = request.match_info.get("deployment")
        if name is not None:
            if "api-version" not in request.query:
                return json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
            if self.deployments is not None and name not in self.deployments:
                return json_response(
                    {
                        "error": {
                            "code": "DeploymentNotFound",
                            "message": "The API deployment for this resource does not exist. If you created the "
                            "deployment within the last 5 minutes, please wait a moment and try again.",
                        }
                    },
                    404,
                )
        return self.check_auth(request)

    def default_answer(self, endpoint: str, body: JSON, reply: Reply | None) -> JSON:
        answer = super().default_answer(endpoint, body, reply)
        if endpoint == _CHAT:
            answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _FILTER_OK}]
            for choice in answer["choices"]:
                choice["content_filter_results"] = _FILTER_OK
        return answer

    def default_chunks(self, endpoint: str, body: JSON, reply: Reply) -> Iterator[Any]:
        chunks = super().default_chunks(endpoint, body, reply)
        if endpoint != _CHAT:
            return chunks
        head = {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _FILTER_OK}],
        }
        return iter([head, *chunks])

    @staticmethod
    def content_filter_reply() -> Reply:
        """Azure's 400 for a prompt its content filter rejected."""
        return Reply(
            status=400,
            json={
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                    "management policy. Please modify your prompt and retry.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            "hate": {"filtered": False, "severity": "safe"},
                            "self_harm": {"filtered": False, "severity": "safe"},
                            "sexual": {"filtered": False, "severity": "safe"},
                            "violence": {"filtered": True, "severity": "medium"},
                        },
                    },
                }
            },
        )

    @staticmethod
    def rate_limited_reply(seconds: float) -> Reply:
        """Azure's 429, with both ``retry-after`` and ``retry-after-ms``."""
        return Reply(
            status=429,
            json={
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                    f"2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please "
                    f"retry after {int(seconds)} seconds.",
                }
            },
            headers={"retry-after": str(int(seconds)), "retry-after-ms": str(int(seconds * 1000))},
        )


_FILTER_OK = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def raw_response(reply: Reply) -> web.Response:
    """A scripted reply's status, headers and body, sent as they are."""
    headers = dict(reply.headers)
    if reply.json is not None:
        return json_response(reply.json, reply.status, headers)
    headers.setdefault("content-type", "text/plain")
    return web.Response(body=reply.body or b"", status=reply.status, headers=headers)


def _abort(request: web.Request) -> None:
    # Drop the TCP connection mid-body, as a crashed upstream or a broken proxy does.
    transport = request.transport
    if transport is not None:
        transport.abort()


@contextlib.contextmanager
def run_in_thread(fake: FakeOpenAI, start_timeout: float = 10.0) -> Iterator[FakeOpenAI]:
    """Serve ``fake`` from a background thread with its own event loop, for synchronous tests::

    with run_in_thread(FakeOpenAI()) as fake:
        openai.OpenAI(base_url=fake.base_url, api_key="x").models.list()
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(fake.start())
        except BaseException as exc:  # surfaced in the calling thread
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(fake.close())
        loop.close()

    thread = threading.Thread(target=serve, name="routerd-fake-upstream", daemon=True)
    thread.start()
    if not ready.wait(start_timeout):
        raise RuntimeError("fake upstream did not start")
    if failure:
        raise failure[0]
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=start_timeout)
