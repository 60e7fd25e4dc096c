from datetime import date

import pytest

from portal.calendar import add_business_days, business_days_between, is_business_day


@pytest.mark.parametrize("d, expected", [
    (date(2026, 11, 20), True),    # Friday
    (date(2026, 11, 21), False),   # Saturday
    (date(2026, 11, 23), False),   # 勤労感謝の日 (Monday)
    (date(2026, 12, 28), True),    # last working day of the year
    (date(2026, 12, 29), False),   # year-end closure
    (date(2026, 12, 31), False),
    (date(2027, 1, 1), False),     # 元日
    (date(2027, 1, 4), True),      # first working day
    (date(2025, 5, 6), False),     # 振替休日 (substitute holiday for 5 May 2025, a Monday after Sunday 4 May)
    (date(2024, 12, 30), False),   # reporting began on a closure day
    (date(2026, 9, 22), False),    # 国民の休日 (between 敬老の日 and 秋分の日)
])
def test_business_days(d, expected):
    assert is_business_day(d) is expected


def test_counting_across_the_year_end():
    assert add_business_days(date(2026, 12, 28), 1) == date(2027, 1, 4)
    assert business_days_between(date(2026, 12, 25), date(2027, 1, 5)) == 3  # 28 Dec, 4 Jan, 5 Jan
    assert add_business_days(date(2026, 12, 31), 0) == date(2027, 1, 4)
    assert business_days_between(date(2027, 1, 5), date(2026, 12, 25)) == -3


def test_golden_week_2026():
    # 29 Apr (Wed) and 3–6 May are holidays (6 May: substitute for 3 May on Sunday).
    assert add_business_days(date(2026, 4, 28), 3) == date(2026, 5, 7)  # 30 Apr, 1 May, 7 May
    assert business_days_between(date(2026, 4, 30), date(2026, 5, 7)) == 2  # 1 May, 7 May
