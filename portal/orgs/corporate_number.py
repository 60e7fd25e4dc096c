"""法人番号 (corporate number): 13 digits, the first a check digit over the other twelve.

check = 9 − ((2·Σ digits at odd positions + Σ digits at even positions) mod 9), positions of the
twelve-digit base counted from the left (DESIGN §4; equivalent to the NTA's rule counted from
the right, since the base has an even length).
"""
from __future__ import annotations

from portal.core.forms import normalise_code
from portal.core.i18n import gettext as _


def check_digit(base12: str) -> int:
    odd = sum(int(d) for d in base12[0::2])
    even = sum(int(d) for d in base12[1::2])
    return 9 - ((2 * odd + even) % 9)


def is_valid(number: str | None) -> bool:
    n = normalise_code(number or "").replace("-", "") if number else ""
    return len(n) == 13 and n.isascii() and n.isdigit() and int(n[0]) == check_digit(n[1:])


def clean(number: str) -> str:
    return (normalise_code(number) or "").replace("-", "")


def problem(number: str | None) -> tuple[str, str] | None:
    """What is wrong with a typed number, as (audit reason, message beside the field); None
    when it is a valid 法人番号. Full-width digits, hyphens and spaces are accepted."""
    n = clean(number or "")
    if not (n.isascii() and n.isdigit()):
        return "corporate_number_not_digits", _(
            "Enter digits only: a corporate number is 13 digits, for example 1180301018771.")
    if len(n) != 13:
        return "corporate_number_length", _(
            "A corporate number has 13 digits; this one has %(n)d. Check that no digit is missing or repeated.",
            n=len(n))
    if int(n[0]) != check_digit(n[1:]):
        return "bad_corporate_number", _(
            "This is not a valid corporate number: its first digit, the check digit, does not match the "
            "other twelve. Check the number against the National Tax Agency's register.")
    return None
