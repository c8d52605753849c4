"""Service guardrails on streamed answers, end to end: a ``generic_guardrail_api`` webhook served by a
real HTTP server in the test and ``openai_moderation`` through the fake upstream's ``/v1/moderations``,
both in ``during_call`` mode. The official openai client reads the streams; the assertions are on what
the client received and what the policy service was asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from aiohttp import web
from clients import tracked

from routerd.testing import FakeOpenAI
from routerd.testing.fake_http import FakeServer
from routerd.testing.openai_fake import MODERATION_MARKER, Reply
from routerd.testing.server import RouterdServer

from .support import (
    MASTER_KEY,
    OPENAI_KEY,
    capture_logs,
    client_for,
    guardrail_counts,
    reset,
    running_fake,
    user,
    wait_for,
    write_config,
)

#: The word the policy service blocks, and the one it replaces.
FORBIDDEN = "forbidden"
CODENAME = "titan"
#: How long the slow endpoint sleeps: well past the guardrails' 0.2 s timeout.
SLOW_SECONDS = 1.5
#: A key whose calls run the `policy` webhook (the Anthropic door's requests carry no `guardrails`).
DOOR_KEY = "sk-door-key-0123456789abcdef"


class StreamPolicy(FakeServer[None]):
    """A policy webhook on loopback. ``/check`` blocks a text holding :data:`FORBIDDEN`, replaces
    :data:`CODENAME` with ``[codename]`` and allows the rest; ``/slow`` answers after
    :data:`SLOW_SECONDS`; ``/hold`` never answers (it notes when routerd gives up on it)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.tenants: list[str | None] = []  # the x-policy-tenant header of each request
        self.held = 0  # /hold requests waiting
        self.abandoned = 0  # /hold requests whose caller went away

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{action}", self._check)]

    def texts(self, action: str = "check") -> list[str]:
        return [text for path, body in self.received if path == action for text in body["texts"]]

    async def _check(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body = orjson.loads(await request.read())
        self.received.append((action, body))
        self.tenants.append(request.headers.get("x-policy-tenant"))
        if action == "slow":
            await asyncio.sleep(SLOW_SECONDS)
            return web.json_response({"action": "NONE"})
        if action == "hold":
            self.held += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.abandoned += 1
                raise
        texts = body["texts"]
        if any(FORBIDDEN in text for text in texts):
            return web.json_response({"action": "BLOCKED", "blocked_reason": "policy 9: forbidden plans"})
        if any(CODENAME in text for text in texts):
            replaced = [text.replace(CODENAME, "[codename]") for text in texts]
            return web.json_response({"action": "GUARDRAIL_INTERVENED", "texts": replaced})
        return web.json_response({"action": "NONE"})


def _hook(name: str, service: StreamPolicy, path: str, extra: str = "") -> str:
    return (
        f"  - guardrail_name: {name}\n"
        "    litellm_params:\n"
        "      guardrail: generic_guardrail_api\n"
        "      mode: during_call\n"
        f"      api_base: {service.base_url}/{path}\n"
        f"      {extra or 'stream_check_chars: 64'}\n"
    )


def _config(upstream: str, service: StreamPolicy) -> str:
    params = f"api_base: {upstream}, api_key: {OPENAI_KEY}"
    return (
        "model_list:\n"
        f"  - {{model_name: gpt-4o-mini, litellm_params: {{model: openai/gpt-4o-mini, {params}}}}}\n"
        f"  - {{model_name: moderation, litellm_params: {{model: openai/omni-moderation-latest, {params}}}}}\n"
        f"general_settings: {{master_key: {MASTER_KEY}}}\n"
        f"keys:\n  - {{key_alias: door, key: {DOOR_KEY}, guardrails: [policy]}}\n"
        "guardrails:\n"
        + _hook("policy", service, "check", "stream_check_chars: 64\n      headers: {x-policy-tenant: acme}")
        + _hook("policy-wide", service, "check", "stream_check_chars: 256")
        + _hook(
            "slow-open", service, "slow", "stream_check_chars: 64\n      timeout: 0.2\n      fail_open: true"
        )
        + _hook("slow-closed", service, "slow", "stream_check_chars: 64\n      timeout: 0.2")
        + _hook("hold", service, "hold", "stream_check_chars: 16\n      timeout: 30")
        + "  - guardrail_name: moderation\n"
        "    litellm_params:\n"
        "      {guardrail: openai_moderation, mode: during_call, model: moderation, stream_check_chars: 64}\n"
        "  - guardrail_name: emails\n"
        "    litellm_params:\n"
        "      guardrail: litellm_content_filter\n"
        "      mode: during_call\n"
        "      stream_window: 16\n"
        "      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]\n"
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as started:
        yield started


@pytest.fixture(scope="module")
def service() -> Iterator[StreamPolicy]:
    with running_fake(StreamPolicy()) as started:
        yield started


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAI, service: StreamPolicy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterdServer]:
    directory = tmp_path_factory.mktemp("guardrail-streams")
    config = write_config(directory, _config(fake.base_url, service))
    with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as started:
        yield started


@pytest.fixture
def gateway(server: RouterdServer, fake: FakeOpenAI, service: StreamPolicy) -> RouterdServer:
    reset(fake)
    service.received.clear()
    service.tenants.clear()
    return server


#: A calm answer of 40 sentences (1,240 characters).
CALM = "The weather is mild and calm today. " * 40


class Streamed:
    """What the client got from one stream: the text, and the error event that ended it (if any)."""

    def __init__(self, text: str, error: openai.APIError | None) -> None:
        self.text = text
        self.error = error


def _stream(server: RouterdServer, fake: FakeOpenAI, answer: str, guardrails: list[str]) -> Streamed:
    fake.enqueue(Reply(content=answer))
    stream = client_for(server).chat.completions.create(
        model="gpt-4o-mini", messages=user("tell me"), stream=True, extra_body={"guardrails": guardrails}
    )
    text = ""
    try:
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    except openai.APIError as exc:
        return Streamed(text, exc)
    return Streamed(text, None)


def _code(error: openai.APIError | None) -> Any:
    assert error is not None, "the stream ended without an error event"
    body = error.body
    assert isinstance(body, dict)
    return body.get("code")


def test_a_webhook_block_late_in_a_stream_ends_it_before_the_blocked_text(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    answer = CALM + f"Now the {FORBIDDEN} plan in detail: step one, step two. " + CALM
    got = _stream(gateway, fake, answer, ["policy"])
    assert _code(got.error) == "guardrail_blocked"
    assert FORBIDDEN not in got.text
    assert got.text and answer.startswith(got.text)  # the checked part came through, in order
    assert len(got.text) >= len(CALM) - 64 - 40  # all but the window held when the block fired
    sent = service.texts()
    assert FORBIDDEN in sent[-1] and not any(FORBIDDEN in text for text in sent[:-1])
    assert "".join(sent[:-1]) == got.text  # nothing reached the client that the service had not seen


def test_replacement_texts_reach_the_client(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    answer = CALM + f"The {CODENAME} launch is on the fourth. " + CALM
    got = _stream(gateway, fake, answer, ["policy"])
    assert got.error is None
    assert got.text == answer.replace(CODENAME, "[codename]")
    assert "".join(service.texts()) == answer  # each segment sent once, all of it
    assert service.tenants and set(service.tenants) == {"acme"}  # the guardrail's `headers` go with each


def test_the_check_window_sets_how_often_the_service_is_asked(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    counts = {}
    for name, window in (("policy", 64), ("policy-wide", 256)):
        service.received.clear()
        got = _stream(gateway, fake, CALM, [name])
        assert got.error is None and got.text == CALM
        segments = service.texts()
        assert "".join(segments) == CALM
        # each segment but the last: about the window (it ends at the last space before the word that
        # crossed it; this answer's words are shorter than 16 characters)
        assert all(window - 16 < len(s) <= window + 16 for s in segments[:-1]), [len(s) for s in segments]
        counts[window] = len(segments)
    assert len(CALM) // (64 + 16) <= counts[64] <= len(CALM) // (64 - 16) + 1
    assert len(CALM) // (256 + 16) <= counts[256] <= len(CALM) // (256 - 16) + 1
    assert counts[64] > 3 * counts[256]


def test_a_slow_service_fails_open_or_closed_per_check(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    answer = "A short and calm answer that needs two checks of the slow service."
    opened = _stream(gateway, fake, answer, ["slow-open"])
    assert opened.error is None and opened.text == answer
    assert len(service.texts("slow")) == 2
    service.received.clear()
    closed = _stream(gateway, fake, answer, ["slow-closed"])
    assert _code(closed.error) == "guardrail_unavailable"
    assert closed.text == ""  # the first segment was never answered for: none of it went out
    assert len(service.texts("slow")) == 1  # the stream ended at the first unanswered check


def test_moderation_flagging_mid_stream_blocks_the_rest(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    answer = CALM + f"and then everything went {MODERATION_MARKER} at the depot. " + CALM
    got = _stream(gateway, fake, answer, ["moderation"])
    assert _code(got.error) == "guardrail_blocked"
    assert MODERATION_MARKER not in got.text and answer.startswith(got.text) and len(got.text) > 1000
    inputs = [r.json["input"] for r in fake.requests if r.path == "/v1/moderations"]
    assert len(inputs) > 10 and all(len(i) == 1 for i in inputs)
    assert MODERATION_MARKER in inputs[-1][0]


def test_the_content_filter_masks_before_the_service_sees_the_text(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    answer = "Write to alice@example.org about it. " + CALM
    got = _stream(gateway, fake, answer, ["emails", "policy"])
    assert got.error is None
    assert got.text == answer.replace("alice@example.org", "[EMAIL_REDACTED]")
    assert "".join(service.texts()) == got.text
    assert "alice" not in str(service.received)


def test_stream_checks_are_counted_and_logged_once_per_stream(
    gateway: RouterdServer, fake: FakeOpenAI
) -> None:
    before = guardrail_counts(gateway)
    with capture_logs() as logs:
        _stream(gateway, fake, CALM, ["policy"])
        _stream(gateway, fake, CALM + FORBIDDEN, ["policy"])

        def lines() -> list[Any]:
            found = [getattr(r, "fields", {}) for r in logs.records]
            return [f for f in found if f.get("endpoint") == "chat" and "guardrails" in f]

        wait_for(lambda: len(lines()) == 2, what="two request log lines")
    after = guardrail_counts(gateway)
    grew = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert grew == {("policy", "allow", "during_call"): 1, ("policy", "block", "during_call"): 1}
    logged = [[dict(run) for run in f["guardrails"]] for f in lines()]
    assert logged == [
        [{"name": "policy", "mode": "during_call", "action": "allow"}],
        [{"name": "policy", "mode": "during_call", "action": "block"}],
    ]
    assert FORBIDDEN not in logs.text


def test_a_client_leaving_during_a_pending_check_cancels_it(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    fake.enqueue(Reply(content=CALM))
    body = {"model": "gpt-4o-mini", "messages": user("tell me"), "stream": True, "guardrails": ["hold"]}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    held = service.held
    with httpx.stream(
        "POST", gateway.base_url + "/v1/chat/completions", json=body, headers=headers
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: dropping the iterator would close the connection now
        first = next(line for line in lines if line.startswith("data: "))
        assert orjson.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        wait_for(lambda: service.held > held, what="the check to reach the service")
    # the client is gone: routerd's request to the service is cancelled
    wait_for(lambda: service.abandoned == service.held, what="the pending check to be cancelled")
    assert gateway.loop is not None

    async def pending() -> list[str]:
        current = asyncio.current_task()
        return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not current]

    def left() -> bool:
        tasks = asyncio.run_coroutine_threadsafe(pending(), gateway.loop).result(timeout=5)  # type: ignore[arg-type]
        return not [t for t in tasks if "check" in t or "post" in t or "relay" in t]

    wait_for(left, what="no task of the stream or its check left")


def test_the_anthropic_door_streams_are_checked_too(
    gateway: RouterdServer, fake: FakeOpenAI, service: StreamPolicy
) -> None:
    answer = CALM + f"Now the {FORBIDDEN} plan. " + CALM
    fake.enqueue(Reply(content=answer))
    claude = tracked(anthropic.Anthropic(base_url=gateway.base_url, api_key=DOOR_KEY, max_retries=0))
    text = ""
    with pytest.raises(anthropic.APIError) as caught:
        stream = claude.messages.create(
            model="gpt-4o-mini",
            max_tokens=1024,
            messages=[{"role": "user", "content": "tell me"}],
            stream=True,
        )
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    assert "policy" in str(caught.value)
    assert FORBIDDEN not in text and text and answer.startswith(text)
    assert any(FORBIDDEN in t for t in service.texts())
