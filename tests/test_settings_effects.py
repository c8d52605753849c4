"""Documented settings that had no test of their own effect, from the routing file or ``ROUTERD_*``.

Each test compares the setting with its absence (or another value), so it fails when the setting is
ignored. Listed in tests/documented_settings.py.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from routerd.config import check_text
from routerd.config.table import RoutingTable
from routerd.errors import (
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    OpenAIError,
    RateLimitError,
    Timeout,
)
from routerd.events import RequestFinished
from routerd.logs import JsonFormatter, configure_logging
from routerd.routing.health import HEALTHY, Breaker, BreakerState, CooldownRules, classify, on_failure
from routerd.routing.recovery import retries_allowed
from routerd.server.run import with_file_settings
from routerd.settings import Settings
from routerd.testing.server import RouterdServer

MODELS = """\
model_list:
  - model_name: chat
    litellm_params: {model: mock/gpt-4o-mini, mock_response: "hello"}
"""


def table_of(text: str) -> RoutingTable:
    result = check_text(textwrap.dedent(text))
    assert result.table is not None, [str(e) for e in result.errors]
    return result.table


def fail(breaker: Breaker, now: float, error: OpenAIError, rules: CooldownRules) -> Breaker:
    return on_failure(breaker, now, classify(error), rules, rules.cooldown_time)


# -- cooldowns -----------------------------------------------------------------------------------


def test_cooldown_rules_come_from_the_file() -> None:
    # router_settings.cooldown_time / max_cooldown_time, against the defaults (60 s / 300 s)
    configured = CooldownRules.from_policy(
        table_of(
            MODELS + "router_settings: {allowed_fails: 0, cooldown_time: 7, max_cooldown_time: 40}"
        ).policy
    )
    default = CooldownRules.from_policy(table_of(MODELS + "router_settings: {allowed_fails: 0}").policy)
    assert fail(HEALTHY, 0.0, InternalServerError("500"), configured).until == 7.0
    assert fail(HEALTHY, 0.0, InternalServerError("500"), default).until == 60.0
    long_retry_after = RateLimitError("429", retry_after=10_000.0)
    assert fail(HEALTHY, 0.0, long_retry_after, configured).until == 40.0
    assert fail(HEALTHY, 0.0, long_retry_after, default).until == 300.0


@pytest.mark.parametrize(
    ("disabled", "state"), [(True, BreakerState.HEALTHY), (False, BreakerState.COOLING_DOWN)]
)
def test_disable_cooldowns_from_the_file(disabled: bool, state: BreakerState) -> None:
    policy = table_of(MODELS + f"router_settings: {{disable_cooldowns: {str(disabled).lower()}}}").policy
    rules = CooldownRules.from_policy(policy)
    assert fail(HEALTHY, 0.0, RateLimitError("429", retry_after=5.0), rules).state is state


# The number of failures of one class a deployment takes before it cools down.
def failures_until_cooldown(error: OpenAIError, rules: CooldownRules) -> int:
    breaker = HEALTHY
    for count in range(1, 20):
        breaker = fail(breaker, float(count), error, rules)
        if breaker.state is BreakerState.COOLING_DOWN:
            return count
    raise AssertionError(f"{type(error).__name__} never cooled the deployment down")


def test_allowed_fails_policy_per_error_class_from_the_file() -> None:
    table = table_of(
        MODELS
        + """\
router_settings:
  allowed_fails: 5
  allowed_fails_policy:
    AuthenticationErrorAllowedFails: 2
    TimeoutErrorAllowedFails: 0
    RateLimitErrorAllowedFails: 1
    InternalServerErrorAllowedFails: 3
"""
    )
    rules = CooldownRules.from_policy(table.policy)
    defaults = CooldownRules.from_policy(table_of(MODELS + "router_settings: {allowed_fails: 5}").policy)
    cases = [
        (AuthenticationError("401"), 3, 1),  # without the policy, the first 401 cools down
        (Timeout("t"), 1, 6),
        (RateLimitError("429"), 2, 6),
        (InternalServerError("500"), 4, 6),
    ]
    for error, with_policy, without in cases:
        assert failures_until_cooldown(error, rules) == with_policy, type(error).__name__
        assert failures_until_cooldown(error, defaults) == without, type(error).__name__


# -- retries -------------------------------------------------------------------------------------


def test_retry_policy_per_error_class_from_the_file() -> None:
    table = table_of(
        MODELS
        + """\
router_settings:
  num_retries: 3
  retry_policy:
    AuthenticationErrorRetries: 0
    TimeoutErrorRetries: 1
    RateLimitErrorRetries: 2
    InternalServerErrorRetries: 5
    BadRequestErrorRetries: 4
"""
    )
    policy = table.policy
    assert retries_allowed(AuthenticationError("401"), policy.num_retries, policy.retry_policy, None) == 0
    assert retries_allowed(Timeout("t"), policy.num_retries, policy.retry_policy, None) == 1
    assert retries_allowed(RateLimitError("429"), policy.num_retries, policy.retry_policy, None) == 2
    assert retries_allowed(InternalServerError("500"), policy.num_retries, policy.retry_policy, None) == 5
    # documented as having no effect: client errors are never retried
    assert retries_allowed(BadRequestError("400"), policy.num_retries, policy.retry_policy, None) == 0
    without = table_of(MODELS + "router_settings: {num_retries: 3}").policy
    assert retries_allowed(Timeout("t"), without.num_retries, without.retry_policy, None) == 3


# -- litellm_settings ------------------------------------------------------------------------------


def test_litellm_settings_reach_the_policy_the_router_uses() -> None:
    # Without router_settings, litellm_settings' keys of the same meaning configure the router.
    text = """\
model_list:
  - model_name: a
    litellm_params: {model: mock/a}
  - model_name: b
    litellm_params: {model: mock/b}
litellm_settings:
  num_retries: 4
  allowed_fails: 6
  cooldown_time: 9
  fallbacks: [{a: [b]}]
  context_window_fallbacks: [{a: [b]}]
  content_policy_fallbacks: [{b: [a]}]
  default_fallbacks: [b]
  max_fallbacks: 2
  request_timeout: 12
  drop_params: true
"""
    policy = table_of(text).policy
    default = table_of("model_list: [{model_name: a, litellm_params: {model: mock/a}}]").policy
    configured = {
        "num_retries": 4,
        "allowed_fails": 6,
        "cooldown_time": 9.0,
        "fallbacks": {"a": ("b",)},
        "context_window_fallbacks": {"a": ("b",)},
        "content_policy_fallbacks": {"b": ("a",)},
        "default_fallbacks": ("b",),
        "max_fallbacks": 2,
        "timeout": 12.0,  # request_timeout
        "drop_params": True,
    }
    for name, value in configured.items():
        assert getattr(policy, name) == value, name
        assert getattr(default, name) != value, name


# -- the process -----------------------------------------------------------------------------------


def test_general_settings_give_the_listen_address_and_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # general_settings.host/port/workers apply where no flag or ROUTERD_HOST/PORT/WORKERS set them
    for name in ("ROUTERD_HOST", "ROUTERD_PORT", "ROUTERD_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    table = table_of(MODELS + "general_settings: {host: 0.0.0.0, port: 4100, workers: 3}")
    from_file = with_file_settings(Settings(), table)
    assert (from_file.host, from_file.port, from_file.workers) == ("0.0.0.0", 4100, 3)
    assert (Settings().host, Settings().port, Settings().workers) == ("127.0.0.1", 4000, 1)

    monkeypatch.setenv("ROUTERD_HOST", "10.0.0.5")
    monkeypatch.setenv("ROUTERD_PORT", "4200")
    from_env = with_file_settings(Settings(), table)
    assert (from_env.host, from_env.port, from_env.workers) == ("10.0.0.5", 4200, 3)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        MODELS
        + """\
router_settings:
  model_group_alias:
    internal-name: {model: chat, hidden: true}
    public-name: chat
general_settings:
  master_key: sk-from-the-file
"""
    )
    return path


def test_the_master_key_variable_wins_over_the_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTERD_MASTER_KEY", "sk-from-the-environment")
    with RouterdServer.from_file(config_file) as server:
        models = server.base_url + "/v1/models"
        from_env = httpx.get(models, headers={"authorization": "Bearer sk-from-the-environment"}, timeout=10)
        from_file = httpx.get(models, headers={"authorization": "Bearer sk-from-the-file"}, timeout=10)
    assert from_env.status_code == 200, from_env.text
    assert from_file.status_code == 401
    assert from_file.json()["error"]["code"] == "invalid_api_key"


def test_a_hidden_alias_routes_but_is_not_listed(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTERD_MASTER_KEY", raising=False)
    key = {"authorization": "Bearer sk-from-the-file"}
    with RouterdServer.from_file(config_file) as server:
        listed = httpx.get(server.base_url + "/v1/models", headers=key, timeout=10).json()
        answers = {
            name: httpx.post(
                server.base_url + "/v1/chat/completions",
                headers=key,
                json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
                timeout=10,
            )
            for name in ("internal-name", "public-name")
        }
    names = {card["id"] for card in listed["data"]}
    assert "public-name" in names and "chat" in names
    assert "internal-name" not in names  # hidden: true
    for name, answer in answers.items():
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["choices"][0]["message"]["content"] == "hello"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    access = logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.propagate)
    yield
    root.handlers[:], level, access.propagate = saved
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_log_level_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_level="warning", log_format="text"))
    assert logging.getLogger().level == logging.WARNING
    logging.getLogger("routerd.test").info("not at warning level")
    logging.getLogger("routerd.test").warning("plain words")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING routerd.test: plain words")

    configure_logging(Settings(log_level="info", log_format="json"))
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    logging.getLogger("routerd.test").info("as json")
    (line,) = capsys.readouterr().err.splitlines()
    assert orjson.loads(line)["msg"] == "as json"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("enabled", [True, False])
def test_access_log_switches_uvicorns_access_log(enabled: bool) -> None:
    # uvicorn writes its access lines only when they can reach a handler: routerd's root handler
    configure_logging(Settings(access_log=enabled))
    assert logging.getLogger("uvicorn.access").propagate is enabled


@pytest.mark.parametrize("enabled", [True, False])
def test_log_requests_switches_the_request_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, enabled: bool
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MODELS)
    finished: list[RequestFinished] = []
    with (
        caplog.at_level(logging.INFO, logger="routerd.request"),
        RouterdServer.from_file(path, log_requests=enabled) as server,
    ):
        # subscribed after the request logger: when this sees the event, the logger has seen it too
        server.state.events.subscribe(
            lambda e: finished.append(e) if isinstance(e, RequestFinished) else None
        )
        answer = httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        for _ in range(500):  # the accounting runs after the answer is written
            if finished:
                break
            time.sleep(0.01)
    assert answer.status_code == 200 and finished
    lines = [r for r in caplog.records if r.name == "routerd.request"]
    assert len(lines) == (1 if enabled else 0)
