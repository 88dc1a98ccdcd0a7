"""Journal export: a month of the books as general-ledger journal entries.

``meterbook export journal --month 2026-10 --format csv`` sums every posting
dated in October by general-ledger account (``rules/gl_accounts.yaml`` maps
meterbook accounts to GL codes, longest prefix first) and writes one balanced
journal entry per currency, dated the month's last day and referencing the
month's seal::

    # rules/gl_accounts.yaml
    gl_accounts:
      Assets:Receivables:Invoiced: "1200"     # every customer's receivable
      Assets:Receivables:Unbilled: "1210"
      Assets:Bank:Operating: "1000"
      Income: "4000"                          # all revenue, contra-revenue included
      Liabilities:Tax: "2200"

    journal,date,currency,account,debit,credit,memo
    MB-2026-10-USD,2026-10-31,USD,1000,110.00,,meterbook 2026-10 seal c41f…9a27
    MB-2026-10-USD,2026-10-31,USD,1200,,0.00,…

The named formats are the products' documented journal-import CSV layouts
(the manual, "Journal export"): ``quickbooks`` (QuickBooks Online: Journal No.,
Journal Date, Account Name, Debits, Credits, Description, Name, Currency),
``xero`` (Xero manual journals: Narration, Date, Description, AccountCode,
TaxRate, Amount signed) and ``netsuite`` (NetSuite journal entry import:
External ID, Date, Currency, Memo, Account, Debit, Credit, Line Memo).
An account no mapping covers is an error naming every such account (exit 2).
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from ledger import seal
from ledger.errors import BadInput, RulesError
from ledger.escaping import SpreadsheetCsv
from ledger.money import ZERO, round_money
from ledger.period import month_of, month_start, next_month

FORMATS = ("csv", "quickbooks", "xero", "netsuite")
FILE = "gl_accounts.yaml"


@dataclass(frozen=True)
class GlMapping:
    """``rules/gl_accounts.yaml``: meterbook account (or a parent of it) → GL account code.

    ``xero_tax_rate`` is the Xero tax rate name written on every line (Xero
    requires one; the books' tax is already on its own accounts).

    >>> m = GlMapping({"Income": "4000", "Income:Usage": "4100"})
    >>> m.code("Income:Usage:Api-Calls"), m.code("Income:Credit-Notes"), m.code("Assets:Bank")
    ('4100', '4000', None)
    """

    accounts: Mapping[str, str]
    xero_tax_rate: str = "Tax Exempt"
    netsuite_subsidiary: str = ""

    def code(self, account: str) -> str | None:
        """The GL code of the longest mapped prefix of ``account`` (whole components)."""
        parts = account.split(":")
        for n in range(len(parts), 0, -1):
            found = self.accounts.get(":".join(parts[:n]))
            if found is not None:
                return found
        return None


def load_gl_mapping(rules_dir: Path) -> GlMapping:
    """Load ``rules/gl_accounts.yaml``; a missing file or bad key is one line naming file,
    key and line."""
    from ledger.rules import _Source

    path = rules_dir / FILE
    if not path.exists():
        raise RulesError(
            "not found: map the books' accounts to your general ledger's codes "
            '(`gl_accounts: {Income: "4000", ...}`)',
            file=f"{rules_dir.name}/{FILE}",
        )
    source = _Source(path, "gl_accounts")
    section = source.section()
    accounts: dict[str, str] = {}
    options: dict[str, str] = {}
    for key, value in section.items():
        if not isinstance(key, str) or not key.strip():
            raise source.error("expected an account name", ("gl_accounts", key))
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise source.error("expected a GL account code (a string)", ("gl_accounts", key))
        if key in ("xero_tax_rate", "netsuite_subsidiary"):
            options[key] = str(value)
        else:
            accounts[key] = str(value)
    return GlMapping(accounts, **options)


@dataclass(frozen=True)
class JournalLine:
    """One GL account's net movement in a journal entry (debit positive, credit negative)."""

    code: str
    amount: Decimal
    accounts: tuple[str, ...]  # the meterbook accounts summed into it

    @property
    def debit(self) -> Decimal:
        return self.amount if self.amount > 0 else ZERO

    @property
    def credit(self) -> Decimal:
        return -self.amount if self.amount < 0 else ZERO


@dataclass(frozen=True)
class JournalEntry:
    """A month's movements in one currency, summarized per GL account; balanced."""

    number: str
    date: date
    currency: str
    memo: str
    lines: tuple[JournalLine, ...]


@dataclass(frozen=True)
class Journal:
    """The export of one month: its entries, its seal (or None: not sealed) and the movements."""

    month: str
    seal: str | None
    entries: tuple[JournalEntry, ...]
    #: ``(meterbook account, currency) → net movement`` of the month in the books
    movements: Mapping[tuple[str, str], Decimal]


def month_movements(
    entries: Iterable[data.Directive], month: str
) -> dict[tuple[str, str], Decimal]:
    """``(account, currency) → sum of the postings`` of the transactions dated in ``month``; the
    seal plugin's guard entries (a count of verified seals, not money) are not movements."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for entry in entries:
        if (
            isinstance(entry, data.Transaction)
            and month_of(entry.date) == month
            and seal.GUARD_MARK not in (entry.meta or {})
        ):
            for posting in entry.postings:
                if posting.units is not None and isinstance(posting.units.number, Decimal):
                    sums[(posting.account, posting.units.currency)] += posting.units.number
    return {k: v for k, v in sums.items() if v}


def seal_of(entries: Iterable[data.Directive], month: str) -> str | None:
    """The month's seal hash, or None when the month is not sealed."""
    for entry in entries:
        if isinstance(entry, data.Custom) and entry.type == seal.SEAL and entry.values:
            values = [v.value for v in entry.values]
            if values[0] == month and len(values) >= 3:
                return str(values[2])
    return None


def build_journal(entries: Sequence[data.Directive], month: str, mapping: GlMapping) -> Journal:
    """The month's journal: per currency one entry, one line per GL code with a net movement.

    Raises :class:`BadInput` naming every account no mapping covers.
    """
    movements = month_movements(entries, month)
    unmapped = sorted({account for account, _ in movements if mapping.code(account) is None})
    if unmapped:
        raise BadInput(
            f"rules/{FILE}: no GL account for {', '.join(unmapped)} (map it or a parent account)"
        )
    hash_ = seal_of(entries, month)
    last = month_start(next_month(month)).toordinal() - 1
    day = date.fromordinal(last)
    reference = f"meterbook {month} seal {hash_}" if hash_ else f"meterbook {month} (not sealed)"
    by_currency: dict[str, dict[str, list[Any]]] = defaultdict(
        lambda: defaultdict(lambda: [ZERO, []])
    )
    for (account, currency), amount in sorted(movements.items()):
        code = mapping.code(account)
        assert code is not None
        line = by_currency[currency][code]
        line[0] += amount
        line[1].append(account)
    journal = []
    for currency, codes in sorted(by_currency.items()):
        lines = tuple(
            JournalLine(code, round_money(amount, currency), tuple(accounts))
            for code, (amount, accounts) in sorted(codes.items())
            if amount
        )
        total = sum((line.amount for line in lines), ZERO)
        if total:
            raise BadInput(
                f"the books' {month} movements in {currency} do not balance ({total}): "
                "run `meterbook check`"
            )
        journal.append(JournalEntry(f"MB-{month}-{currency}", day, currency, reference, lines))
    return Journal(month, hash_, tuple(journal), movements)


# --- the formats ------------------------------------------------------------------------------


def _us(day: date) -> str:
    return day.strftime("%m/%d/%Y")


def _plain(amount: Decimal) -> str:
    return format(amount, "f") if amount else ""


#: a NetSuite line memo longer than this names the accounts' parent and their count instead
LINE_MEMO = 1000


def line_memo(accounts: Sequence[str]) -> str:
    """The meterbook accounts summed into a line, as NetSuite's Line Memo shows them: all of
    them, or (thousands of customers' receivables) their common parent and how many.

    >>> line_memo(["Liabilities:Tax:US-CA", "Liabilities:Tax:US-CA-SF"])
    'Liabilities:Tax:US-CA Liabilities:Tax:US-CA-SF'
    >>> line_memo([f"Assets:Receivables:Invoiced:C{n}" for n in range(2000)])
    'Assets:Receivables:Invoiced:* (2000 accounts)'
    """
    text = " ".join(accounts)
    if len(text) <= LINE_MEMO:
        return text
    parts = [a.split(":") for a in accounts]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return f"{':'.join(common) or '*'}:* ({len(accounts)} accounts)"


def only_currency(journal: Journal, currency: str) -> Journal:
    """The journal's entry in ``currency`` alone (``--currency``); none: :class:`BadInput`."""
    entries = tuple(e for e in journal.entries if e.currency == currency)
    if not entries:
        have = ", ".join(e.currency for e in journal.entries) or "none"
        raise BadInput(f"--currency: {journal.month} has no {currency!r} movements (it has {have})")
    return Journal(journal.month, journal.seal, entries, journal.movements)


def render(journal: Journal, fmt: str, mapping: GlMapping) -> str:
    """The journal as CSV text in ``fmt`` (one of :data:`FORMATS`); ``xero`` takes one currency
    (Xero's manual journals have none: their amounts are the base currency's)."""
    out = io.StringIO()
    writer = SpreadsheetCsv(out)  # no cell runs as a formula; amounts stay numbers
    rows: list[list[str]] = []
    if fmt == "csv":
        writer.writerow(
            ["journal", "date", "currency", "account", "debit", "credit", "memo", "accounts"]
        )
        for e in journal.entries:
            rows += [
                [
                    e.number,
                    e.date.isoformat(),
                    e.currency,
                    ln.code,
                    _plain(ln.debit),
                    _plain(ln.credit),
                    e.memo,
                    " ".join(ln.accounts),
                ]
                for ln in e.lines
            ]
    elif fmt == "quickbooks":
        writer.writerow(
            [
                "Journal No.",
                "Journal Date",
                "Currency",
                "Account Name",
                "Debits",
                "Credits",
                "Description",
                "Name",
            ]
        )
        rows += [
            [
                e.number,
                _us(e.date),
                e.currency,
                ln.code,
                _plain(ln.debit),
                _plain(ln.credit),
                e.memo,
                "",
            ]
            for e in journal.entries
            for ln in e.lines
        ]
    elif fmt == "xero":
        currencies = sorted({e.currency for e in journal.entries})
        if len(currencies) > 1:
            # Xero's manual journal has no currency: every amount is taken in the organisation's
            # base currency, so EUR and USD lines would be added up as one currency
            raise BadInput(
                f"--format xero: Xero manual journals hold the base currency only and the "
                f"{journal.month} journal has {', '.join(currencies)}: export one with "
                "--currency (the base currency's, or convert the others first)"
            )
        writer.writerow(
            ["*Narration", "*Date", "Description", "*AccountCode", "*TaxRate", "*Amount"]
        )
        rows += [
            [
                f"{e.memo} ({e.currency})",
                e.date.strftime("%d/%m/%Y"),
                e.number,
                ln.code,
                mapping.xero_tax_rate,
                format(ln.amount, "f"),
            ]
            for e in journal.entries
            for ln in e.lines
        ]
    elif fmt == "netsuite":
        head = [
            "External ID",
            "Date",
            "Currency",
            "Memo",
            "Account",
            "Debit",
            "Credit",
            "Line Memo",
        ]
        writer.writerow([*head, "Subsidiary"] if mapping.netsuite_subsidiary else head)
        for e in journal.entries:
            for ln in e.lines:
                row = [
                    e.number,
                    _us(e.date),
                    e.currency,
                    e.memo,
                    ln.code,
                    _plain(ln.debit),
                    _plain(ln.credit),
                    line_memo(ln.accounts),
                ]
                rows.append(
                    [*row, mapping.netsuite_subsidiary] if mapping.netsuite_subsidiary else row
                )
    else:
        raise BadInput(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    writer.writerows(rows)
    return out.getvalue()
