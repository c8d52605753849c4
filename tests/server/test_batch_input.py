"""The pure parts of gateway batches: the input file's checks and bounds, its rewrite for a deployment,
the usage an output file reports, batch prices, and the bounds of the batch registry."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from routerd.config.table import Deployment, ModelInfo
from routerd.errors import BadRequestError
from routerd.server.batch_input import batch_cost, output_usage, read_batch_input, rewrite_for
from routerd.server.batch_registry import GatewayBatch, MemoryBatchRegistry

CHAT = "/v1/chat/completions"


def _line(custom_id: str, model: str = "gpt", url: str = CHAT, **body: Any) -> bytes:
    request = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": request}) + b"\n"


def _read(content: bytes, endpoint: str = CHAT, max_lines: int = 10, max_bytes: int = 10_000) -> Any:
    return read_batch_input(content, endpoint, max_lines=max_lines, max_bytes=max_bytes)


def test_lines_are_read_and_rewritten_for_the_deployment() -> None:
    batch = _read(_line("a") + b"\n" + _line("b", temperature=0.5))  # blank lines are skipped
    assert batch.model == "gpt" and [line["custom_id"] for line in batch.lines] == ["a", "b"]
    rewritten = [orjson.loads(line) for line in rewrite_for(batch, "gpt-4o-mini").splitlines()]
    assert [line["body"]["model"] for line in rewritten] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert rewritten[1]["body"]["temperature"] == 0.5 and rewritten[1]["custom_id"] == "b"


def test_embeddings_and_responses_lines() -> None:
    embed = orjson.dumps(
        {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"model": "e", "input": "x"}}
    )
    assert _read(embed, "/v1/embeddings").model == "e"
    responses = orjson.dumps(
        {"custom_id": "r", "method": "POST", "url": "/v1/responses", "body": {"model": "r", "input": "x"}}
    )
    assert _read(responses, "/v1/responses").model == "r"
    with pytest.raises(BadRequestError, match="line 1: missing required field 'model'"):
        _read(responses.replace(b'"model":"r",', b""), "/v1/responses")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "no requests"),
        (b"[1]\n", "line 1 is not a JSON object"),
        (_line("a") + _line("b", temperature="hot"), "line 2 (temperature): 'temperature' must be a number"),
        (_line("a").replace(b'"POST"', b'"GET"'), "'method' must be 'POST'"),
        (_line(""), "'custom_id' must be a non-empty string"),
        (_line("a") + _line("b", model="other"), "differs from line 1's"),
    ],
)
def test_bad_lines_are_named(content: bytes, words: str) -> None:
    with pytest.raises(BadRequestError) as refused:
        _read(content)
    assert words in refused.value.message and refused.value.param == "input_file_id"


def test_the_bounds_act_at_their_limit() -> None:
    three = _line("a") + _line("b") + _line("c")
    assert len(_read(three, max_lines=3).lines) == 3
    with pytest.raises(BadRequestError, match="ROUTERD_BATCH_MAX_LINES"):
        _read(three, max_lines=2)
    assert _read(three, max_bytes=len(three)).model == "gpt"
    with pytest.raises(BadRequestError, match="ROUTERD_BATCH_MAX_FILE_BYTES"):
        _read(three, max_bytes=len(three) - 1)


def test_output_usage_sums_every_kind_of_answer() -> None:
    def out(usage: Any) -> bytes:
        return orjson.dumps({"custom_id": "x", "response": {"status_code": 200, "body": {"usage": usage}}})

    content = b"\n".join(
        [
            out({"prompt_tokens": 10, "completion_tokens": 4}),  # chat / completions
            out({"prompt_tokens": 7, "total_tokens": 7}),  # embeddings
            out({"input_tokens": 3, "output_tokens": 2}),  # responses
            orjson.dumps({"custom_id": "y", "response": None, "error": {"message": "failed"}}),
            b"not json",
            out({"prompt_tokens": -5, "completion_tokens": True}),  # nonsense counts nothing
        ]
    )
    assert output_usage(content) == (20, 6)


def _deployment(info: ModelInfo | None = None, **extra: Any) -> Deployment:
    return Deployment(
        id="d1",
        group="g",
        provider="openai",
        model="unpriced-model",
        litellm_model="openai/unpriced-model",
        extra=extra,
        info=info or ModelInfo(input_cost_per_token=0.001, output_cost_per_token=0.002),
    )


def test_batch_prices_win_else_the_normal_price() -> None:
    assert batch_cost(_deployment(), 10, 5) == pytest.approx(0.02)
    batch_prices = {"input_cost_per_token_batches": 0.0005, "output_cost_per_token_batches": 0.001}
    assert batch_cost(_deployment(**batch_prices), 10, 5) == pytest.approx(0.01)
    in_info = ModelInfo(input_cost_per_token=0.001, output_cost_per_token=0.002, extra=batch_prices)
    assert batch_cost(_deployment(in_info), 10, 5) == pytest.approx(0.01)
    # one side alone is not a batch price
    assert batch_cost(_deployment(input_cost_per_token_batches=0.0), 10, 5) == pytest.approx(0.02)
    assert batch_cost(_deployment(ModelInfo()), 10, 5) is None  # no price at all: unknown, not 0


def _batch(batch_id: str, owner: str) -> GatewayBatch:
    return GatewayBatch(batch_id, owner, "k", "", "g", "d1", "file-in", {"output_file_id": f"out-{batch_id}"})


async def test_the_memory_registry_forgets_the_oldest_and_meters_once() -> None:
    found = MemoryBatchRegistry(max_batches=2, max_files=2)
    for name, owner in (("b1", "alice"), ("b2", "alice")):
        await found.put(_batch(name, owner))
    assert [b.batch_id for b in await found.listed("alice")] == ["b2", "b1"]
    assert await found.listed("bob") == [] and await found.batch_for_file("out-b1") == "b1"
    await found.put(_batch("b3", "bob"))  # over MAX_GATEWAY_BATCHES: the oldest is forgotten
    assert await found.get("b1") is None and await found.batch_for_file("out-b1") is None
    assert [b.batch_id for b in await found.listed(None)] == ["b3", "b2"]
    assert await found.claim_metering("b2") and not await found.claim_metering("b2")
    await found.release_metering("b2")
    assert await found.claim_metering("b2")
    assert not await found.claim_metering("nope")
    for file_id in ("f1", "f2", "f3"):
        await found.add_file(file_id, "alice")
    assert (
        await found.file_owner("f1") is None and await found.file_owner("f3") == "alice"
    )  # MAX_TRACKED_FILES
    await found.forget_file("f3")
    assert await found.file_owner("f3") is None
