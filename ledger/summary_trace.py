"""Tracing summary books: a summary entry expanded, and a customer traced behind the summaries.

With ``books_detail = "summary"`` the books hold one transaction per kind of entry and day
(:mod:`ledger.journal.summary`). ``meterbook trace SUM-2026-10-31-accrual`` lists the
per-customer entries it adds up, derived again from the store, and checks that they add up
to the books' summary, posting by posting, and to its ``digest``::

    $ meterbook trace SUM-2026-10-31-accrual
    trace ^SUM-2026-10-31-accrual: Summary of 2 accrual entries (2 customers)
      2026-10-31  acme  Usage accrual 2026-10-01/2026-11-01 through 2026-10-31  ^acme-2026-10-01
        Assets:Receivables:Unbilled:Acme      13.20 USD
        Income:Usage:Api-Calls               -13.20 USD
      2026-10-31  bolt  Usage accrual 2026-10-01/2026-11-01 through 2026-10-31  ^bolt-2026-10-01
        …
    compared                         books        sub-ledger
      Assets:Receivables:Unbilled    15.20 USD    15.20 USD    ok
      …
      digest                         5e1c04ab…    5e1c04ab…    ok

    verified: the summary equals the sum of its 2 per-customer entries

A cycle link or an invoice number is traced as with per-customer books
(:func:`ledger.trace.trace`), against the sub-ledger (:func:`subledger`) instead of the
books, and each summary that adds up the cycle's entries is checked the same way
(:func:`summary_differences`). A summary of a sealed month that no longer equals what the
store gives now is explained by the late adjustments posted on the first open day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from beancount.core import data

from ledger.errors import BadInput
from ledger.escaping import for_terminal
from ledger.journal.summary import (
    control_accounts,
    digest,
    is_summary_link,
    key_of,
    members,
    summary_entry,
)

if TYPE_CHECKING:
    from ledger.session import Session


@dataclass(frozen=True)
class Expansion:
    """``meterbook trace SUM-…``: a summary entry and the per-customer entries behind it."""

    ref: str
    narration: str
    detail: tuple[data.Transaction, ...]
    compared: tuple[tuple[str, str, str], ...]  # what, books, sub-ledger
    differences: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return not self.differences

    @property
    def kind(self) -> str:
        """``summary`` (a trace's is ``cycle`` or ``invoice``; Fava's Evidence page shows it)."""
        return "summary"

    def render(self) -> str:
        """The text ``meterbook trace`` prints."""
        customers = {str((e.meta or {}).get("customer", e.payee or "")) for e in self.detail}
        out = [f"trace ^{self.ref}: {self.narration} ({len(customers - {''})} customers)"]
        for e in self.detail:
            links = " ".join(f"^{link}" for link in sorted(e.links or ()))
            who = (e.meta or {}).get("customer", e.payee or "")
            out.append(f"  {e.date}  {who}  {for_terminal(e.narration or '')}  {links}")
            for p in e.postings:
                if p.units is not None:
                    out.append(f"    {p.account:<44} {p.units.number} {p.units.currency}")
        width = max([len(w) for w, _b, _s in self.compared] + [8]) + 2
        books = max([len(b) for _w, b, _s in self.compared] + [5]) + 2
        out.append(f"compared{' ' * (width - 6)}{'books':<{books}}sub-ledger")
        for what, recorded, store in self.compared:
            state = "ok" if recorded == store else "DIFFERS"
            out.append(f"  {what:<{width}}{recorded:<{books}}{store:<{books}}{state}")
        out.extend(f"note: {n}" for n in self.notes)
        out.append("")
        if self.verified:
            out.append(
                f"verified: the summary equals the sum of its {len(self.detail)} "
                "per-customer entries"
            )
        else:
            many = len(self.differences) != 1
            out.append(f"NOT verified: {len(self.differences)} difference{'s' if many else ''}")
            out.extend(f"  - {d}" for d in self.differences)
        return "\n".join(line.rstrip() for line in out)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: amounts as strings."""
        return {
            "ref": self.ref,
            "kind": "summary",
            "verified": self.verified,
            "differences": list(self.differences),
            "notes": list(self.notes),
            "entries": [
                {
                    "date": e.date.isoformat(),
                    "customer": (e.meta or {}).get("customer"),
                    "narration": e.narration,
                    "links": sorted(e.links or ()),
                    "postings": [
                        [p.account, str(p.units.number), p.units.currency]
                        for p in e.postings
                        if p.units is not None
                    ],
                }
                for e in self.detail
            ],
            "compared": [list(c) for c in self.compared],
        }


def subledger(session: Session, books_entries: Sequence[data.Directive]) -> list[data.Directive]:
    """The per-customer entries behind the summary books, derived again from the store through
    the books' last transaction (what ``post`` summed; :meth:`ledger.session.Session.regenerate`),
    with the books' own directives that are not summaries (seals, assertions, documents)."""
    dates = [e.date for e in books_entries if isinstance(e, data.Transaction)]
    if not dates:
        return list(books_entries)
    detail = session.regenerate(max(dates))[0]
    kept = [
        e
        for e in books_entries
        if not (isinstance(e, data.Transaction) and "summary" in (e.meta or {}))
        and not (isinstance(e, data.Transaction) and (e.meta or {}).get("late"))
    ]
    return [*kept, *detail]


def _by_link(entries: Iterable[data.Directive]) -> dict[str, data.Transaction]:
    found: dict[str, data.Transaction] = {}
    for e in entries:
        if isinstance(e, data.Transaction) and "summary" in (e.meta or {}):
            for link in e.links or ():
                found[link] = e
    return found


def _compare(
    link: str,
    books: data.Transaction | None,
    detail: Sequence[data.Transaction],
    session: Session,
) -> tuple[list[tuple[str, str, str]], list[str]]:
    control = control_accounts(session.rules)
    now = summary_entry(key_of(detail[0]), detail, control) if detail else None
    sums: dict[tuple[str, str], list[Decimal | None]] = defaultdict(lambda: [None, None])
    for side, entry in enumerate((books, now)):
        for p in entry.postings if entry is not None else ():
            if p.units is not None and isinstance(p.units.number, Decimal):
                sums[(p.account, p.units.currency)][side] = p.units.number
    compared = []
    differences = []
    for (account, currency), (recorded, store) in sorted(sums.items()):
        shown = [f"{n} {currency}" if n is not None else "—" for n in (recorded, store)]
        compared.append((account, shown[0], shown[1]))
        if (recorded or 0) != (store or 0):
            differences.append(
                f"^{link} {account}: books {shown[0]}, the per-customer entries add up to "
                f"{shown[1]}"
            )
    recorded_digest = str((books.meta or {}).get("digest", "")) if books is not None else ""
    store_digest = digest(detail) if detail else ""
    compared.append(("digest", recorded_digest[:16] or "—", store_digest[:16] or "—"))
    if recorded_digest != store_digest:
        differences.append(
            f"^{link} digest: books {recorded_digest[:16] or 'none'}, the per-customer entries "
            f"{store_digest[:16] or 'none'}"
        )
    return compared, differences


def expand(session: Session, ref: str, books_entries: Sequence[data.Directive]) -> Expansion:
    """``meterbook trace SUM-…`` (see the module docstring); an unknown link is
    :class:`BadInput`."""
    link = ref.strip().removeprefix("^")
    if not is_summary_link(link):
        raise BadInput(f"trace: {ref}: not a summary link (SUM-YYYY-MM-DD-kind)")
    books = _by_link(books_entries).get(link)
    if books is None:
        raise BadInput(f"trace: {link}: no summary entry in the books carries ^{link}")
    detail = members(subledger(session, books_entries), link)
    compared, differences = _compare(link, books, detail, session)
    notes: list[str] = []
    if differences and books.date < session.first_open():
        notes.append(
            f"{books.date} is sealed: what changed since is posted as late adjustments on "
            f"{session.first_open()} (^{link})"
        )
        differences = []
    return Expansion(
        link,
        books.narration or "",
        tuple(detail),
        tuple(compared),
        tuple(differences),
        tuple(notes),
    )


def summary_differences(
    session: Session,
    ref: str,
    books_entries: Sequence[data.Directive],
    subledger_entries: Sequence[data.Directive],
) -> tuple[list[str], list[str]]:
    """For a traced cycle or invoice: each summary that adds up one of its entries, checked
    against the sub-ledger. Returns (differences, notes); a sealed summary that differs is
    a note (the late adjustments on the first open day carry the change)."""
    body = ref.strip().removeprefix("^")
    links = {
        key_of(e).link
        for e in subledger_entries
        if isinstance(e, data.Transaction)
        and (body in (e.links or ()) or (e.meta or {}).get("invoice") == body)
        and "summary" not in (e.meta or {})
    }
    books = _by_link(books_entries)
    first_open: date = session.first_open()
    differences: list[str] = []
    notes: list[str] = []
    for link in sorted(links):
        detail = members(subledger_entries, link)
        _compared, found = _compare(link, books.get(link), detail, session)
        entry = books.get(link)
        if found and entry is not None and entry.date < first_open:
            notes.append(f"^{link} is sealed; what changed since is in the late adjustments")
        elif found:
            differences.extend(found)
        else:
            notes.append(f"^{link} adds up this entry with {len(detail) - 1} others: ok")
    return differences, notes
