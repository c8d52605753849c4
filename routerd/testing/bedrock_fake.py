"""A fake Amazon Bedrock runtime on a loopback port: Converse, ConverseStream and InvokeModel.

Like the real service it checks the SigV4 signature (recomputed with botocore from the signed headers,
for the access key and secret it was given) and answers AWS-shaped errors (``x-amzn-ErrorType`` and
``{"message": ...}``). ConverseStream answers in event-stream framing, encoded with
:func:`routerd.providers.eventstream.encode_message`. Replies are scripted::

    async with FakeBedrock(access_key="AKIDEXAMPLE", secret_key="secret") as fake:
        fake.enqueue(BedrockReply.failure(429, "ThrottlingException", "Too many requests"))
        ...

Without a script the fake echoes the last user text: ``"echo: <text>"``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from routerd.providers.eventstream import encode_message
from routerd.testing.fake_http import FakeServer, RecordedRequest, StreamPlan, cut_connection, json_response

JSON = dict[str, Any]
_CREDENTIAL = re.compile(r"Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_SIGNED = re.compile(r"SignedHeaders=([^,\s]+)")
_SIGNATURE = re.compile(r"Signature=([0-9a-f]+)")


@dataclass(slots=True)
class BedrockReply:
    """One scripted answer: Converse content blocks (None: echo), or an AWS exception."""

    content: list[JSON] | None = None
    stop_reason: str = "end_turn"
    usage: JSON = field(default_factory=lambda: {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10})
    status: int = 200
    exception: str = ""
    message: str = ""
    stream: StreamPlan = field(default_factory=StreamPlan)
    # answered as an in-stream exception after the events before it (ConverseStream only)
    stream_exception: str = ""

    @classmethod
    def text(cls, text: str, **kwargs: Any) -> BedrockReply:
        return cls(content=[{"text": text}], **kwargs)

    @classmethod
    def tool_use(
        cls, name: str, tool_input: JSON, *, tool_id: str = "tooluse_1", **kwargs: Any
    ) -> BedrockReply:
        block = {"toolUse": {"toolUseId": tool_id, "name": name, "input": tool_input}}
        return cls(content=[block], stop_reason="tool_use", **kwargs)

    @classmethod
    def failure(cls, status: int, exception: str, message: str) -> BedrockReply:
        return cls(status=status, exception=exception, message=message)


class FakeBedrock(FakeServer[BedrockReply]):
    """The runtime API under ``/model/{modelId}/...``; ``embedding_dim`` sets the vector length."""

    service = "bedrock"

    def __init__(
        self, *, access_key: str, secret_key: str, region: str = "us-east-1", embedding_dim: int = 4
    ):
        super().__init__(BedrockReply())
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.embedding_dim = embedding_dim
        #: web identity tokens STS accepts (``POST /`` AssumeRoleWithWebIdentity) -> role ARN
        self.web_identities: dict[str, str] = {}
        #: lifetime of the temporary credentials STS issues
        self.sts_lifetime_s = 3600
        self.sts_calls = 0
        #: seconds each InvokeModel call takes, and the most calls seen in flight at once
        self.invoke_delay = 0.0
        self.max_invokes_in_flight = 0
        self._invokes_in_flight = 0
        self._issued: dict[str, tuple[str, str]] = {}  # access key -> (secret, session token)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/model/{model_id}/{action}", self._dispatch), web.post("/", self._sts)]

    async def _sts(self, request: web.Request) -> web.Response:
        """STS AssumeRoleWithWebIdentity (form-encoded, unsigned), answering XML as STS does."""
        form = await request.post()
        self.sts_calls += 1
        token = str(form.get("WebIdentityToken", ""))
        if form.get("Action") != "AssumeRoleWithWebIdentity" or self.web_identities.get(token) != form.get(
            "RoleArn"
        ):
            error = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                "<Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key</Message>"
                "</Error></ErrorResponse>"
            )
            return web.Response(status=400, text=error, content_type="text/xml")
        number = len(self._issued) + 1
        key, secret, session = f"ASIATEMP{number:012d}", f"temp-secret-{number}", f"temp-session-{number}"
        self._issued[key] = (secret, session)
        expiry = datetime.fromtimestamp(time.time() + self.sts_lifetime_s, tz=UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{session}</SessionToken><Expiration>{expiry}</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )
        return web.Response(text=body, content_type="text/xml")

    def _secret_for(self, authorization: str) -> tuple[str, str]:
        match = _CREDENTIAL.search(authorization)
        key = match.group(1) if match else ""
        if key in self._issued:
            return key, self._issued[key][0]
        return self.access_key, self.secret_key

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        access_key, secret_key = self._secret_for(recorded.headers.get("authorization", ""))
        problem = verify_sigv4(request, recorded, self.service, access_key, secret_key, self.region)
        if problem:
            return aws_error(403, "InvalidSignatureException", problem)
        reply = self.next_reply()
        if reply.status >= 400:
            return aws_error(reply.status, reply.exception, reply.message)
        action = request.match_info["action"]
        model = unquote(request.match_info["model_id"])
        if not isinstance(recorded.json, dict):
            return aws_error(400, "ValidationException", "body is not JSON")
        if action == "converse":
            return json_response(self._converse(recorded.json, reply))
        if action == "converse-stream":
            return await self._converse_stream(request, recorded.json, reply)
        if action == "invoke":
            self._invokes_in_flight += 1
            self.max_invokes_in_flight = max(self.max_invokes_in_flight, self._invokes_in_flight)
            try:
                if self.invoke_delay:
                    await asyncio.sleep(self.invoke_delay)
                return self._invoke(model, recorded.json)
            finally:
                self._invokes_in_flight -= 1
        return aws_error(404, "UnknownOperationException", action)

    def _blocks(self, body: JSON, reply: BedrockReply) -> list[JSON]:
        if reply.content is not None:
            return reply.content
        text = ""
        for message in body.get("messages") or ():
            if message.get("role") == "user":
                text = " ".join(b["text"] for b in message.get("content") or () if "text" in b) or text
        return [{"text": f"echo: {text}"}]

    def _converse(self, body: JSON, reply: BedrockReply) -> JSON:
        return {
            "output": {"message": {"role": "assistant", "content": self._blocks(body, reply)}},
            "stopReason": reply.stop_reason,
            "usage": reply.usage,
            "metrics": {"latencyMs": 5},
        }

    def stream_events(self, body: JSON, reply: BedrockReply) -> list[tuple[str, JSON]]:
        events: list[tuple[str, JSON]] = [("messageStart", {"role": "assistant"})]
        for index, block in enumerate(self._blocks(body, reply)):
            if "text" in block:
                text = block["text"]
                for start in range(0, len(text), 6):
                    events.append(
                        (
                            "contentBlockDelta",
                            {"contentBlockIndex": index, "delta": {"text": text[start : start + 6]}},
                        )
                    )
            elif "toolUse" in block:
                use = block["toolUse"]
                start_event = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start_event}))
                raw = orjson.dumps(use["input"]).decode()
                for start in range(0, len(raw), 10):
                    delta = {"toolUse": {"input": raw[start : start + 10]}}
                    events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
        events.append(("messageStop", {"stopReason": reply.stop_reason}))
        events.append(("metadata", {"usage": reply.usage, "metrics": {"latencyMs": 5}}))
        return events

    async def _converse_stream(
        self, request: web.Request, body: JSON, reply: BedrockReply
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        plan = reply.stream
        for sent, (event_type, payload) in enumerate(self.stream_events(body, reply)):
            if plan.cut_after is not None and sent >= plan.cut_after:
                cut_connection(request)
                return response
            if plan.end_after is not None and sent >= plan.end_after:
                break
            if reply.stream_exception and plan.error_after is not None and sent >= plan.error_after:
                headers = {
                    ":message-type": "exception",
                    ":exception-type": reply.stream_exception,
                    ":content-type": "application/json",
                }
                await response.write(
                    encode_message(headers, orjson.dumps({"message": reply.message or "stream failed"}))
                )
                break
            headers = {
                ":message-type": "event",
                ":event-type": event_type,
                ":content-type": "application/json",
            }
            await response.write(encode_message(headers, orjson.dumps(payload)))
        await response.write_eof()
        return response

    def _invoke(self, model: str, body: JSON) -> web.Response:
        if "titan-embed" in model:
            text = str(body.get("inputText", ""))
            dim = int(body.get("dimensions") or self.embedding_dim)
            return json_response({"embedding": _vector(text, dim), "inputTextTokenCount": len(text.split())})
        if "cohere.embed" in model:
            texts = body.get("texts") or []
            vectors = [_vector(str(t), self.embedding_dim) for t in texts]
            return json_response(
                {"id": "emb-1", "embeddings": vectors, "texts": texts, "response_type": "embeddings_floats"}
            )
        return aws_error(400, "ValidationException", f"model {model} does not support this body")


def _vector(text: str, dim: int) -> list[float]:
    return [float((len(text) + i) % 7) / 7.0 for i in range(dim)]


def aws_error(status: int, exception: str, message: str) -> web.Response:
    """An AWS JSON-protocol error answer."""
    headers = {"x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return json_response({"message": message}, status=status, headers=headers)


def verify_sigv4(
    request: web.Request,
    recorded: RecordedRequest,
    service: str,
    access_key: str,
    secret_key: str,
    region: str,
) -> str:
    """Why the request's SigV4 signature is wrong, or ``""`` when it is right."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = recorded.headers.get("authorization", "")
    credential = _CREDENTIAL.search(authorization)
    signed = _SIGNED.search(authorization)
    signature = _SIGNATURE.search(authorization)
    if not (authorization.startswith("AWS4-HMAC-SHA256 ") and credential and signed and signature):
        return "missing or malformed SigV4 authorization"
    key, _day, signed_region, signed_service = credential.groups()
    if key != access_key:
        return "The security token included in the request is invalid."
    if (signed_region, signed_service) != (region, service):
        return f"credential scope {signed_region}/{signed_service} should be {region}/{service}"
    names = signed.group(1).split(";")
    headers = {name: recorded.headers.get(name, "") for name in names}
    url = f"http://{recorded.headers.get('host', '')}{request.raw_path}"
    aws_request = AWSRequest(method=request.method, url=url, data=recorded.body, headers=headers)
    aws_request.context["timestamp"] = recorded.headers.get("x-amz-date", "")
    token = recorded.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(access_key, secret_key, token), service, region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if expected != signature.group(1):
        return "The request signature we calculated does not match the signature you provided."
    return ""
