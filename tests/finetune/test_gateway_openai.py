"""OpenAI through the gateway, end to end with the official client: upload, tune, follow, use the model."""

from __future__ import annotations

import openai
import pytest

from tests.finetune.support import OPENAI_KEY, TRAINING, Gateway, Upstreams

OPENAI = {"custom_llm_provider": "openai"}


async def test_upload_tune_follow_and_chat_with_the_fine_tuned_model(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client, fake = gateway.client, upstreams.openai

    uploaded = await client.files.create(
        file=("train.jsonl", TRAINING), purpose="fine-tune", extra_body=OPENAI
    )
    assert uploaded.purpose == "fine-tune" and uploaded.filename == "train.jsonl"
    assert fake.book.files[uploaded.id].content == TRAINING
    upload = next(r for r in fake.requests if r.method == "POST" and r.path == "/v1/files")
    assert upload.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert b"custom_llm_provider" not in upload.body  # routerd's own field never reaches OpenAI

    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=uploaded.id,
        hyperparameters={"batch_size": 4, "learning_rate_multiplier": 0.1, "n_epochs": 3},
        suffix="support-v1",
        seed=7,
        extra_body=OPENAI,
    )
    sent = [r for r in fake.requests if r.path == "/v1/fine_tuning/jobs" and r.method == "POST"][-1].json
    assert sent == {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": uploaded.id,
        "hyperparameters": {"batch_size": 4, "learning_rate_multiplier": 0.1, "n_epochs": 3},
        "suffix": "support-v1",
        "seed": 7,
    }
    assert job.object == "fine_tuning.job"
    assert job.status == "validating_files"
    assert job.hyperparameters.n_epochs == 3
    assert job.seed == 7

    fake.set_running(job.id)
    running = await client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running" and running.fine_tuned_model is None

    model = fake.succeed(job.id)
    done = await client.fine_tuning.jobs.retrieve(job.id, extra_query=OPENAI)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == model and model.startswith(
        "ft:gpt-4o-mini-2024-07-18:fake-org:support-v1:"
    )
    assert done.trained_tokens == 4096
    assert done.finished_at is not None and len(done.result_files) == 1

    events = await client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert [e.message for e in events.data] == [
        "The job has successfully completed",
        f"New fine-tuned model created: {model}",
    ]
    assert events.has_more is True
    older = await client.fine_tuning.jobs.list_events(job.id, after=events.data[-1].id)
    assert older.data[-1].message == f"Created fine-tuning job: {job.id}"

    checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in checkpoints.data] == [30, 20, 10]
    assert checkpoints.data[0].fine_tuned_model_checkpoint == f"{model}:ckpt-step-30"

    # the fine-tuned model answers through the gateway's routing (the "ft:*" group), plain and streamed
    answer = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping"}])
    assert answer.choices[0].message.content == "ping"
    chat_call = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1]
    assert chat_call.json["model"] == model
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "streamed"}], stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "streamed"


async def test_jobs_are_listed_newest_first_with_after_and_limit(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway.client
    uploaded = await client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    jobs = [
        await client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=uploaded.id)
        for _ in range(3)
    ]
    first = await client.fine_tuning.jobs.list(limit=2, extra_query=OPENAI)
    assert [j.id for j in first.data] == [jobs[2].id, jobs[1].id]
    assert first.has_more is True
    second = await client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in second.data] == [jobs[0].id]
    assert second.has_more is False
    # the client's auto-pagination follows the same cursor
    assert [j.id async for j in client.fine_tuning.jobs.list(limit=1)] == [j.id for j in reversed(jobs)]
    listed = [r for r in upstreams.openai.requests if r.path == "/v1/fine_tuning/jobs" and r.method == "GET"]
    assert listed[1].query == {"limit": "2", "after": first.data[-1].id}


async def test_cancel_a_job(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway.client
    uploaded = await client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=uploaded.id)
    cancelled = await client.fine_tuning.jobs.cancel(job.id, extra_body=OPENAI)
    assert cancelled.status == "cancelled"
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "cancelled"
    # cancelling again is OpenAI's 400, passed on as a BadRequestError
    try:
        await client.fine_tuning.jobs.cancel(job.id)
    except openai.BadRequestError as exc:
        assert "cannot be cancelled" in str(exc.message)
    else:
        raise AssertionError("a second cancel must fail")


async def test_file_operations(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway.client
    training = await client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
    batch = await client.files.create(file=("batch.jsonl", b'{"custom_id": "1"}\n'), purpose="batch")

    listed = await client.files.list(purpose="fine-tune")
    assert [f.id for f in listed.data] == [training.id]
    everything = await client.files.list(order="asc", extra_query=OPENAI)
    assert [f.id for f in everything.data] == [training.id, batch.id]

    retrieved = await client.files.retrieve(training.id)
    assert (retrieved.id, retrieved.bytes) == (training.id, len(TRAINING))
    content = await client.files.content(training.id)
    assert content.read() == TRAINING

    deleted = await client.files.delete(batch.id)
    assert deleted.deleted is True and deleted.id == batch.id
    assert batch.id not in upstreams.openai.book.files


async def test_requests_are_reported_as_events(gateway: Gateway) -> None:
    client = gateway.client
    uploaded = await client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    await client.fine_tuning.jobs.list()
    try:
        await client.fine_tuning.jobs.retrieve("ftjob-missing")
    except openai.NotFoundError:
        pass
    await client.files.delete(uploaded.id)
    assert gateway.operations() == [
        ("files", "create", "openai", 200),
        ("fine_tuning", "list", "openai", 200),
        ("fine_tuning", "retrieve", "openai", 404),
        ("files", "delete", "openai", 200),
    ]
    failed = gateway.records[2]
    assert failed.error == "NotFoundError" and failed.latency >= 0 and failed.request_id


async def test_a_client_request_id_is_echoed_and_reported(gateway: Gateway) -> None:
    raw = await gateway.client.fine_tuning.jobs.with_raw_response.list(
        extra_headers={"x-request-id": "req-123"}
    )
    assert raw.headers["x-request-id"] == "req-123"
    assert raw.parse().data == []
    assert gateway.records[-1].request_id == "req-123"


async def test_batches_create_list_retrieve_cancel(gateway: Gateway, upstreams: Upstreams) -> None:
    """Provider-level batches (custom_llm_provider named): passed to the provider's own Batch API."""
    client, fake = gateway.client, upstreams.openai
    openai_ = {"custom_llm_provider": "openai"}
    lines = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": []}}\n'
    uploaded = await client.files.create(file=("batch.jsonl", lines), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "7"},
        extra_body=openai_,
    )
    assert batch.status == "validating" and batch.input_file_id == uploaded.id
    sent = [r for r in fake.requests if r.path == "/v1/batches" and r.method == "POST"][-1]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert (await client.batches.retrieve(batch.id, extra_query=openai_)).metadata == {"run": "7"}
    assert [b.id async for b in client.batches.list(extra_query=openai_)] == [batch.id]
    assert (await client.batches.cancel(batch.id, extra_query=openai_)).status == "cancelling"
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope", extra_query=openai_)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/nope", completion_window="24h", extra_body=openai_
        )  # type: ignore[arg-type]
    assert refused.value.body["param"] == "endpoint"  # type: ignore[index]
    azure = await client.batches.list(extra_query={"custom_llm_provider": "azure"})
    assert azure.data == [] and upstreams.azure.requests[-1].path == "/openai/batches"
    with pytest.raises(openai.BadRequestError) as vertex:
        await client.batches.list(extra_query={"custom_llm_provider": "vertex_ai"})
    assert "vertex_ai does not support batches" in vertex.value.message
