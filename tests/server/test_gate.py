"""The gate, request by request: keys, model access, budgets, limits, guardrails and the cache, over
tables compiled from real routing files."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from routerd.access.ledger import SpendLedger
from routerd.access.limits import AccessLimits
from routerd.access.table import BudgetExceededError
from routerd.cache.local import LocalCache
from routerd.config import check_config
from routerd.config.table import RoutingTable
from routerd.errors import AuthenticationError, BadRequestError, PermissionDeniedError, RateLimitError
from routerd.guardrails.engine import GuardrailBlockedError
from routerd.server.gate import Gate, Passage

KEY = "sk-alpha-0123456789abcdef"
TEAM_KEY = "sk-beta-0123456789abcdef0"
MASTER = "sk-master-0123456789"

CONFIG = """\
model_list:
  - {model_name: gpt-4o, litellm_params: {model: mock/gpt-4o}}
  - {model_name: claude, litellm_params: {model: mock/claude}}
litellm_settings:
  cache: true
  cache_params: {type: local, ttl: 60}
  max_end_user_budget: 1.0
  end_user_budget_duration: 1d
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter
      mode: [pre_call, post_call, during_call]
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
  - guardrail_name: ssn
    litellm_params:
      guardrail: litellm_content_filter
      default_on: true
      patterns: [{pattern_type: prebuilt, pattern_name: us_ssn, action: BLOCK}]
teams:
  - {team_id: beta, max_budget: 2.0, budget_duration: 1d, guardrails: [pii]}
keys:
  - {key_alias: alpha, key: KEY, models: [gpt-4o], rpm_limit: 2, max_budget: 0.5, budget_duration: 1d}
  - {key_alias: beta, key: TEAM_KEY, team_id: beta}
""".replace("TEAM_KEY", TEAM_KEY).replace("KEY", KEY)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _table(tmp_path: Path, text: str = CONFIG) -> RoutingTable:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    result = check_config(path, env={})
    assert result.ok and result.table is not None, [str(e) for e in result.errors]
    return result.table


async def _no_post(
    url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
) -> tuple[int, Any]:
    raise AssertionError("no webhook in these tests")


async def _no_moderation(model: str, texts: Sequence[str], timeout: float) -> Mapping[str, Any]:
    raise AssertionError("no moderation in these tests")


@pytest.fixture
def gate() -> Gate:
    ledger = SpendLedger(None)
    ledger.open(now=0)
    clock = Clock()
    cache = LocalCache(max_bytes=1 << 20, max_entry_bytes=1 << 16, clock=clock)
    return Gate(ledger, AccessLimits(), cache, _no_post, _no_moderation, clock=clock)


def _chat(text: str = "hello", model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _enter(
    gate: Gate, table: RoutingTable, key: str | None, body: dict[str, Any], master: str | None = MASTER
) -> Passage:
    return await Passage.enter(gate, table, master, "chat", _auth(key) if key else {}, body)


async def test_keys_master_and_refusals(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    assert (await _enter(gate, table, MASTER, _chat())).policy is None
    assert (await _enter(gate, table, KEY, _chat())).key_alias == "alpha"
    with pytest.raises(AuthenticationError):
        await _enter(gate, table, None, _chat())
    with pytest.raises(AuthenticationError):
        await _enter(gate, table, "sk-wrong-0000000000000000", _chat())
    # declared keys lock the gateway even without a master key
    with pytest.raises(AuthenticationError):
        await _enter(gate, table, None, _chat(), master=None)


async def test_model_access(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    with pytest.raises(PermissionDeniedError, match="'claude'"):
        await _enter(gate, table, KEY, _chat(model="claude"))
    assert (await _enter(gate, table, TEAM_KEY, _chat(model="claude"))).group == "claude"


async def test_rpm_limit_and_release(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    for _ in range(2):
        (await _enter(gate, table, KEY, _chat())).finish((1, 1), 0.0)
    with pytest.raises(RateLimitError) as caught:
        await _enter(gate, table, KEY, _chat())
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


async def test_key_budget_then_reset_next_period(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    passage = await _enter(gate, table, KEY, _chat())
    passage.finish((10, 10), 0.6)
    with pytest.raises(BudgetExceededError, match="key 'alpha'"):
        await _enter(gate, table, KEY, _chat())
    gate.clock.now += 86400  # type: ignore[attr-defined]
    await _enter(gate, table, KEY, _chat())


async def test_team_and_end_user_budgets(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    (await _enter(gate, table, TEAM_KEY, _chat(user="u1"))).finish((1, 1), 1.0)
    with pytest.raises(BudgetExceededError, match="end user"):
        await _enter(gate, table, TEAM_KEY, _chat(user="u1"))
    (await _enter(gate, table, TEAM_KEY, _chat(user="u2"))).finish((1, 1), 0.9)
    (await _enter(gate, table, TEAM_KEY, _chat(user="u3"))).finish((1, 1), 0.2)
    with pytest.raises(BudgetExceededError, match="team 'beta'"):
        await _enter(gate, table, TEAM_KEY, _chat(user="u4"))


async def test_guardrails_default_on_requested_and_team(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    with pytest.raises(GuardrailBlockedError):
        await _enter(gate, table, MASTER, _chat("ssn 123-45-6789"))
    body = _chat("mail a@b.example", guardrails=["pii"])
    passage = await _enter(gate, table, MASTER, body)
    assert body["messages"][0]["content"] == "mail [EMAIL_REDACTED]" and "guardrails" not in body
    assert [(r.guardrail, r.action) for r in passage.runs] == [("pii", "mask"), ("ssn", "allow")]
    team_body = _chat("mail a@b.example")
    await _enter(gate, table, TEAM_KEY, team_body)  # the team's guardrails run without asking
    assert team_body["messages"][0]["content"] == "mail [EMAIL_REDACTED]"
    with pytest.raises(BadRequestError, match="unknown guardrail 'nope'"):
        await _enter(gate, table, MASTER, _chat(guardrails=["nope"]))
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ping c@d.example"}}]}
    await passage.answer(answer)
    assert answer["choices"][0]["message"]["content"] == "ping [EMAIL_REDACTED]"


async def test_cache_hit_scoped_by_key_and_controls(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    first = await _enter(gate, table, TEAM_KEY, _chat("q"))
    assert await first.cached_answer({}) is None and first.cache_status == "miss"
    await first.answer({"id": "a1", "choices": []})
    second = await _enter(gate, table, TEAM_KEY, _chat("q", stream=True, cache={"ttl": 5}))
    assert await second.cached_answer({}) == {"id": "a1", "choices": []} and second.cache_status == "hit"
    other_tenant = await _enter(gate, table, MASTER, _chat("q"))
    assert await other_tenant.cached_answer({}) is None
    bypass = await _enter(gate, table, TEAM_KEY, _chat("q", cache={"no-cache": True}))
    assert await bypass.cached_answer({}) is None
    gate.clock.now += 61  # type: ignore[attr-defined]
    assert await (await _enter(gate, table, TEAM_KEY, _chat("q"))).cached_answer({}) is None  # expired


async def test_cache_hit_spends_nothing(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    miss = await _enter(gate, table, KEY, _chat("q"))
    await miss.cached_answer({})
    await miss.answer({"id": "a"})
    miss.finish((5, 5), 0.1)
    hit = await _enter(gate, table, KEY, _chat("q"))
    assert await hit.cached_answer({}) is not None
    hit.finish((5, 5), 0.1)
    assert gate.ledger.report("key", 0, 2e9)[0]["spend_usd"] == pytest.approx(0.1)


async def _chunks(texts: Sequence[str]):  # type: ignore[no-untyped-def]
    yield {
        "id": "s",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    }
    for text in texts:
        yield {"id": "s", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    yield {"id": "s", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


async def test_stream_is_guarded_and_cached_when_complete(gate: Gate, tmp_path: Path) -> None:
    table = _table(tmp_path)
    passage = await _enter(gate, table, TEAM_KEY, _chat("s", stream=True))
    await passage.cached_answer({})
    out = [chunk async for chunk in passage.relay(_chunks(["write to x", "@y.example now"]))]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert text == "write to [EMAIL_REDACTED] now"
    replay = await _enter(gate, table, TEAM_KEY, _chat("s"))
    cached = await replay.cached_answer({})
    assert (
        cached is not None and cached["choices"][0]["message"]["content"] == "write to [EMAIL_REDACTED] now"
    )


def test_open_gateway_needs_no_key(tmp_path: Path) -> None:
    table = _table(tmp_path, "model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\n")
    from routerd.server.gate import identify

    assert identify(table, None, {}, 0.0) is None


async def test_embeddings_are_cached_per_item(gate: Gate, tmp_path: Path) -> None:
    table = _table(
        tmp_path,
        "model_list:\n  - {model_name: emb, litellm_params: {model: mock/emb}}\nlitellm_settings: {cache: true}\n",
    )

    def vector(text: str) -> list[float]:
        return [float(len(text)), 1.0]

    async def call(inputs: list[str]) -> tuple[dict[str, Any], list[str], str | None]:
        body: dict[str, Any] = {"model": "emb", "input": list(inputs)}
        passage = await Passage.enter(gate, table, None, "embeddings", {}, body)
        cached = await passage.cached_answer(body)
        if cached is not None:
            return cached, [], passage.cache_status
        sent = list(body["input"])
        answer = {
            "object": "list",
            "model": "emb",
            "data": [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(sent)],
        }
        await passage.answer(answer)
        return answer, sent, passage.cache_status

    _, sent, status = await call(["a", "bb"])
    assert sent == ["a", "bb"] and status == "miss"
    second, sent, status = await call(["ccc", "a", "dddd", "bb"])
    assert sent == ["ccc", "dddd"] and status == "miss"
    assert [d["index"] for d in second["data"]] == [0, 1, 2, 3]
    assert [d["embedding"][0] for d in second["data"]] == [3.0, 1.0, 4.0, 2.0]
    third, sent, status = await call(["bb", "ccc"])
    assert sent == [] and status == "hit"
    assert [(d["index"], d["embedding"][0]) for d in third["data"]] == [(0, 2.0), (1, 3.0)]


def test_preview_lists_guardrails_and_the_cache_for_explain(tmp_path: Path) -> None:
    from routerd.server.gate import preview

    table = _table(tmp_path)
    plain = preview(table, "gpt-4o")
    assert plain["guardrails"] == {"pre_call": ["ssn"], "post_call": [], "during_call": []}
    assert plain["cache"] == {"looked_up": True, "backend": "local", "ttl": 60.0}
    team = preview(table, "gpt-4o", key_alias="beta")
    assert team["guardrails"]["pre_call"] == ["pii", "ssn"] and team["guardrails"]["during_call"] == ["pii"]
    assert preview(table, "gpt-4o", "embeddings")["cache"]["looked_up"] is True
    off = _table(tmp_path, "model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\n")
    assert preview(off, "m")["cache"] == {"looked_up": False, "why": "caching is off"}
