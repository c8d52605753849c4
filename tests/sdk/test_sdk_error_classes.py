"""The SDK raises routerd's errors as classes that are also openai's, built only when needed (issue 19.4)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import routerd
import routerd.errors as core
from routerd.sdk import Router, acompletion, completion
from routerd.sdk.errors import as_sdk_error, sdk_class

REPO = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "hi"}]


def run_python(code: str) -> str:
    """``code`` in a fresh interpreter with this checkout first on the path; its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def test_import_routerd_and_routerd_check_do_not_import_openai() -> None:
    code = (
        "import sys, io, argparse\n"
        "import routerd\n"
        "from routerd.cli import run_check\n"
        "run_check(argparse.Namespace(config='configs/example.yaml', json=False), io.StringIO())\n"
        "from routerd.server.app import create_app\n"
        "print(sorted(m for m in sys.modules if m == 'openai' or m.startswith('routerd.sdk')))\n"
    )
    assert run_python(code) == "[]"


def test_an_sdk_exception_imports_openai_on_first_use() -> None:
    code = (
        "import sys, routerd\n"
        "before = 'openai' in sys.modules\n"
        "import openai\n"
        "print(before, issubclass(routerd.RateLimitError, openai.RateLimitError))\n"
    )
    assert run_python(code) == "False True"


def test_building_an_error_builds_no_http_objects() -> None:
    code = (
        "import sys\n"
        "from routerd.errors import RateLimitError\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        raise RateLimitError('slow down', retry_after=1)\n"
        "    except RateLimitError as exc:\n"
        "        last = exc\n"
        "print('httpx2' in sys.modules, last.to_dict()['error']['type'])\n"
        "print(last.response.status_code, 'httpx2' in sys.modules, last.response is last.response)\n"
    )
    assert run_python(code).splitlines() == ["False rate_limit_error", "429 True True"]


def test_type_is_one_attribute_read_from_the_class() -> None:
    error = core.NotFoundError("no such model")
    assert error.type == error.error_type == error.to_dict()["error"]["type"] == "invalid_request_error"
    assert error.body == error.to_dict()["error"]
    with pytest.raises(AttributeError):
        error.type = "api_error"  # type: ignore[misc]


@pytest.mark.parametrize("name", [n for n in routerd.__all__ if n in core.__all__])
def test_every_exported_error_is_the_sdk_class_of_the_core_one(name: str) -> None:
    exported = getattr(routerd, name)
    core_class = getattr(core, name)
    assert issubclass(exported, core_class)
    if issubclass(core_class, core.OpenAIError):
        assert exported is sdk_class(core_class) is sdk_class(exported)
        assert issubclass(exported, openai.APIError) and issubclass(exported, routerd.OpenAIError)
        assert exported.__module__ == "routerd" and exported.__name__ == name
    else:
        assert exported is core_class  # RouterdError, ConfigError: nothing of openai's to match


def test_the_error_object_is_kept_when_it_becomes_an_sdk_error() -> None:
    error = core.ContextWindowExceededError("too long", model="m", deployment_id="d1")
    error.__cause__ = ValueError("why")
    assert as_sdk_error(error) is error
    assert isinstance(error, openai.BadRequestError) and isinstance(error, routerd.ContextWindowExceededError)
    assert (error.message, error.model, error.deployment_id, error.code) == (
        "too long",
        "m",
        "d1",
        "context_length_exceeded",
    )
    assert isinstance(error.__cause__, ValueError)
    assert pickle.loads(pickle.dumps(error)).__class__ is type(error)


def test_completion_raises_sdk_errors() -> None:
    with pytest.raises(openai.RateLimitError) as info:
        completion(model="gpt-4", messages=HI, mock_response="routerd.RateLimitError")
    assert isinstance(info.value, routerd.RateLimitError) and isinstance(info.value, core.RateLimitError)
    assert info.value.status_code == 429 and info.value.response.status_code == 429


async def test_async_calls_and_routers_raise_sdk_errors() -> None:
    with pytest.raises(openai.BadRequestError):
        await acompletion(model="gpt-4", messages=HI, mock_response="routerd.BadRequestError")
    router = Router(model_list=[{"model_name": "m", "litellm_params": {"model": "mock/m"}}])
    with pytest.raises(openai.NotFoundError):
        await router.acompletion(model="no-such-group", messages=HI)
    with pytest.raises(openai.AuthenticationError):
        router.completion(model="m", messages=HI, mock_response="routerd.AuthenticationError")
    await router.aclose()
