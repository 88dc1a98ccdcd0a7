"""``meterbook trace``: recomputation from the store against the books, worked by hand.

Workspace of tests/test_posting.py (plan ``g``: graduated api_calls, 0–10 free,
11–100 at 0.05, above at 0.01):

- ann (anniversary, cycle 2026-09-15/2026-10-15): 14 calls Sep 16–29, 11 calls
  Oct 1–11 → 25 calls through Oct 14: 15 × 0.05 = 0.75, invoiced Oct 15;
- cal (calendar): 30 calls in September (invoiced Oct 1: 20 × 0.05 = 1.00) and
  40 calls Oct 1–20 → 30 × 0.05 = 1.50 accrued Oct 31, not invoiced yet.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.books import load_books
from ledger.cli import cli
from ledger.events import Event, parse_time
from ledger.facts.invoices import load_invoices
from ledger.session import Session
from ledger.trace import trace
from tests.support.posting import CUSTOMERS, PLANS
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

SEPT = [f"2026-09-{d:02d}" for d in range(1, 31)]
OCT_CAL = [f"2026-10-{1 + i % 20:02d}" for i in range(40)]
ANN = [f"2026-09-{16 + i % 14:02d}" for i in range(14)] + [
    f"2026-10-{1 + i:02d}" for i in range(11)
]


def _session(tmp_path: Path, store_url: str = "sqlite:///var/events.sqlite") -> Session:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'store = "{store_url}"\n',
    )
    return open_session(root)


def _insert(session: Session, rows: list[Event]) -> None:
    insert_events(session.engine, rows)


def _events() -> list[Event]:
    return [*calls("ann", ANN), *calls("cal", SEPT), *calls("cal", OCT_CAL, "oct")]


def _late_call(customer: str, day: str, name: str) -> Event:
    return Event.build(
        source="t",
        id=f"{customer}-{name}",
        customer=customer,
        type="api.request",
        time=parse_time(f"{day}T15:00:00Z"),
        properties={},
    )


@pytest.fixture
def session(tmp_path: Path) -> Session:
    s = _session(tmp_path)
    _insert(s, _events())
    s.invoice(through=date(2026, 10, 31))
    return s


def _invoice_of(session: Session, customer: str, day: date) -> str:
    return next(
        inv.number
        for inv in load_invoices(session.engine)
        if inv.customer == customer and inv.date == day
    )


def _run(session: Session, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(session.workspace.root), "trace", *args])
    return result.exit_code, result.output


def test_cycle_worked_example_verified(tmp_path: Path, store_url: str) -> None:
    s = _session(tmp_path, store_url)
    _insert(s, _events())
    s.invoice(through=date(2026, 10, 31))
    result = trace(s, "^ann-2026-09-15")
    assert result.verified and result.differences == ()
    assert (result.kind, result.customer, result.cycle, result.through) == (
        "cycle",
        "ann",
        "2026-09-15/2026-10-15",
        date(2026, 10, 14),
    )
    [meter] = result.meters
    assert (meter.meter, meter.events, meter.quantity, meter.amount) == (
        "api_calls",
        25,
        Decimal(25),
        Decimal("0.75"),
    )
    assert (meter.first, meter.last) == ("2026-09-16T12:00:00+00:00", "2026-10-11T12:00:00+00:00")
    # tiers: 10 free, then 15 × 0.05 = 0.75
    assert [(t.quantity, t.unit_price, t.amount) for t in meter.tiers] == [
        (Decimal(10), Decimal(0), Decimal(0)),
        (Decimal(15), Decimal("0.05"), Decimal("0.75")),
    ]
    # the events digest, by hand: sha256 over "source\tid\tpayload hash\n" sorted by (source, id)
    ordered = sorted(calls("ann", ANN), key=lambda e: (e.source, e.id))
    assert (
        meter.digest
        == hashlib.sha256(
            "".join(f"{e.source}\t{e.id}\t{e.payload_hash}\n" for e in ordered).encode()
        ).hexdigest()
    )
    # ...and the accrual's evidence metadata combines it per meter (as posting does)
    combined = hashlib.sha256(f"api_calls\t25\t{meter.digest}\n".encode()).hexdigest()[:16]
    checks = {c.what: (c.recorded, c.store) for c in result.checks}
    assert checks == {
        "api_calls quantity": ("25", "25"),
        "api_calls quantity on 2026-09-30": ("14", "14"),  # 14 calls Sep 16–29
        "api_calls revenue": ("0.75 USD", "0.75 USD"),  # 0.20 on Sep 30 + 0.55 on Oct 14
        "unbilled": ("0.75 USD", "0.75 USD"),
        "evidence 2026-10-14": (combined, combined),
    }
    assert [(t.date, t.kind) for t in result.transactions] == [
        (date(2026, 9, 30), "accrual"),
        (date(2026, 10, 14), "accrual"),
        (date(2026, 10, 15), "invoice"),
    ]
    assert "verified: the books equal the recomputation from the store" in result.render()


def test_unposted_event_is_named(session: Session) -> None:
    assert trace(session, "cal-2026-10-01").verified
    _insert(
        session, [_late_call("cal", "2026-10-25", "late1")]
    )  # ingested after the Oct 31 accrual was posted
    result = trace(session, "cal-2026-10-01")
    assert not result.verified
    # 41 calls: 31 × 0.05 = 1.55 against the books' 40 calls and 1.50
    assert result.differences[:3] == (
        "api_calls quantity: books 40, store 41 (1 event more in the store than the 2026-10-31 "
        "accrual reflects)",
        "api_calls revenue: books 1.50 USD, store 1.55 USD",
        "unbilled: books 1.50 USD, store 1.55 USD",
    )
    assert result.differences[3].startswith("evidence 2026-10-31: books ")
    code, output = _run(session, "^cal-2026-10-01")
    assert code == 1 and "NOT verified: 4 differences" in output
    # posting again brings the books back in line with the store
    session.post(through=date(2026, 10, 31))
    assert trace(session, "cal-2026-10-01").verified


def test_edited_books_in_open_month(session: Session) -> None:
    month = session.workspace.books_dir / "2026" / "2026-10.beancount"
    text = month.read_text()
    assert text.count("    quantity: 40\n") == 1
    month.write_text(text.replace("    quantity: 40\n", "    quantity: 39\n"))
    assert (
        load_books(session.workspace.main_file)[1] == []
    )  # an open month: bean-check does not object
    result = trace(session, "cal-2026-10-01")
    assert not result.verified
    assert result.differences == (
        "api_calls quantity: books 39, store 40 (1 event more in the store than the 2026-10-31 "
        "accrual reflects)",
    )


def test_edited_amount_in_open_month(session: Session) -> None:
    month = session.workspace.books_dir / "2026" / "2026-10.beancount"
    lines = month.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith('2026-10-31 * "cal"'))
    # both legs edited (1.50 → 1.40), so the entry still balances and bean-check passes
    for i in range(start, start + 12):
        lines[i] = lines[i].replace(" 1.50 USD", " 1.40 USD").replace("-1.50 USD", "-1.40 USD")
    month.write_text("".join(lines))
    assert load_books(session.workspace.main_file)[1] == []
    result = trace(session, "^cal-2026-10-01")
    assert result.differences == (
        "api_calls revenue: books 1.40 USD, store 1.50 USD",
        "unbilled: books 1.40 USD, store 1.50 USD",
    )


def test_invoice_trace(session: Session) -> None:
    number = _invoice_of(session, "ann", date(2026, 10, 15))
    result = trace(session, number)
    assert result.verified and result.kind == "invoice" and result.invoice is not None
    assert result.invoice.total == Decimal("0.75")
    assert [(ln.kind, ln.meter, ln.quantity, ln.amount) for ln in result.invoice.lines] == [
        ("usage", "api_calls", Decimal(25), Decimal("0.75"))
    ]
    checks = {c.what: (c.recorded, c.store) for c in result.checks}
    assert checks["receivable Assets:Receivables:Invoiced:Ann"] == ("0.75 USD", "0.75 USD")
    assert checks["settles unbilled"] == ("0.75 USD", "0.75 USD")
    assert checks["line 1 usage api_calls [unbilled] quantity"] == ("25", "25")
    assert checks["total"] == ("0.75 USD", "0.75 USD")
    assert [c.ref for c in result.cycles] == ["ann-2026-09-15"] and result.cycles[0].verified

    # an event for Oct 12 arrives after the invoice: not posted yet,
    # the invoice no longer recomputes
    _insert(session, [_late_call("ann", "2026-10-12", "late1")])
    late = trace(session, number)
    assert not late.verified
    assert "line 1 usage api_calls [unbilled] quantity: invoice 25, store 26" in late.differences
    assert "total: invoice 0.75 USD, store 0.80 USD" in late.differences
    # posted as late usage (16 × 0.05 = 0.80, +0.05), the books explain it: verified, with notes
    session.post(through=date(2026, 10, 31))
    cycle = trace(session, "ann-2026-09-15")
    assert (
        cycle.verified and {c.what: c.recorded for c in cycle.checks}["api_calls quantity"] == "26"
    )
    explained = trace(session, number)
    assert explained.verified, explained.differences
    assert any(n.startswith("total: invoice 0.75 USD, store 0.80 USD") for n in explained.notes)


def test_invoice_document_edited(session: Session) -> None:
    number = _invoice_of(session, "cal", date(2026, 10, 1))
    document = session.workspace.books_dir / "documents" / f"{number}.json"
    text = document.read_text()
    assert text.count('"total":"1.00"') == 1
    document.write_text(text.replace('"total":"1.00"', '"total":"0.90"'))
    result = trace(session, number)
    [difference] = result.differences
    assert difference.startswith(
        f"document documents/{number}.json: books differs from the stored invoice, store "
    )


def test_unknown_ref_exits_2(session: Session) -> None:
    code, output = _run(session, "nobody-2026-10-01")
    assert code == 2 and "no transaction in the books carries ^nobody-2026-10-01" in output
    code, output = _run(session, "INV-2026-999999")
    assert code == 2 and "INV-2026-999999: no such invoice" in output


def test_json_shape(session: Session) -> None:
    code, output = _run(session, "--json", "^cal-2026-10-01")
    assert code == 0
    [line] = output.splitlines()
    doc = json.loads(line)
    assert {
        "ref",
        "kind",
        "verified",
        "differences",
        "notes",
        "customer",
        "currency",
        "cycle",
        "plan",
        "through",
        "meters",
        "transactions",
        "checks",
    } <= set(doc)
    assert (doc["ref"], doc["kind"], doc["verified"], doc["through"]) == (
        "cal-2026-10-01",
        "cycle",
        True,
        "2026-10-31",
    )
    [meter] = doc["meters"]
    assert (meter["quantity"], meter["amount"], meter["events"]) == ("40", "1.50", 40)
    assert meter["tiers"][1] == {
        "description": "11 – 100",
        "quantity": "30",
        "unit_price": "0.05",
        "amount": "1.50",
    }
    number = _invoice_of(session, "cal", date(2026, 10, 1))
    code, output = _run(session, number, "--json")
    doc = json.loads(output)
    assert code == 0 and doc["kind"] == "invoice" and doc["invoice"]["total"] == "1.00"
    assert (
        doc["cycles"][0]["ref"] == "cal-2026-09-01"
        and doc["invoice"]["lines"][0]["quantity"] == "30"
    )


def test_sealed_month_late_usage_and_tampering(session: Session) -> None:
    root = str(session.workspace.root)
    for month in ("2026-09", "2026-10"):
        result = CliRunner().invoke(cli, ["--workspace", root, "close", month])
        assert result.exit_code == 0, result.output
    # a call for Oct 25 arrives after October was sealed:
    # 41 calls, 31 × 0.05 = 1.55 (+0.05 on Nov 1)
    _insert(session, [_late_call("cal", "2026-10-25", "late1")])
    assert not trace(session, "cal-2026-10-01").verified  # not posted yet
    session.post(through=date(2026, 11, 30))
    result = trace(session, "cal-2026-10-01")
    assert result.verified, result.differences
    assert [(t.date, t.kind) for t in result.transactions] == [
        (date(2026, 10, 31), "accrual"),
        (date(2026, 11, 1), "late"),
    ]
    checks = {c.what: (c.recorded, c.store, c.ok) for c in result.checks}
    assert checks["api_calls revenue"] == ("1.55 USD", "1.55 USD", True)  # 1.50 sealed + 0.05 late
    assert checks["unbilled"] == ("1.55 USD", "1.55 USD", True)
    assert not checks["evidence 2026-10-31"][
        2
    ]  # the sealed accrual keeps its digest: a note, not a difference
    assert any("posted as late adjustments on 2026-11-01" in n for n in result.notes)

    # editing the sealed month: bean-check (the seal) fails, and so does the trace
    october = session.workspace.books_dir / "2026" / "2026-10.beancount"
    october.write_text(october.read_text().replace("    quantity: 40\n", "    quantity: 39\n"))
    tampered = trace(session, "cal-2026-10-01")
    assert not tampered.verified
    assert tampered.differences[0].startswith("the books do not pass bean-check: 1 error, first ")
    assert "month 2026-10 is sealed" in tampered.differences[0]


def test_late_usage_between_invoice_and_close_is_explained_truly(session: Session) -> None:
    """cal's October (40 calls, 30 × 0.05 = 1.50) invoiced on Nov 1; a call for Oct 25 then
    arrives, before October is closed: posted as late usage on Nov 1 (the invoice froze the
    Oct 31 accrual), 1.55 in all. October is then closed. The evidence note says the events
    arrived after the accrual was frozen, never that they arrived after the seal (they did
    not: the close came after them)."""
    root = str(session.workspace.root)
    result = CliRunner().invoke(cli, ["--workspace", root, "close", "2026-09"])
    assert result.exit_code == 0, result.output
    session.invoice(through=date(2026, 11, 1))
    _insert(session, [_late_call("cal", "2026-10-25", "late1")])
    session.post(through=date(2026, 11, 30))
    result = CliRunner().invoke(cli, ["--workspace", root, "close", "2026-10"])
    assert result.exit_code == 0, result.output
    traced = trace(session, "cal-2026-10-01")
    assert traced.verified, traced.differences
    checks = {c.what: (c.recorded, c.store, c.ok) for c in traced.checks}
    assert checks["api_calls revenue"] == ("1.55 USD", "1.55 USD", True)
    [note] = [n for n in traced.notes if n.startswith("evidence 2026-10-31")]
    assert "after this accrual was frozen (by an invoice or the seal)" in note
    assert "after 2026-10 was sealed" not in note
