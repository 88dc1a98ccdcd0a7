"""Sealed books and the store they were posted from: meterbook refuses any other store.

Invoices, payments, credit notes and debit adjustments are facts kept in the
store. A fresh clone (no ``var/``), a mistyped URL or a lost database would
otherwise make ``post`` reverse every sealed invoice and payment as "late
adjustments" in the open month. Here ``cal`` uses 30 calls in September
(20 × 0.05 = 1.00, invoiced Oct 1 as INV-2026-000001, paid Oct 5), September
and October are closed, then the workspace is pointed at an empty store.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ledger.payments import ingest_payments
from tests.support.workspaces import (
    METERS_CALLS,
    book_hashes,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  g:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
CUSTOMERS = (
    "customers:\n  cal: {currency: USD, billing_anchor: calendar, subscriptions: "
    "[{plan: g, start: 2026-09-01}]}\n"
)
# BANK-2 names an invoice that does not exist: unapplied cash, not a record the store lacks
PAYMENTS = (
    "date,amount,currency,invoice,reference\n2026-10-05,1.00,USD,INV-2026-000001,BANK-1\n"
    "2026-10-06,5.00,USD,INV-2026-999999,BANK-2\n"
)


def closed_workspace(tmp_path: Path) -> Path:
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    session = open_session(root)
    insert_events(session.engine, calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]))
    (root / "payments.csv").write_text(PAYMENTS)
    ingest_payments(session.engine, root / "payments.csv")
    session.post(date(2026, 9, 30))
    assert run_cli(root, "close", "2026-09").exit_code == 0
    result = run_cli(
        root,
        "close",
        "2026-10",
        "--accept",
        "unapplied-cash:BANK-2:2026-10",
        "--reason",
        "payer mistyped the invoice number; asked for remittance",
    )
    assert result.exit_code == 0, result.output
    return root


def test_another_store_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    root = closed_workspace(tmp_path)
    month = (root / "books" / "2026" / "2026-10.beancount").read_text().splitlines()
    line = next(i for i, text in enumerate(month, 1) if "Invoice INV-2026-000001" in text)
    (root / "meterbook.toml").write_text('store = "sqlite:///var/other.sqlite"\n')
    before = book_hashes(root / "books")
    for args in (
        ("post", "--through", "2026-11-30"),
        ("invoice", "--through", "2026-11-30"),
        ("close", "2026-11"),
    ):
        result = run_cli(root, *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output
        assert lines[0].startswith(
            f"meterbook: error: books/2026/2026-10.beancount:{line}: invoice INV-2026-000001 "
            "is sealed in the books but not in the store sqlite:///"
        ), lines[0]
        assert "(2 more records missing)" in lines[0]  # the payments BANK-1 and BANK-2
    assert book_hashes(root / "books") == before
    checked = run_cli(root, "check")
    assert checked.exit_code == 1
    assert "FAILED  store of record" in checked.output and "payment BANK-1" in checked.output
    assert "skipped: the store is not the books' own" in checked.output


def test_the_books_own_store_posts_and_checks(tmp_path: Path) -> None:
    root = closed_workspace(tmp_path)
    assert open_session(root).unknown_records() == []
    assert run_cli(root, "post", "--through", "2026-11-30").exit_code == 0
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
    assert "ok      store of record" in checked.output
