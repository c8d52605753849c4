"""Fake Google upstreams on loopback: the Gemini API, Vertex AI, and an OAuth token endpoint.

:class:`FakeGemini` serves both URL families, with their own authentication:

* Gemini API: ``POST /v1beta/models/{model}:generateContent`` (``:streamGenerateContent``,
  ``:batchEmbedContents``, ``:embedContent``), key in ``x-goog-api-key`` (a ``?key=`` query works too,
  as upstream, and is recorded so tests can assert routerd never sends one); also without the version
  (``/models/...``), as a proxy or Vertex-Express style ``api_base`` is called (LiteLLM's URL shape);
* Vertex AI: ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``
  (and tuned ``.../endpoints/{id}:...``) with ``Authorization: Bearer <token>``.

Request bodies are checked against the documented ``GenerateContentRequest`` fields; unknown fields
are refused as upstream refuses them. Streams are SSE (``?alt=sse``) or, without it, one JSON array.
Replies are scripted with :class:`GeminiReply`; without a script the fake echoes the last user text.

:class:`FakeGoogleToken` is an OAuth 2.0 token endpoint for service-account JWT grants: it verifies
the assertion's RS256 signature with the public key of :func:`make_service_account`'s throwaway key
and issues tokens that a :class:`FakeGemini` created with ``tokens=token_server.issued`` accepts.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routerd.testing.fake_http import FakeServer, StreamPlan, json_response, open_event_stream
from routerd.tokens import estimate_tokens

JSON = dict[str, Any]

# Fields of GenerateContentRequest (REST accepts lowerCamelCase and the proto's snake_case).
REQUEST_FIELDS = frozenset(
    {
        "contents",
        "tools",
        "toolConfig",
        "tool_config",
        "safetySettings",
        "safety_settings",
        "systemInstruction",
        "system_instruction",
        "generationConfig",
        "generation_config",
        "cachedContent",
        "cached_content",
        "labels",
        "model",
    }
)
GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
    }
)
PART_DATA_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    }
)
PART_META_FIELDS = frozenset({"thought", "thoughtSignature", "videoMetadata"})

_GEMINI_PATH = re.compile(
    r"^(/v1|/v1beta|/v1alpha)?/(?P<model>(?:models|tunedModels)/[^:/]+):(?P<method>\w+)$"
)
_VERTEX_PATH = re.compile(
    r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/(publishers/google/models|endpoints)/(?P<model>[^:/]+):(?P<method>\w+)$"
)


@dataclass(slots=True)
class GeminiReply:
    """What the fake answers to one call.

    ``parts`` are the model's content parts (``None``: echo the last user text). ``prompt_block``
    answers with ``promptFeedback.blockReason`` and no candidates; ``finish_reason`` of ``SAFETY``
    etc. blocks the answer. A ``status`` of 400 or more answers ``error_body``.
    """

    parts: list[JSON] | None = None
    finish_reason: str = "STOP"
    prompt_block: str | None = None
    usage: JSON | None = None
    status: int = 200
    error_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    chunk_size: int = 8  # characters of text per streamed response
    stream: StreamPlan = field(default_factory=StreamPlan)

    @classmethod
    def text(cls, text: str, **kwargs: Any) -> GeminiReply:
        return cls(parts=[{"text": text}], **kwargs)

    @classmethod
    def function_call(
        cls, name: str, args: JSON, *, text: str | None = None, signature: str | None = None, **kwargs: Any
    ) -> GeminiReply:
        parts: list[JSON] = [{"text": text}] if text else []
        call: JSON = {"functionCall": {"name": name, "args": args}}
        if signature:
            call["thoughtSignature"] = signature
        parts.append(call)
        return cls(parts=parts, **kwargs)

    @classmethod
    def failure(
        cls,
        status: int,
        google_status: str,
        message: str,
        *,
        details: list[JSON] | None = None,
        **kwargs: Any,
    ) -> GeminiReply:
        return cls(status=status, error_body=error_body(status, google_status, message, details), **kwargs)


def error_body(code: int, status: str, message: str, details: list[JSON] | None = None) -> JSON:
    """Google's error shape (google.rpc.Status as JSON)."""
    error: JSON = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


class FakeGemini(FakeServer[GeminiReply]):
    """The Gemini API and Vertex AI. ``api_key`` guards Gemini URLs, ``tokens`` Vertex URLs (a set
    shared with :class:`FakeGoogleToken`, or fixed access tokens)."""

    def __init__(
        self,
        *,
        api_key: str | None = "gemini-test-key",
        tokens: set[str] | None = None,
        default: GeminiReply | None = None,
        embedding_dim: int = 8,
    ) -> None:
        super().__init__(default or GeminiReply())
        self.api_key = api_key
        self.tokens: set[str] = tokens if tokens is not None else {"vertex-test-token"}
        self.embedding_dim = embedding_dim

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/{tail:.*}", self._dispatch)]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        gemini = _GEMINI_PATH.match(request.path)
        vertex = _VERTEX_PATH.match(request.path)
        if request.method != "POST" or not (gemini or vertex):
            return json_response(error_body(404, "NOT_FOUND", f"{request.path} is not found"), 404)
        denied = self._check_key(request) if gemini else self._check_token(request)
        if denied is not None:
            return denied
        match = gemini or vertex
        assert match is not None
        model, method = match.group("model"), match.group("method")
        body = recorded.json
        if method in ("batchEmbedContents", "embedContent") and gemini:
            return self._embed(method, model, body)
        if method not in ("generateContent", "streamGenerateContent"):
            return json_response(error_body(404, "NOT_FOUND", f"method {method} is not found"), 404)
        problem = check_generate_request(body, vertex=vertex is not None)
        if problem is not None:
            return json_response(error_body(400, "INVALID_ARGUMENT", problem), 400)
        reply = self.next_reply()
        if reply.hang:
            await asyncio.Event().wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status >= 400:
            return json_response(reply.error_body, reply.status, reply.headers)
        model_version = model.rsplit("/", 1)[-1]
        responses = list(
            generate_responses(body, reply, model_version, stream=method == "streamGenerateContent")
        )
        if method == "generateContent":
            return json_response(responses[0], 200, reply.headers)
        if request.query.get("alt") != "sse":  # without alt=sse the stream is one JSON array
            return json_response(responses, 200, reply.headers)
        response = await open_event_stream(request, reply.headers)
        return await self.write_stream(request, response, responses, reply.stream, encode_event)

    def _check_key(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            message = "Method doesn't allow unregistered callers (callers without established identity)."
            return json_response(error_body(403, "PERMISSION_DENIED", message), 403)
        if self.api_key is not None and key != self.api_key:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ]
            return json_response(
                error_body(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details
                ),
                400,
            )
        return None

    def _check_token(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return None
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential."
        )
        return json_response(error_body(401, "UNAUTHENTICATED", message), 401)

    def _embed(self, method: str, model: str, body: Any) -> web.Response:
        requests = (
            body.get("requests") if method == "batchEmbedContents" and isinstance(body, dict) else [body]
        )
        if not isinstance(requests, list) or not requests:
            return json_response(error_body(400, "INVALID_ARGUMENT", "requests must not be empty"), 400)
        vectors = []
        for index, item in enumerate(requests):
            if not isinstance(item, dict) or not isinstance(item.get("content"), dict):
                return json_response(
                    error_body(400, "INVALID_ARGUMENT", f"requests[{index}].content is required"), 400
                )
            if method == "batchEmbedContents" and item.get("model") != model:
                message = (
                    f"Model {item.get('model')!r} in requests[{index}] does not match {model!r} of the URL."
                )
                return json_response(error_body(400, "INVALID_ARGUMENT", message), 400)
            text = " ".join(str(p.get("text", "")) for p in item["content"].get("parts") or [])
            dim = int(item.get("outputDimensionality") or self.embedding_dim)
            vectors.append({"values": _vector(text, dim)})
        if method == "embedContent":
            return json_response({"embedding": vectors[0]})
        return json_response({"embeddings": vectors})


def check_generate_request(body: Any, *, vertex: bool = False) -> str | None:
    """What upstream would refuse in a ``GenerateContentRequest`` body (None when it is valid)."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    for name in body:
        if name not in REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for index, content in enumerate(contents):
        role = content.get("role") if isinstance(content, dict) else None
        if role not in ("user", "model") and (vertex or role is not None):
            return f"Please use a valid role: user, model. (contents[{index}])"
        problem = _check_parts(content.get("parts") if isinstance(content, dict) else None)
        if problem:
            return f"* GenerateContentRequest.contents[{index}].{problem}"
    system = body.get("systemInstruction")
    if system is not None:
        problem = _check_parts(system.get("parts") if isinstance(system, dict) else None)
        if problem:
            return f"* GenerateContentRequest.system_instruction.{problem}"
    generation = body.get("generationConfig") or {}
    for name in generation:
        if name not in GENERATION_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config': Cannot find field."
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if not declaration.get("name"):
                return "* GenerateContentRequest.tools.function_declarations.name: name is required"
            problem = _check_schema(declaration.get("parameters"))
            if problem:
                return f"* GenerateContentRequest.tools.function_declarations.parameters{problem}"
    return None


def _check_parts(parts: Any) -> str | None:
    if not isinstance(parts, list) or not parts:
        return "parts: contents.parts must not be empty."
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            return f"parts[{index}]: must be an object"
        data = [name for name in part if name in PART_DATA_FIELDS]
        unknown = [name for name in part if name not in PART_DATA_FIELDS | PART_META_FIELDS]
        if unknown:
            return f'parts[{index}]: Unknown name "{unknown[0]}"'
        if len(data) != 1:
            return f"parts[{index}].data: required oneof field 'data' must have one initialized field"
    return None


_SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def _check_schema(schema: Any, path: str = "") -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return f"{path}: must be an object"
    for name in schema:
        if name not in _SCHEMA_FIELDS:
            return f'{path}: Unknown name "{name}": Cannot find field.'
    if schema.get("type") == "OBJECT" and "properties" in schema and not schema["properties"]:
        return f"{path}.properties: should be non-empty for OBJECT type"
    for name, value in (schema.get("properties") or {}).items():
        problem = _check_schema(value, f"{path}.properties[{name}]")
        if problem:
            return problem
    return _check_schema(schema.get("items"), f"{path}.items") if "items" in schema else None


def generate_responses(body: JSON, reply: GeminiReply, model: str, *, stream: bool) -> Iterator[JSON]:
    """The ``GenerateContentResponse`` (one, or the streamed pieces) the fake answers ``body`` with."""
    response_id = uuid.uuid4().hex[:22]
    prompt_tokens = max(1, estimate_tokens(orjson.dumps(body.get("contents")).decode()))
    if reply.prompt_block:
        yield {
            "promptFeedback": {"blockReason": reply.prompt_block, "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
            "modelVersion": model,
            "responseId": response_id,
        }
        return
    parts = reply.parts if reply.parts is not None else [{"text": _echo(body)}]
    count = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    output_tokens = max(1, sum(estimate_tokens(orjson.dumps(p).decode()) for p in parts)) * count
    usage = reply.usage or {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }
    pieces = _stream_pieces(parts, reply.chunk_size) if stream else [parts]
    for position, piece in enumerate(pieces):
        last = position == len(pieces) - 1
        candidates = []
        for index in range(count):
            candidate: JSON = {"content": {"parts": piece, "role": "model"}, "index": index}
            if last:
                candidate["finishReason"] = reply.finish_reason
                candidate["safetyRatings"] = _ratings(reply.finish_reason)
            candidates.append(candidate)
        partial_usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        yield {
            "candidates": candidates,
            "usageMetadata": usage if last else partial_usage,
            "modelVersion": model,
            "responseId": response_id,
        }


def _stream_pieces(parts: list[JSON], size: int) -> list[list[JSON]]:
    pieces: list[list[JSON]] = []
    for part in parts:
        text = part.get("text")
        if isinstance(text, str) and text and not part.get("thought"):
            pieces.extend([{"text": text[i : i + size]}] for i in range(0, len(text), size))
        else:
            pieces.append([part])  # function calls and thoughts arrive whole
    return pieces or [[{"text": ""}]]


def _ratings(finish_reason: str) -> list[JSON]:
    blocked = finish_reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII")
    return [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH" if blocked else "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    ]


def encode_event(payload: Any) -> bytes:
    """One SSE event as Google sends it (CRLF line ends)."""
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


def _echo(body: JSON) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role", "user") != "user":
            continue
        texts = [part["text"] for part in content.get("parts") or [] if "text" in part]
        if texts:
            return "echo: " + " ".join(texts)
    return "echo: (no text)"


def _vector(text: str, dim: int) -> list[float]:
    seed = sum(text.encode()) or 1
    return [((seed * (i + 7)) % 1000) / 1000.0 for i in range(dim)]


# --- OAuth token endpoint ------------------------------------------------------------------------

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# the audience Google's token endpoint expects in service-account assertions, whatever its URL
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class FakeGoogleToken(FakeServer[None]):
    """``POST /token``: the OAuth 2.0 JWT-bearer grant google-auth's service-account credentials use.

    The assertion must be an RS256 JWT signed by the key whose public PEM is ``public_key_pem`` (set
    it once the key exists: the key file names this server's ``token_uri``), with ``aud`` = Google's
    token endpoint (or this one) and a ``scope``. Issued tokens are added to ``issued`` (share the set with
    :class:`FakeGemini`); ``expires_in`` is their lifetime; ``claims`` keeps each verified grant.
    """

    def __init__(self, public_key_pem: bytes | None = None, *, expires_in: int = 3600) -> None:
        super().__init__(None)
        self.public_key_pem = public_key_pem
        self.expires_in = expires_in
        self.issued: set[str] = set()
        self.claims: list[JSON] = []
        self.fail_with: tuple[int, JSON] | None = None  # answer every grant with this error

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/token", self._token)]

    async def _token(self, request: web.Request) -> web.Response:
        await self.record(request)
        if self.fail_with is not None:
            return json_response(self.fail_with[1], self.fail_with[0])
        form = await request.post()
        if form.get("grant_type") != JWT_GRANT:
            return json_response({"error": "unsupported_grant_type"}, 400)
        claims = self._verify(str(form.get("assertion") or ""))
        if claims is None:
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400
            )
        now = time.time()
        audience_ok = claims.get("aud") in (GOOGLE_TOKEN_AUDIENCE, self.token_uri)
        if not audience_ok or not claims.get("scope") or claims.get("exp", 0) < now - 60:
            return json_response({"error": "invalid_grant", "error_description": "Invalid JWT claims."}, 400)
        self.claims.append(claims)
        token = f"ya29.fake-{uuid.uuid4().hex}"
        self.issued.add(token)
        return json_response({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})

    def _verify(self, assertion: str) -> JSON | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = orjson.loads(_b64decode(header_b64))
            claims = orjson.loads(_b64decode(claims_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, orjson.JSONDecodeError):
            return None
        if header.get("alg") != "RS256" or self.public_key_pem is None:
            return None
        key = serialization.load_pem_public_key(self.public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            return None
        try:
            key.verify(signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return None
        return claims if isinstance(claims, dict) else None


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def make_service_account(
    token_uri: str,
    *,
    project_id: str = "fake-project",
    email: str = "router@fake-project.iam.gserviceaccount.com",
) -> tuple[JSON, bytes]:
    """A throwaway service-account key file (as a dict) and the PEM of its public key.

    The key is generated on the spot (RSA 2048); ``token_uri`` points google-auth at a fake token
    endpoint instead of oauth2.googleapis.com.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": private_pem,
        "client_email": email,
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return info, public_pem
