"""routerd.Router: the daemon's router in-process, built from a model_list or a file."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

import routerd
from routerd.events import FallbackTaken
from routerd.sdk import Router
from routerd.testing.openai_fake import Reply
from tests.sdk.conftest import OPENAI_KEY

HI = [{"role": "user", "content": "hi"}]


def openai_deployment(name: str, fake: Any, model: str = "gpt-4o", **params: Any) -> dict[str, Any]:
    return {
        "model_name": name,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_key": OPENAI_KEY,
            "api_base": fake.base_url,
            **params,
        },
    }


def mock_deployment(name: str, answer: str, **params: Any) -> dict[str, Any]:
    return {
        "model_name": name,
        "litellm_params": {"model": f"mock/{name}", "mock_response": answer, **params},
    }


def test_router_with_fallbacks(openai_fake: Any) -> None:
    router = Router(
        model_list=[openai_deployment("gpt-4o", openai_fake), mock_deployment("claude", "from claude")],
        num_retries=0,
        fallbacks=[{"gpt-4o": ["claude"]}],
    )
    taken: list[FallbackTaken] = []
    router.events.subscribe(lambda event: taken.append(event) if isinstance(event, FallbackTaken) else None)
    with router:
        assert router.completion(model="gpt-4o", messages=HI).choices[0].message.content == "hi"
        openai_fake.enqueue(Reply.error(500, "down"))
        response = router.completion(model="gpt-4o", messages=HI)
    assert response.choices[0].message.content == "from claude"
    assert response._hidden_params["fallbacks"] == 1
    assert [(e.from_group, e.to_group) for e in taken] == [("gpt-4o", "claude")]


def test_router_retries_on_another_deployment_and_cools_the_failing_one_down(openai_fake: Any) -> None:
    real = {**openai_deployment("chat", openai_fake, order=1), "model_info": {"id": "real"}}
    spare = {**mock_deployment("chat", "from the spare", order=2), "model_info": {"id": "spare"}}
    router = Router(model_list=[real, spare], num_retries=1, allowed_fails=0, cooldown_time=60)
    assert router.completion(model="chat", messages=HI).choices[0].message.content == "hi"  # order 1 first
    openai_fake.enqueue(Reply.error(500, "down"))
    response = router.completion(model="chat", messages=HI)
    assert response.choices[0].message.content == "from the spare"
    assert response._hidden_params["model_id"] == "spare" and response._hidden_params["retries"] == 1
    states = {d["id"]: d["state"] for d in router.health()["deployments"]}
    assert states == {"real": "cooling_down", "spare": "healthy"}
    # while it cools down, calls go to the spare without touching the failing upstream
    calls = len(openai_fake.requests)
    assert router.completion(model="chat", messages=HI).choices[0].message.content == "from the spare"
    assert len(openai_fake.requests) == calls
    router.close()


def test_router_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            """
            model_list:
              - model_name: gpt-3.5-turbo
                litellm_params:
                  model: mock/gpt-3.5-turbo
                  mock_response: "from the file"
            router_settings:
              num_retries: 0
            """
        )
    )
    router = Router.from_config(config)
    assert router.get_model_names() == ["gpt-3.5-turbo"]
    assert router.completion(model="gpt-3.5-turbo", messages=HI).choices[0].message.content == "from the file"
    assert router.model_list is None and router.table.policy.num_retries == 0
    router.close()


def test_text_completion_embedding_and_async_methods() -> None:
    router = Router(model_list=[mock_deployment("m", "answer")])
    assert router.text_completion(model="m", prompt="p").choices[0].text == "answer"
    assert len(router.embedding(model="m", input="x").data[0].embedding) > 0

    async def main() -> None:
        async with router:
            assert (await router.acompletion(model="m", messages=HI)).choices[0].message.content == "answer"
            assert (await router.atext_completion(model="m", prompt="p")).choices[0].text == "answer"
            assert len((await router.aembedding(model="m", input=["a", "b"])).data) == 2
            stream = await router.acompletion(model="m", messages=HI, stream=True)
            assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "answer"

    asyncio.run(main())
    with pytest.raises(RuntimeError, match="closed"):
        router.completion(model="m", messages=HI)


def test_mock_response_runs_the_real_routing_without_network(openai_fake: Any) -> None:
    router = Router(model_list=[openai_deployment("gpt-4o", openai_fake)])
    response = router.completion(model="gpt-4o", messages=HI, mock_response="rehearsal")
    assert response.choices[0].message.content == "rehearsal"
    assert response.model == "gpt-4o"
    assert openai_fake.requests == []
    with pytest.raises(routerd.RateLimitError):
        router.completion(model="gpt-4o", messages=HI, mock_response="routerd.RateLimitError")
    router.close()


def test_mock_testing_fallbacks_rehearse_a_failover() -> None:
    router = Router(
        model_list=[mock_deployment("primary", "primary"), mock_deployment("backup", "backup")],
        fallbacks=[{"primary": ["backup"]}],
    )
    response = router.completion(model="primary", messages=HI, mock_testing_fallbacks=True)
    assert response.choices[0].message.content == "backup"
    router.close()


def test_set_model_list_publishes_a_new_table() -> None:
    router = Router(model_list=[mock_deployment("a", "first")])
    router.set_model_list([mock_deployment("a", "second"), mock_deployment("b", "new")])
    assert router.get_model_names() == ["a", "b"]
    assert router.completion(model="a", messages=HI).choices[0].message.content == "second"
    with pytest.raises(routerd.ConfigError):
        router.set_model_list([{"model_name": "broken", "litellm_params": {}}])
    assert router.get_model_names() == ["a", "b"]  # all or nothing
    router.close()


def test_invalid_settings_and_misplaced_arguments_are_reported() -> None:
    with pytest.raises(routerd.ConfigError, match="num_retries"):
        Router(model_list=[mock_deployment("a", "x")], num_retires=3)
    with pytest.raises(TypeError):
        Router()
    router = Router(model_list=[mock_deployment("a", "x")])
    with pytest.raises(routerd.BadRequestError, match="api_key"):
        router.completion(model="a", messages=HI, api_key="sk-nope")
    with pytest.raises(routerd.NotFoundError):
        router.completion(model="unknown", messages=HI)
    router.close()


def test_repr_and_model_list_never_leak_keys_into_logs(openai_fake: Any) -> None:
    router = Router(model_list=[openai_deployment("gpt-4o", openai_fake)])
    assert OPENAI_KEY not in repr(router)
    assert OPENAI_KEY not in repr(router.table)
    assert OPENAI_KEY not in str(router.health())
    router.close()


def test_os_environ_references_in_a_model_list(openai_fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_OPENAI_KEY", OPENAI_KEY)
    router = Router(
        model_list=[
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_key": "os.environ/MY_OPENAI_KEY",
                    "api_base": openai_fake.base_url,
                },
            }
        ]
    )
    assert router.completion(model="gpt-4o", messages=HI).choices[0].message.content == "hi"
    router.close()


async def test_an_injected_httpx_client_is_used_and_left_open(openai_fake: Any) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        router = Router(model_list=[openai_deployment("gpt-4o", openai_fake)], http_client=client)
        response = await router.acompletion(model="gpt-4o", messages=HI)
        assert response.choices[0].message.content == "hi"
        await router.aclose()
        assert not client.is_closed  # the caller's client stays the caller's
    assert openai_fake.requests[-1].json["model"] == "gpt-4o"


def test_explain_reports_candidates_without_calling_anything() -> None:
    router = Router(model_list=[mock_deployment("a", "x"), mock_deployment("a", "y")])
    report = router.explain("a", samples=50, seed=1)
    assert len(report["candidates"]) == 2
    assert sum(c["picks"] for c in report["candidates"]) == 50
    router.close()
