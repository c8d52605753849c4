"""``ROUTERD_*`` variables reach the process settings (routerd.settings.EnvironmentSettings).

The reader replaced pydantic-settings (start-up cost); these pin the behaviour it kept: the variable
of each field, any case, constructor arguments over the environment over defaults, values from the
environment counted as set, unknown variables ignored, bad values refused by pydantic.
"""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError

from routerd.settings import ENV_PREFIX, HttpSettings, Settings, environment_values


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().startswith(ENV_PREFIX.lower()):
            monkeypatch.delenv(name)


def test_every_field_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_PORT", "5001")
    monkeypatch.setenv("ROUTERD_WATCH", "false")
    monkeypatch.setenv("ROUTERD_LOG_LEVEL", "debug")
    monkeypatch.setenv("ROUTERD_MAX_BODY_MB", "1.5")
    monkeypatch.setenv("ROUTERD_CONFIG", "elsewhere.yaml")
    settings = Settings()
    assert (settings.port, settings.watch, settings.log_level) == (5001, False, "debug")
    assert settings.max_body_mb == 1.5
    assert str(settings.config) == "elsewhere.yaml"
    assert Settings.model_fields["port"].default == 4000  # the value came from the variable


def test_variable_names_match_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("routerd_workers", "3")
    monkeypatch.setenv("Routerd_Host", "0.0.0.0")
    settings = Settings()
    assert (settings.workers, settings.host) == (3, "0.0.0.0")


def test_arguments_win_over_the_environment_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_PORT", "5001")
    monkeypatch.setenv("ROUTERD_WORKERS", "2")
    settings = Settings(port=6000)
    assert (settings.port, settings.workers, settings.drain_timeout) == (6000, 2, 30.0)


def test_values_from_the_environment_count_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # routerd.server.run.with_file_settings lets the file's host/port apply only where nothing set them
    monkeypatch.setenv("ROUTERD_HOST", "0.0.0.0")
    assert Settings(port=1).model_fields_set == {"host", "port"}
    monkeypatch.delenv("ROUTERD_HOST")
    assert Settings().model_fields_set == set()


def test_unknown_variables_and_arguments_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_NO_SUCH_SETTING", "x")
    assert "no_such_setting" not in Settings(another_unknown=1).model_dump()


def test_a_bad_value_is_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_PORT", "not-a-port")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [error["loc"] for error in caught.value.errors()] == [("port",)]
    monkeypatch.setenv("ROUTERD_PORT", "")  # empty is a value, not "unset", as pydantic-settings read it
    with pytest.raises(ValidationError):
        Settings()


def test_secrets_stay_secret_and_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_MASTER_KEY", "sk-settings-env-test")
    settings = Settings()
    assert isinstance(settings.master_key, SecretStr)
    assert settings.master_key.get_secret_value() == "sk-settings-env-test"
    assert "sk-settings-env-test" not in repr(settings)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_http_settings_read_only_their_own_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_HTTP_CLIENT", "httpx")
    monkeypatch.setenv("ROUTERD_UPSTREAM_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("ROUTERD_PORT", "5001")
    http = HttpSettings()
    assert (http.http_client, http.upstream_max_connections) == ("httpx", 7)
    assert "port" not in http.model_dump()


def test_environment_values_reads_a_given_mapping() -> None:
    environ = {"ROUTERD_PORT": "1", "routerd_port": "2", "ROUTERD_NOPE": "3", "PORT": "4"}
    assert environment_values(Settings, environ) == {"port": "2"}  # the later spelling wins
    assert environment_values(HttpSettings, environ) == {}
