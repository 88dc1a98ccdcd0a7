"""Credit-note worked examples through ``meterbook credit`` and the books, loaded with Beancount.

The workspace of ``test_payments``: acme's INV-2026-000001 of 2026-10-01 is
110.00 USD (line 1: 100 calls = 100.00, line 2: 1,000 tokens = 10.00).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from beancount.core import data
from click.testing import CliRunner, Result

from ledger.cli import cli
from ledger.credit_notes import load_credit_notes
from ledger.session import Session

sys.path.insert(0, str(Path(__file__).parent))
from test_payments import balance, books_of, import_payments, workspace

RECEIVABLE = "Assets:Receivables:Invoiced:Acme"
REFUNDS = "Liabilities:Refunds:Acme"


def credit(session: Session, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(session.workspace.root), "credit", *args])


def pay(session: Session, tmp_path: Path, amount: str, day: str = "2026-10-10") -> None:
    path = tmp_path / f"pay-{amount}.csv"
    path.write_text(f"date,amount,currency,invoice,reference\n{day},{amount},USD,INV-2026-000001,PAY-{amount}\n")
    assert import_payments(session, path).accepted == 1


def transaction(entries: list[data.Directive], number: str) -> data.Transaction:
    [found] = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("credit_note") == number]
    return found


def test_credit_note_on_unpaid_invoice_reduces_the_receivable(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    result = credit(session, "INV-2026-000001", "--amount", "30", "--reason", "outage 2026-09-03",
                    "--date", "2026-10-05")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("CN-2026-000001  2026-10-05  acme")
    entries = books_of(session)
    # 110.00 invoiced, 30.00 credited while unpaid: 80.00 owed; nothing to refund
    assert balance(entries, RECEIVABLE, date(2026, 10, 5)) == Decimal("110.00")
    assert balance(entries, RECEIVABLE, date(2026, 10, 6)) == Decimal("80.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 10, 6)) == Decimal("30.00")
    assert balance(entries, REFUNDS, date(2026, 11, 1)) == 0
    txn = transaction(entries, "CN-2026-000001")
    assert txn.links == {"CN-2026-000001", "INV-2026-000001", "acme-2026-09-01"}
    assert txn.meta["reason"] == "outage 2026-09-03" and txn.meta["customer"] == "acme"
    docs = [e for e in entries if isinstance(e, data.Document) and "CN-2026-000001" in e.links]
    assert [d.account for d in docs] == [RECEIVABLE]
    documents = session.workspace.books_dir / "documents"
    assert "Credit note CN-2026-000001" in (documents / "CN-2026-000001.html").read_text()
    record = json.loads((documents / "CN-2026-000001.json").read_text())
    assert (record["invoice"], record["amount"], record["line"]) == ("INV-2026-000001", "30.00", None)
    # a payment of the 80.00 left then settles the invoice exactly
    pay(session, tmp_path, "80.00", "2026-10-10")
    entries = books_of(session)
    assert balance(entries, RECEIVABLE, date(2026, 10, 11)) == 0
    assert balance(entries, "Assets:Bank:Unapplied", date(2026, 11, 1)) == 0


def test_credit_note_on_paid_invoice_is_a_refund_liability(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    pay(session, tmp_path, "110.00")
    assert credit(session, "INV-2026-000001", "--amount", "25.00", "--reason", "goodwill",
                  "--date", "2026-10-12").exit_code == 0
    entries = books_of(session)
    # paid in full on Oct 10: the 25.00 credit is owed back to acme
    assert balance(entries, RECEIVABLE, date(2026, 10, 13)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 13)) == Decimal("-25.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 10, 13)) == Decimal("25.00")


def test_credit_note_on_partly_paid_invoice_splits(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    pay(session, tmp_path, "80.00")  # 30.00 of 110.00 still open
    assert credit(session, "INV-2026-000001", "--amount", "50", "--reason", "outage",
                  "--date", "2026-10-12").exit_code == 0
    entries = books_of(session)
    # 30.00 cancels what is still owed, the other 20.00 was paid: refund
    assert balance(entries, RECEIVABLE, date(2026, 10, 11)) == Decimal("30.00")
    assert balance(entries, RECEIVABLE, date(2026, 10, 13)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 13)) == Decimal("-20.00")
    assert [p.units.number for p in transaction(entries, "CN-2026-000001").postings] == [
        Decimal("50"), Decimal("-30.00"), Decimal("-20")]


def test_more_than_creditable_is_refused_without_force(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    assert credit(session, "INV-2026-000001", "--amount", "100", "--reason", "a",
                  "--date", "2026-10-05").exit_code == 0
    # creditable now 110.00 − 100.00 = 10.00
    refused = credit(session, "INV-2026-000001", "--amount", "10.01", "--reason", "b", "--date", "2026-10-06")
    assert refused.exit_code == 2
    assert "10.00 USD" in refused.output and "--force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert [n.number for n in load_credit_notes(session.engine)] == ["CN-2026-000001"]
    forced = credit(session, "INV-2026-000001", "--amount", "15", "--reason", "b", "--date", "2026-10-06",
                    "--force")
    assert forced.exit_code == 0, forced.output
    assert "(forced)" in forced.output
    entries = books_of(session)
    # unpaid: 100.00 then 10.00 against the receivable; the 5.00 beyond the invoice is owed back
    assert balance(entries, RECEIVABLE, date(2026, 10, 7)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 7)) == Decimal("-5")
    assert transaction(entries, "CN-2026-000002").meta["forced"] is True


def test_line_credit_is_capped_by_the_line(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    # line 2 is the tokens: 10.00
    refused = credit(session, "INV-2026-000001", "--line", "2", "--amount", "10.50", "--reason", "x",
                     "--date", "2026-10-05")
    assert refused.exit_code == 2 and "line 2 of INV-2026-000001" in refused.output
    ok = credit(session, "INV-2026-000001", "--line", "2", "--amount", "10.00", "--reason", "tokens miscounted",
                "--date", "2026-10-05")
    assert ok.exit_code == 0, ok.output
    assert credit(session, "INV-2026-000001", "--line", "2", "--amount", "0.01", "--reason", "x",
                  "--date", "2026-10-05").exit_code == 2
    assert credit(session, "INV-2026-000001", "--line", "3", "--amount", "1", "--reason", "x",
                  "--date", "2026-10-05").exit_code == 2
    entries = books_of(session)
    txn = transaction(entries, "CN-2026-000001")
    assert txn.meta["invoice_line"] == Decimal(2)
    assert balance(entries, RECEIVABLE, date(2026, 10, 6)) == Decimal("100.00")


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    for args, needle in (
        (["INV-2026-000001", "--amount", "abc", "--reason", "x"], "--amount"),
        (["INV-2026-000001", "--amount", "1.001", "--reason", "x"], "decimal places"),
        (["INV-2026-000001", "--amount", "-1", "--reason", "x"], "positive"),
        (["INV-2026-000001", "--amount", "1", "--reason", " "], "--reason"),
        (["INV-2099-000001", "--amount", "1", "--reason", "x"], "not an issued invoice"),
        (["INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "2026-09-30"], "before"),
        (["INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "31/10/2026"], "--date"),
    ):
        result = credit(session, *args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert load_credit_notes(session.engine) == []


def test_numbers_are_sequential_and_books_deterministic(tmp_path: Path) -> None:
    session = workspace(tmp_path)
    for amount in ("1", "2"):
        assert credit(session, "INV-2026-000002", "--amount", amount, "--reason", "r",
                      "--date", "2026-10-03").exit_code == 0
    assert [n.number for n in load_credit_notes(session.engine)] == ["CN-2026-000001", "CN-2026-000002"]
    books_of(session)
    books_dir = session.workspace.books_dir
    first = {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()}
    books_of(session)
    assert {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()} == first
