"""The training-file checker: every line a valid example, problems named by line number."""

from __future__ import annotations

import orjson
import pytest

from routerd.errors import BadRequestError
from routerd.finetune.jsonl import (
    CHAT,
    COMPLETION,
    GEMINI,
    MAX_ISSUES,
    OPENAI_FORMATS,
    PREFERENCE,
    VERTEX_FORMATS,
    InvalidTrainingFileError,
    check_training_file,
)


def jsonl(*examples: object) -> bytes:
    return b"".join(orjson.dumps(example) + b"\n" for example in examples)


CHAT_EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
}


def issues_of(content: bytes, formats: frozenset[str] = OPENAI_FORMATS) -> list[str]:
    with pytest.raises(InvalidTrainingFileError) as caught:
        check_training_file(content, formats)
    return [str(issue) for issue in caught.value.issues]


def test_a_valid_chat_file_is_accepted_with_its_line_numbers() -> None:
    checked = check_training_file(jsonl(CHAT_EXAMPLE, CHAT_EXAMPLE))
    assert checked.format == CHAT
    assert [number for number, _ in checked.examples] == [1, 2]
    assert checked.examples[0][1] == CHAT_EXAMPLE


def test_tools_tool_calls_weights_and_content_parts_are_accepted() -> None:
    example = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"}]},
            {
                "role": "assistant",
                "content": None,
                "weight": 0,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"celsius": 3}'},
            {"role": "assistant", "content": "3 degrees.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "parallel_tool_calls": False,
    }
    assert check_training_file(jsonl(example)).format == CHAT


def test_a_malformed_json_line_is_named_with_its_number_and_column() -> None:
    content = jsonl(CHAT_EXAMPLE) + b'{"messages": [}\n' + jsonl(CHAT_EXAMPLE)
    issues = issues_of(content)
    assert len(issues) == 1
    assert issues[0].startswith("line 2: not valid JSON at column ")


def test_the_error_is_a_400_naming_the_file_parameter() -> None:
    with pytest.raises(BadRequestError) as caught:
        check_training_file(b"nope\n")
    assert caught.value.status_code == 400
    assert caught.value.param == "file"
    assert caught.value.code == "invalid_training_file"
    assert "line 1" in caught.value.message


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "at least one assistant message"),
        ({"messages": []}, "'messages' must be a non-empty array"),
        (
            {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
            "messages[0].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x", "weight": 1},
                    {"role": "assistant", "content": "y"},
                ]
            },
            "weight' is only allowed on assistant",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 2},
                ]
            },
            "weight' must be 0 or 1",
        ),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]},
            "messages[0].content' is required",
        ),
        (
            {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]},
            "got a number",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                "tools": "no",
            },
            "'tools' must be an array",
        ),
        ({"prompt_text": "x"}, "expected a chat example"),
        ([1, 2], "must be a JSON object, got an array"),
    ],
)
def test_each_kind_of_bad_example_is_explained(example: object, expected: str) -> None:
    issues = issues_of(jsonl(CHAT_EXAMPLE, example))
    assert len(issues) == 1
    assert issues[0].startswith("line 2: ")
    assert expected in issues[0]


def test_blank_lines_are_skipped_but_keep_their_numbers() -> None:
    content = jsonl(CHAT_EXAMPLE) + b"\n\r\n" + b'{"messages": "x"}\n'
    assert issues_of(content) == ["line 4: 'messages' must be a non-empty array of messages"]


def test_every_bad_line_is_listed_up_to_the_limit() -> None:
    content = b"".join(b"garbage\n" for _ in range(MAX_ISSUES + 5))
    with pytest.raises(InvalidTrainingFileError) as caught:
        check_training_file(content)
    assert [issue.line for issue in caught.value.issues] == list(range(1, MAX_ISSUES + 1))
    assert "more problems not shown" in caught.value.message


def test_an_empty_file_has_no_examples() -> None:
    assert issues_of(b"\n\n") == ["the file contains no training examples"]


def test_one_format_per_file() -> None:
    issues = issues_of(jsonl(CHAT_EXAMPLE, {"prompt": "a", "completion": "b"}))
    assert issues == ["line 2: a completion example in a file of chat examples; use one format per file"]


def test_preference_and_completion_files_are_openai_formats() -> None:
    preference = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "What."}],
    }
    assert check_training_file(jsonl(preference)).format == PREFERENCE
    assert check_training_file(jsonl({"prompt": "a", "completion": "b"})).format == COMPLETION
    bad = dict(preference, preferred_output=[{"role": "user", "content": "x"}])
    assert "assistant messages only" in issues_of(jsonl(bad))[0]


def test_gemini_files_are_vertex_only() -> None:
    gemini = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "yo"}]},
        ]
    }
    assert "not accepted here" in issues_of(jsonl(gemini))[0]
    assert check_training_file(jsonl(gemini), VERTEX_FORMATS).format == GEMINI
    no_model = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert "at least one 'model' turn" in issues_of(jsonl(no_model), VERTEX_FORMATS)[0]


def test_a_byte_order_mark_and_crlf_line_ends_are_tolerated() -> None:
    content = b"\xef\xbb\xbf" + jsonl(CHAT_EXAMPLE).replace(b"\n", b"\r\n") * 2
    assert len(check_training_file(content).examples) == 2
