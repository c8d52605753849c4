"""The same operations as SDK functions, sync and async, against the stateful fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from routerd.errors import BadRequestError, NotFoundError
from routerd.finetune import (
    InvalidTrainingFileError,
    Page,
    acancel_fine_tuning_job,
    acreate_file,
    acreate_fine_tuning_job,
    afile_content,
    afile_delete,
    afile_list,
    alist_fine_tuning_checkpoints,
    alist_fine_tuning_events,
    alist_fine_tuning_jobs,
    aretrieve_fine_tuning_job,
    cancel_fine_tuning_job,
    create_file,
    create_fine_tuning_job,
    file_content,
    file_list,
    file_retrieve,
    list_fine_tuning_events,
    list_fine_tuning_jobs,
    retrieve_fine_tuning_job,
)
from routerd.finetune.vertex_translate import gcs_location
from routerd.sdk import completion
from routerd.testing.finetune_fakes import FakeAzureFineTuning, FakeOpenAIFineTuning, FakeVertexFineTuning
from routerd.testing.openai_fake import run_in_thread
from tests.finetune.support import AZURE_KEY, OPENAI_KEY, TRAINING, chat_line


@pytest.fixture
def openai_in_thread() -> Iterator[FakeOpenAIFineTuning]:
    fake = FakeOpenAIFineTuning(api_key=OPENAI_KEY)
    with run_in_thread(fake):
        yield fake


def test_sync_functions_from_upload_to_fine_tuned_model(
    openai_in_thread: FakeOpenAIFineTuning, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = openai_in_thread
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)  # credentials from the environment
    monkeypatch.setenv("OPENAI_API_BASE", fake.base_url)
    path = tmp_path / "support.jsonl"
    path.write_bytes(TRAINING)

    uploaded = create_file(path, purpose="fine-tune")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == (
        "support.jsonl",
        len(TRAINING),
        "fine-tune",
    )
    assert file_retrieve(uploaded.id).id == uploaded.id
    content = file_content(uploaded.id)
    assert content == TRAINING
    assert content.content == TRAINING  # LiteLLM's shape: an object with .content
    assert [f.id for f in file_list(purpose="fine-tune").data] == [uploaded.id]

    job = create_fine_tuning_job(
        model="gpt-4o-mini-2024-07-18",
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 2, "batch_size": "auto"},
        suffix="sdk",
        custom_llm_provider="openai",
    )
    assert job.status == "validating_files"
    assert fake.requests[-1].json["hyperparameters"] == {"n_epochs": 2, "batch_size": "auto"}

    model = fake.succeed(job.id)
    finished = retrieve_fine_tuning_job(job.id)
    assert finished.status == "succeeded" and finished.fine_tuned_model == model
    # the fine-tuned id works in completion() like a base model (a bare "ft:" id is OpenAI's)
    assert finished.fine_tuned_model is not None
    answer = completion(model=finished.fine_tuned_model, messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "hello"
    assert fake.requests[-1].json["model"] == model

    jobs = list_fine_tuning_jobs(limit=5)
    assert isinstance(jobs, Page)
    assert ([j.id for j in jobs.data], jobs.has_more, jobs.last_id) == ([job.id], False, job.id)
    events = list_fine_tuning_events(job.id, limit=1)
    assert events.data[0].message == "The job has successfully completed" and events.has_more

    with pytest.raises(BadRequestError, match="cannot be cancelled"):
        cancel_fine_tuning_job(job.id)


def test_sync_functions_check_training_files_and_arguments(openai_in_thread: FakeOpenAIFineTuning) -> None:
    options = {"api_key": OPENAI_KEY, "api_base": openai_in_thread.base_url}
    with pytest.raises(InvalidTrainingFileError) as caught:
        create_file(("bad.jsonl", chat_line("a", "b") + b"[]\n"), **options)
    assert caught.value.issues[0].line == 2
    with pytest.raises(BadRequestError, match="at most 18 characters"):
        create_fine_tuning_job("gpt-4o-mini", "file-1", suffix="x" * 30, **options)
    with pytest.raises(BadRequestError, match="unknown custom_llm_provider 'bedrock'"):
        list_fine_tuning_jobs(custom_llm_provider="bedrock")
    with pytest.raises(NotFoundError) as missing:
        retrieve_fine_tuning_job("ftjob-missing", **options)
    assert missing.value.code == "fine_tuning_job_not_found"
    assert not [r for r in openai_in_thread.requests if r.method == "POST"]


async def test_async_functions_on_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeAzureFineTuning(api_key=AZURE_KEY) as fake:
        monkeypatch.setenv("AZURE_API_KEY", AZURE_KEY)
        monkeypatch.setenv("AZURE_API_BASE", fake.origin)
        monkeypatch.setenv("AZURE_API_VERSION", "2024-05-01-preview")
        azure = {"custom_llm_provider": "azure"}
        uploaded = await acreate_file(("train.jsonl", TRAINING), "fine-tune", **azure)
        assert uploaded.status == "uploaded"
        assert fake.requests[-1].query == {"api-version": "2024-05-01-preview"}
        job = await acreate_fine_tuning_job("gpt-35-turbo-0613", uploaded.id, suffix="bot", **azure)
        assert job.status == "queued"
        fake.set_running(job.id)
        assert (await aretrieve_fine_tuning_job(job.id, **azure)).status == "running"
        cancelled = await acancel_fine_tuning_job(job.id, **azure)
        assert cancelled.status == "cancelled"
        assert [j.id for j in (await alist_fine_tuning_jobs(**azure)).data] == [job.id]
        assert (await alist_fine_tuning_events(job.id, **azure)).data[
            0
        ].message == "Fine-tuning job cancelled"
        assert (await alist_fine_tuning_checkpoints(job.id, **azure)).data == []
        assert (await afile_content(uploaded.id, **azure)) == TRAINING
        assert (await afile_delete(uploaded.id, **azure)).deleted is True


async def test_async_functions_on_vertex_with_an_access_token() -> None:
    async with FakeVertexFineTuning(tokens={"ya29.static"}) as fake:
        vertex = {
            "custom_llm_provider": "vertex_ai",
            "api_key": "ya29.static",  # an access token, used as is
            "api_base": fake.base_url,
            "vertex_project": fake.project,
            "vertex_location": fake.location,
            "gcs_bucket_name": "routerd-test",
            "gcs_api_base": fake.base_url,
        }
        async with httpx.AsyncClient() as own_client:
            uploaded = await acreate_file(
                ("t.jsonl", TRAINING), "fine-tune", http_client=own_client, **vertex
            )
            assert not own_client.is_closed  # an injected client is the caller's to close
        location = gcs_location(uploaded.id)
        assert location is not None and location[0] == "routerd-test"
        assert b'"contents"' in fake.contents[location]
        assert [f.id for f in (await afile_list(**vertex)).data] == [uploaded.id]

        job = await acreate_fine_tuning_job(
            "gemini-2.0-flash-001", uploaded.id, hyperparameters={"n_epochs": 2}, **vertex
        )
        assert job.id.isdigit() and job.status == "queued"
        assert fake.requests[-1].headers["authorization"] == "Bearer ya29.static"
        assert fake.jobs[job.id]["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "2"}
        direct = await acreate_fine_tuning_job(
            "gemini-2.0-flash-001", f"gs://{location[0]}/{location[1]}", **vertex
        )
        assert direct.training_file == job.training_file

        endpoint = fake.succeed(job.id)
        done = await aretrieve_fine_tuning_job(job.id, **vertex)
        assert (done.status, done.fine_tuned_model) == ("succeeded", endpoint)

        without_bucket = {k: v for k, v in vertex.items() if k != "gcs_bucket_name"}
        with pytest.raises(BadRequestError, match="names no bucket"):
            await acreate_file(("t.jsonl", TRAINING), "fine-tune", **without_bucket)
