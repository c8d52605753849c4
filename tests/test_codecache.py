"""The start-up code cache (routerd.codecache): the same classes and forward references, their code
compiled once per text.

Each test makes its own dataclasses with a field name of its own, so the texts dataclasses generates
are new to every cache file here.
"""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from routerd import codecache
from routerd.codecache import CodeCache, finish_startup, startup_code_cache

REPO = Path(__file__).resolve().parents[1]


def make_class(field_name: str) -> type:
    """A frozen, slotted dataclass (what routerd's records are) with one field named ``field_name``."""
    namespace = {"__annotations__": {field_name: int, "label": str}, "label": "x"}
    cls = type(f"Record_{field_name}", (), namespace)
    return dataclasses.dataclass(frozen=True, slots=True)(cls)


def behaviour(cls: type, field_name: str) -> dict[str, object]:
    one, same, other = cls(1), cls(1), cls(2, label="y")
    try:
        setattr(one, field_name, 5)
        frozen = False
    except dataclasses.FrozenInstanceError:
        frozen = True
    return {
        "repr": repr(one),
        "eq": (one == same, one == other),
        "hash": hash(one) == hash(same),
        "frozen": frozen,
        "fields": [f.name for f in dataclasses.fields(cls)],
        "init_annotations": cls.__init__.__annotations__,  # type: ignore[misc]
    }


@pytest.fixture(autouse=True)
def _writes_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # the test environment sets PYTHONDONTWRITEBYTECODE; the cache honours it (tested below)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def test_a_second_start_reuses_the_code_and_the_classes_are_the_same(tmp_path: Path) -> None:
    path = tmp_path / "cache.bin"
    with startup_code_cache(path) as first:
        made = behaviour(make_class("alpha"), "alpha")
    assert first.compiled >= 4 and first.reused == 0  # __init__, __repr__, __eq__, __hash__, ...
    assert path.is_file()
    with startup_code_cache(path) as second:
        again = behaviour(make_class("alpha"), "alpha")
    assert second.compiled == 0 and second.reused == first.compiled
    assert again == made
    # compiled as exec compiles it: no __future__ flags from this module (annotations stay objects)
    assert made["init_annotations"] == {"alpha": int, "label": str, "return": None}
    assert made["frozen"] is True and made["eq"] == (True, False) and made["hash"] is True


def test_each_code_object_is_what_its_text_compiles_to(tmp_path: Path) -> None:
    path = tmp_path / "cache.bin"
    with startup_code_cache(path):
        make_class("beta")
    cache = CodeCache(path)
    assert cache.known
    for (mode, text), code in cache.known.items():
        expected = compile(text, "<string>", mode, dont_inherit=True)
        assert code == expected and code.co_filename == expected.co_filename  # code, consts, names, flags


def test_forward_references_are_compiled_once_and_refused_as_before(tmp_path: Path) -> None:
    path = tmp_path / "cache.bin"
    text = "dict[str, 'Iota'] | None"
    with startup_code_cache(path) as first:
        ref = typing.ForwardRef(text)
        with pytest.raises(SyntaxError, match="Forward reference must be an expression"):
            typing.ForwardRef("not an ( expression")
    assert first.compiled == 1  # the bad text is not kept
    with startup_code_cache(path) as second:
        again = typing.ForwardRef(text)
    assert (second.compiled, second.reused) == (0, 1)
    assert again == ref
    # what typing compiles (its module has no __future__ imports, so none are inherited)
    expected = compile(text, "<string>", "eval", dont_inherit=True)
    assert again.__forward_code__ == expected and again.__forward_code__.co_flags == expected.co_flags


def test_the_hook_is_removed_when_start_up_is_over(tmp_path: Path) -> None:
    with startup_code_cache(tmp_path / "cache.bin") as cache:
        assert codecache.active() is cache
        assert "exec" in vars(dataclasses) and "compile" in vars(typing)
        assert finish_startup() is cache  # what routerd serve does before it serves
        assert "exec" not in vars(dataclasses) and "compile" not in vars(typing)
        make_class("gamma")  # compiled by dataclasses itself now
    assert cache.compiled == 0
    assert codecache.active() is None


def test_a_name_those_modules_had_before_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = compile  # a global typing might define one day: it is restored, not deleted
    monkeypatch.setattr(typing, "compile", own, raising=False)
    with startup_code_cache(tmp_path / "cache.bin") as cache:
        assert vars(typing)["compile"] == cache.compile
    assert vars(typing)["compile"] is own and "exec" not in vars(dataclasses)


@pytest.mark.parametrize(
    "content",
    [
        b"not marshal data",
        marshal.dumps((b"\x00\x00\r\n", 0, {})),  # not the (header, entries) shape
        marshal.dumps(((b"\x00\x00\r\n", 0), {})),  # another Python's magic number
        marshal.dumps(((codecache._header()), {("exec", "def f(): pass"): "not code"})),
        marshal.dumps(((codecache._header()), {"def f(): pass": compile("0", "<string>", "eval")})),
    ],
)
def test_a_foreign_or_broken_file_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cache.bin"
    path.write_bytes(content)
    with startup_code_cache(path) as cache:
        assert behaviour(make_class("delta"), "delta")["frozen"] is True
    assert cache.reused == 0 and cache.compiled > 0
    assert CodeCache(path).known.keys() == cache.used.keys()


def test_nothing_is_written_without_bytecode_writing_or_a_writable_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with startup_code_cache(tmp_path / "cache.bin") as cache:
        make_class("epsilon")
    assert cache.compiled > 0 and not (tmp_path / "cache.bin").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    blocked = tmp_path / "file-not-directory"
    blocked.write_text("")
    with startup_code_cache(blocked / "cache.bin") as cache:  # its parent cannot be made
        make_class("zeta")
    assert cache.compiled > 0 and not cache.save()


def test_max_cache_bytes_bounds_what_is_read_and_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.bin"
    with startup_code_cache(path):
        make_class("eta")
    size = path.stat().st_size
    monkeypatch.setattr(codecache, "MAX_CACHE_BYTES", size - 1)
    assert CodeCache(path).known == {}  # too big: not read
    with startup_code_cache(path) as cache:
        make_class("eta")
    assert cache.compiled > 0 and not cache.save()  # nor written
    # earlier entries are dropped first when keeping them would pass the bound
    monkeypatch.setattr(codecache, "MAX_CACHE_BYTES", size + 100)
    with startup_code_cache(path) as cache:
        make_class("theta")
    assert set(CodeCache(path).known) == set(cache.used)


def test_the_command_line_fills_the_cache_and_the_next_start_reuses_it(tmp_path: Path) -> None:
    # a fresh interpreter as `routerd check` runs: every routerd dataclass is made inside the cache
    script = textwrap.dedent(
        """
        import json, sys
        from routerd import codecache
        seen = {}
        real_finish = codecache.finish_startup
        def finish():
            cache = real_finish()
            if cache is not None:
                seen.update(compiled=cache.compiled, reused=cache.reused, path=str(cache.path))
            return cache
        codecache.finish_startup = finish
        from routerd.cli import main
        code = main(["check", sys.argv[1]])
        print(json.dumps({"code": code, **seen}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")

    def run() -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-c", script, str(REPO / "configs" / "example.yaml")],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        return data

    first, second = run(), run()
    assert first["code"] == second["code"] == 0
    assert isinstance(first["compiled"], int) and first["compiled"] > 100
    assert second["compiled"] == 0 and second["reused"] == first["compiled"]
    assert str(first["path"]).startswith(str(tmp_path / "pycache"))
