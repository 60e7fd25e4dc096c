"""The one business-day calendar of the Japanese government (DESIGN §4; LITE had two and one
was wrong). A business day is a weekday that is neither a national or substitute holiday
(from the ``holidays`` package) nor in the year-end closure, 29 December – 3 January."""
from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _national(year: int) -> frozenset[date]:
    return frozenset(holidays.Japan(years=year).keys())


def is_year_end_closure(d: date) -> bool:
    return (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in _national(d.year) and not is_year_end_closure(d)


def add_business_days(start: date, n: int) -> date:
    """The n-th business day after ``start`` (n ≥ 0; 0 gives the next business day on or after)."""
    if n < 0:
        raise ValueError("n must not be negative")
    d = start
    if n == 0:
        while not is_business_day(d):
            d += timedelta(days=1)
        return d
    while n:
        d += timedelta(days=1)
        if is_business_day(d):
            n -= 1
    return d


def business_days_between(start: date, end: date) -> int:
    """Business days after ``start`` up to and including ``end`` (negative if end < start)."""
    if end < start:
        return -business_days_between(end, start)
    count = 0
    d = start
    while d < end:
        d += timedelta(days=1)
        if is_business_day(d):
            count += 1
    return count
