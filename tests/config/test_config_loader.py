"""Stage 1: YAML with marks, include, and os.environ/ references."""

from __future__ import annotations

import os
from pathlib import Path

from routerd.config import load, load_text

from .conftest import FIXTURES, WriteYaml


def test_marks_point_at_keys_and_values_one_based(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              rpm: 10
        """
    )
    loaded = load(path, env={})
    rpm = ("model_list", 0, "litellm_params", "rpm")
    assert loaded.data["model_list"][0]["litellm_params"]["rpm"] == 10
    assert (loaded.marks.key(rpm).line, loaded.marks.key(rpm).col) == (5, 7)
    assert (loaded.marks.value(rpm).line, loaded.marks.value(rpm).col) == (5, 12)
    # a missing key resolves to its nearest existing ancestor
    missing = loaded.marks.value(("model_list", 0, "litellm_params", "api_base"))
    assert (missing.line, missing.col) == (4, 7)
    assert loaded.files == (str(path),)


def test_syntax_error_has_location_and_snippet(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        model_list:
          - model_name: [gpt-4o
            litellm_params: {}
        """
    )
    loaded = load(path, env={})
    assert not loaded.usable
    [error] = loaded.errors
    assert (error.file, error.line) == (str(path), 3)
    assert error.message.startswith("invalid YAML: ")
    assert "while parsing a flow sequence at line 2" in error.message
    assert error.snippet.splitlines()[0].strip() == "litellm_params: {}"
    assert error.snippet.splitlines()[1].strip() == "^"
    assert str(error).startswith(f"{path}:3:")


def test_duplicate_key_names_the_key_but_not_the_values(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        general_settings:
          master_key: sk-first-secret
          master_key: sk-second-secret
        """
    )
    [error] = load(path, env={}).errors
    assert error.message == "duplicate key 'master_key' in the mapping that starts at line 2"
    assert (error.line, error.col) == (3, 3)
    assert "sk-" not in str(error)


def test_top_level_must_be_a_mapping(write_yaml: WriteYaml) -> None:
    [error] = load(write_yaml("- a\n- b\n"), env={}).errors
    assert "must be a mapping at the top level" in error.message


def test_empty_file_loads_as_empty(write_yaml: WriteYaml) -> None:
    loaded = load(write_yaml("# nothing yet\n"), env={})
    assert loaded.usable and loaded.data == {} and not loaded.issues


def test_missing_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    loaded = load(tmp_path / "nope.yaml", env={})
    [error] = loaded.errors
    assert not loaded.usable
    assert error.message.startswith("cannot read the file")
    assert error.file.endswith("nope.yaml")


def test_unquoted_dates_become_strings(write_yaml: WriteYaml) -> None:
    loaded = load(write_yaml("general_settings:\n  x: 2024-02-01\n"), env={})
    assert loaded.data["general_settings"]["x"] == "2024-02-01"


def test_merge_keys_are_located_at_the_anchor(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        x-defaults: &defaults
          rpm: 10
        model_list:
          - model_name: a
            litellm_params:
              <<: *defaults
              model: openai/gpt-4o
        """
    )
    loaded = load(path, env={})
    assert loaded.data["model_list"][0]["litellm_params"] == {"model": "openai/gpt-4o", "rpm": 10}
    where = loaded.marks.key(("model_list", 0, "litellm_params", "rpm"))
    assert (where.line, where.col) == (2, 3)


# -- include ----------------------------------------------------------------------------------------


def test_include_concatenates_lists_and_merges_mappings() -> None:
    main = FIXTURES / "include" / "main.yaml"
    loaded = load(main, env={"OPENAI_API_KEY": "sk-test"})
    names = [entry["model_name"] for entry in loaded.data["model_list"]]
    assert names == ["local", "gpt-4o"]  # the including file's entries first
    settings = loaded.data["router_settings"]
    assert settings["timeout"] == 42  # merged in from settings.yaml
    assert settings["num_retries"] == 5  # the including file wins...
    [warning] = loaded.warnings  # ...and says so
    assert warning.file.endswith(os.path.join("include", "settings.yaml"))
    assert (warning.line, warning.col) == (2, 3)
    assert warning.path == "router_settings.num_retries"
    assert "main.yaml:9:3; the value there is used" in warning.message
    assert [Path(f).name for f in loaded.files] == ["main.yaml", "openai.yaml", "settings.yaml"]
    # marks of included values point into the included file
    where = loaded.marks.value(("model_list", 1, "litellm_params", "model"))
    assert where.file.endswith(os.path.join("models", "openai.yaml"))
    assert (where.line, where.col) == (4, 14)


def test_include_cycle_is_an_error_with_the_chain() -> None:
    loaded = load(FIXTURES / "include" / "cycle_a.yaml", env={})
    assert not loaded.usable
    [error] = loaded.errors
    assert error.file.endswith("cycle_b.yaml")
    assert (error.line, error.col, error.path) == (2, 5, "include[0]")
    chain = error.message.removeprefix("include cycle: ").split(" -> ")
    assert [Path(p).name for p in chain] == ["cycle_a.yaml", "cycle_b.yaml", "cycle_a.yaml"]


def test_missing_include_is_an_error_at_the_entry(write_yaml: WriteYaml) -> None:
    path = write_yaml("include:\n  - other.yaml\n  - gone.yaml\n")
    write_yaml("model_list: []\n", "other.yaml")
    loaded = load(path, env={})
    [error] = loaded.errors
    assert (error.line, error.col, error.path) == (3, 5, "include[1]")
    assert error.message.endswith("gone.yaml: no such file")


def test_a_file_included_twice_is_included_once(write_yaml: WriteYaml) -> None:
    path = write_yaml("include: [a.yaml, b.yaml]\n")
    write_yaml("include: [shared.yaml]\n", "a.yaml")
    write_yaml("include: [shared.yaml]\n", "b.yaml")
    write_yaml("model_list:\n  - model_name: x\n    litellm_params: {model: mock/x}\n", "shared.yaml")
    loaded = load(path, env={})
    assert len(loaded.data["model_list"]) == 1
    [warning] = loaded.warnings
    assert "is already included" in warning.message and warning.file.endswith("b.yaml")


def test_include_of_text_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text("model_list: [{model_name: a, litellm_params: {model: mock/a}}]\n")
    loaded = load_text("include: models.yaml\n", "inline.yaml", env={}, base_dir=tmp_path)
    assert loaded.data["model_list"][0]["model_name"] == "a"


# -- os.environ/ ------------------------------------------------------------------------------------


def test_environment_references_resolve_anywhere_a_string_stands(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        model_list:
          - model_name: a
            litellm_params:
              model: os.environ/MODEL
              rpm: os.environ/RPM
              tags: [os.environ/TAG]
        """
    )
    loaded = load(path, env={"MODEL": "openai/gpt-4o", "RPM": "60", "TAG": "blue"})
    params = loaded.data["model_list"][0]["litellm_params"]
    assert params == {"model": "openai/gpt-4o", "rpm": "60", "tags": ["blue"]}
    assert ("model_list", 0, "litellm_params", "model") in loaded.secret_paths
    assert not loaded.issues


def test_unset_variable_is_a_load_error_naming_it_and_its_location(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """\
        general_settings:
          master_key: os.environ/ROUTERD_TEST_UNSET_KEY
        """
    )
    loaded = load(path, env={})
    [error] = loaded.errors
    assert str(error) == (
        f"{path}:2:15: general_settings.master_key: environment variable ROUTERD_TEST_UNSET_KEY is not set "
        "(referenced as os.environ/ROUTERD_TEST_UNSET_KEY)"
    )
    assert loaded.unresolved_paths == {("general_settings", "master_key")}


def test_a_reference_without_a_name_is_an_error(write_yaml: WriteYaml) -> None:
    [error] = load(write_yaml("general_settings:\n  master_key: os.environ/\n"), env={}).errors
    assert error.message == "'os.environ/' does not name an environment variable"


def test_environment_variables_section_feeds_references_without_touching_os_environ(
    write_yaml: WriteYaml,
) -> None:
    path = write_yaml(
        """\
        environment_variables:
          ROUTERD_TEST_FILE_ONLY: from-the-file
          ROUTERD_TEST_COPIED: os.environ/ROUTERD_TEST_PROCESS
          ROUTERD_TEST_PORT: 6379
        general_settings:
          master_key: os.environ/ROUTERD_TEST_FILE_ONLY
          other: os.environ/ROUTERD_TEST_COPIED
        """
    )
    before = dict(os.environ)
    loaded = load(path, env={"ROUTERD_TEST_PROCESS": "from-the-process", "ROUTERD_TEST_FILE_ONLY": "process"})
    assert loaded.data["general_settings"] == {"master_key": "from-the-file", "other": "from-the-process"}
    assert loaded.file_env == {
        "ROUTERD_TEST_FILE_ONLY": "from-the-file",
        "ROUTERD_TEST_COPIED": "from-the-process",
        "ROUTERD_TEST_PORT": "6379",
    }
    assert loaded.env["ROUTERD_TEST_FILE_ONLY"] == "from-the-file"  # the file wins over the process
    assert dict(os.environ) == before
