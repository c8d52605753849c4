"""Keys, budgets, guardrails and the cache end to end: the official openai client against the daemon in
front of a fake OpenAI upstream (asserting on what the upstream received, and on what it did not)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from clients import tracked

from routerd.testing import FakeClock, FakeOpenAI
from routerd.testing.openai_fake import Reply
from routerd.testing.server import RouterdServer

from .support import (
    MASTER_KEY,
    OPENAI_KEY,
    capture_logs,
    client_for,
    reset,
    running_fake,
    user,
    wait_for,
    write_config,
)

ALPHA = "sk-team-alpha-0123456789ab"
BETA = "sk-team-beta-0123456789abcd"
BROKE = "sk-tiny-budget-0123456789ab"


def _config(base: str, extra: str = "") -> str:
    upstream = f"api_base: {base}, api_key: {OPENAI_KEY}"
    return (
        "model_list:\n"
        f"  - {{model_name: gpt-4o-mini, litellm_params: {{model: openai/gpt-4o-mini, {upstream},"
        " input_cost_per_token: 0.001, output_cost_per_token: 0.002}}\n"
        f"  - {{model_name: gpt-4o, litellm_params: {{model: openai/gpt-4o, {upstream}}}}}\n"
        f"  - {{model_name: embed, litellm_params: {{model: openai/text-embedding-3-small, {upstream}}}}}\n"
        f"general_settings: {{master_key: {MASTER_KEY}}}\n"
    ) + extra


KEYS = (
    """\
teams:
  - {team_id: search, models: [gpt-4o-mini, embed]}
keys:
  - {key_alias: alpha, key: ALPHA, team_id: search, rpm_limit: 3}
  - {key_alias: beta, key: BETA}
  - {key_alias: broke, key: BROKE, max_budget: 0.01, budget_duration: 2s}
guardrails:
  - guardrail_name: secrets
    litellm_params:
      guardrail: litellm_content_filter
      default_on: true
      patterns:
        - {pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}
        - {pattern_type: prebuilt, pattern_name: email, action: MASK}
  - guardrail_name: answers
    litellm_params:
      guardrail: litellm_content_filter
      mode: [post_call, during_call]
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
litellm_settings:
  cache: true
  cache_params: {type: local, ttl: 60}
""".replace("BROKE", BROKE)
    .replace("ALPHA", ALPHA)
    .replace("BETA", BETA)
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as started:
        yield started


@pytest.fixture(scope="module")
def server(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    directory = tmp_path_factory.mktemp("gate")
    config = write_config(directory, _config(fake.base_url, KEYS))
    with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as started:
        yield started


@pytest.fixture
def gateway(server: RouterdServer, fake: FakeOpenAI) -> RouterdServer:
    reset(fake)
    return server


def test_a_key_sees_and_calls_only_its_groups(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(gateway, ALPHA)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=user("hi")).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert "'gpt-4o'" in caught.value.message and "gpt-4o-mini" in caught.value.message
    assert len(fake.requests) == 1  # the refused call never went upstream


def test_unknown_key_is_401_and_never_echoed(gateway: RouterdServer) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for(gateway, "sk-unknown-0000000000000000").chat.completions.create(
            model="gpt-4o", messages=user("x")
        )
    assert "sk-unknown" not in str(caught.value.body)


def test_rpm_limit_answers_429_with_retry_after(gateway: RouterdServer) -> None:
    http = tracked(httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {ALPHA}"}))
    body = {"model": "embed", "input": "rate"}
    statuses = [
        http.post("/v1/embeddings", json={**body, "input": f"rate {i}"}).status_code for i in range(3)
    ]
    refused = http.post("/v1/embeddings", json=body)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rpm_limit"
    assert statuses.count(200) >= 2  # earlier tests of this module may have used part of the minute


def test_budget_exceeded_then_served_after_the_period(gateway: RouterdServer) -> None:
    client = client_for(gateway, BROKE)
    gate = gateway.state.gate
    assert gate is not None
    # The gate's wall clock decides the budget period of every check and of the spend it records.
    # The test moves it itself: the call and the checks fall in the periods it says, whatever the
    # real time. It starts on a 2 s period boundary ahead of the real clock (the ledger forgets
    # periods that ended by the real clock).
    start = (int(time.time()) // 2 + 1000) * 2
    clock = FakeClock(wall=start)
    real_clock, gate.clock = gate.clock, clock.time
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("spend " * 20))
        clock.advance(1.75)  # later in the same period: still over the budget
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=user("again"))
        assert caught.value.body["type"] == "budget_exceeded"  # type: ignore[index]
        assert "key 'broke'" in caught.value.message and "Resets" in caught.value.message
        clock.advance(0.25)  # the next period starts: the budget is fresh
        client.chat.completions.create(model="gpt-4o-mini", messages=user("new period"))
    finally:
        gate.clock = real_clock


def test_models_lists_only_what_the_key_may_use(gateway: RouterdServer) -> None:
    assert {m.id for m in client_for(gateway, ALPHA).models.list()} == {"gpt-4o-mini", "embed"}
    assert {m.id for m in client_for(gateway, MASTER_KEY).models.list()} >= {"gpt-4o-mini", "gpt-4o", "embed"}


def test_key_info_and_spend_report(gateway: RouterdServer) -> None:
    client_for(gateway, BETA).chat.completions.create(model="gpt-4o-mini", messages=user("count me"))
    own = httpx.get(gateway.base_url + "/key/info", headers={"authorization": f"Bearer {BETA}"}).json()
    assert own["info"]["key_alias"] == "beta" and own["info"]["spend"] > 0
    assert BETA not in str(own)
    by_alias = httpx.get(
        gateway.base_url + "/key/info?key_alias=alpha", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert by_alias.json()["info"]["team"]["team_id"] == "search"
    report = httpx.get(
        gateway.base_url + "/v1/routerd/spend?group_by=key", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    rows = {row["name"]: row for row in report.json()["data"]}
    assert rows["beta"]["spend_usd"] > 0 and rows["beta"]["requests"] >= 1
    refused = httpx.get(gateway.base_url + "/v1/routerd/spend", headers={"authorization": f"Bearer {BETA}"})
    assert refused.status_code == 401


def test_secret_in_prompt_is_blocked_before_the_upstream(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(gateway, BETA).chat.completions.create(
            model="gpt-4o-mini", messages=user("my key is AKIAIOSFODNN7EXAMPLE")
        )
    assert caught.value.body["type"] == "guardrail_violation"  # type: ignore[index]
    assert "AKIA" not in caught.value.message
    assert fake.requests == []


def test_email_in_prompt_is_masked_before_the_upstream(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client_for(gateway, BETA).chat.completions.create(
        model="gpt-4o-mini", messages=user("mail jane@corp.example")
    )
    sent = fake.requests[-1].json["messages"][0]["content"]
    assert sent == "mail [EMAIL_REDACTED]"


def test_email_in_answers_is_masked_plain_and_streamed(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(gateway, BETA)
    fake.enqueue(Reply(content="write to bob@corp.example today"))
    plain = client.chat.completions.create(
        model="gpt-4o",
        messages=user("who?"),
        extra_body={"guardrails": ["answers"], "cache": {"no-store": True}},
    )
    assert plain.choices[0].message.content == "write to [EMAIL_REDACTED] today"
    fake.enqueue(Reply(content="write to bob@corp.example today, or to carol@corp.example"))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=user("who, streamed?"), stream=True, extra_body={"guardrails": ["answers"]}
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "write to [EMAIL_REDACTED] today, or to [EMAIL_REDACTED]"


def test_repeated_chat_is_answered_once_upstream(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(gateway, BETA)
    question = user(f"cache me {time.time()}")
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=question)
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=question, temperature=None
    )
    assert first.headers["x-routerd-cache"] == "miss" and second.headers["x-routerd-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(fake.requests) == 1
    streamed = client.chat.completions.create(model="gpt-4o", messages=question, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        == first.parse().choices[0].message.content
    )
    assert len(fake.requests) == 1
    client.chat.completions.create(
        model="gpt-4o", messages=question, extra_body={"cache": {"no-cache": True}}
    )
    assert len(fake.requests) == 2
    # another tenant never gets this tenant's entry
    client_for(gateway, MASTER_KEY).chat.completions.create(model="gpt-4o", messages=question)
    assert len(fake.requests) == 3


def test_embedding_batches_reuse_cached_items(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(gateway, BETA)
    tag = str(time.time())
    client.embeddings.create(model="embed", input=[f"a{tag}", f"b{tag}"])
    both = client.embeddings.create(model="embed", input=[f"c{tag}", f"a{tag}", f"b{tag}"])
    assert fake.requests[-1].json["input"] == [f"c{tag}"]
    assert [d.index for d in both.data] == [0, 1, 2]
    again = client.embeddings.create(model="embed", input=[f"a{tag}"])
    assert len(fake.requests) == 2 and again.data[0].embedding == both.data[1].embedding


def test_spend_survives_a_restart(fake: FakeOpenAI, tmp_path: Path) -> None:
    config = write_config(tmp_path, _config(fake.base_url, KEYS))
    with RouterdServer.from_file(config) as first:
        client_for(first, BETA).chat.completions.create(model="gpt-4o-mini", messages=user("persist"))
        spent = httpx.get(first.base_url + "/key/info", headers={"authorization": f"Bearer {BETA}"}).json()[
            "info"
        ]["spend"]
    assert spent > 0 and (tmp_path / "routerd-spend.sqlite").exists()
    with RouterdServer.from_file(config) as second:
        again = httpx.get(second.base_url + "/key/info", headers={"authorization": f"Bearer {BETA}"}).json()
    assert again["info"]["spend"] == pytest.approx(spent)


def test_streams_are_metered_whether_or_not_the_client_asked_for_usage(
    gateway: RouterdServer, fake: FakeOpenAI
) -> None:
    client = client_for(gateway, BETA)
    before = httpx.get(gateway.base_url + "/key/info", headers={"authorization": f"Bearer {BETA}"}).json()[
        "info"
    ]["spend"]
    with capture_logs() as logs:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=user(f"meter {time.time()}"), stream=True
            )
        )
        # the stream is metered as it ends, which the client may see a moment before the server has
        # written its log line and spend: wait for them (a bound on a hang, no speed measured)
        wait_for(
            lambda: any(getattr(r, "fields", {}).get("endpoint") == "chat" for r in logs.records),
            what="the stream's request log line",
        )
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask, it gets none
    line = next(r for r in logs.records if getattr(r, "fields", {}).get("endpoint") == "chat")
    fields = line.fields  # type: ignore[attr-defined]
    assert (
        fields["prompt_tokens"] > 0 and fields["completion_tokens"] > 0 and "tokens_estimated" not in fields
    )
    expected = fields["prompt_tokens"] * 0.001 + fields["completion_tokens"] * 0.002

    def spend() -> float:
        info = httpx.get(gateway.base_url + "/key/info", headers={"authorization": f"Bearer {BETA}"})
        return float(info.json()["info"]["spend"])

    wait_for(lambda: spend() - before == pytest.approx(expected), what="the stream's spend")
    asked = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=user(f"meter {time.time()}"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens > 0


def test_cache_size_settings_bound_what_is_kept(fake: FakeOpenAI, tmp_path: Path) -> None:
    reset(fake)
    config = write_config(tmp_path, _config(fake.base_url, "litellm_settings: {cache: true}\n"))
    # ROUTERD_CACHE_MAX_ENTRY_KB: an answer larger than the entry limit is not stored
    with RouterdServer.from_file(config, cache_max_entry_kb=1) as small:
        client = client_for(small, MASTER_KEY)
        for _ in range(2):
            fake.enqueue(Reply(content="x" * 4000))
            client.chat.completions.create(model="gpt-4o", messages=user("big"))
        assert len(fake.requests) == 2
    reset(fake)
    # ROUTERD_CACHE_MAX_MB: past the size, the least recently used answers are evicted
    with RouterdServer.from_file(config, cache_max_mb=1, cache_max_entry_kb=1024) as bounded:
        client = client_for(bounded, MASTER_KEY)
        for i in range(3):
            fake.enqueue(Reply(content="y" * 400_000))
            client.chat.completions.create(model="gpt-4o", messages=user(f"q{i}"))
        cache = bounded.state.gate.cache
        assert cache.evictions >= 1 and cache.bytes <= 1024 * 1024
        scrape = httpx.get(
            bounded.base_url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}
        ).text
        assert f"routerd_cache_evictions_total {float(cache.evictions)}" in scrape
        client.chat.completions.create(model="gpt-4o", messages=user("q2"))  # the newest is still there
        assert len(fake.requests) == 3


def test_spend_is_written_every_flush_interval(fake: FakeOpenAI, tmp_path: Path) -> None:
    import sqlite3

    config = write_config(tmp_path, _config(fake.base_url, KEYS))
    database = tmp_path / "ledger.sqlite"
    with RouterdServer.from_file(config, spend_db=database, spend_flush_seconds=0.05) as server:
        client_for(server, BETA).chat.completions.create(model="gpt-4o-mini", messages=user("flush me"))

        def written() -> bool:
            with sqlite3.connect(database) as db:
                return bool(
                    db.execute("SELECT COUNT(*) FROM spend_hourly WHERE key_alias = 'beta'").fetchone()[0]
                )

        wait_for(written, what="the spend row in ROUTERD_SPEND_DB")
    assert not (tmp_path / "routerd-spend.sqlite").exists()  # the setting wins over the default place


def test_explain_says_which_guardrails_run_and_whether_the_cache_is_consulted(gateway: RouterdServer) -> None:
    answer = httpx.get(
        gateway.base_url + "/v1/routerd/explain?model=gpt-4o&guardrails=answers",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    ).json()
    assert answer["gate"]["guardrails"] == {
        "pre_call": ["secrets"],
        "post_call": ["answers"],
        "during_call": ["answers"],
    }
    assert answer["gate"]["cache"]["looked_up"] is True
