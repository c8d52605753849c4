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
    """One prebuilt pattern.

    ``regex`` starts with what it consumes (a character class or a literal), never with a look-behind:
    that lets the regex engine skip ahead to candidate positions instead of trying every offset, which
    made the first version of this table twenty times slower. What must *not* come before a match is
    ``not_after`` (a character class, checked on the character before a candidate), and ``hints`` are
    substrings of which the text must contain at least one for the pattern to be tried at all (a cheap
    necessary condition: ``"@"`` for emails, ``"AKIA"``... for AWS keys). ``requires`` is a fast regex
    (one of :data:`DIGIT_RUN`, :data:`DOTTED_DIGITS`) that must find something first; patterns sharing one
    search for it once per text. ``digits`` is the fewest ASCII digits any match holds: the filter counts
    a text's digits once (two C passes, cheaper than any regex search) and skips the patterns that need
    more, so a text with a number or two in it searches for none of the card, phone and SSN patterns.
    ``shape`` is a run of character kinds every match holds (``A`` an ASCII capital, ``0`` an ASCII
    digit, as ``[A-Z]`` and ``[0-9]`` say): the filter maps a text to its kinds once (one bytes translate)
    and looks for the run as a substring, much cheaper than a regex trying a character class everywhere.
    """

    regex: str
    description: str
    check: Callable[[str], bool] | None = None
    flags: int = 0
    not_after: str | None = None
    hints: tuple[str, ...] = ()
    requires: str | None = None
    digits: int = 0
    shape: str = ""


#: Seven or more digits with at most two separators between neighbours: what every phone, card and SSN
#: has (a phone's area code in parentheses puts two between digits: "(12) 345 678").
DIGIT_RUN = r"[0-9](?:[ ().+-]{0,2}[0-9]){6}"
#: A dot and a digit: what every IPv4 address has (a regex that starts with a literal is found fast).
DOTTED_DIGITS = r"\.[0-9]"

_PREBUILT: dict[str, Prebuilt] = {
    "email": Prebuilt(
        r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])",
        "Email addresses",
        not_after=r"[\w.+-]",
        hints=("@",),
    ),
    "phone": Prebuilt(
        r"(?:\+[0-9]{1,3}[ .-]?(?:\([0-9]{2,4}\)[ .-]?|[0-9]{2,4}[ .-])|\([0-9]{2,4}\)[ .-]?|[0-9][0-9]{1,3}[ .-])"
        r"[0-9]{3,4}[ .-][0-9]{3,4}(?!\w)",
        "Phone numbers in international or national notation with separators",
        not_after=r"[\w+]",
        requires=DIGIT_RUN,
        digits=7,
    ),
    "us_ssn": Prebuilt(
        r"[0-9][0-9][0-9]-[0-9]{2}-[0-9]{4}(?![0-9-])",
        "US Social Security numbers",
        _ssn_valid,
        not_after=r"[0-9-]",
        hints=("-",),
        requires=DIGIT_RUN,
        digits=9,
    ),
    "credit_card": Prebuilt(
        r"[0-9](?:[ -]?[0-9]){11,18}(?![0-9-])",
        "Payment card numbers of any brand (Luhn)",
        luhn_valid,
        not_after=r"[0-9-]",
        requires=DIGIT_RUN,
        digits=12,
    ),
    "visa": Prebuilt(
        r"4[0-9]{3}(?:[ -]?[0-9]{4}){3}(?![0-9-])",
        "Visa card numbers (Luhn)",
        luhn_valid,
        not_after=r"[0-9-]",
        requires=DIGIT_RUN,
        digits=16,
    ),
    "mastercard": Prebuilt(
        r"(?:5[1-5][0-9]{2}|2(?:2[2-9][0-9]|[3-6][0-9]{2}|7[01][0-9]|720))(?:[ -]?[0-9]{4}){3}(?![0-9-])",
        "Mastercard card numbers (Luhn)",
        luhn_valid,
        not_after=r"[0-9-]",
        requires=DIGIT_RUN,
        digits=16,
    ),
    "amex": Prebuilt(
        r"3[47][0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{5}(?![0-9-])",
        "American Express card numbers (Luhn)",
        luhn_valid,
        not_after=r"[0-9-]",
        requires=DIGIT_RUN,
        digits=15,
    ),
    "discover": Prebuilt(
        r"6(?:011|5[0-9]{2})(?:[ -]?[0-9]{4}){3}(?![0-9-])",
        "Discover card numbers (Luhn)",
        luhn_valid,
        not_after=r"[0-9-]",
        requires=DIGIT_RUN,
        digits=16,
    ),
    "iban": Prebuilt(
        r"[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
        "International bank account numbers (mod-97 checked)",
        iban_valid,
        not_after=r"[A-Za-z0-9]",
        digits=2,
        shape="AA00",
    ),
    "ipv4": Prebuilt(
        r"[0-9][0-9]?[0-9]?\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9.])",
        "IPv4 addresses",
        _ipv4_valid,
        not_after=r"[0-9.]",
        requires=DOTTED_DIGITS,
        digits=4,
    ),
    "aws_access_key": Prebuilt(
        r"(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}(?![A-Z0-9])",
        "AWS access key ids",
        not_after=r"[A-Z0-9]",
        hints=("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
    ),
    "aws_secret_key": Prebuilt(
        r"aws_?(?:secret)?_?(?:access)?_?key[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        "AWS secret access keys written as an assignment (aws_secret_access_key = ...)",
        flags=re.IGNORECASE,
        hints=("aws", "AWS", "Aws"),
    ),
    "github_token": Prebuilt(
        r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        "GitHub tokens (classic and fine-grained)",
        not_after=r"[A-Za-z0-9_]",
        hints=("gh", "github_pat_"),
    ),
    "openai_api_key": Prebuilt(
        r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        "OpenAI API keys",
        not_after=r"[A-Za-z0-9_-]",
        hints=("sk-",),
    ),
    "anthropic_api_key": Prebuilt(
        r"sk-ant-[A-Za-z0-9_-]{20,}", "Anthropic API keys", not_after=r"[A-Za-z0-9_-]", hints=("sk-ant-",)
    ),
    "google_api_key": Prebuilt(
        r"AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
        "Google API keys",
        not_after=r"[A-Za-z0-9_-]",
        hints=("AIza",),
    ),
    "slack_token": Prebuilt(
        r"xox[abposr]-[A-Za-z0-9-]{10,}", "Slack tokens", not_after=r"[A-Za-z0-9-]", hints=("xox",)
    ),
    "stripe_key": Prebuilt(
        r"(?:sk|rk)_live_[A-Za-z0-9]{16,}",
        "Stripe live secret keys",
        not_after=r"[A-Za-z0-9_]",
        hints=("_live_",),
    ),
    "private_key": Prebuilt(
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]{0,8192}?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
        "PEM private key blocks",
        hints=("-----BEGIN",),
    ),
    "jwt": Prebuilt(
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        "JSON Web Tokens",
        not_after=r"[A-Za-z0-9_-]",
        hints=("eyJ",),
    ),
}

#: Every prebuilt pattern by name (read-only).
PREBUILT: Mapping[str, Prebuilt] = MappingProxyType(_PREBUILT)
