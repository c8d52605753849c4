"""Azure OpenAI through the gateway: Azure's URLs, api-version, api-key and shapes, answered as OpenAI's."""

from __future__ import annotations

from tests.finetune.support import AZURE_DEPLOYMENT, AZURE_KEY, TRAINING, Gateway, Upstreams

AZURE = {"custom_llm_provider": "azure"}


async def test_upload_tune_follow_deploy_and_chat(gateway: Gateway, upstreams: Upstreams) -> None:
    client, fake = gateway.client, upstreams.azure

    uploaded = await client.files.create(
        file=("train.jsonl", TRAINING), purpose="fine-tune", extra_body=AZURE
    )
    assert uploaded.status == "uploaded"  # Azure's "pending"
    assert fake.book.files[uploaded.id].content == TRAINING
    upload = next(r for r in fake.requests if r.method == "POST")
    assert upload.path == "/openai/files"
    assert upload.query == {"api-version": "2024-10-21"}
    assert upload.headers["api-key"] == AZURE_KEY
    assert "authorization" not in upload.headers

    processed = await client.files.retrieve(uploaded.id, extra_headers={"custom-llm-provider": "azure"})
    assert processed.status == "processed"

    job = await client.fine_tuning.jobs.create(
        model="gpt-35-turbo-0613",
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 2},
        suffix="support",
        extra_body=AZURE,
    )
    assert job.status == "queued"  # Azure's "pending"
    assert job.error is None  # Azure's empty error object
    assert job.result_files == []
    assert job.hyperparameters.n_epochs == 2
    assert job.hyperparameters.batch_size == "auto"

    fake.set_running(job.id)
    assert (await client.fine_tuning.jobs.retrieve(job.id, extra_query=AZURE)).status == "running"
    model = fake.succeed(job.id)
    done = await client.fine_tuning.jobs.retrieve(job.id, extra_query=AZURE)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == model == f"gpt-35-turbo-0613.ft-{job.id.removeprefix('ftjob-')}-support"

    events = await client.fine_tuning.jobs.list_events(job.id, extra_query=AZURE)
    assert events.data[0].message == "The job has successfully completed"
    checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id, extra_query=AZURE)
    assert len(checkpoints.data) == 3

    # Azure serves a fine-tuned model once it is deployed; the config routes "support-bot" there
    fake.deploy(AZURE_DEPLOYMENT)
    answer = await client.chat.completions.create(
        model="support-bot", messages=[{"role": "user", "content": "where is my order?"}]
    )
    assert answer.choices[0].message.content == "where is my order?"
    chat = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1]
    assert chat.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"


async def test_list_and_cancel(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway.client
    uploaded = await client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune", extra_body=AZURE)
    jobs = [
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id, extra_body=AZURE)
        for _ in range(3)
    ]
    page = await client.fine_tuning.jobs.list(limit=2, extra_query=AZURE)
    assert [j.id for j in page.data] == [jobs[2].id, jobs[1].id]
    rest = await client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id, extra_query=AZURE)
    assert [j.id for j in rest.data] == [jobs[0].id]

    cancelled = await client.fine_tuning.jobs.cancel(jobs[0].id, extra_body=AZURE)
    assert cancelled.status == "cancelled"
    files = await client.files.list(extra_query=AZURE)
    assert [f.id for f in files.data] == [uploaded.id]
    assert (await client.files.content(uploaded.id, extra_query=AZURE)).read() == TRAINING
    assert (await client.files.delete(uploaded.id, extra_query=AZURE)).deleted is True
    assert {r.provider for r in gateway.records} == {"azure"}
