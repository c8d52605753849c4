"""Issue 3, done when: the README's first command serves ``configs/example.yaml`` and the README's curl
example gets an answer from it, offline. The commands are read from the README itself (and from the
quickstart page, docs/index.md, which repeats them), so the test breaks when the documents and the
product drift apart."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from routerd.testing.server import RouterdServer

from .support import REPO

README = REPO / "README.md"
QUICKSTART = REPO / "docs" / "index.md"
EXAMPLE_ANSWERS = {
    "Hello from the first mock deployment.",
    "Hello from the second mock deployment.",
}


def bash_blocks(text: str) -> list[list[str]]:
    """The README's bash code blocks, each as the words of its (continuation-joined) command."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [shlex.split(block.replace("\\\n", " "), comments=True) for block in blocks]


def serve_config(words: list[str]) -> Path:
    """The ``--config`` of the ``routerd serve`` in a command line."""
    serve = words.index("serve")
    assert words[serve - 1].endswith("routerd"), words
    return REPO / words[words.index("--config", serve) + 1]


@dataclass(frozen=True)
class CurlRequest:
    method: str
    url: str
    headers: dict[str, str]
    data: bytes | None


def curl_request(words: list[str]) -> CurlRequest:
    """The request a ``curl`` command line would send (the options the README uses)."""
    assert words[0] == "curl", words
    method, url, headers, data = "GET", "", {}, None
    options = iter(words[1:])
    for word in options:
        if word in ("-H", "--header"):
            name, _, value = next(options).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data", "--data-raw"):
            data, method = next(options).encode(), "POST"
        elif word in ("-X", "--request"):
            method = next(options)
        elif word.startswith("http"):
            url = word
        elif word not in ("-s", "--silent", "-S", "--show-error", "-f", "--fail"):
            raise AssertionError(f"the test does not understand curl option {word!r}; teach it")
    return CurlRequest(method, url, headers, data)


@pytest.fixture(scope="module", params=[README, QUICKSTART], ids=["README", "quickstart"])
def readme_commands(request: pytest.FixtureRequest) -> list[list[str]]:
    document: Path = request.param
    return bash_blocks(document.read_text(encoding="utf-8"))


def test_readme_and_quickstart_start_with_the_same_two_commands() -> None:
    readme, quickstart = (bash_blocks(doc.read_text(encoding="utf-8")) for doc in (README, QUICKSTART))
    assert readme[:2] == quickstart[:2]
    assert quickstart[1] == ["bash", ".ci/run"]


def test_first_command_serves_the_example_config(readme_commands: list[list[str]]) -> None:
    first = readme_commands[0]

    assert "serve" in first
    assert serve_config(first) == REPO / "configs" / "example.yaml"
    assert serve_config(first).is_file()


def test_readme_curl_example_gets_an_answer_offline(readme_commands: list[list[str]]) -> None:
    curls = [words for words in readme_commands if words and words[0] == "curl"]
    assert curls, "the README shows no curl example"
    request = curl_request(curls[0])
    documented = urlsplit(request.url)
    assert (documented.hostname, documented.port) == ("127.0.0.1", 4000)  # where the first command listens

    # The same request, to the daemon serving the first command's config on a free port instead of 4000.
    with RouterdServer.from_file(serve_config(readme_commands[0])) as server:
        response = httpx.request(
            request.method,
            server.base_url + documented.path,
            headers=request.headers,
            content=request.data,
            timeout=10,
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] in EXAMPLE_ANSWERS
    assert response.headers["x-routerd-model-id"] in {"mini-primary", "mini-secondary"}


MASTER = "sk-readme-master-0123456789"
BOT = "sk-readme-support-bot-01234"


def yaml_block_under(text: str, heading: str) -> str:
    """The first YAML code block after ``heading`` in ``text``."""
    section = text[text.index(heading) :]
    found = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None, f"no YAML example under {heading!r}"
    return found.group(1)


def test_readme_teams_keys_and_guardrails_example_does_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = README.read_text(encoding="utf-8")
    config = tmp_path / "routerd.yaml"
    config.write_text(yaml_block_under(text, "### Teams, keys and guardrails"))
    monkeypatch.setenv("ROUTERD_MASTER_KEY", MASTER)
    monkeypatch.setenv("SUPPORT_BOT_KEY", BOT)
    masked = re.search(r"reaches the client as `(.*?)`", text)
    assert masked is not None
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How do I reset my password?"}]}
    with RouterdServer.from_file(config) as server:
        url, bot = server.base_url + "/v1/chat/completions", {"authorization": f"Bearer {BOT}"}
        plain = httpx.post(url, json=chat, headers=bot, timeout=10)
        streamed = httpx.post(url, json={**chat, "stream": True}, headers=bot, timeout=10)
        secret = {**chat, "messages": [{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE"}]}
        refused = httpx.post(url, json=secret, headers=bot, timeout=10)
        unknown = httpx.post(
            url, json=chat, headers={"authorization": "Bearer sk-nobody-0123456789"}, timeout=10
        )
        master = httpx.post(url, json=chat, headers={"authorization": f"Bearer {MASTER}"}, timeout=10)
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"] == masked.group(1)
    text_streamed = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and (chunk := json.loads(line[6:]))["choices"]
    )
    assert text_streamed == masked.group(1)
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "guardrail_violation"
    assert unknown.status_code == 401
    # the key's guardrail is the key's: the master key's calls get the answer as it is
    assert "ana@example.com" in master.json()["choices"][0]["message"]["content"]
