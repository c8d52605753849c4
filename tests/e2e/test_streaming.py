"""Streams that go wrong halfway: the client must learn of it, and a client that leaves must not keep
an upstream call running."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from routerd.testing import FakeOpenAI, Reply
from routerd.testing.server import RouterdServer

from .support import MASTER_KEY, client_for, user, wait_for

LONG_QUESTION = "one two three four five six seven eight nine ten"
UPSTREAM_ERROR = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Reply(cut_after=3), id="connection-cut"),
        pytest.param(Reply(error_after=3, inband_error=UPSTREAM_ERROR), id="in-band-error-event"),
    ],
)
def test_upstream_failure_after_the_first_chunk_raises_in_the_client(
    gateway: RouterdServer, fake_openai: FakeOpenAI, failure: Reply
) -> None:
    fake_openai.enqueue(failure)
    stream = client_for(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=user(LONG_QUESTION), stream=True
    )
    received: list[str] = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    assert received, "the chunks before the failure were relayed"
    assert "".join(received) != LONG_QUESTION  # the answer was really cut short
    assert caught.value.message  # says what happened


def test_midstream_failure_on_the_wire_is_an_error_event_without_done(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(cut_after=3))

    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": user(LONG_QUESTION), "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )

    assert response.status_code == 200  # the head went out with the first chunk
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events  # a truncated answer never looks complete
    last = orjson.loads(events[-1])
    assert set(last["error"]) >= {"message", "type", "code"}
    assert last["error"]["status_code"] >= 500
    assert all("choices" in orjson.loads(event) for event in events[:-1])


def test_client_disconnect_midstream_cancels_the_upstream_call(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(hang_after=2))  # two chunks, then the upstream goes quiet, connection open
    stream = client_for(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=user(LONG_QUESTION), stream=True
    )

    first = next(iter(stream))
    stream.close()  # the client hangs up while routerd waits for the upstream

    assert first.choices[0].delta.role == "assistant"
    wait_for(lambda: fake_openai.disconnects == 1, what="routerd to close the upstream stream")
    # and the gateway keeps serving
    assert client_for(gateway).chat.completions.create(model="mock-chat", messages=user("hi")).choices


def test_client_disconnect_while_chunks_flow_cancels_the_upstream_call(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    fake_openai.enqueue(Reply(chunk_delay=0.01))  # a long answer, one chunk per 10 ms
    stream = client_for(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=user(words), stream=True
    )

    iterator = iter(stream)
    for _ in range(3):
        next(iterator)
    stream.close()

    wait_for(lambda: fake_openai.disconnects == 1, what="routerd to close the upstream stream")
    assert len(fake_openai.requests) == 1
