"""Close assertions: what ``close`` writes into a month's close file besides the seal.

A close asserts each balance the store expects at the end of the month, dated
the 1st of the next month (Beancount checks a ``balance`` at the start of its
day), and records each finding a user accepted as a ``meterbook-accept``
custom directive on the same day. The amounts come from the auditor
(:func:`ledger.closing.expected_balances`); these builders only write them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from beancount.core import data
from beancount.core.amount import Amount
from beancount.parser.grammar import ValueType
from beancount.utils import misc_utils

from ledger.money import ZERO, quantum
from ledger.period import month_start, next_month

ACCEPT = "meterbook-accept"


def _close_meta() -> dict[str, object]:
    return data.new_metadata("<close>", 0)


def assertion_day(month: str) -> date:
    """The day a month's close assertions are dated: the next month's 1st.

    >>> assertion_day("2026-12")
    datetime.date(2027, 1, 1)
    """
    return month_start(next_month(month))


def balance_assertion(day: date, account: str, number: Decimal, currency: str) -> data.Balance:
    """``balance <account> <number> <currency>`` on ``day``, with no tolerance.

    A zero is written to the currency's quantum ("0.00 USD", "0 JPY"), as every
    other amount in the books is.
    """
    if number == 0:
        number = ZERO.quantize(quantum(currency))
    return data.Balance(_close_meta(), day, account, Amount(number, currency), None, None)


def acceptance_directive(month: str, finding: str, reason: str) -> data.Custom:
    """``custom "meterbook-accept" "<month>" "<finding id>" "<reason>"``, dated the next month's
    1st (the reason on one line)."""
    values = [
        ValueType(month, str),
        ValueType(misc_utils.escape_string(finding), str),
        ValueType(misc_utils.escape_string(" ".join(reason.split())), str),
    ]
    return data.Custom(_close_meta(), assertion_day(month), ACCEPT, values)
