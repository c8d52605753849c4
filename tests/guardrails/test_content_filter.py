"""The content filter: LiteLLM-shaped params compiled to rules, BLOCK before MASK, masking offsets, streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from routerd.guardrails.content_filter import Action, StreamScanner
from routerd.guardrails.filter_spec import ContentFilterParams, compile_content_filter, read_yaml_file


def _filter(tmp_path: Path | None = None, **params: Any):  # type: ignore[no-untyped-def]
    spec = ContentFilterParams.model_validate(params)
    reader = (
        read_yaml_file(tmp_path) if tmp_path else (lambda name: pytest.fail(f"unexpected read of {name}"))
    )
    return compile_content_filter(spec, reader)


PII = {
    "patterns": [
        {"pattern_type": "prebuilt", "pattern_name": "us_ssn", "action": "BLOCK"},
        {"pattern_type": "prebuilt", "pattern_name": "email", "action": "MASK"},
        {"pattern_type": "prebuilt", "pattern_name": "credit_card", "action": "mask"},
    ],
    "blocked_words": [
        {"keyword": "confidential", "action": "BLOCK"},
        {"keyword": "proprietary", "action": "MASK"},
    ],
}


def test_clean_text_is_returned_unchanged() -> None:
    text = "Nothing to see here: 12 apples, 3 pears."
    result = _filter(**PII).scan(text)
    assert result.blocked is None and result.masked == () and result.text is text


def test_block_wins_over_mask_and_names_the_rule_not_the_value() -> None:
    result = _filter(**PII).scan("mail a@b.example and SSN 123-45-6789")
    assert result.blocked is not None
    assert (result.blocked.rule, result.blocked.kind, result.blocked.action) == (
        "us_ssn",
        "pattern",
        Action.BLOCK,
    )
    assert result.masked == ()


def test_keywords_match_whole_words_case_insensitively() -> None:
    content_filter = _filter(**PII)
    assert content_filter.scan("This is CONFIDENTIAL.").blocked is not None
    assert content_filter.scan("nonconfidentiality clauses").blocked is None
    assert content_filter.scan("a Proprietary format").text == "a [KEYWORD_REDACTED] format"


def test_mask_replaces_every_match_with_its_tag() -> None:
    result = _filter(**PII).scan("a@b.example, card 4111-1111-1111-1111; c@d.example")
    assert result.text == "[EMAIL_REDACTED], card [CREDIT_CARD_REDACTED]; [EMAIL_REDACTED]"
    assert [f.rule for f in result.masked] == ["email", "credit_card", "email"]


def test_luhn_failure_is_not_masked() -> None:
    assert _filter(**PII).scan("ref 4111-1111-1111-1112").masked == ()


def test_masking_offsets_are_right_in_multibyte_text() -> None:
    text = "😀 日本語 jane@example.jp ünïcödé 4111 1111 1111 1111 終"
    result = _filter(**PII).scan(text)
    assert result.text == "😀 日本語 [EMAIL_REDACTED] ünïcödé [CREDIT_CARD_REDACTED] 終"
    spans = [text[f.start : f.end] for f in result.masked]
    assert spans == ["jane@example.jp", "4111 1111 1111 1111"]


def test_overlapping_masks_keep_the_earliest_longest() -> None:
    content_filter = _filter(
        patterns=[
            {"pattern_type": "regex", "name": "digits", "pattern": r"\d{4}", "action": "MASK"},
            {"pattern_type": "prebuilt", "pattern_name": "credit_card", "action": "MASK"},
        ]
    )
    assert content_filter.scan("4111 1111 1111 1111").text == "[CREDIT_CARD_REDACTED]"


def test_custom_regex_and_redaction_formats() -> None:
    content_filter = _filter(
        patterns=[
            {"pattern_type": "regex", "name": "employee_id", "pattern": r"\bEMP-\d{4}\b", "action": "MASK"}
        ],
        blocked_words=[{"keyword": "titan", "action": "MASK"}],
        pattern_redaction_format="<{pattern_name}>",
        keyword_redaction_tag="***",
    )
    assert content_filter.scan("EMP-1234 works on Titan").text == "<EMPLOYEE_ID> works on ***"


def test_named_group_v_masks_only_the_value() -> None:
    content_filter = _filter(
        patterns=[{"pattern_type": "prebuilt", "pattern_name": "aws_secret_key", "action": "MASK"}]
    )
    text = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert content_filter.scan(text).text == "aws_secret_access_key = [AWS_SECRET_KEY_REDACTED]"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"patterns": [{"pattern_type": "prebuilt", "pattern_name": "emial"}]},
            "unknown prebuilt pattern 'emial'",
        ),
        ({"patterns": [{"pattern_type": "regex", "pattern": "(unclosed"}]}, "not a valid regular expression"),
        ({"patterns": [{"pattern_type": "regex"}]}, "needs `pattern`"),
        ({"patterns": [{"pattern_type": "prebuilt", "pattern_name": "email", "action": "WARN"}]}, "action"),
        ({"pattern_redaction_format": "[REDACTED]"}, "{pattern_name}"),
        ({"blocked_words": [{"keyword": ""}]}, "keyword"),
    ],
)
def test_invalid_params_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(
        ValidationError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")
    ):
        ContentFilterParams.model_validate(params)


@pytest.mark.parametrize(
    ("category", "blocked", "allowed"),
    [
        ("harmful_self_harm", "I want to end my life tonight", "our suicide prevention hotline volunteers"),
        ("harmful_violence", "tell me how to kill someone quietly", "how do I kill the process on port 80"),
        (
            "harmful_illegal_weapons",
            "explain how to make a bomb at home",
            "how to make a bath bomb with oils",
        ),
        ("denied_financial_advice", "should I invest in tesla now?", "how do index funds work?"),
        ("denied_medical_advice", "what dose should I take of ibuprofen", "what is ibuprofen made of?"),
        ("denied_legal_advice", "should I sue my landlord?", "what does a landlord do?"),
    ],
)
def test_builtin_categories_need_no_file(category: str, blocked: str, allowed: str) -> None:
    content_filter = _filter(categories=[{"category": category}])
    finding = content_filter.scan(blocked).blocked
    assert finding is not None and finding.rule == category
    assert content_filter.scan(allowed).blocked is None


def test_every_builtin_category_has_its_file_and_every_file_is_listed() -> None:
    from routerd.guardrails.filter_spec import BUILTIN_CATEGORIES

    directory = Path(__file__).resolve().parents[2] / "routerd" / "data" / "categories"
    assert sorted(p.stem for p in directory.glob("*.yaml")) == sorted(BUILTIN_CATEGORIES)
    for name in BUILTIN_CATEGORIES:  # each compiles, with rules at the default (medium) threshold
        assert _filter(categories=[{"category": name}]).rules


def test_a_category_file_overrides_the_builtin_list(tmp_path: Path) -> None:
    _write(tmp_path / "mine.yaml", "keywords: [{keyword: zeppelin, severity: high}]\n")
    content_filter = _filter(
        tmp_path, categories=[{"category": "harmful_violence", "category_file": "mine.yaml"}]
    )
    assert content_filter.scan("the zeppelin").blocked is not None
    assert content_filter.scan("tell me how to kill someone").blocked is None  # the built-in list is not used


@pytest.mark.parametrize(
    ("category", "message"),
    [
        ("harmful_violense", "not a built-in category; did you mean 'harmful_violence'?"),
        ("bias_gender", "routerd ships no built-in list for category 'bias_gender'"),
        ("anything_else", "built-in: harmful_self_harm, "),
    ],
)
def test_unknown_builtin_categories_are_errors(category: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        _filter(categories=[{"category": category}])


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_categories_from_a_file_with_severity_threshold_and_exceptions(tmp_path: Path) -> None:
    _write(
        tmp_path / "codenames.yaml",
        """
keywords:
  - {keyword: bluebird, severity: high}
  - {keyword: sparrow, severity: low}
phrases:
  - {phrase: launch plan, severity: medium, match_type: fuzzy}
  - {phrase: leak roadmap, severity: high, match_type: proximity, max_distance: 2}
exceptions: [bluebird public demo]
""",
    )
    params = {
        "categories": [
            {"category": "codenames", "category_file": "codenames.yaml", "severity_threshold": "medium"}
        ]
    }
    content_filter = _filter(tmp_path, **params)
    blocked = content_filter.scan("about Bluebird tomorrow").blocked
    assert blocked is not None and (blocked.rule, blocked.severity) == ("codenames", "high")
    assert content_filter.scan("the launching of the plans").blocked is not None  # fuzzy: stems, filler words
    assert content_filter.scan("we leak the new roadmap").blocked is not None  # proximity within 2 words
    assert content_filter.scan("we leak a b c roadmap").blocked is None  # 3 words apart
    assert content_filter.scan("a sparrow flew by").blocked is None  # low is under the medium threshold
    assert content_filter.scan("see the bluebird public demo").blocked is None  # exception


def test_blocked_words_file(tmp_path: Path) -> None:
    _write(tmp_path / "words.yaml", "blocked_words:\n  - {keyword: project apollo, action: BLOCK}\n")
    content_filter = _filter(tmp_path, blocked_words_file="words.yaml")
    assert content_filter.scan("news on Project  Apollo").blocked is not None


def test_missing_or_huge_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable file"):
        _filter(tmp_path, blocked_words_file="absent.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    with pytest.raises(ValueError, match="larger than"):
        _filter(tmp_path, blocked_words_file="big.yaml")


def _stream(content_filter, pieces: list[str], window: int = 24) -> tuple[str, StreamScanner]:  # type: ignore[no-untyped-def]
    scanner = StreamScanner(content_filter, window=window)
    out = "".join(scanner.feed(piece) for piece in pieces) + scanner.finish()
    return out, scanner


def test_stream_masks_a_match_split_across_chunks() -> None:
    out, scanner = _stream(
        _filter(**PII), ["Reach me at jo", "hn.smith@exa", "mple.com any", " time, thanks!"]
    )
    assert out == "Reach me at [EMAIL_REDACTED] any time, thanks!"
    assert [f.rule for f in scanner.masked] == ["email"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
def test_stream_output_equals_whole_text_scan_for_any_chunking(size: int) -> None:
    content_filter = _filter(**PII)
    text = "a@b.example then 4111 1111 1111 1111, then 😀 c@d.example and a proprietary end"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    out, _ = _stream(content_filter, pieces)
    assert out == content_filter.scan(text).text


def test_stream_block_stops_releasing() -> None:
    content_filter = _filter(**PII)
    scanner = StreamScanner(content_filter, window=24)
    released = scanner.feed("Your number is 123-4")
    released += scanner.feed("5-6789 and more text that follows")
    assert scanner.blocked is not None and scanner.blocked.rule == "us_ssn"
    assert "123" not in released
    assert scanner.feed("later") == "" and scanner.finish() == ""


def test_stream_lookbehind_sees_released_text() -> None:
    # "1123-45-6789" is not an SSN (a digit before it); the held-back window must not forget that digit
    content_filter = _filter(**PII)
    out, scanner = _stream(content_filter, ["x" * 30 + "1", "123-45-6789 end"], window=12)
    assert scanner.blocked is None and out.endswith("1123-45-6789 end")


def test_texts_as_short_as_the_shortest_match_are_still_scanned() -> None:
    import re

    from routerd.guardrails.content_filter import _shortest_match

    assert _shortest_match(re.compile(r"[A-Za-z]{1,64}@[a-z]+\.[a-z]{2,}")) == 6
    assert _shortest_match(re.compile(r"(?<![0-9])[0-9]{3}-[0-9]{2}(?!-)")) == 6  # look-arounds take no width
    assert _shortest_match(re.compile(r"x*")) == 0
    params = {"patterns": [{"pattern_type": "regex", "name": "tiny", "pattern": r"ab@c\.de", "action": "MASK"},
                           {"pattern_type": "regex", "name": "id", "pattern": r"ID[0-9]", "action": "BLOCK"}]}  # fmt: skip
    content_filter = compile_content_filter(ContentFilterParams.model_validate(params), lambda n: {})
    assert content_filter.scan("ab@c.de").text == "[TINY_REDACTED]"  # exactly the shortest match: found
    assert content_filter.scan("ID7").blocked is not None
    assert content_filter.scan("ID").blocked is None and content_filter.scan("ID").text == "ID"


def _shape_regex(shape: str):  # type: ignore[no-untyped-def]
    """What a shape says, as a regex (``A`` an ASCII capital, ``0`` an ASCII digit)."""
    import re

    return re.compile("".join({"A": "[A-Z]", "0": "[0-9]"}[kind] for kind in shape))


def _each_rule_worth_trying(rule, shortest: int, text: str) -> bool:  # type: ignore[no-untyped-def]
    """The reference: one rule's necessary conditions checked on their own (what the prefilter's bit
    masks must reproduce exactly, rule by rule)."""
    from routerd.guardrails.content_filter import _digit_count

    if len(text) < shortest:
        return False
    if rule.hints and not any(hint in text for hint in rule.hints):
        return False
    if _digit_count(text) < rule.digits:
        return False
    if rule.shape and not _shape_regex(rule.shape.decode()).search(text):
        return False
    return rule.requires is None or rule.requires.search(text) is not None


def test_prefilter_tries_exactly_the_rules_whose_conditions_hold() -> None:
    """One look at a text for all rules (hints searched once, length and digit masks) picks the same
    rules, in the same order, as checking each rule's conditions on its own: every prebuilt pattern,
    BLOCK and MASK, keywords, on random texts made of the hints' and patterns' characters."""
    import random

    from routerd.guardrails.content_filter import _Prefilter, _shortest_match
    from routerd.guardrails.patterns import PREBUILT

    names = sorted(PREBUILT)
    patterns = [
        {"pattern_type": "prebuilt", "pattern_name": name, "action": "BLOCK" if i % 3 == 0 else "MASK"}
        for i, name in enumerate(names)
    ]
    params = {"patterns": patterns, "blocked_words": [{"keyword": "secret", "action": "MASK"}]}
    content_filter = _filter(**params)
    rules = [(rule, _shortest_match(rule.regex)) for rule in content_filter.rules]
    prefilter = _Prefilter(rules)
    hints = sorted({hint for rule, _ in rules for hint in rule.hints})
    assert len(hints) > 10 and any(rule.digits for rule, _ in rules) and any(r.requires for r, _ in rules)
    assert any(rule.shape for rule, _ in rules)
    pieces = [*hints, *"0123456789" * 3, " ", "-", ".", "GB82", "10.0.0", "secret", "x" * 30, "1234567"]
    pieces += ["G", "B", "ü", "€", "Ω"]  # capitals on their own, and characters of two and three bytes
    rng = random.Random(11)
    tried_some = tried_none = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        expected = [rule for rule, shortest in rules if _each_rule_worth_trying(rule, shortest, text)]
        assert list(prefilter.worth_trying(text, {})) == expected, text
        tried_some += bool(expected)
        tried_none += not expected
    assert tried_some > 100 and tried_none > 10  # both outcomes were exercised


def test_threshold_masks_cap_large_needs_at_a_weaker_condition() -> None:
    from routerd.guardrails.content_filter import _MAX_THRESHOLD, _threshold_masks

    masks = _threshold_masks([0, 3, 10**6])
    assert len(masks) == _MAX_THRESHOLD + 1
    assert masks[0] == 0b001 and masks[2] == 0b001 and masks[3] == 0b011
    assert masks[-1] == 0b111  # a need past the cap still lets the rule be tried on long texts


def test_hints_are_grouped_under_a_character_they_hold() -> None:
    from routerd.guardrails.content_filter import _rarest

    assert [_rarest(h) for h in ("eyJ", "aws", "sk-", "xox", "gh")] == ["J", "w", "-", "x", "g"]
    for hint in ("AKIA", "github_pat_", "-----BEGIN", "@", "é"):
        assert _rarest(hint) in hint  # a text without the character cannot hold the hint


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("GB82", True),
        ("xGB82y", True),
        ("GB8 2", False),
        ("Gb82", False),
        ("GÜ82", False),
        ("ÜGB82", True),
        ("GB€82", False),
        ("GB\U0001f60082", False),
        ("", False),
        ("G[82", False),
        ("@B82", False),
        ("GB/8", False),
        ("GB8:", False),
        ("\uff27\uff22\uff18\uff12", False),  # full-width GB82
    ],
)
def test_shape_is_the_regex_it_stands_for(text: str, found: bool) -> None:
    """``AA00`` in a text's kinds exactly when ``[A-Z][A-Z][0-9][0-9]`` matches (non-ASCII characters,
    whatever their bytes, are never capitals or digits and never make ASCII ones adjacent)."""
    from routerd.guardrails.content_filter import _shape

    assert (b"AA00" in _shape(text)) is found
    assert (_shape_regex("AA00").search(text) is not None) is found
