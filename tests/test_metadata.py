"""The traceability metadata of every kind of generated entry, read back through Beancount's loader.

Plan ``p`` (USD): api_calls graduated, the first 100 calls free (then 0.05);
tokens at 0.01 each. So api_calls never posts revenue here, yet every usage
entry must still name its quantity.

- ``cal`` (calendar): 5 calls Sep 1–5 and 100 tokens Sep 10 → Sep 30 accrual
  1.00, api_calls 5 (free), invoiced Oct 1. October: 3 calls, 200 tokens → 2.00.
- ``ann`` (anniversary from Sep 15): 2 calls, 50 tokens in September (0.50 on
  Sep 30), 30 tokens Oct 1 → 80 tokens, 0.80 on Oct 14, invoiced Oct 15.
  10 tokens on Nov 2 for the next cycle [Oct 15, Nov 15): 0.10 on Nov 14.
- ``cr``: 100 tokens Sep 10 (1.00) drawn from a 5.00 grant of Sep 1 that
  expires Oct 15: breakage 4.00 on Oct 15, naming the grant's Sep 1 invoice.

September and October are closed (sealed). Then, late:

- cal: 1 call Oct 20 and 50 tokens Oct 21 → the sealed Oct 31 accrual (api_calls
  3, tokens 200) becomes api_calls 4, tokens 250: catch-up on Nov 1 of +0.50,
  ``quantities: "api_calls=1,tokens=50"``;
- ann: 20 tokens Oct 12 for the invoiced, sealed cycle → catch-up on Nov 1 of
  +0.20, ``quantities: "api_calls=0,tokens=20"`` (usage_date Oct 31, the cycle's
  last point Oct 14);
- after ann's Nov 15 invoice, 5 tokens Nov 5 → "Late usage for invoiced cycle"
  on Nov 15 of +0.05, ``quantities: "api_calls=0,tokens=5"``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

import pytest
from beancount.core import data
from beancount.core.amount import Amount
from click.testing import CliRunner

from ledger.books import load_books, month_path
from ledger.cli import cli
from ledger.errors import BadInput
from ledger.events import Event, parse_time
from ledger.facts.invoices import Invoice, load_invoices
from ledger.journal.invoices import invoice_evidence
from ledger.journal.meta import parse_quantities
from ledger.journal.sealed import catch_up, cumulative_quantities
from ledger.session import Session
from ledger.trace import trace
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    calls,
    insert_events,
    module_scope,
    open_session,
    write_workspace,
)

PLANS = """\
plans:
  p:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 100, unit_price: "0"}
          - {unit_price: "0.05"}
      - {meter: tokens, model: unit, unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: p, start: 2026-09-01}]}
  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: p, start: 2026-09-15}]}
  cr:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: p, start: 2026-09-01}]
    credits: [{amount: "5.00", granted: 2026-09-01, expires: 2026-10-15}]
"""


def _tokens(customer: str, items: Iterable[tuple[str, int]], prefix: str = "tok") -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-{prefix}{i}",
            customer=customer,
            type="llm.completion",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={"tokens": n},
        )
        for i, (day, n) in enumerate(items)
    ]


def _digest(per_meter: dict[str, list[Event]]) -> str:
    """The ``evidence`` of an accrual point, by hand (DESIGN "Traceability"): per meter in name
    order: ``meter \\t count \\t sha256 over "source \\t id \\t payload hash" lines in id order``.
    """
    combined = hashlib.sha256()
    for meter in sorted(per_meter):
        rows = sorted(per_meter[meter], key=lambda e: (e.source, e.id))
        inner = hashlib.sha256(
            "".join(f"{e.source}\t{e.id}\t{e.payload_hash}\n" for e in rows).encode()
        )
        combined.update(f"{meter}\t{len(rows)}\t{inner.hexdigest()}\n".encode())
    return combined.hexdigest()[:16]


CAL_SEP_CALLS = calls("cal", [f"2026-09-0{d}" for d in range(1, 6)])
CAL_SEP_TOKENS = _tokens("cal", [("2026-09-10", 100)])
CAL_OCT_CALLS = calls("cal", ["2026-10-01", "2026-10-02", "2026-10-03"], "oct")
CAL_OCT_TOKENS = _tokens("cal", [("2026-10-05", 200)], "tok-oct")
CAL_LATE_CALLS = calls("cal", ["2026-10-20"], "late")
CAL_LATE_TOKENS = _tokens("cal", [("2026-10-21", 50)], "tok-late")
ANN_CALLS = calls("ann", ["2026-09-16", "2026-09-17"])
ANN_TOKENS = _tokens("ann", [("2026-09-20", 50), ("2026-10-01", 30)])
ANN_NOV_TOKENS = _tokens("ann", [("2026-11-02", 10)], "tok-nov")
ANN_LATE_TOKENS = _tokens("ann", [("2026-10-12", 20)], "tok-late")
ANN_NOV_LATE_TOKENS = _tokens("ann", [("2026-11-05", 5)], "tok-novlate")


@pytest.fixture(scope=module_scope)
def books(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, list[data.Directive]]:
    root = write_workspace(
        tmp_path_factory.mktemp("metadata") / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *CAL_SEP_CALLS,
            *CAL_SEP_TOKENS,
            *CAL_OCT_CALLS,
            *CAL_OCT_TOKENS,
            *ANN_CALLS,
            *ANN_TOKENS,
            *ANN_NOV_TOKENS,
            *_tokens("cr", [("2026-09-10", 100)]),
        ],
    )
    session.invoice(through=date(2026, 10, 31))
    for month in ("2026-09", "2026-10"):
        result = CliRunner().invoke(cli, ["--workspace", str(root), "close", month])
        assert result.exit_code == 0, result.output
    insert_events(session.engine, [*CAL_LATE_CALLS, *CAL_LATE_TOKENS, *ANN_LATE_TOKENS])
    session.invoice(through=date(2026, 11, 30))  # cal's Nov 1 and ann's Nov 15 invoices, then post
    insert_events(session.engine, ANN_NOV_LATE_TOKENS)  # after ann's Nov 15 invoice
    session.post(through=date(2026, 11, 30))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return session, entries


def _one(entries: list[data.Directive], narration: str, customer: str) -> data.Transaction:
    found = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.narration.startswith(narration)
        and e.meta.get("customer") == customer
    ]
    assert len(found) == 1, [(e.date, e.narration) for e in found]
    return found[0]


def _postings(entry: data.Transaction) -> dict[str, tuple[Decimal, dict[str, object]]]:
    """account → (number, posting metadata without Beancount's filename/lineno)."""
    return {
        p.account: (
            p.units.number,
            {k: v for k, v in (p.meta or {}).items() if k not in ("filename", "lineno")},
        )
        for p in entry.postings
    }


def _invoice(session: Session, customer: str, day: date) -> Invoice:
    return next(
        inv for inv in load_invoices(session.engine) if inv.customer == customer and inv.date == day
    )


def test_accrual_names_the_quantity_of_every_meter_it_lists(
    books: tuple[Session, list[data.Directive]],
) -> None:
    _, entries = books
    sep = _one(entries, "Usage accrual 2026-09-01/2026-10-01", "cal")
    assert sep.date == date(2026, 9, 30)
    # api_calls 5 calls, all in the free tier: no posting, but the quantity is on the entry
    assert (sep.meta["meter"], sep.meta["quantities"]) == (
        "api_calls,tokens",
        "api_calls=5,tokens=100",
    )
    assert parse_quantities(sep.meta["quantities"]) == {
        "api_calls": Decimal(5),
        "tokens": Decimal(100),
    }
    assert _postings(sep) == {
        "Assets:Receivables:Unbilled:Cal": (Decimal("1.00"), {}),  # 100 tokens × 0.01
        "Income:Usage:Tokens": (Decimal("-1.00"), {"meter": "tokens", "quantity": Decimal(100)}),
    }
    assert sep.meta["evidence"] == _digest({"api_calls": CAL_SEP_CALLS, "tokens": CAL_SEP_TOKENS})


def test_catch_up_of_a_sealed_month_carries_quantity_and_evidence(
    books: tuple[Session, list[data.Directive]],
) -> None:
    _, entries = books
    late = _one(entries, "Late adjustment for sealed period 2026-10", "cal")
    assert (late.date, late.links) == (date(2026, 11, 1), frozenset({"cal-2026-10-01"}))
    assert (late.meta["usage_date"], late.meta["late"]) == (date(2026, 10, 31), True)
    # sealed Oct 31: 3 calls, 200 tokens; now 4 calls, 250 tokens: +50 × 0.01 = 0.50
    assert (late.meta["meter"], late.meta["quantities"]) == (
        "api_calls,tokens",
        "api_calls=1,tokens=50",
    )
    assert _postings(late) == {
        "Assets:Receivables:Unbilled:Cal": (Decimal("0.50"), {}),
        "Income:Usage:Tokens": (Decimal("-0.50"), {"meter": "tokens", "quantity": Decimal(50)}),
    }
    # the digest of the Oct 31 point as regenerated now: every October event, the late ones included
    assert late.meta["evidence"] == _digest(
        {"api_calls": CAL_OCT_CALLS + CAL_LATE_CALLS, "tokens": CAL_OCT_TOKENS + CAL_LATE_TOKENS}
    )
    sealed = _one(entries, "Usage accrual 2026-10-01/2026-11-01", "cal")
    assert sealed.meta["quantities"] == "api_calls=3,tokens=200"
    assert sealed.meta["evidence"] != late.meta["evidence"]  # the seal keeps the digest it had


def test_catch_up_of_an_invoiced_sealed_cycle(books: tuple[Session, list[data.Directive]]) -> None:
    session, entries = books
    late = _one(entries, "Late adjustment for sealed period 2026-10", "ann")
    assert late.links == frozenset({"ann-2026-09-15"})
    # invoiced Oct 15 with 80 tokens; 20 more for Oct 12: +0.20; calls unchanged (2)
    assert late.meta["quantities"] == "api_calls=0,tokens=20"
    assert _postings(late)["Income:Usage:Tokens"] == (
        Decimal("-0.20"),
        {"meter": "tokens", "quantity": Decimal(20)},
    )
    # the cycle's last point is Oct 14 (the adjustment's usage_date is the month end, Oct 31)
    assert late.meta["usage_date"] == date(2026, 10, 31)
    assert late.meta["evidence"] == _digest(
        {"api_calls": ANN_CALLS, "tokens": ANN_TOKENS + ANN_LATE_TOKENS}
    )
    result = trace(session, "ann-2026-09-15")
    assert result.verified, result.differences
    checks = {c.what: (c.recorded, c.store, c.ok) for c in result.checks}
    assert checks["tokens quantity"] == ("100", "100", True)  # 80 sealed + 20 late
    assert checks["evidence 2026-10-14 late adjustment 2026-11-01"][2]
    assert not checks["evidence 2026-10-14"][
        2
    ]  # the sealed accrual's own digest: explained, not a difference


def test_late_usage_in_an_open_month(books: tuple[Session, list[data.Directive]]) -> None:
    session, entries = books
    late = _one(entries, "Late usage for invoiced cycle 2026-10-15/2026-11-15", "ann")
    assert (late.date, late.meta["usage_date"], late.meta["late"]) == (
        date(2026, 11, 15),
        date(2026, 11, 14),
        True,
    )
    # invoiced Nov 15 with 10 tokens; 5 more for Nov 5: +0.05
    assert (late.meta["meter"], late.meta["quantities"]) == (
        "api_calls,tokens",
        "api_calls=0,tokens=5",
    )
    assert _postings(late)["Income:Usage:Tokens"] == (
        Decimal("-0.05"),
        {"meter": "tokens", "quantity": Decimal(5)},
    )
    assert late.meta["evidence"] == _digest(
        {"api_calls": [], "tokens": ANN_NOV_TOKENS + ANN_NOV_LATE_TOKENS}
    )
    assert trace(session, "ann-2026-10-15").verified


def test_breakage_names_its_grant_and_invoice(books: tuple[Session, list[data.Directive]]) -> None:
    session, entries = books
    grant_invoice = _invoice(session, "cr", date(2026, 9, 1))
    assert [ln.kind for ln in grant_invoice.lines] == ["credit_grant"]
    breakage = _one(entries, "Prepaid credit expired (breakage)", "cr")
    assert breakage.date == date(2026, 10, 15)
    assert breakage.links == frozenset({grant_invoice.number})
    assert (breakage.meta["grant"], breakage.meta["expires"], breakage.meta["grant_invoice"]) == (
        "2026-09-01#1",
        date(2026, 10, 15),
        grant_invoice.number,
    )
    assert "invoice" not in breakage.meta  # not an invoice's own transaction
    # 5.00 granted − 1.00 drawn by September's tokens
    assert _postings(breakage) == {
        "Liabilities:Deferred-Revenue:Cr": (Decimal("4.00"), {}),
        "Income:Credit-Breakage": (Decimal("-4.00"), {}),
    }
    assert trace(session, grant_invoice.number).verified


def test_invoice_evidence_recomputes_from_its_document(
    books: tuple[Session, list[data.Directive]],
) -> None:
    session, entries = books
    inv = _invoice(session, "cal", date(2026, 11, 1))
    entry = _one(entries, f"Invoice {inv.number}", "cal")
    # the README recipe: the document's accrual snapshots, "link \t through \t evidence" lines
    document = json.loads(
        (session.workspace.books_dir / "documents" / f"{inv.number}.json").read_text()
    )
    lines = "".join(
        f"{a['link']}\t{a['through']}\t{a['evidence']}\n"
        for a in sorted(document["accruals"], key=lambda a: (a["link"], a["through"]))
    )
    cal = {"api_calls": CAL_OCT_CALLS + CAL_LATE_CALLS, "tokens": CAL_OCT_TOKENS + CAL_LATE_TOKENS}
    assert lines == f"cal-2026-10-01\t2026-10-31\t{_digest(cal)}\n"
    assert (
        entry.meta["evidence"]
        == hashlib.sha256(lines.encode()).hexdigest()[:16]
        == invoice_evidence(inv)
    )
    # an invoice that froze no accrual (the grant's) bills nothing metered: no evidence
    grant = _invoice(session, "cr", date(2026, 9, 1))
    assert "evidence" not in _one(entries, f"Invoice {grant.number}", "cr").meta


def test_traces_stay_verified_and_posting_is_deterministic(
    books: tuple[Session, list[data.Directive]],
) -> None:
    session, _ = books
    for ref in (
        "cal-2026-09-01",
        "cal-2026-10-01",
        "ann-2026-09-15",
        "ann-2026-10-15",
        *(inv.number for inv in load_invoices(session.engine)),
    ):
        result = trace(session, ref)
        assert result.verified, (ref, result.differences)
    cal = {c.what: c for c in trace(session, "cal-2026-10-01").checks}
    assert (cal["tokens quantity"].recorded, cal["tokens quantity"].ok) == (
        "250",
        True,
    )  # 200 sealed + 50 late
    november = month_path(session.workspace.books_dir, "2026-11")
    before = november.read_bytes()
    session.post(through=date(2026, 11, 30))
    assert november.read_bytes() == before


def _txn(
    day: date,
    narration: str,
    meta: dict[str, object],
    *postings: tuple[str, str, dict[str, object] | None],
) -> data.Transaction:
    return data.Transaction(
        {"filename": "t", "lineno": 0, "customer": "acme", **meta},
        day,
        "*",
        "acme",
        narration,
        frozenset(),
        frozenset({"acme-2026-10-01"}),
        [data.Posting(a, Amount(Decimal(n), "USD"), None, None, None, m) for a, n, m in postings],
    )


def test_catch_up_leaves_out_what_it_cannot_derive() -> None:
    # sealed books written before ``quantities``: api_calls listed without a figure (free tier)
    recorded = [
        _txn(
            date(2026, 10, 31),
            "Usage accrual",
            {"meter": "api_calls,tokens"},
            ("Assets:Receivables:Unbilled:Acme", "2.00", None),
            ("Income:Usage:Tokens", "-2.00", {"meter": "tokens", "quantity": Decimal(200)}),
        )
    ]
    regenerated = [
        _txn(
            date(2026, 10, 31),
            "Usage accrual",
            {"meter": "api_calls,tokens", "quantities": "api_calls=4,tokens=250", "evidence": "e1"},
            ("Assets:Receivables:Unbilled:Acme", "2.50", None),
            ("Income:Usage:Tokens", "-2.50", {"meter": "tokens", "quantity": Decimal(250)}),
        )
    ]
    assert cumulative_quantities(recorded) == {"api_calls": None, "tokens": Decimal(200)}
    _, [late] = catch_up(regenerated, recorded, first_open=date(2026, 11, 1), rules_hash="r")
    # tokens: 250 − 200; api_calls: the sealed figure is unknown, so no change is claimed
    assert (late.meta["meter"], late.meta["quantities"], late.meta["evidence"]) == (
        "tokens",
        "tokens=50",
        "e1",
    )
    assert [(p.account, p.units.number, p.meta) for p in late.postings] == [
        ("Assets:Receivables:Unbilled:Acme", Decimal("0.50"), None),
        ("Income:Usage:Tokens", Decimal("-0.50"), {"meter": "tokens", "quantity": Decimal(50)}),
    ]
    # nothing recorded for the cycle at all (it priced to nothing, so no accrual was written):
    # the sealed figure is unknown, so no quantity is claimed (the amount is still posted)
    _, [first] = catch_up(regenerated, [], first_open=date(2026, 11, 1), rules_hash="r")
    assert "quantities" not in first.meta
    assert [p.units.number for p in first.postings] == [Decimal("2.50"), Decimal("-2.50")]


def test_a_hand_edited_quantities_line_is_named() -> None:
    edited = _txn(
        date(2026, 10, 31),
        "Usage accrual",
        {"meter": "tokens", "quantities": "tokens=lots"},
        ("Assets:Receivables:Unbilled:Acme", "2.00", None),
        ("Income:Usage:Tokens", "-2.00", None),
    )
    with pytest.raises(BadInput, match=r"^t:0: quantities: 'tokens=lots' is not meter=quantity$"):
        catch_up([], [edited], first_open=date(2026, 11, 1), rules_hash="r")
