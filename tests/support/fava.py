"""The Fava workspace (test_fava's module docstring works its figures): plan ``u``, 1.00 a
call and 0.01 a token, calendar cycles from Sep 1; ``acme`` ("Acme Corp") invoiced 110.00 on
Oct 1 and paid, ``beta`` ("Beta & Sons <Ltd>": a name to escape) with 60.00 of prepaid credit;
September closed with the planted finding accepted (the close workspace's reconciler,
:mod:`tests.support.close`), October posted.

Shared by test_fava and test_browser.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from ledger.closing import close_month
from ledger.events import Event, parse_time
from ledger.payments import ingest_payments
from tests.support.close import PLANTED
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    insert_events,
    open_session,
    write_workspace,
)

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
      - {meter: tokens, model: unit, unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  acme:
    name: Acme Corp
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01}]
    caps: {api_calls: 150}
    spend_cap: "200"
  beta:
    name: Beta & Sons <Ltd>
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits: [{amount: "60.00", granted: 2026-09-01}]
"""
PAYMENTS = """\
date,amount,currency,invoice,reference
2026-10-05,60.00,USD,INV-2026-000001,BANK-1
2026-10-10,110.00,USD,INV-2026-000002,BANK-2
"""
ACCEPTED_REASON = "meter reset on Sep 3"


def _event(
    customer: str,
    ident: str,
    day: str,
    type_: str = "api.request",
    properties: dict[str, str] | None = None,
) -> Event:
    return Event.build(
        source="t",
        id=f"{customer}-{ident}",
        customer=customer,
        type=type_,
        time=parse_time(f"{day}T12:00:00Z"),
        properties=properties or {},
    )


def build_workspace(root: Path) -> Path:
    """The workspace above in ``root``, September closed, October posted through Oct 31."""
    write_workspace(
        root,
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
        plugins={"planted": PLANTED},
    )
    (root / "planted").write_text("beta\n")
    session = open_session(root)
    rows = [
        _event(c, str(i), f"2026-09-{1 + i % 28:02d}")
        for c, n in (("acme", 100), ("beta", 50))
        for i in range(n)
    ]
    rows.append(_event("acme", "tok", "2026-09-10", "llm.completion", {"tokens": "1000"}))
    rows += [_event("acme", f"oct{i}", f"2026-10-{1 + i:02d}") for i in range(30)]
    rows += [_event("beta", f"oct{i}", f"2026-10-{1 + i:02d}") for i in range(4)]
    insert_events(session.engine, rows)
    issued = session.invoice(through=date(2026, 10, 1))
    assert [(i.number, i.customer, i.total) for i in issued] == [
        ("INV-2026-000001", "beta", Decimal("60.00")),
        ("INV-2026-000002", "acme", Decimal("110.00")),
        ("INV-2026-000003", "beta", Decimal("0.00")),
    ]
    (root / "bank.csv").write_text(PAYMENTS)
    ingest_payments(session.engine, root / "bank.csv")
    refused = close_month(session, "2026-09")
    assert [f.id for f in refused.open_errors] == ["planted:beta:2026-09"], (
        refused
    )  # the planted one only
    report = close_month(session, "2026-09", {"planted:beta:2026-09": ACCEPTED_REASON})
    assert not report.refused, report
    close_md = root / "books" / "2026" / "2026-09.close.md"
    assert report.report_file == str(close_md) and close_md.is_file()
    session.post(date(2026, 10, 31))
    return root
