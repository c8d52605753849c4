"""Request checks, provider/settings selection and Azure's shapes normalized to OpenAI's."""

from __future__ import annotations

from typing import Any, cast

import pytest

from routerd.config.table import ProviderSettings
from routerd.errors import BadRequestError, OpenAIError
from routerd.finetune.azure import AzureClient, azure_file_to_openai, azure_job_to_openai
from routerd.finetune.openai import OpenAIClient
from routerd.finetune.providers import make_client, normalize_provider, settings_for, with_env_defaults
from routerd.finetune.types import FILES, FINE_TUNING, PageQuery, slice_after
from routerd.finetune.validation import file_list_query, job_request, page_query
from routerd.http import HttpClient

# the clients only keep their HTTP client until a call is made; these tests make none
NO_HTTP = cast(HttpClient, object())


def bad_request(body: Any) -> BadRequestError:
    with pytest.raises(BadRequestError) as caught:
        job_request(body)
    return caught.value


def test_a_full_job_request_is_parsed_and_routerd_keys_are_dropped() -> None:
    body = {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-abc",
        "validation_file": "file-def",
        "hyperparameters": {"batch_size": 4, "learning_rate_multiplier": 0.1, "n_epochs": "auto"},
        "suffix": "custom-model-v1",
        "seed": 42,
        "integrations": [],
        "custom_llm_provider": "openai",
        "some_future_field": True,
    }
    job = job_request(body)
    assert (job.model, job.training_file, job.validation_file, job.suffix, job.seed) == (
        "gpt-4o-mini-2024-07-18",
        "file-abc",
        "file-def",
        "custom-model-v1",
        42,
    )
    assert (job.hyperparameters.batch_size, job.hyperparameters.learning_rate_multiplier) == (4, 0.1)
    assert job.hyperparameters.n_epochs == "auto"
    assert "custom_llm_provider" not in job.body
    assert job.body["some_future_field"] is True  # unknown fields reach OpenAI untouched


def test_a_suffix_of_18_characters_is_fine_and_19_is_not() -> None:
    assert job_request({"model": "m", "training_file": "f", "suffix": "x" * 18}).suffix == "x" * 18
    error = bad_request({"model": "m", "training_file": "f", "suffix": "x" * 19})
    assert error.status_code == 400
    assert error.param == "suffix"
    assert error.code == "invalid_value"
    assert "at most 18 characters, got 19" in error.message


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"training_file": "f"}, "model", "missing_required_parameter"),
        ({"model": "m"}, "training_file", "missing_required_parameter"),
        ({"model": "", "training_file": "f"}, "model", "invalid_type"),
        ({"model": "m", "training_file": "f", "seed": "7"}, "seed", "invalid_type"),
        ({"model": "m", "training_file": "f", "seed": True}, "seed", "invalid_type"),
        ({"model": "m", "training_file": "f", "hyperparameters": []}, "hyperparameters", "invalid_type"),
        (
            {"model": "m", "training_file": "f", "hyperparameters": {"n_epochs": 0}},
            "hyperparameters.n_epochs",
            "invalid_type",
        ),
        (
            {"model": "m", "training_file": "f", "hyperparameters": {"n_epochs": "3"}},
            "hyperparameters.n_epochs",
            "invalid_type",
        ),
        (
            {"model": "m", "training_file": "f", "hyperparameters": {"learning_rate_multiplier": -1}},
            "hyperparameters.learning_rate_multiplier",
            "invalid_type",
        ),
        (
            {"model": "m", "training_file": "f", "hyperparameters": {"epochs": 3}},
            "hyperparameters.epochs",
            "invalid_value",
        ),
        ({"model": "m", "training_file": "f", "integrations": {}}, "integrations", "invalid_type"),
        ({"model": "m", "training_file": "f", "method": {"type": 1}}, "method.type", "invalid_type"),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], param: str, code: str) -> None:
    error = bad_request(body)
    assert (error.param, error.code) == (param, code)


def test_a_non_object_body_is_refused() -> None:
    assert bad_request([1]).code == "invalid_request_body"


def test_supervised_method_hyperparameters_are_the_effective_ones() -> None:
    job = job_request(
        {
            "model": "m",
            "training_file": "f",
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        }
    )
    assert job.hyperparameters.n_epochs == 2
    error = bad_request(
        {
            "model": "m",
            "training_file": "f",
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": -1}}},
        }
    )
    assert error.param == "method.supervised.hyperparameters.n_epochs"


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("5", 5), (5, 5), ("10000", 10000)])
def test_limits(raw: Any, expected: int | None) -> None:
    assert page_query({"limit": raw}).limit == expected


@pytest.mark.parametrize("raw", ["0", "10001", "abc", -1, 2.5, True])
def test_bad_limits(raw: Any) -> None:
    with pytest.raises(BadRequestError, match="'limit' must be an integer between 1 and 10000"):
        page_query({"limit": raw})


def test_file_list_queries() -> None:
    query = file_list_query({"purpose": "fine-tune", "order": "asc", "after": "file-1", "limit": "2"})
    assert (query.purpose, query.order, query.after, query.limit) == ("fine-tune", "asc", "file-1", 2)
    with pytest.raises(BadRequestError, match="'order' must be 'asc' or 'desc'"):
        file_list_query({"order": "newest"})


def test_slicing_after_a_cursor() -> None:
    items = [{"id": f"x{i}"} for i in range(5)]
    page = slice_after(items, PageQuery(after="x1", limit=2), default_limit=20)
    assert [item["id"] for item in page["data"]] == ["x2", "x3"]
    assert (page["has_more"], page["first_id"], page["last_id"]) == (True, "x2", "x3")
    assert slice_after(items, PageQuery(after="x3"), 20)["has_more"] is False
    # a cursor that is not in the list yields an empty page instead of starting over
    assert slice_after(items, PageQuery(after="gone"), 20)["data"] == []


# --- providers and settings ----------------------------------------------------------------------


def test_providers_are_normalized_and_unknown_ones_named() -> None:
    assert normalize_provider(" Azure ") == "azure"
    with pytest.raises(BadRequestError) as caught:
        normalize_provider("bedrock")
    assert caught.value.code == "invalid_provider"
    assert caught.value.param == "custom_llm_provider"
    assert "'bedrock'" in caught.value.message and "openai, azure, vertex_ai" in caught.value.message


def test_a_provider_without_an_entry_names_the_config_key() -> None:
    entries = (ProviderSettings("openai", api_key="k"),)
    assert settings_for(entries, "openai", FILES) is entries[0]
    with pytest.raises(BadRequestError) as caught:
        settings_for(entries, "azure", FINE_TUNING)
    assert caught.value.code == "provider_not_configured"
    assert "no finetune_settings entry" in caught.value.message
    with pytest.raises(BadRequestError, match="no files_settings entry"):
        settings_for((), "vertex_ai", FILES)


def test_environment_defaults_fill_only_empty_fields() -> None:
    env = {
        "AZURE_API_KEY": "env-key",
        "AZURE_API_BASE": "https://env.openai.azure.com",
        "AZURE_API_VERSION": "2024-10-21",
        "VERTEXAI_PROJECT": "env-project",
        "GCS_BUCKET_NAME": "env-bucket",
    }
    azure = with_env_defaults(ProviderSettings("azure", api_key="given"), env)
    assert (azure.api_key, azure.api_base, azure.api_version) == (
        "given",
        "https://env.openai.azure.com",
        "2024-10-21",
    )
    vertex = with_env_defaults(ProviderSettings("vertex_ai"), env)
    assert vertex.vertex_project == "env-project"
    assert vertex.extra["gcs_bucket_name"] == "env-bucket"
    untouched = ProviderSettings("openai", api_key="k")
    assert with_env_defaults(untouched, env) is untouched


def test_an_azure_entry_without_api_base_is_a_configuration_error() -> None:
    with pytest.raises(OpenAIError) as caught:
        make_client(ProviderSettings("azure", api_key="k"), NO_HTTP, environ={})
    assert caught.value.status_code == 500
    assert caught.value.code == "provider_misconfigured"


def test_the_azure_client_builds_azure_urls() -> None:
    client = make_client(
        ProviderSettings(
            "azure", api_key="k", api_base="https://r.openai.azure.com/", api_version="2024-05-01-preview"
        ),
        NO_HTTP,
        environ={},
    )
    assert isinstance(client, AzureClient)
    assert (
        client._url("fine_tuning", "jobs", "ftjob-1")
        == "https://r.openai.azure.com/openai/fine_tuning/jobs/ftjob-1"
    )
    assert client._params == {"api-version": "2024-05-01-preview"}
    assert client._headers == {"api-key": "k"}


def test_ids_are_escaped_into_one_path_segment() -> None:
    client = make_client(ProviderSettings("openai", api_key="k"), NO_HTTP, environ={})
    assert isinstance(client, OpenAIClient)
    assert client._url("files", "../admin?x=1") == "https://api.openai.com/v1/files/..%2Fadmin%3Fx%3D1"


# --- Azure shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("azure", "openai"),
    [
        ("pending", "queued"),
        ("notRunning", "queued"),
        ("running", "running"),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        ("canceled", "cancelled"),
        ("validating_files", "validating_files"),
    ],
)
def test_azure_job_statuses(azure: str, openai: str) -> None:
    assert azure_job_to_openai({"id": "ftjob-1", "status": azure})["status"] == openai


def test_an_azure_job_gets_every_openai_field() -> None:
    job = azure_job_to_openai(
        {
            "id": "ftjob-1",
            "model": "gpt-35-turbo-0613",
            "status": "pending",
            "created_at": 1700000000,
            "hyperparameters": {"n_epochs": 2},
            "result_files": None,
            "error": {},
            "training_file": "file-1",
            "suffix": "s",
        }
    )
    assert job["object"] == "fine_tuning.job"
    assert job["error"] is None  # Azure's empty error object on a job that did not fail
    assert job["result_files"] == []
    assert job["organization_id"] == ""
    assert job["hyperparameters"] == {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": 2}
    assert job["suffix"] == "s"  # Azure's own fields are kept
    failed = azure_job_to_openai(
        {"id": "j", "status": "failed", "error": {"code": "invalidData", "message": "bad"}}
    )
    assert failed["error"] == {"code": "invalidData", "message": "bad", "param": None}


@pytest.mark.parametrize(
    ("azure", "openai"),
    [("pending", "uploaded"), ("running", "uploaded"), ("processed", "processed"), ("error", "error")],
)
def test_azure_file_statuses(azure: str, openai: str) -> None:
    assert azure_file_to_openai({"id": "file-1", "status": azure})["status"] == openai
