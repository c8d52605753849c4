"""Vertex AI through the gateway: files in Cloud Storage, supervised tuning jobs, the tuned endpoint."""

from __future__ import annotations

import openai
import orjson

from routerd.finetune.vertex_translate import gcs_location
from tests.finetune.support import BUCKET, LOCATION, PROJECT, TRAINING, Gateway, Upstreams

VERTEX = {"custom_llm_provider": "vertex_ai"}
JOBS_PATH = f"/v1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"


async def test_upload_tune_follow_and_chat_with_the_tuned_endpoint(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client, fake = gateway.client, upstreams.vertex

    uploaded = await client.files.create(
        file=("train.jsonl", TRAINING), purpose="fine-tune", extra_body=VERTEX
    )
    location = gcs_location(uploaded.id)
    assert location is not None and location[0] == BUCKET
    assert location[1].startswith("routerd-files/fine-tune/") and location[1].endswith("/train.jsonl")
    stored = fake.contents[location]
    # stored in Gemini's tuning format, one example per line, system prompt as systemInstruction
    first = orjson.loads(stored.splitlines()[0])
    assert first == {
        "systemInstruction": {"role": "system", "parts": [{"text": "You answer support questions."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "question 0?"}]},
            {"role": "model", "parts": [{"text": "answer 0."}]},
        ],
    }
    assert len(stored.splitlines()) == 10
    assert (uploaded.bytes, uploaded.purpose, uploaded.status) == (len(stored), "fine-tune", "processed")
    assert (await client.files.content(uploaded.id, extra_query=VERTEX)).read() == stored

    job = await client.fine_tuning.jobs.create(
        model="gemini-2.0-flash-001",
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 3, "learning_rate_multiplier": 0.5},
        suffix="support-v1",
        extra_body=VERTEX,
    )
    sent = [r for r in fake.requests if r.path == JOBS_PATH and r.method == "POST"][-1].json
    assert sent == {
        "baseModel": "gemini-2.0-flash-001",
        "tunedModelDisplayName": "support-v1",
        "supervisedTuningSpec": {
            "trainingDatasetUri": f"gs://{BUCKET}/{location[1]}",
            "hyperParameters": {"epochCount": 3, "learningRateMultiplier": 0.5},
        },
    }
    assert job.id.isdigit()
    assert job.status == "queued"
    assert job.hyperparameters.n_epochs == 3 and job.hyperparameters.learning_rate_multiplier == 0.5
    assert job.training_file == f"gs://{BUCKET}/{location[1]}"

    fake.set_running(job.id)
    assert (await client.fine_tuning.jobs.retrieve(job.id, extra_query=VERTEX)).status == "running"
    endpoint = fake.succeed(job.id)
    done = await client.fine_tuning.jobs.retrieve(job.id, extra_query=VERTEX)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == endpoint
    assert done.trained_tokens == 5000
    assert done.finished_at is not None and done.finished_at > done.created_at

    events = await client.fine_tuning.jobs.list_events(job.id, extra_query=VERTEX)
    assert [e.message for e in events.data] == [
        f"The job has successfully completed; tuned model endpoint: {endpoint}",
        "Fine-tuning job started",
        f"Created fine-tuning job: {job.id}",
    ]
    checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id, extra_query=VERTEX)
    assert [c.step_number for c in checkpoints.data] == [20, 10]

    # every files / fine-tuning call so far shared one token from the service account's token endpoint
    assert len(upstreams.token.claims) == 1
    assert upstreams.token.claims[0]["iss"].endswith("iam.gserviceaccount.com")

    answer = await client.chat.completions.create(
        model=f"vertex_ai/{endpoint}", messages=[{"role": "user", "content": "hello tuned model"}]
    )
    assert answer.choices[0].message.content == "echo: hello tuned model"
    generate = [r for r in fake.requests if r.path.endswith(":generateContent")][-1]
    assert generate.path == f"/v1/{endpoint}:generateContent"


async def test_gs_uris_list_and_cancel(gateway: Gateway, upstreams: Upstreams) -> None:
    client, fake = gateway.client, upstreams.vertex
    uploaded = await client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune", extra_body=VERTEX)
    location = gcs_location(uploaded.id)
    assert location is not None
    uri = f"gs://{location[0]}/{location[1]}"
    jobs = [
        await client.fine_tuning.jobs.create(
            model="gemini-2.0-flash-001", training_file=uri, validation_file=uri, extra_body=VERTEX
        )
        for _ in range(3)
    ]
    assert fake.jobs[jobs[0].id]["supervisedTuningSpec"]["validationDatasetUri"] == uri

    page = await client.fine_tuning.jobs.list(limit=2, extra_query=VERTEX)
    assert [j.id for j in page.data] == [jobs[2].id, jobs[1].id]
    assert page.has_more is True
    rest = await client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id, extra_query=VERTEX)
    assert ([j.id for j in rest.data], rest.has_more) == ([jobs[0].id], False)

    cancelled = await client.fine_tuning.jobs.cancel(jobs[1].id, extra_body=VERTEX)
    assert cancelled.status == "cancelled"
    assert fake.jobs[jobs[1].id]["state"] == "JOB_STATE_CANCELLED"
    events = await client.fine_tuning.jobs.list_events(jobs[1].id, extra_query=VERTEX)
    assert events.data[0].message == "The job was cancelled"

    # Vertex refuses to cancel a finished job; that 400 reaches the client
    try:
        await client.fine_tuning.jobs.cancel(jobs[1].id, extra_body=VERTEX)
    except openai.BadRequestError as exc:
        assert "Cannot cancel" in str(exc.message)
    else:
        raise AssertionError("cancelling a cancelled job must fail")


async def test_file_list_retrieve_delete(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway.client
    training = await client.files.create(file=("a.jsonl", TRAINING), purpose="fine-tune", extra_body=VERTEX)
    other = await client.files.create(
        file=("notes.txt", b"free text"), purpose="user_data", extra_body=VERTEX
    )
    assert other.bytes == len(b"free text")  # only fine-tuning files are checked and rewritten

    newest_first = await client.files.list(extra_query=VERTEX)
    assert [f.id for f in newest_first.data] == [other.id, training.id]
    tuning_only = await client.files.list(purpose="fine-tune", extra_query=VERTEX)
    assert [f.id for f in tuning_only.data] == [training.id]
    page = await client.files.list(order="asc", limit=1, extra_query=VERTEX)
    assert [f.id for f in page.data] == [training.id]

    retrieved = await client.files.retrieve(other.id, extra_query=VERTEX)
    assert (retrieved.filename, retrieved.purpose) == ("notes.txt", "user_data")
    assert (await client.files.delete(other.id, extra_query=VERTEX)).deleted is True
    try:
        await client.files.retrieve(other.id, extra_query=VERTEX)
    except openai.NotFoundError as exc:
        assert exc.code == "file_not_found"
    else:
        raise AssertionError("a deleted file must be gone")


async def test_vertex_refuses_what_it_cannot_do(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway.client
    try:
        await client.fine_tuning.jobs.create(
            model="gemini-2.0-flash-001", training_file="file-abc", extra_body=VERTEX
        )
    except openai.BadRequestError as exc:
        assert exc.param == "training_file"
        assert "gs:// URI" in str(exc.message)
    else:
        raise AssertionError("an OpenAI file id is no Vertex dataset")
    try:
        await client.fine_tuning.jobs.create(
            model="gemini-2.0-flash-001", training_file="gs://b/t.jsonl", seed=3, extra_body=VERTEX
        )
    except openai.BadRequestError as exc:
        assert exc.code == "unsupported_parameter" and "seed" in str(exc.message)
    else:
        raise AssertionError("Vertex has no seed")
    assert not [r for r in upstreams.vertex.requests if r.path == JOBS_PATH]  # nothing reached Vertex
