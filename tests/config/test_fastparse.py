"""The loader's fast parse (routerd/config/fastparse.py) against the round-trip parse it stands in for.

Every case loads the same text both ways and asserts the same result: the same tree, the same issues
at the same file:line:col, the same fingerprint. A clean file never runs the round-trip parser
(its marks are built only when an issue has to be located); whatever the fast parse does not decide
falls back whole, and the hostile-input bounds hold on the fast path before anything is copied.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerd.config import check_config, load, load_text
from routerd.config import loader as loader_module
from routerd.config.fastparse import NotFast, available, fast_tree
from routerd.config.files import DEFAULT_MAX_ALIAS_NODES, MAX_DEPTH

pytestmark = pytest.mark.skipif(not available(), reason="PyYAML's C extension (libyaml) is not installed")

ENV = {"OPENAI_API_KEY": "sk-test-not-real"}

CLEAN = """\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
      api_base: http://127.0.0.1:8080/v1
      rpm: 600
      timeout: 1.5e1
    model_info: {id: first, mode: chat}
  - model_name: gpt
    litellm_params: {model: mock/m, mock_response: "hi: there", api_version: 2024-02-01}
router_settings:
  num_retries: 2
  allowed_fails: 0x3
  cooldown_time: .inf
"""


@pytest.fixture(autouse=True)
def fast_parse_small_files() -> Iterator[None]:
    """The cases here are small files, which the loader parses the round-trip way unless told not to."""
    before = loader_module.FAST_PARSE_MIN_CHARS
    loader_module.FAST_PARSE_MIN_CHARS = 0
    try:
        yield
    finally:
        loader_module.FAST_PARSE_MIN_CHARS = before


@pytest.fixture
def round_trip_only() -> Iterator[None]:
    loader_module.FAST_PARSE = False
    try:
        yield
    finally:
        loader_module.FAST_PARSE = True


def both(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[object, object]:
    """``load_text`` with the fast parse, then with the round-trip parse only."""
    fast = load_text(text, "config.yaml", env=ENV if env is None else env, base_dir=tmp_path)
    loader_module.FAST_PARSE = False
    try:
        slow = load_text(text, "config.yaml", env=ENV if env is None else env, base_dir=tmp_path)
    finally:
        loader_module.FAST_PARSE = True
    return fast, slow


def same(fast: object, slow: object) -> None:
    for name in ("data", "files", "fingerprint", "secret_paths", "unresolved_paths", "usable", "file_env"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert [str(i) for i in fast.issues] == [str(i) for i in slow.issues]  # type: ignore[attr-defined]


def test_a_clean_file_never_runs_the_round_trip_parser(tmp_path: Path) -> None:
    fast, slow = both(CLEAN, tmp_path)
    same(fast, slow)
    assert not fast.marks.located  # type: ignore[attr-defined]
    assert slow.marks.located  # type: ignore[attr-defined]
    # asked for a location, the fast load parses again and answers exactly
    path = ("model_list", 1, "litellm_params", "mock_response")
    assert fast.marks.value(path) == slow.marks.value(path)  # type: ignore[attr-defined]
    assert str(fast.marks.value(path)) == "config.yaml:11:52"  # type: ignore[attr-defined]
    assert fast.marks.located  # type: ignore[attr-defined]


def test_scalars_are_read_as_yaml_1_2_like_the_round_trip_parser(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML's own rules) reads yes/on as booleans, 010 as 8 and 1:30 as 90
    values = [
        "yes", "no", "on", "off", "y", "010", "0o17", "0x1F", "0b101", "1_000", "1:30", "1e3", "-.inf",
        ".nan", "~", "null", "", "true", "False", "2024-02-01", "2001-12-14 21:59:43.10 -5", "+4", "0.",
        "=", "'quoted 1'", '"2"', "|\n    block\n", "a#b", "x # comment",
    ]  # fmt: skip
    text = "values:\n" + "".join(f"  k{i}: {value}\n" for i, value in enumerate(values))
    fast, slow = both(text, tmp_path)
    same(fast, slow)
    got = fast.data["values"]  # type: ignore[attr-defined]
    assert got["k0"] == "yes" and got["k5"] == 10 and got["k10"] == "1:30" and got["k11"] == 1000.0
    assert not fast.marks.located  # type: ignore[attr-defined]


def test_keys_and_collections_match(tmp_path: Path) -> None:
    text = (
        "a: {1: one, null: n, 1.5: f, 2024-02-01: d, 0x10: h}\n"
        "b: [[1, 2], {x: [y]}, [], {}]\n"
        "c: &anchor {shared: 1}\n"
        "d: [*anchor, *anchor]\n"
        "e: >\n  folded\n  text\n"
    )
    fast, slow = both(text, tmp_path)
    same(fast, slow)
    assert fast.data["a"] == {"1": "one", "null": "n", "1.5": "f", "2024-02-01": "d", "16": "h"}  # type: ignore[attr-defined]
    assert not fast.marks.located  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: 1\na: 2\n", id="duplicate-key"),
        pytest.param("a: 1\n'1': x\n1: y\n", id="keys-equal-as-strings"),
        pytest.param("a: {1: one, true: t}\n", id="keys-equal-in-python"),
        pytest.param("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n", id="merge-key"),
        pytest.param("a: !!binary aGVsbG8=\n", id="explicit-tag"),
        pytest.param("a: !custom x\n", id="custom-tag"),
        pytest.param("%YAML 1.1\n---\na: yes\n", id="directive"),
        pytest.param("? [a, b]\n: c\n", id="complex-key"),
        pytest.param("a: [1, 2\n", id="syntax-error"),
        pytest.param("a: b: c\n", id="bad-mapping"),
        pytest.param("- a\n- b\n", id="top-level-list"),
        pytest.param("a: 1\n---\nb: 2\n", id="two-documents"),
        pytest.param("a: 'x'\tb\n", id="tab"),
    ],
)
def test_what_the_fast_parse_does_not_decide_goes_the_round_trip_way(text: str, tmp_path: Path) -> None:
    with pytest.raises(NotFast):
        fast_tree(text, DEFAULT_MAX_ALIAS_NODES)
    fast, slow = both(text, tmp_path)
    same(fast, slow)


def test_errors_and_warnings_are_located_exactly(tmp_path: Path) -> None:
    text = CLEAN.replace("num_retries: 2", "num_retris: 2").replace("rpm: 600", "rpm: many")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    fast = check_config(path, env=ENV)
    loader_module.FAST_PARSE = False
    try:
        slow = check_config(path, env=ENV)
    finally:
        loader_module.FAST_PARSE = True
    assert fast.errors and [str(i) for i in fast.errors] == [str(i) for i in slow.errors]
    assert [str(i) for i in fast.warnings] == [str(i) for i in slow.warnings]
    assert any(f"{path}:7:12" in str(issue) for issue in fast.errors), fast.errors


def test_an_unset_variable_is_located(tmp_path: Path) -> None:
    fast, slow = both(CLEAN, tmp_path, env={})
    same(fast, slow)
    [issue] = fast.issues  # type: ignore[attr-defined]
    assert str(issue).startswith("config.yaml:5:16: ")


def test_includes_merge_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "more.yaml").write_text(
        "model_list:\n  - model_name: extra\n    litellm_params: {model: mock/x, mock_response: x}\n"
        "router_settings: {timeout: 30}\n"
    )
    text = CLEAN + "include: more.yaml\n"
    fast, slow = both(text, tmp_path)
    same(fast, slow)
    assert len(fast.data["model_list"]) == 3  # type: ignore[attr-defined]
    assert not fast.marks.located  # type: ignore[attr-defined]
    # a conflict is warned about with both locations: the round-trip pass does it
    conflicting = text.replace("num_retries: 2", "num_retries: 2\n  timeout: 10")
    fast, slow = both(conflicting, tmp_path)
    same(fast, slow)
    assert any("also set at" in issue.message for issue in fast.warnings)  # type: ignore[attr-defined]


def test_an_include_changed_between_the_passes_is_not_read_again(tmp_path: Path) -> None:
    included = tmp_path / "more.yaml"
    included.write_text("router_settings: {timeout: 30}\n")
    path = tmp_path / "config.yaml"
    path.write_text(CLEAN + "include: more.yaml\n")
    loaded = load(path, env=ENV)
    included.write_text("router_settings:\n\n\n  timeout: 99\n")  # moved: would shift every mark
    assert not loaded.marks.located
    assert str(loaded.marks.value(("router_settings", "timeout"))).endswith("more.yaml:1:28")
    assert loaded.data["router_settings"]["timeout"] == 30


def test_the_alias_bound_holds_before_anything_is_copied() -> None:
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    with pytest.raises(NotFast):
        fast_tree("\n".join(bomb) + "\n", DEFAULT_MAX_ALIAS_NODES)  # 9**9 nodes: refused, not built
    small = "a: &a [1, 2]\nb: [*a, *a, *a]\n"
    # each alias is charged the 3 nodes it expands to, as the round-trip path charges it
    assert fast_tree(small, 9) == {"a": [1, 2], "b": [[1, 2]] * 3}
    with pytest.raises(NotFast):
        fast_tree(small, 8)


def test_the_depth_bound_holds() -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    with pytest.raises(NotFast):
        fast_tree(deep, DEFAULT_MAX_ALIAS_NODES)
    very_deep = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"  # libyaml stops at 1,000 levels itself
    with pytest.raises(NotFast):
        fast_tree(very_deep, DEFAULT_MAX_ALIAS_NODES)
    levels = MAX_DEPTH - 2
    nested: list[object] = []
    for _ in range(levels - 1):
        nested = [nested]
    ok = "a: " + "[" * levels + "]" * levels + "\n"
    assert fast_tree(ok, DEFAULT_MAX_ALIAS_NODES) == {"a": nested}


def test_the_round_trip_switch_is_honoured(tmp_path: Path, round_trip_only: None) -> None:
    loaded = load_text(CLEAN, "config.yaml", env=ENV, base_dir=tmp_path)
    assert loaded.marks.located


# --- generated documents -----------------------------------------------------------------------------

_TOKENS = [
    "0", "7", "-3", "010", "0o7", "0x1f", "1_0", "1.5", "1e3", ".inf", "-.nan", "true", "FALSE", "yes",
    "no", "on", "~", "null", "2024-02-01", "12:30", "=", "a b", "http://h:1/v", "a#b", "x: y", "- z",
    "'q'", '"\\t"', "é", "@x", "`x", "!x", "&x", "*x", "%x", "{a", "a,b", "[", "]", "?", ":", "#c",
]  # fmt: skip


def _scalar(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_TOKENS) | st.text("ab01.:-_ #'\"", max_size=6))
    style = draw(st.sampled_from(["plain", "single", "double"]))
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "double":
        return '"' + text.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"'
    return text


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for index in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from([f"k{index}", *_TOKENS[:12]]))
        kind = draw(st.sampled_from(["scalar", "flow-list", "flow-map", "block-list", "block-map"]))
        if kind == "scalar":
            lines.append(f"{key}: {_scalar(draw)}")
        elif kind == "flow-list":
            lines.append(f"{key}: [{', '.join(_scalar(draw) for _ in range(draw(st.integers(0, 3))))}]")
        elif kind == "flow-map":
            items = [f"{_scalar(draw)}: {_scalar(draw)}" for _ in range(draw(st.integers(0, 3)))]
            lines.append(f"{key}: {{{', '.join(items)}}}")
        elif kind == "block-list":
            lines.append(f"{key}:")
            lines += [f"  - {_scalar(draw)}" for _ in range(draw(st.integers(1, 3)))]
        else:
            lines.append(f"{key}:")
            lines += [f"  {_scalar(draw)}: {_scalar(draw)}" for _ in range(draw(st.integers(1, 3)))]
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_read_the_same_or_go_the_round_trip_way(text: str) -> None:
    loader_module.FAST_PARSE = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ruamel warns of a reused anchor (libyaml refuses it)
            slow = load_text(text, "gen.yaml", env={})
    finally:
        loader_module.FAST_PARSE = True
    try:
        tree = fast_tree(text, DEFAULT_MAX_ALIAS_NODES)
    except NotFast:
        return
    assert slow.usable, (text, slow.errors)  # the fast parse never accepts what ruamel refuses
    assert tree == slow.data


@pytest.mark.parametrize(
    ("value", "kind"),
    [("0b_", "int"), ("-0x_", "int"), ("2024-13-45", "timestamp"), ("2024-02-30", "timestamp")],
)
def test_a_value_ruamel_cannot_build_is_an_error_at_its_place_not_a_crash(
    value: str, kind: str, tmp_path: Path
) -> None:
    # ruamel resolves these as an int or a date, then its constructor raises a plain exception
    text = f"model_list:\n  - model_name: x\n    litellm_params: {{model: azure/x, api_version: {value}}}\n"
    with pytest.raises(NotFast):
        fast_tree(text, DEFAULT_MAX_ALIAS_NODES)
    fast, slow = both(text, tmp_path)
    same(fast, slow)
    [error] = fast.errors  # type: ignore[attr-defined]
    assert (error.line, error.col) == (3, 51)
    assert f"not a valid {kind}" in error.message and value not in str(error)
