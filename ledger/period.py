"""Months and the days in them: the one home of calendar arithmetic.

A month is written ``"YYYY-MM"`` in the books, the store and on the command line;
:class:`Month` is its value, and the functions below are the only month arithmetic
in meterbook::

    >>> m = Month.parse("2026-11")
    >>> m.first, m.last, str(m.next()), str(m.previous())
    (datetime.date(2026, 11, 1), datetime.date(2026, 11, 30), '2026-12', '2026-10')
    >>> Month.of(date(2028, 2, 10)).last
    datetime.date(2028, 2, 29)
    >>> months_between("2026-11", "2027-02")
    ['2026-11', '2026-12', '2027-01', '2027-02']
    >>> add_months(date(2026, 1, 31), 1), add_months(date(2026, 1, 31), 2)
    (datetime.date(2026, 2, 28), datetime.date(2026, 3, 31))
    >>> is_month("2026-13"), is_month("2026-12")
    (False, True)
    >>> shift_month("2026-01", -2), shift_month("2026-11", 3)
    ('2025-11', '2027-02')
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

#: Length of each billing cycle kind in months.
CYCLE_MONTHS: Mapping[str, int] = {"monthly": 1, "quarterly": 3, "yearly": 12}

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``"2026-10"`` → ``Month(2026, 10)``; :class:`ValueError` for anything else."""
        if not is_month(text):
            raise ValueError(f"month {text!r} is not YYYY-MM")
        return cls(int(text[:4]), int(text[5:7]))

    @classmethod
    def of(cls, day: date) -> Month:
        """The month ``day`` lies in."""
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        return date(self.year, self.number, 1)

    @property
    def last(self) -> date:
        return date(self.year, self.number, self.days)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.number)[1]

    def next(self) -> Month:
        return Month(self.year + self.number // 12, self.number % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.number == 1 else Month(self.year, self.number - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.number:02d}"


def is_month(value: object) -> bool:
    """True for a ``"YYYY-MM"`` string."""
    return isinstance(value, str) and _MONTH.fullmatch(value) is not None


def month_of(day: date) -> str:
    """``"2026-10"`` for any day in October 2026."""
    return str(Month.of(day))


def month_start(month: str) -> date:
    """The first day of ``"YYYY-MM"``."""
    return Month.parse(month).first


def month_end(month: str) -> date:
    """The last day of ``"YYYY-MM"``."""
    return Month.parse(month).last


def next_month(month: str) -> str:
    """The month after ``"YYYY-MM"``."""
    return str(Month.parse(month).next())


def previous_month(month: str) -> str:
    """The month before ``"YYYY-MM"``."""
    return str(Month.parse(month).previous())


def shift_month(month: str, by: int) -> str:
    """``month`` moved ``by`` months (negative: back): ``shift_month("2026-01", -2)`` is
    ``"2025-11"``."""
    start = Month.parse(month).first
    return month_of(add_months(start, by))


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive."""
    months = [first]
    while months[-1] < last:
        months.append(next_month(months[-1]))
    return months


def first_of_month(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def last_of_month(day: date) -> date:
    """The last day of ``day``'s month."""
    return Month.of(day).last


def add_months(anchor: date, months: int) -> date:
    """``anchor`` plus ``months`` calendar months, clamped to the month's last day.

    Always computed from the anchor, so the day comes back after a short month
    (``add_months(date(2028, 1, 31), 1)`` is Feb 29, 2028).
    """
    index = anchor.year * 12 + anchor.month - 1 + months
    year, number = divmod(index, 12)
    month = Month(year, number + 1)
    return date(month.year, month.number, min(anchor.day, month.days))
