"""Pure translation between OpenAI's fine-tuning shapes and Vertex AI tuning jobs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from routerd.errors import UnsupportedParamsError
from routerd.finetune.jsonl import VERTEX_FORMATS, InvalidTrainingFileError, check_training_file
from routerd.finetune.validation import job_request
from routerd.finetune.vertex_dataset import chat_example_to_gemini, to_vertex_jsonl
from routerd.finetune.vertex_translate import (
    STATUS_BY_STATE,
    dataset_uri,
    file_id_for,
    gcs_location,
    job_checkpoints,
    job_events,
    job_request_to_vertex,
    job_to_openai,
    timestamp,
)

NAME = "projects/acme/locations/europe-west4/tuningJobs/4242"


def vertex_job(**fields: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": NAME,
        "baseModel": "gemini-2.0-flash-001",
        "tunedModelDisplayName": "support",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://bucket/train.jsonl",
            "validationDatasetUri": "gs://bucket/valid.jsonl",
            "hyperParameters": {
                "epochCount": "4",
                "learningRateMultiplier": 0.5,
                "adapterSize": "ADAPTER_SIZE_EIGHT",
            },
        },
        "state": "JOB_STATE_PENDING",
        "createTime": "2024-05-01T12:00:00.123456789Z",
    }
    job.update(fields)
    return job


def test_a_job_request_becomes_a_tuning_job_body() -> None:
    job = job_request(
        {
            "model": "vertex_ai/gemini-2.0-flash-001",
            "training_file": "gs://bucket/train.jsonl",
            "suffix": "support",
            "hyperparameters": {
                "n_epochs": 4,
                "learning_rate_multiplier": 0.5,
                "batch_size": "auto",
                "adapter_size": 8,
            },
        }
    )
    body = job_request_to_vertex(job, "gs://bucket/train.jsonl", "gs://bucket/valid.jsonl")
    assert body == {
        "baseModel": "gemini-2.0-flash-001",
        "tunedModelDisplayName": "support",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://bucket/train.jsonl",
            "validationDatasetUri": "gs://bucket/valid.jsonl",
            "hyperParameters": {
                "epochCount": 4,
                "learningRateMultiplier": 0.5,
                "adapterSize": "ADAPTER_SIZE_EIGHT",
            },
        },
    }


def test_auto_hyperparameters_are_left_to_vertex() -> None:
    job = job_request(
        {
            "model": "gemini-2.0-flash-001",
            "training_file": "gs://b/t",
            "hyperparameters": {"n_epochs": "auto"},
        }
    )
    body = job_request_to_vertex(job, "gs://b/t", None)
    assert body["supervisedTuningSpec"] == {"trainingDatasetUri": "gs://b/t"}
    assert "tunedModelDisplayName" not in body


def test_what_vertex_cannot_do_is_refused_by_name() -> None:
    job = job_request(
        {
            "model": "gemini-2.0-flash-001",
            "training_file": "gs://b/t",
            "seed": 7,
            "integrations": [{"type": "wandb", "wandb": {"project": "p"}}],
            "hyperparameters": {"batch_size": 8},
        }
    )
    with pytest.raises(UnsupportedParamsError) as caught:
        job_request_to_vertex(job, "gs://b/t", None)
    assert caught.value.status_code == 400
    assert "hyperparameters.batch_size, seed, integrations" in caught.value.message
    assert caught.value.param == "hyperparameters.batch_size"


def test_an_unknown_adapter_size_is_refused() -> None:
    job = job_request({"model": "m", "training_file": "gs://b/t", "hyperparameters": {"adapter_size": 3}})
    with pytest.raises(UnsupportedParamsError, match="adapter_size must be one of 1, 2, 4, 8, 16, 32"):
        job_request_to_vertex(job, "gs://b/t", None)


def test_a_tuning_job_reads_as_an_openai_job() -> None:
    job = job_to_openai(vertex_job())
    assert job["id"] == "4242"
    assert job["object"] == "fine_tuning.job"
    assert job["organization_id"] == "acme"
    assert job["model"] == "gemini-2.0-flash-001"
    assert job["status"] == "queued"
    assert job["created_at"] == 1714564800
    assert job["finished_at"] is None
    assert job["fine_tuned_model"] is None
    assert job["training_file"] == "gs://bucket/train.jsonl"
    assert job["validation_file"] == "gs://bucket/valid.jsonl"
    assert job["hyperparameters"] == {
        "batch_size": "auto",
        "learning_rate_multiplier": 0.5,
        "n_epochs": 4,
        "adapter_size": 8,
    }
    assert job["user_provided_suffix"] == "support"


def test_a_succeeded_job_names_its_endpoint_and_tokens() -> None:
    endpoint = "projects/acme/locations/europe-west4/endpoints/77"
    job = job_to_openai(
        vertex_job(
            state="JOB_STATE_SUCCEEDED",
            endTime="2024-05-01T13:00:00Z",
            tunedModel={"model": "projects/acme/locations/europe-west4/models/1", "endpoint": endpoint},
            tuningDataStats={"supervisedTuningDataStats": {"totalBillableTokenCount": "123456"}},
        )
    )
    assert (job["status"], job["fine_tuned_model"], job["trained_tokens"]) == ("succeeded", endpoint, 123456)
    assert job["finished_at"] == 1714568400


def test_a_failed_job_carries_its_error() -> None:
    job = job_to_openai(vertex_job(state="JOB_STATE_FAILED", error={"code": 3, "message": "bad rows"}))
    assert job["error"] == {"code": "invalid_argument", "message": "bad rows", "param": None}
    assert job_to_openai(vertex_job(error={}))["error"] is None


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("JOB_STATE_PENDING", "queued"),
        ("JOB_STATE_QUEUED", "queued"),
        ("JOB_STATE_RUNNING", "running"),
        ("JOB_STATE_SUCCEEDED", "succeeded"),
        ("JOB_STATE_FAILED", "failed"),
        ("JOB_STATE_CANCELLING", "cancelled"),
        ("JOB_STATE_CANCELLED", "cancelled"),
        ("JOB_STATE_SOMETHING_NEW", "queued"),
    ],
)
def test_states_map_to_openai_statuses(state: str, status: str) -> None:
    assert job_to_openai(vertex_job(state=state))["status"] == status


def test_every_mapped_status_is_an_openai_status() -> None:
    openai_statuses = {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
    assert set(STATUS_BY_STATE.values()) <= openai_statuses


def test_events_are_synthesized_newest_first() -> None:
    raw = vertex_job(
        state="JOB_STATE_FAILED",
        startTime="2024-05-01T12:05:00Z",
        endTime="2024-05-01T12:30:00Z",
        error={"code": 3, "message": "dataset too small"},
    )
    events = job_events(raw)
    assert [(e["level"], e["message"]) for e in events] == [
        ("error", "The job failed: dataset too small"),
        ("info", "Fine-tuning job started"),
        ("info", "Created fine-tuning job: 4242"),
    ]
    assert [e["created_at"] for e in events] == [1714566600, 1714565100, 1714564800]
    assert len({e["id"] for e in events}) == 3
    assert all(e["object"] == "fine_tuning.job.event" for e in events)


def test_checkpoints_come_from_the_tuned_model_highest_step_first() -> None:
    raw = vertex_job(
        state="JOB_STATE_SUCCEEDED",
        endTime="2024-05-01T13:00:00Z",
        tunedModel={
            "endpoint": "projects/acme/locations/l/endpoints/9",
            "checkpoints": [
                {
                    "checkpointId": "1",
                    "epoch": "1",
                    "step": "5",
                    "endpoint": "projects/acme/locations/l/endpoints/8",
                },
                {
                    "checkpointId": "2",
                    "epoch": "2",
                    "step": "10",
                    "endpoint": "projects/acme/locations/l/endpoints/9",
                },
            ],
        },
    )
    checkpoints = job_checkpoints(raw)
    assert [c["step_number"] for c in checkpoints] == [10, 5]
    assert checkpoints[0]["fine_tuned_model_checkpoint"] == "projects/acme/locations/l/endpoints/9"
    assert checkpoints[0]["fine_tuning_job_id"] == "4242"
    assert checkpoints[0]["id"] == "ftckpt-4242-2"
    assert job_checkpoints(vertex_job()) == []


def test_file_ids_encode_the_object_location() -> None:
    file_id = file_id_for("my-bucket", "routerd-files/fine-tune/abc/train data.jsonl")
    assert file_id.startswith("file-") and "/" not in file_id and "=" not in file_id
    assert gcs_location(file_id) == ("my-bucket", "routerd-files/fine-tune/abc/train data.jsonl")
    assert dataset_uri(file_id) == "gs://my-bucket/routerd-files/fine-tune/abc/train data.jsonl"
    assert dataset_uri("gs://b/x.jsonl") == "gs://b/x.jsonl"


@pytest.mark.parametrize("bad", ["file-abc123", "file-!!!", "ftjob-1", "file-" + "bm9zbGFzaA", "gs://", ""])
def test_ids_routerd_did_not_issue_are_not_locations(bad: str) -> None:
    assert dataset_uri(bad) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2024-05-01T12:00:00Z", 1714564800),
        ("2024-05-01T12:00:00.5Z", 1714564800),
        ("2024-05-01T12:00:00.123456789Z", 1714564800),
        ("2024-05-01T14:00:00+02:00", 1714564800),
        ("yesterday", None),
        (None, None),
    ],
)
def test_timestamps(text: str | None, seconds: int | None) -> None:
    assert timestamp(text) == seconds


# --- training files rewritten for Vertex ---------------------------------------------------------


def test_a_chat_example_becomes_a_gemini_example() -> None:
    example = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Bergen"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": '{"celsius": 3}'},
            {"role": "tool", "tool_call_id": "b", "content": "rainy"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "3 and "}, {"type": "text", "text": "rain."}],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}},
            }
        ],
    }
    assert chat_example_to_gemini(example) == {
        "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Oslo and Bergen?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                    {"functionCall": {"name": "weather", "args": {"city": "Bergen"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "weather", "response": {"celsius": 3}}},
                    {"functionResponse": {"name": "weather", "response": {"content": "rainy"}}},
                ],
            },
            {"role": "model", "parts": [{"text": "3 and rain."}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "weather", "description": "d", "parameters": {"type": "object"}}
                ]
            }
        ],
    }


def _chat(*messages: dict[str, Any]) -> bytes:
    return orjson.dumps({"messages": list(messages)}) + b"\n"


def test_a_chat_file_is_rewritten_line_by_line() -> None:
    content = _chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}) * 2
    rewritten = to_vertex_jsonl(check_training_file(content, VERTEX_FORMATS), content)
    lines = [orjson.loads(line) for line in rewritten.splitlines()]
    assert (
        lines
        == [
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "a"}]},
                    {"role": "model", "parts": [{"text": "b"}]},
                ]
            }
        ]
        * 2
    )


def test_a_gemini_file_is_stored_unchanged() -> None:
    content = orjson.dumps(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "a"}]},
                {"role": "model", "parts": [{"text": "b"}]},
            ]
        }
    )
    assert to_vertex_jsonl(check_training_file(content, VERTEX_FORMATS), content) is content


def test_what_gemini_cannot_express_is_refused_with_the_line() -> None:
    good = _chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    weighted = _chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0})
    image = _chat(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": "a cat"},
    )
    content = good + weighted + image
    with pytest.raises(InvalidTrainingFileError) as caught:
        to_vertex_jsonl(check_training_file(content, VERTEX_FORMATS), content)
    lines = [(issue.line, issue.message) for issue in caught.value.issues]
    assert [line for line, _ in lines] == [2, 3]
    assert "weight' is 0" in lines[0][1]
    assert "'image_url' part" in lines[1][1]
