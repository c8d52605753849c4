"""A fake SageMaker runtime on a loopback port: InvokeEndpoint and InvokeEndpointWithResponseStream.

Checks SigV4 for the service ``sagemaker`` (see :func:`routerd.testing.bedrock_fake.verify_sigv4`).
An endpoint answers as a Hugging Face TGI container (``{"inputs", "parameters"}`` in,
``[{"generated_text", "details"}]`` out) or, when the body has ``messages``, as an OpenAI-compatible
one. Streams are the container's SSE body cut into event-stream ``PayloadPart`` messages at
arbitrary byte boundaries, as the real service does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routerd.providers.eventstream import encode_message
from routerd.testing.bedrock_fake import aws_error, verify_sigv4
from routerd.testing.fake_http import FakeServer, StreamPlan, cut_connection, json_response

JSON = dict[str, Any]


@dataclass(slots=True)
class SageMakerReply:
    """One scripted answer: generated text (None: echo), or an AWS error."""

    text: str | None = None
    status: int = 200
    exception: str = ""
    message: str = ""
    stream: StreamPlan = field(default_factory=StreamPlan)
    part_size: int = 7  # bytes per PayloadPart: SSE lines are split across parts


class FakeSageMaker(FakeServer[SageMakerReply]):
    def __init__(self, *, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        super().__init__(SageMakerReply())
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/endpoints/{name}/{action}", self._dispatch)]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        problem = verify_sigv4(request, recorded, "sagemaker", self.access_key, self.secret_key, self.region)
        if problem:
            return aws_error(403, "InvalidSignatureException", problem)
        reply = self.next_reply()
        if reply.status >= 400:
            return aws_error(reply.status, reply.exception, reply.message)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        chat = "messages" in body
        text = reply.text if reply.text is not None else f"echo: {_last_text(body, chat)}"
        if request.match_info["action"] == "invocations":
            return json_response(_chat_completion(text) if chat else [_tgi_answer(text)])
        sse = _openai_sse(text) if chat else _tgi_sse(text)
        return await self._stream(request, sse, reply)

    async def _stream(self, request: web.Request, sse: bytes, reply: SageMakerReply) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        parts = [sse[i : i + reply.part_size] for i in range(0, len(sse), reply.part_size)]
        plan = reply.stream
        for sent, part in enumerate(parts):
            if plan.cut_after is not None and sent >= plan.cut_after:
                cut_connection(request)
                return response
            if plan.end_after is not None and sent >= plan.end_after:
                break
            if plan.error_after is not None and sent >= plan.error_after:
                headers = {
                    ":message-type": "exception",
                    ":exception-type": "ModelStreamError",
                    ":content-type": "application/json",
                }
                await response.write(
                    encode_message(headers, orjson.dumps({"Message": reply.message or "model failed"}))
                )
                break
            headers = {
                ":message-type": "event",
                ":event-type": "PayloadPart",
                ":content-type": "application/octet-stream",
            }
            await response.write(encode_message(headers, part))
        await response.write_eof()
        return response


def _last_text(body: JSON, chat: bool) -> str:
    if not chat:
        prompt = str(body.get("inputs", ""))
        lines = [line for line in prompt.splitlines() if line.startswith("user: ")]
        return lines[-1][len("user: ") :] if lines else prompt
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _tgi_answer(text: str) -> JSON:
    return {
        "generated_text": text,
        "details": {"finish_reason": "eos_token", "generated_tokens": len(text.split())},
    }


def _tgi_sse(text: str) -> bytes:
    words = text.split(" ")
    out = b""
    for index, word in enumerate(words):
        piece = word if index == 0 else " " + word
        last = index == len(words) - 1
        event = {
            "token": {"id": index, "text": piece, "special": False},
            "generated_text": text if last else None,
            "details": {"finish_reason": "eos_token", "generated_tokens": len(words)} if last else None,
        }
        out += b"data:" + orjson.dumps(event) + b"\n\n"
    return out


def _chat_completion(text: str) -> JSON:
    return {
        "id": "chatcmpl-sm",
        "object": "chat.completion",
        "created": 1,
        "model": "tgi",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def _openai_sse(text: str) -> bytes:
    out = b""
    for start in range(0, len(text), 4):
        delta = {"content": text[start : start + 4]}
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "tgi",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        out += b"data: " + orjson.dumps(chunk) + b"\n\n"
    done = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "tgi",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    return out + b"data: " + orjson.dumps(done) + b"\n\ndata: [DONE]\n\n"
