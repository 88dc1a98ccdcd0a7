"""The payments workspace (test_payments' module docstring works its numbers): plan ``u``,
1.00 a call and 0.01 a token, calendar cycles from Sep 1; acme invoiced 110.00 and beta 50.00
on 2026-10-01 (INV-2026-000001 and INV-2026-000002). Payments are ingested at ``NOW``.

Shared by test_payments and test_credit_notes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from beancount.core import data

from ledger import ingest
from ledger.books import load_books
from ledger.events import Event, parse_time
from ledger.importers.payments import PaymentsCsv
from ledger.session import Session
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
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def payments_workspace(tmp_path: Path) -> Session:
    """acme invoiced 110.00 and beta 50.00 on 2026-10-01."""
    session = open_session(
        write_workspace(
            tmp_path / "ws", meters=METERS_CALLS_TOKENS, plans=PLANS, customers=CUSTOMERS
        )
    )
    rows = [
        Event.build(
            source="t",
            id=f"{c}-{i}",
            customer=c,
            type="api.request",
            time=parse_time(f"2026-09-{1 + i % 28:02d}T12:00:00Z"),
            properties={},
        )
        for c, n in (("acme", 100), ("beta", 50))
        for i in range(n)
    ]
    rows.append(
        Event.build(
            source="t",
            id="acme-tok",
            customer="acme",
            type="llm.completion",
            time=parse_time("2026-09-10T12:00:00Z"),
            properties={"tokens": "1000"},
        )
    )
    insert_events(session.engine, rows)
    issued = session.invoice(through=date(2026, 10, 1))
    assert [(i.number, i.customer, i.total) for i in issued] == [
        ("INV-2026-000001", "acme", Decimal("110.00")),
        ("INV-2026-000002", "beta", Decimal("50.00")),
    ]
    return session


def books_of(session: Session) -> list[data.Directive]:
    session.post(through=date(2026, 10, 31))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return list(entries)


def import_payments(session: Session, path: Path) -> ingest.ImportReport:
    """Through ``meterbook ingest``'s own dispatch: identified, checked, stored by kind (the
    ``payments`` kind as the registry has it from the hook)."""
    importers = [PaymentsCsv(), *ingest.default_importers()]
    [report] = ingest.ingest_files(
        session.engine,
        session.rules,
        [path],
        importers,
        now=NOW,
        kinds=session.registry.importer_kinds,
    )
    return report
