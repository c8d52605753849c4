"""The prebuilt patterns: what each must find, and what it must leave alone (checksums included)."""

from __future__ import annotations

import random
import re

import pytest

from routerd.guardrails.filter_spec import ContentFilterParams, compile_content_filter
from routerd.guardrails.patterns import PREBUILT, iban_valid, luhn_valid


def _found(name: str, text: str) -> list[str]:
    """What the prebuilt pattern ``name`` finds in ``text``, through the compiled filter (so its
    look-behind class, hints and checksum all apply, as in production)."""
    params = {"patterns": [{"pattern_type": "prebuilt", "pattern_name": name, "action": "MASK"}]}
    content_filter = compile_content_filter(ContentFilterParams.model_validate(params), lambda n: {})
    return [text[f.start : f.end] for f in content_filter.scan(text).masked]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4532015112830366", True),
        ("4532 0151 1283 0366", True),
        ("4532-0151-1283-0366", True),
        ("4532015112830367", False),  # last digit off by one
        ("378282246310005", True),  # amex test number
        ("5555555555554444", True),
        ("1234567890123456", False),
        ("00000000000", False),  # too short to be a card at all
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("DE89370400440532013000", True),
        ("FR1420041010050500013M02606", True),
        ("GB82 WEST 1234 5698 7654 33", False),
        ("DE89370400440532013001", False),
        ("XX00", False),
    ],
)
def test_iban_checksum(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("email", "write to jane.doe+tag@mail.example.org today", ["jane.doe+tag@mail.example.org"]),
        ("email", "no address @ here, nor user@localhost", []),
        ("us_ssn", "SSN 123-45-6789.", ["123-45-6789"]),
        ("us_ssn", "never issued: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567", []),
        ("us_ssn", "a longer number 1123-45-67890", []),
        ("credit_card", "card 4111 1111 1111 1111 exp", ["4111 1111 1111 1111"]),
        ("credit_card", "order 4111 1111 1111 1112 shipped", []),  # Luhn fails
        ("visa", "visa 4532-0151-1283-0366", ["4532-0151-1283-0366"]),
        ("visa", "not visa 5555 5555 5555 4444", []),
        (
            "mastercard",
            "mc 5555 5555 5555 4444 and 2223000048400011",
            ["5555 5555 5555 4444", "2223000048400011"],
        ),
        ("amex", "amex 3782-822463-10005", ["3782-822463-10005"]),
        ("amex", "amex 3782-822463-10006", []),
        ("iban", "pay to GB82 WEST 1234 5698 7654 32 please", ["GB82 WEST 1234 5698 7654 32"]),
        ("iban", "code GB82 WEST 1234 5698 7654 33", []),
        ("ipv4", "hosts 10.0.0.1 and 256.1.1.1 and 01.2.3.4", ["10.0.0.1"]),
        ("phone", "call +1-555-123-4567 or (030) 1234 5678", ["+1-555-123-4567", "(030) 1234 5678"]),
        ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE here", ["AKIAIOSFODNN7EXAMPLE"]),
        (
            "aws_secret_key",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        ),
        ("aws_secret_key", "a random 40-char run wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []),
        (
            "github_token",
            "token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok",
            ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"],
        ),
        (
            "openai_api_key",
            "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx",
            ["sk-proj-abcdefghijklmnopqrstuvwx"],
        ),
        ("openai_api_key", "an anthropic key sk-ant-abcdefghijklmnopqrstuvwx is not openai's", []),
        (
            "anthropic_api_key",
            "sk-ant-api03-abcdefghijklmnopqrstuvwx",
            ["sk-ant-api03-abcdefghijklmnopqrstuvwx"],
        ),
        (
            "google_api_key",
            "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
            ["AIzaSyA-abcdefghijklmnopqrstuvwxyz01234"],
        ),
        ("slack_token", "xoxb-1234567890-abcdefghij", ["xoxb-1234567890-abcdefghij"]),
        ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
        (
            "jwt",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop",
            ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop"],
        ),
    ],
)
def test_prebuilt_pattern(name: str, text: str, expected: list[str]) -> None:
    assert _found(name, text) == expected


def test_private_key_block() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----"
    assert _found("private_key", f"here:\n{pem}\nthanks") == [pem]
    assert _found("private_key", "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----") == []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("github_token", "xghp_16C7e42F292c6912E7710c838347Ae178B4a"),  # inside a word
        ("email", "café-owner@bistro.example"),  # a word character (é) before the address's first char
        ("aws_access_key", "XAKIAIOSFODNN7EXAMPLE"),
        ("us_ssn", "1-123-45-6789"),
    ],
)
def test_what_comes_before_a_match_is_checked(name: str, text: str) -> None:
    assert _found(name, text) == []


def test_hints_skip_patterns_that_cannot_match() -> None:
    # no "@" in the text: the email pattern is not even tried (and finds nothing either way)
    assert _found("email", "no address here") == []
    assert _found("ipv4", "no digits at all") == []


def test_a_phone_with_a_short_area_code_in_parentheses_is_found() -> None:
    assert _found("phone", "ring (12) 345 678 today") == ["(12) 345 678"]


def test_pre_checks_are_necessary_conditions() -> None:
    """Whatever a prebuilt regex matches holds the pattern's ``digits`` and its ``requires`` finds it:
    skipping a text that fails either can never hide a match (random texts of the characters the
    number patterns are made of, plus the positive examples above)."""
    rng = random.Random(97)
    alphabet = "0123456789" * 4 + " -.()+GBWESTAKx"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(4, 40))) for _ in range(4000)]
    texts += [
        "card 4111 1111 1111 1111 exp, mc 5555 5555 5555 4444 and 2223000048400011, amex 3782-822463-10005",
        "SSN 123-45-6789, visa 4532-0151-1283-0366, pay to GB82 WEST 1234 5698 7654 32, hosts 10.0.0.1",
        "call +1-555-123-4567 or (030) 1234 5678, discover 6011 1111 1111 1117",
        # two separators between neighbouring digits (the area code's parenthesis and a space)
        "ring (12) 345 678 or +44 (20) 123 4567",
    ]
    checked = 0
    for name, prebuilt in PREBUILT.items():
        if not (prebuilt.digits or prebuilt.requires or prebuilt.shape):
            continue
        regex = re.compile(prebuilt.regex, prebuilt.flags)
        requires = re.compile(prebuilt.requires) if prebuilt.requires else None
        # a shape as the regex it stands for (A an ASCII capital, 0 an ASCII digit)
        kinds = {"A": "[A-Z]", "0": "[0-9]"}
        shape = re.compile("".join(kinds[k] for k in prebuilt.shape)) if prebuilt.shape else None
        for text in texts:
            for match in regex.finditer(text):
                value = match.group()
                assert sum(c.isascii() and c.isdigit() for c in value) >= prebuilt.digits, (name, value)
                assert requires is None or requires.search(value), (name, value)
                assert shape is None or shape.search(value), (name, value)
                checked += 1
    assert checked > 100  # the random texts did produce matches to check
