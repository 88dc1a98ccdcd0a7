"""Summary books: control accounts, one transaction per kind of entry and day.

With ``books_detail = "summary"`` in ``meterbook.toml`` the books hold no per-customer
account. The journal is built per customer as always (the per-customer *sub-ledger*,
derived from the store and the issued facts); :func:`summarize` then adds up each day's
entries of one kind into one transaction whose postings are the control accounts — each
per-customer account (``Assets:Receivables:Unbilled:Acme``) with its customer component
taken out (``Assets:Receivables:Unbilled``) — and the revenue accounts, which are per meter
or plan already. Two customers' accruals on Oct 31::

    2026-10-31 * "acme" "Usage accrual 2026-10-01/2026-11-01 through 2026-10-31" ^acme-2026-10-01
      Assets:Receivables:Unbilled:Acme   13.20 USD
      Income:Usage:Api-Calls            -13.20 USD
    2026-10-31 * "bolt" "Usage accrual 2026-10-01/2026-11-01 through 2026-10-31" ^bolt-2026-10-01
      Assets:Receivables:Unbilled:Bolt    2.00 USD
      Income:Usage:Api-Calls             -1.50 USD
      Income:Usage:Storage-Gb            -0.50 USD

become one transaction::

    2026-10-31 * "Summary of 2 usage accrual entries" ^SUM-2026-10-31-accrual
      summary: "accrual"
      entries: 2
      customers: 2
      digest: "<sha256 of the detail lines>"
      Assets:Receivables:Unbilled   15.20 USD
      Income:Usage:Api-Calls       -14.70 USD
      Income:Usage:Storage-Gb       -0.50 USD

Each detail transaction balances, so their sum does. ``digest`` is the SHA-256 of the
detail's posting lines (:func:`detail_lines`), ``invoices`` the range of invoice numbers an
invoice run sums; ``meterbook trace SUM-2026-10-31-accrual`` lists the entries behind the
link (:func:`members`). Late entries keep ``late: TRUE`` and are grouped by the month of
their usage (``^SUM-2026-11-01-late-usage-u2026-10``), as the seal's catch-up reads them.
``document`` entries stay one per invoice (the documents are per customer), filed under the
control receivable.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from beancount.core import data
from beancount.core.amount import Amount

from ledger.accounts import DEFAULT_TEMPLATES
from ledger.journal.meta import FLAG, entry_meta
from ledger.rules import Rules

#: Link prefix of a summary entry (a cycle link is ``<customer>-YYYY-MM-DD``).
PREFIX = "SUM-"
#: The per-customer account kinds whose control accounts a close asserts and a tie-out compares.
CONTROL_KINDS = ("unbilled", "contract_asset", "receivable", "deferred", "refund_liability")
#: (kind, narration pattern) of the journal's entries (:mod:`ledger.journal`), first match wins.
KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("accrual", r"Usage accrual "),
        ("late-usage", r"Late usage for invoiced cycle"),
        ("invoice", r"Invoice "),
        ("breakage", r"Prepaid credit expired"),
        ("payment", r"Payment "),
        ("refund", r"Refund "),
        ("application", r".* applied to "),
        ("credit-note", r"Credit note "),
        ("fee-reduction", r"Base fee recognition reduced"),
        ("debit-adjustment", r"Debit adjustment "),
        ("late-adjustment", r"(Late adjustment|Re-pricing) "),
    )
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_LINK = re.compile(r"^SUM-(\d{4}-\d{2}-\d{2})-([a-z-]+?)(?:-u(\d{4}-\d{2}))?$")


class SummaryKey(NamedTuple):
    """What one summary transaction adds up: a day, a kind of entry, and for late entries the
    month their usage belongs to."""

    date: date
    kind: str
    usage_month: str

    @property
    def link(self) -> str:
        """``SUM-2026-10-31-accrual``; ``SUM-2026-11-01-late-usage-u2026-10`` for late usage."""
        tail = f"-u{self.usage_month}" if self.usage_month else ""
        return f"{PREFIX}{self.date.isoformat()}-{self.kind}{tail}"


def is_summary_link(text: str) -> bool:
    """True for ``SUM-2026-10-31-accrual`` (with or without ``^``).

    >>> is_summary_link("^SUM-2026-11-01-late-usage-u2026-10"), is_summary_link("acme-2026-10-01")
    (True, False)
    """
    return bool(_LINK.match(text.removeprefix("^")))


def kind_of(entry: data.Transaction) -> str:
    """The kind of a journal entry, read from its narration (``other`` when none matches)."""
    narration = entry.narration or ""
    for kind, pattern in KINDS:
        if pattern.match(narration):
            return kind
    return "other"


def key_of(entry: data.Transaction) -> SummaryKey:
    """The summary an entry is added into."""
    meta = entry.meta or {}
    usage = meta.get("usage_date") if meta.get("late") else None
    month = f"{usage.year:04d}-{usage.month:02d}" if isinstance(usage, date) else ""
    return SummaryKey(entry.date, kind_of(entry), month)


class ControlAccounts:
    """Per-customer account → its control account: the customer's component taken out.

    >>> from ledger.accounts import AccountMap
    >>> control = ControlAccounts(AccountMap({}).template)
    >>> control("Assets:Receivables:Unbilled:Acme"), control("Income:Usage:Api-Calls")
    ('Assets:Receivables:Unbilled', 'Income:Usage:Api-Calls')
    >>> control.kind("Assets:Receivables:Unbilled")
    'unbilled'
    """

    def __init__(self, template: Callable[[str], str]) -> None:
        self._patterns: list[tuple[str, re.Pattern[str], int]] = []
        self._kinds: dict[str, str] = {}
        for key in DEFAULT_TEMPLATES:
            parts = template(key).split(":")
            where = [i for i, part in enumerate(parts) if "{customer}" in part]
            if not where:
                continue
            pattern = ":".join(_component_pattern(part) for part in parts)
            self._patterns.append((key, re.compile(f"^{pattern}$"), where[0]))
            if not _PLACEHOLDER.search(":".join(p for i, p in enumerate(parts) if i != where[0])):
                self._kinds[_drop(parts, where[0])] = key
        self._cache: dict[str, str] = {}

    def __call__(self, account: str) -> str:
        found = self._cache.get(account)
        if found is None:
            found = account
            for _key, pattern, index in self._patterns:
                if pattern.match(account):
                    found = _drop(account.split(":"), index)
                    break
            self._cache[account] = found
        return found

    def kind(self, control: str) -> str | None:
        """The account key (``unbilled``...) of a control account, None for any other."""
        return self._kinds.get(control)


def _component_pattern(part: str) -> str:
    out, at = "", 0
    for match in _PLACEHOLDER.finditer(part):
        out += re.escape(part[at : match.start()]) + "[A-Za-z0-9-]+"
        at = match.end()
    return out + re.escape(part[at:])


def _drop(parts: Sequence[str], index: int) -> str:
    kept = [p for i, p in enumerate(parts) if i != index]
    return ":".join(kept if len(kept) > 1 else [*kept, "Customers"])


def control_accounts(rules: Rules) -> ControlAccounts:
    """The workspace's control accounts (its ``accounts.yaml`` templates)."""
    return ControlAccounts(rules.accounts.template)


def detail_lines(entries: Iterable[data.Transaction]) -> list[str]:
    """One line per posting of the detail, sorted: what a summary's ``digest`` hashes::

    2026-10-31|acme-2026-10-01|Assets:Receivables:Unbilled:Acme|13.20 USD
    """
    lines = []
    for entry in entries:
        links = ",".join(sorted(entry.links or ()))
        for p in entry.postings:
            if p.units is not None and isinstance(p.units.number, Decimal):
                lines.append(
                    f"{entry.date}|{links}|{p.account}|{format(p.units.number, 'f')} "
                    f"{p.units.currency}"
                )
    return sorted(lines)


def digest(entries: Iterable[data.Transaction]) -> str:
    """SHA-256 over :func:`detail_lines`."""
    text = "\n".join(detail_lines(entries))
    return hashlib.sha256(text.encode()).hexdigest()


def summarize(entries: Iterable[data.Directive], rules: Rules) -> list[data.Directive]:
    """The summary books of per-customer ``entries`` (see the module docstring)."""
    control = control_accounts(rules)
    groups: dict[SummaryKey, list[data.Transaction]] = defaultdict(list)
    out: list[data.Directive] = []
    for entry in entries:
        if isinstance(entry, data.Transaction):
            groups[key_of(entry)].append(entry)
        elif isinstance(entry, data.Document):
            out.append(entry._replace(account=control(entry.account)))
        else:
            out.append(entry)
    for key in sorted(groups):
        summary = summary_entry(key, groups[key], control)
        if summary is not None:
            out.append(summary)
    return out


def summary_entry(
    key: SummaryKey, detail: Sequence[data.Transaction], control: ControlAccounts
) -> data.Transaction | None:
    """One summary transaction: per control or revenue account and currency, the sum of the
    detail's postings (zero sums left out unless every sum is zero; None without postings)."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    customers: set[str] = set()
    invoices: set[str] = set()
    usage: list[date] = []
    for entry in detail:
        meta = entry.meta or {}
        customers.add(str(meta.get("customer", entry.payee or "")))
        if isinstance(meta.get("invoice"), str):
            invoices.add(str(meta["invoice"]))
        if isinstance(meta.get("usage_date"), date):
            usage.append(meta["usage_date"])
        for p in entry.postings:
            if p.units is not None and isinstance(p.units.number, Decimal):
                sums[(control(p.account), p.units.currency)] += p.units.number
    # zero sums are left out, unless all are (an invoice the prepaid credit paid in full
    # still counts as issued)
    kept = {k: n for k, n in sums.items() if n} or sums
    postings = [
        data.Posting(account, Amount(number, currency), None, None, None, None)
        for (account, currency), number in sorted(kept.items())
    ]
    if not postings:
        return None
    numbers = sorted(invoices)
    label = key.kind.replace("-", " ")
    return data.Transaction(
        entry_meta(
            summary=key.kind,
            entries=Decimal(len(detail)),
            customers=Decimal(len(customers - {""})),
            invoices=f"{numbers[0]}..{numbers[-1]}" if numbers else None,
            digest=digest(detail),
            usage_date=max(usage) if key.usage_month and usage else None,
            late=True if key.usage_month else None,
        ),
        key.date,
        FLAG,
        None,
        f"Summary of {len(detail)} {label} entries"
        + (f" for usage in {key.usage_month}" if key.usage_month else ""),
        frozenset(),
        frozenset({key.link}),
        postings,
    )


def members(entries: Iterable[data.Directive], link: str) -> list[data.Transaction]:
    """The detail transactions a summary link adds up, in date and narration order."""
    link = link.removeprefix("^")
    found = [e for e in entries if isinstance(e, data.Transaction) and key_of(e).link == link]
    return sorted(found, key=lambda e: (e.date, e.narration or "", sorted(e.links or ())))


def control_balances(
    balances: Mapping[tuple[str, str], Decimal], rules: Rules
) -> dict[tuple[str, str], Decimal]:
    """Per-customer balances added up per control account (other accounts as they are)."""
    control = control_accounts(rules)
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (account, currency), number in balances.items():
        totals[(control(account), currency)] += number
    return dict(totals)
