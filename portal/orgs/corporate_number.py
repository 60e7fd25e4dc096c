"""法人番号 (corporate number): 13 digits, the first a check digit over the other twelve.

check = 9 − ((2·Σ digits at odd positions + Σ digits at even positions) mod 9), positions of the
twelve-digit base counted from the left (DESIGN §4; equivalent to the NTA's rule counted from
the right, since the base has an even length).
"""
from __future__ import annotations

from portal.core.forms import normalise_code


def check_digit(base12: str) -> int:
    odd = sum(int(d) for d in base12[0::2])
    even = sum(int(d) for d in base12[1::2])
    return 9 - ((2 * odd + even) % 9)


def is_valid(number: str | None) -> bool:
    n = normalise_code(number or "").replace("-", "") if number else ""
    return len(n) == 13 and n.isascii() and n.isdigit() and int(n[0]) == check_digit(n[1:])


def clean(number: str) -> str:
    return (normalise_code(number) or "").replace("-", "")
