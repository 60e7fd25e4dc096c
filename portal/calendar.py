"""The one business-day calendar of the Japanese government (DESIGN §4; LITE had two and one
was wrong). A business day is a weekday that is neither a national or substitute holiday
(from the ``holidays`` package) nor in the year-end closure, 29 December – 3 January.

Every count on a case (the review clock, days to the transfer, response reminders, the
company's file-by date) comes from here. Counting is arithmetic, not a walk over the days:
``_count(d)`` is the number of business days from 1 January of year 1 up to and including
``d``, read from a cached table of the year's days plus a sum over the whole years before it.
The package knows the holidays of a fixed span of years (1949–2099); outside it a year has
weekends and the closure only, so such years repeat every 400 years (the Gregorian cycle is
exactly 20,871 weeks) and any number of them is summed in constant time. A date in year 9999
or year 1 therefore costs what a date this year costs, and no date beyond 9999-12-31 is ever
built."""
from __future__ import annotations

from bisect import bisect_left
from datetime import date, timedelta
from functools import cache, lru_cache

import holidays

# The years for which the package knows Japan's holidays; outside them there are none.
HOLIDAY_FIRST_YEAR: int = getattr(holidays.Japan, "start_year", 1949)
HOLIDAY_LAST_YEAR: int = getattr(holidays.Japan, "end_year", 2099)
_CYCLE = 400  # Gregorian years after which weekdays and leap years repeat


@cache
def _national(year: int) -> frozenset[date]:
    if not HOLIDAY_FIRST_YEAR <= year <= HOLIDAY_LAST_YEAR:
        return frozenset()
    return frozenset(d for d in holidays.Japan(years=year) if d.year == year)


def is_year_end_closure(d: date) -> bool:
    return (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and not is_year_end_closure(d) and d not in _national(d.year)


def _cumulative(year: int, with_holidays: bool) -> tuple[int, ...]:
    """For each day of ``year`` (index 0 = 1 January), the business days from 1 January up to
    and including it. Days are built from ordinals inside the year only."""
    first = date(year, 1, 1).toordinal()
    length = date(year, 12, 31).toordinal() - first + 1
    national = _national(year) if with_holidays else frozenset()
    out, n = [], 0
    for i in range(length):
        d = date.fromordinal(first + i)
        n += d.weekday() < 5 and not is_year_end_closure(d) and d not in national
        out.append(n)
    return tuple(out)


@lru_cache(maxsize=_CYCLE)
def _plain_table(k: int) -> tuple[int, ...]:
    """The table of every year ≡ k (mod 400) outside the holiday span (year 2000 + k stands for it)."""
    return _cumulative(2000 + k, with_holidays=False)


@lru_cache(maxsize=512)
def _table(year: int) -> tuple[int, ...]:
    if HOLIDAY_FIRST_YEAR <= year <= HOLIDAY_LAST_YEAR:
        return _cumulative(year, with_holidays=True)
    return _plain_table(year % _CYCLE)


@lru_cache(maxsize=1)
def _prefixes() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Prefix sums over one 400-year cycle of holiday-free years, and over the holiday span of
    the difference the holidays make."""
    plain = [0]
    for k in range(_CYCLE):
        plain.append(plain[-1] + _plain_table(k)[-1])
    corr = [0]
    for y in range(HOLIDAY_FIRST_YEAR, HOLIDAY_LAST_YEAR + 1):
        corr.append(corr[-1] + _table(y)[-1] - _plain_table(y % _CYCLE)[-1])
    return tuple(plain), tuple(corr)


def _years_before_sum(year: int) -> int:
    """Business days in the whole years 1 … year − 1, summed from the prefixes."""
    plain, corr = _prefixes()

    def plain_sum(n: int) -> int:  # years 0 … n − 1 as if holiday-free (year 0 cancels out)
        return (n // _CYCLE) * plain[_CYCLE] + plain[n % _CYCLE]

    span = min(max(year, HOLIDAY_FIRST_YEAR), HOLIDAY_LAST_YEAR + 1) - HOLIDAY_FIRST_YEAR
    return plain_sum(year) - plain_sum(1) + corr[span]


@lru_cache(maxsize=1)
def _year_starts() -> tuple[int, ...]:
    """Index y (1 … 10000): the business days in the whole years before year y. Built once
    (10,000 sums, a few milliseconds): every count and every n-th business day is then a
    look-up and a bisection in C, where a list of cases (the review queue counts two dates
    per row) spent a fifth of its time summing years."""
    return (0, *(_years_before_sum(y) for y in range(1, date.max.year + 2)))


def _years_before(year: int) -> int:
    """Business days in the whole years 1 … year − 1 (1 ≤ year ≤ 10000)."""
    return _year_starts()[year]


def _count(d: date) -> int:
    """Business days from 0001-01-01 up to and including ``d``."""
    return _year_starts()[d.year] + _table(d.year)[d.toordinal() - date(d.year, 1, 1).toordinal()]


def _with_count(k: int) -> date | None:
    """The business day whose ``_count`` is ``k`` (k ≥ 1), or None beyond 9999-12-31."""
    starts = _year_starts()
    # The year holding it: the first whose end (the start of the next year) reaches k.
    nxt = bisect_left(starts, k, 2, date.max.year + 2)
    if nxt > date.max.year + 1:
        return None
    year = nxt - 1
    index = bisect_left(_table(year), k - starts[year])
    return date.fromordinal(date(year, 1, 1).toordinal() + index)


def business_days_between(start: date, end: date) -> int:
    """Business days after ``start`` up to and including ``end`` (negative if end < start)."""
    return _count(end) - _count(start)


def add_business_days(start: date, n: int) -> date:
    """The n-th business day after ``start`` (n ≥ 0; 0 gives the next business day on or after).
    OverflowError if it would fall after 9999-12-31."""
    if n < 0:
        raise ValueError("n must not be negative")
    k = _count(start) + n if n else _count(start) - is_business_day(start) + 1
    d = _with_count(k)
    if d is None:
        raise OverflowError("the business day falls after 9999-12-31")
    return d


def business_day_on_or_before(d: date) -> date | None:
    """The last business day on or before ``d`` (None if there is none after 0001-01-01)."""
    k = _count(d)
    return _with_count(k) if k > 0 else None


def business_days_back(d: date, n: int) -> date | None:
    """The n-th business day counting back from ``d`` inclusive (n ≥ 1; 1 gives
    ``business_day_on_or_before(d)``): the latest date s such that ``business_days_between(x, d)
    >= n`` for every x < s. None if the calendar holds no such day."""
    if n < 1:
        raise ValueError("n must be at least 1")
    k = _count(d) - n + 1
    return _with_count(k) if k > 0 else None


def previous_business_days(d: date, n: int, limit: int) -> list[date]:
    """``business_days_back(d, n + i)`` for i = 0 … limit − 1, fewer if the calendar's start
    comes first: one search, then a walk back day by day."""
    out: list[date] = []
    first = business_days_back(d, n) if limit > 0 else None
    if first is None:
        return out
    out.append(first)
    cur = first
    while len(out) < limit:
        if cur == date.min:
            break
        cur -= timedelta(days=1)
        if is_business_day(cur):
            out.append(cur)
    return out


def window(today: date, years_back: int, years_ahead: int) -> tuple[date, date]:
    """The dates a field accepts around ``today``: every stored date stays one the clocks
    handle, and a mistyped year is caught where it is typed."""

    def shifted(years: int) -> date:
        try:
            return today.replace(year=today.year + years)
        except ValueError:  # 29 February
            return today.replace(year=today.year + years, day=28)

    return shifted(-years_back), shifted(years_ahead)
