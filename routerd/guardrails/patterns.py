"""The content filter's prebuilt patterns: regular expressions plus, where a format has one, a checksum.

A regex alone flags every 16-digit order number as a card and every ``XX00...`` word as an IBAN; the
checks below (Luhn for card numbers, ISO 7064 mod 97-10 for IBANs, the SSA's never-issued ranges for
SSNs, octet ranges for IPv4) are what keep the filter usable on real text. A pattern may name a group
``v``: then only that group is the sensitive value (the rest is context that made the match certain,
such as the ``aws_secret_access_key =`` before a secret), and only it is masked.

Names follow LiteLLM's documented prebuilt pattern names where one exists (``us_ssn``, ``email``,
``phone``, ``visa``, ``mastercard``, ``amex``, ``aws_access_key``, ``aws_secret_key``, ``github_token``),
so a LiteLLM config selects the same thing here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["PREBUILT", "Prebuilt", "iban_valid", "luhn_valid"]


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum over the digits of ``digits`` (separators ignored); 12 to 19 digits only."""
    numbers = [int(c) for c in digits if c.isdigit()]
    if not 12 <= len(numbers) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(numbers)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 check: country letters and check digits moved to the end, letters as numbers, mod 97 == 1."""
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    remainder = 0
    for char in rearranged:
        if char.isdigit():
            remainder = (remainder * 10 + int(char)) % 97
        elif "A" <= char <= "Z":
            remainder = (remainder * 100 + ord(char) - 55) % 97
        else:
            return False
    return remainder == 1


def _ssn_valid(text: str) -> bool:
    area, group, serial = text[:3], text[4:6], text[7:]
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ipv4_valid(text: str) -> bool:
    return all(int(part) <= 255 and (part == "0" or not part.startswith("0")) for part in text.split("."))


@dataclass(frozen=True, slots=True)
class Prebuilt:
    """One prebuilt pattern: its regex, an optional validator of the matched value, and a description."""

    regex: str
    description: str
    check: Callable[[str], bool] | None = None
    flags: int = 0


_CARD_SEP = r"[ -]?"


def _card(prefix: str, total: int) -> str:
    """A card number of ``total`` digits starting with ``prefix`` (a regex), in groups of 4 with optional
    separators; the Luhn check then confirms it."""
    rest = total - 1  # the prefix regex consumes the first digit at least
    body = _CARD_SEP.join([r"\d"] * rest)
    return rf"(?<![\d-])(?:{prefix}){_CARD_SEP}{body}(?![\d-])"


_PREBUILT: dict[str, Prebuilt] = {
    "email": Prebuilt(
        r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])",
        "Email addresses",
    ),
    "phone": Prebuilt(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?!\w)",
        "Phone numbers in international or national notation with separators",
    ),
    "us_ssn": Prebuilt(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", "US Social Security numbers", _ssn_valid),
    "credit_card": Prebuilt(
        r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", "Payment card numbers of any brand (Luhn)", luhn_valid
    ),
    "visa": Prebuilt(r"(?<![\d-])4\d{3}(?:[ -]?\d{4}){3}(?![\d-])", "Visa card numbers (Luhn)", luhn_valid),
    "mastercard": Prebuilt(
        r"(?<![\d-])(?:5[1-5]\d{2}|2(?:2[2-9]\d|[3-6]\d{2}|7[01]\d|720))(?:[ -]?\d{4}){3}(?![\d-])",
        "Mastercard card numbers (Luhn)",
        luhn_valid,
    ),
    "amex": Prebuilt(
        r"(?<![\d-])3[47]\d{2}[ -]?\d{6}[ -]?\d{5}(?![\d-])",
        "American Express card numbers (Luhn)",
        luhn_valid,
    ),
    "discover": Prebuilt(
        r"(?<![\d-])6(?:011|5\d{2})(?:[ -]?\d{4}){3}(?![\d-])", "Discover card numbers (Luhn)", luhn_valid
    ),
    "iban": Prebuilt(
        r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
        "International bank account numbers (mod-97 checked)",
        iban_valid,
    ),
    "ipv4": Prebuilt(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", "IPv4 addresses", _ipv4_valid),
    "aws_access_key": Prebuilt(
        r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}(?![A-Z0-9])", "AWS access key ids"
    ),
    "aws_secret_key": Prebuilt(
        r"aws_?(?:secret)?_?(?:access)?_?key[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        "AWS secret access keys written as an assignment (aws_secret_access_key = ...)",
        flags=re.IGNORECASE,
    ),
    "github_token": Prebuilt(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        "GitHub tokens (classic and fine-grained)",
    ),
    "openai_api_key": Prebuilt(
        r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", "OpenAI API keys"
    ),
    "anthropic_api_key": Prebuilt(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,}", "Anthropic API keys"),
    "google_api_key": Prebuilt(
        r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])", "Google API keys"
    ),
    "slack_token": Prebuilt(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}", "Slack tokens"),
    "stripe_key": Prebuilt(r"(?<![A-Za-z0-9_])(?:sk|rk)_live_[A-Za-z0-9]{16,}", "Stripe live secret keys"),
    "private_key": Prebuilt(
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]{0,8192}?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
        "PEM private key blocks",
    ),
    "jwt": Prebuilt(
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "JSON Web Tokens"
    ),
}

#: Every prebuilt pattern by name (read-only).
PREBUILT: Mapping[str, Prebuilt] = MappingProxyType(_PREBUILT)
