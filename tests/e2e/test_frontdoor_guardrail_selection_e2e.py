"""Guardrails a request names, through the front doors: the official ``anthropic`` client on
``/v1/messages`` and the ``openai`` client's ``responses.create`` on ``/v1/responses``, against a fake
Anthropic (``claude``) and a fake OpenAI (``gpt``) upstream.

No guardrail here is ``default_on`` and no key lists one: each runs only when the request names it, in
the body (``extra_body={"guardrails": [...]}``) or in LiteLLM's ``metadata.guardrails``. Assertions are
on what the clients got and on what the fakes received (never the selection itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from clients import tracked

from routerd.guardrails.selection import MAX_REQUESTED_GUARDRAILS
from routerd.testing import FakeOpenAI
from routerd.testing.anthropic_fake import FakeAnthropic
from routerd.testing.fake_http import RecordedRequest
from routerd.testing.server import RouterdServer

from .support import ANTHROPIC_KEY, MASTER_KEY, OPENAI_KEY, reset, running_fake, write_config

SECRET = "AKIAIOSFODNN7EXAMPLE"  # what the `secrets` guardrail blocks in prompts
FORBIDDEN = "forbidden"  # what the `answers` guardrail blocks in streamed answers
MODELS = ("claude", "gpt")


def _config(openai_base: str, anthropic_base: str) -> str:
    return f"""\
model_list:
  - {{model_name: claude, litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: {anthropic_base}, api_key: {ANTHROPIC_KEY}}}}}
  - {{model_name: gpt, litellm_params: {{model: openai/gpt-4o-mini, api_base: {openai_base}, api_key: {OPENAI_KEY}}}}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: {MASTER_KEY}}}
guardrails:
  - guardrail_name: secrets
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      patterns: [{{pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}}]
  - guardrail_name: answers
    litellm_params:
      guardrail: litellm_content_filter
      mode: during_call
      stream_window: 16
      blocked_words: [{{keyword: {FORBIDDEN}, action: BLOCK}}]
  - guardrail_name: audit
    litellm_params: {{guardrail: litellm_content_filter, mode: logging_only, blocked_words: [{{keyword: x, action: BLOCK}}]}}
"""


class Upstreams:
    def __init__(self, oai: FakeOpenAI, ant: FakeAnthropic) -> None:
        self.openai = oai
        self.anthropic = ant

    def requests(self) -> list[RecordedRequest]:
        return [*self.openai.requests, *self.anthropic.requests]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as oai,
        running_fake(FakeAnthropic(api_key=ANTHROPIC_KEY)) as ant,
    ):
        yield Upstreams(oai, ant)


@pytest.fixture(scope="module")
def daemon(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    directory = Path(tmp_path_factory.mktemp("frontdoor-guardrails"))
    config = write_config(directory, _config(upstreams.openai.base_url, upstreams.anthropic.base_url))
    with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as started:
        yield started


@pytest.fixture
def server(daemon: RouterdServer, upstreams: Upstreams) -> RouterdServer:
    reset(upstreams.openai)
    reset(upstreams.anthropic)
    return daemon


def claude_client(server: RouterdServer) -> anthropic.Anthropic:
    return tracked(anthropic.Anthropic(base_url=server.base_url, api_key=MASTER_KEY, max_retries=0))


def openai_client(server: RouterdServer) -> openai.OpenAI:
    return tracked(openai.OpenAI(base_url=server.base_url + "/v1", api_key=MASTER_KEY, max_retries=0))


def _selection(how: str, names: Any) -> dict[str, Any]:
    """The request fields that name ``names``: in the body, or in LiteLLM's metadata."""
    if how == "body":
        return {"extra_body": {"guardrails": names}}
    return {"metadata": {"guardrails": names}}


def _message(server: RouterdServer, model: str, text: str, *, stream: bool = False, **fields: Any) -> str:
    """The answer's text to one /v1/messages call."""
    client = claude_client(server)
    if not stream:
        message = client.messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": text}], **fields
        )
        return "".join(block.text for block in message.content if block.type == "text")
    events = client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": text}], stream=True, **fields
    )
    return "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )


def _response(server: RouterdServer, model: str, text: str, *, stream: bool = False, **fields: Any) -> str:
    """The answer's text to one /v1/responses call."""
    client = openai_client(server)
    if not stream:
        return client.responses.create(model=model, input=text, **fields).output_text
    events = client.responses.create(model=model, input=text, stream=True, **fields)
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def _no_selection_upstream(upstreams: Upstreams) -> None:
    """No upstream request carried the selection, in the body or in its metadata."""
    sent = upstreams.requests()
    assert sent
    for request in sent:
        assert "guardrails" not in request.json, request.path
        assert "guardrails" not in (request.json.get("metadata") or {}), request.path


# -- /v1/messages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["body", "metadata"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("model", MODELS)
def test_messages_a_named_guardrail_blocks(
    server: RouterdServer, upstreams: Upstreams, model: str, stream: bool, how: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as blocked:
        _message(server, model, f"my key is {SECRET}", stream=stream, **_selection(how, ["secrets"]))
    body = blocked.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and "'secrets'" in body["error"]["message"]
    assert SECRET not in blocked.value.response.text
    assert upstreams.requests() == []  # the prompt never left routerd


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("model", MODELS)
def test_messages_without_the_name_the_guardrail_does_not_run(
    server: RouterdServer, upstreams: Upstreams, model: str, stream: bool
) -> None:
    text = _message(server, model, f"my key is {SECRET}", stream=stream, metadata={"user_id": "u-1"})
    assert SECRET in text
    assert any(SECRET in request.body.decode() for request in upstreams.requests())


@pytest.mark.parametrize("model", MODELS)
def test_messages_a_named_guardrail_ends_a_stream(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    prompt = f"say {FORBIDDEN} things"
    events = claude_client(server).messages.create(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        extra_body={"guardrails": ["answers"]},
    )
    text = ""
    with pytest.raises(anthropic.APIError) as blocked:  # the stream's in-band `error` event
        for event in events:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    assert "'answers'" in str(blocked.value) and FORBIDDEN not in text
    assert FORBIDDEN in _message(server, model, prompt, stream=True)  # not named: it does not run


@pytest.mark.parametrize("model", MODELS)
def test_messages_the_selection_never_reaches_the_upstream(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    metadata = {"user_id": "u-7", "guardrails": ["secrets"]}
    for names in (["secrets", "answers"], ["audit"], []):  # translated, then natively for claude
        assert _message(server, model, "hello", metadata=metadata, extra_body={"guardrails": names})
    assert _message(server, model, "hello", metadata={"guardrails": ["audit"]})
    _no_selection_upstream(upstreams)
    if model == "claude":
        sent = [request.json for request in upstreams.anthropic.requests]
        assert len(sent) == 4
        # natively (the last three: nothing read the chat shape) the fake refuses an unknown field
        assert [body.get("metadata") for body in sent] == [{"user_id": "u-7"}] * 3 + [None]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra_body": {"guardrails": ["secrets", "nope"]}}, "guardrails: unknown guardrail 'nope'"),
        ({"metadata": {"guardrails": ["nope"]}}, "guardrails: unknown guardrail 'nope'"),
        (
            {"extra_body": {"guardrails": "secrets"}},
            "guardrails: 'guardrails' must be a list of guardrail names",
        ),
        ({"metadata": {"guardrails": [5]}}, "guardrails: 'guardrails' must be a list of guardrail names"),
        (
            {"extra_body": {"guardrails": ["secrets"] * (MAX_REQUESTED_GUARDRAILS + 1)}},
            f"guardrails: at most {MAX_REQUESTED_GUARDRAILS} guardrails per request",
        ),
    ],
    ids=["unknown", "unknown-in-metadata", "not-a-list", "not-names", "too-many"],
)
def test_messages_a_bad_selection_is_an_anthropic_400(
    server: RouterdServer, upstreams: Upstreams, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        _message(server, "claude", "hello", **fields)
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
    assert upstreams.requests() == []


def test_count_tokens_ignores_the_selection(server: RouterdServer) -> None:
    client = claude_client(server)
    plain = client.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "count me"}])
    named = client.messages.count_tokens(
        model="gpt",
        messages=[{"role": "user", "content": "count me"}],
        extra_body={"guardrails": ["secrets"]},
    )
    assert named.input_tokens == plain.input_tokens > 0


# -- /v1/responses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["body", "metadata"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("model", MODELS)
def test_responses_a_named_guardrail_blocks(
    server: RouterdServer, upstreams: Upstreams, model: str, stream: bool, how: str
) -> None:
    with pytest.raises(openai.BadRequestError) as blocked:
        _response(server, model, f"my key is {SECRET}", stream=stream, **_selection(how, ["secrets"]))
    body = blocked.value.body
    assert isinstance(body, dict)
    assert body["type"] == "guardrail_violation" and body["code"] == "guardrail_blocked"
    assert body["guardrail"] == "secrets" and body["param"] == "guardrails"
    assert SECRET not in blocked.value.response.text
    assert upstreams.requests() == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("model", MODELS)
def test_responses_without_the_name_the_guardrail_does_not_run(
    server: RouterdServer, upstreams: Upstreams, model: str, stream: bool
) -> None:
    assert SECRET in _response(server, model, f"my key is {SECRET}", stream=stream)
    assert any(SECRET in request.body.decode() for request in upstreams.requests())


@pytest.mark.parametrize("model", MODELS)
def test_responses_a_named_guardrail_ends_a_stream(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    prompt = f"say {FORBIDDEN} things"
    events = list(
        openai_client(server).responses.create(
            model=model, input=prompt, stream=True, extra_body={"guardrails": ["answers"]}
        )
    )
    assert events[-1].type == "response.failed"  # the Responses stream's in-band end
    error = events[-1].response.error  # type: ignore[union-attr]
    assert error is not None and "'answers'" in error.message
    assert FORBIDDEN not in "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert FORBIDDEN in _response(server, model, prompt, stream=True)  # not named: it does not run


@pytest.mark.parametrize("model", MODELS)
def test_responses_the_selection_never_reaches_the_upstream_nor_the_response(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    client = openai_client(server)
    for names in (["secrets", "answers"], ["audit"], []):  # translated, then natively for gpt
        response = client.responses.create(
            model=model,
            input="hello",
            metadata={"team": "blue", "guardrails": names},  # type: ignore[dict-item]
            extra_body={"guardrails": names},
        )
        assert response.output_text and response.metadata == {"team": "blue"}
        assert client.responses.retrieve(response.id).metadata == {"team": "blue"}
    _no_selection_upstream(upstreams)
    if model == "gpt":
        native = [r.json for r in upstreams.openai.requests if r.path == "/v1/responses"]
        assert [body["metadata"] for body in native] == [{"team": "blue"}] * 2


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"extra_body": {"guardrails": ["nope"]}},
            ("unknown guardrail 'nope'", "unknown_guardrail"),
        ),
        (
            {"metadata": {"guardrails": ["secrets", "nope"]}},
            ("unknown guardrail 'nope'", "unknown_guardrail"),
        ),
        (
            {"extra_body": {"guardrails": {"secrets": True}}},
            ("'guardrails' must be a list of guardrail names", None),
        ),
        ({"metadata": {"guardrails": "secrets"}}, ("'guardrails' must be a list of guardrail names", None)),
        (
            {"extra_body": {"guardrails": ["secrets"] * (MAX_REQUESTED_GUARDRAILS + 1)}},
            (f"at most {MAX_REQUESTED_GUARDRAILS} guardrails per request", None),
        ),
    ],
    ids=["unknown", "unknown-in-metadata", "not-a-list", "not-a-list-in-metadata", "too-many"],
)
@pytest.mark.parametrize("model", MODELS)
def test_responses_a_bad_selection_is_an_openai_400(
    server: RouterdServer, upstreams: Upstreams, model: str, fields: dict[str, Any], error: tuple[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _response(server, model, "hello", **fields)
    message, code = error
    assert refused.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": "guardrails",
        "code": code,
    }
    assert upstreams.requests() == []
