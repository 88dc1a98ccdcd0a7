"""Summary books (``books_detail = "summary"``): control accounts, one entry per kind and day.

The worked example: plan ``p`` bills 0.10 USD per API call and 0.001 USD per token; three
customers on calendar cycles from 2026-10-01 use in October::

    a   10 calls → 1.00   2,000 tokens → 2.00   total 3.00
    b   20 calls → 2.00       0 tokens → 0      total 2.00
    c    5 calls → 0.50   1,500 tokens → 1.50   total 2.00
        35 calls   3.50   3,500 tokens   3.50         7.00

Per-customer books would hold three accruals on Oct 31 and three invoices on Nov 1. The
summary books hold two transactions::

    2026-10-31 * "Summary of 3 accrual entries" ^SUM-2026-10-31-accrual
      Assets:Receivables:Unbilled   7.00 USD
      Income:Usage:Api-Calls       -3.50 USD
      Income:Usage:Tokens          -3.50 USD

    2026-11-01 * "Summary of 3 invoice entries" ^SUM-2026-11-01-invoice
      invoices: "INV-2026-000001..INV-2026-000003"
      Assets:Receivables:Invoiced   7.00 USD
      Assets:Receivables:Unbilled  -7.00 USD

and the close of October asserts ``Assets:Receivables:Unbilled 7.00 USD`` on Nov 1.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.closing import run_reconcilers
from ledger.events import Event, parse_time
from ledger.journal.summary import ControlAccounts, is_summary_link
from ledger.session import Session
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    STORE,
    balance,
    book_hashes,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  p:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
      - {meter: tokens, model: unit, unit_price: "0.001"}
"""
CUSTOMERS = """\
customers:
  a: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: p, start: 2026-10-01}]}
  b: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: p, start: 2026-10-01}]}
  c: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: p, start: 2026-10-01}]}
"""
TODAY = date(2026, 11, 5)
OCT_31, NOV_1 = date(2026, 10, 31), date(2026, 11, 1)


def tokens(customer: str, amounts: list[int]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-tok{i}",
            customer=customer,
            type="llm.completion",
            time=parse_time(f"2026-10-{i + 2:02d}T12:00:00Z"),
            properties={"tokens": str(n)},
        )
        for i, n in enumerate(amounts)
    ]


def days(n: int) -> list[str]:
    return [f"2026-10-{d % 28 + 1:02d}" for d in range(n)]


def summary_workspace(root: Path, detail: str = "summary") -> Session:
    write_workspace(
        root,
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'books_detail = "{detail}"\n' + STORE,
    )
    session = open_session(root, today=TODAY)
    insert_events(
        session.engine,
        [
            *calls("a", days(10)),
            *tokens("a", [1500, 500]),
            *calls("b", days(20)),
            *calls("c", days(5)),
            *tokens("c", [1000, 500]),
        ],
    )
    return session


@pytest.fixture
def posted(tmp_path: Path) -> Session:
    session = summary_workspace(tmp_path)
    session.post(through=OCT_31)
    session.invoice(through=NOV_1)
    return session


def summaries(entries: list[data.Directive]) -> dict[str, data.Transaction]:
    return {
        next(iter(e.links)): e
        for e in entries
        if isinstance(e, data.Transaction) and "summary" in e.meta
    }


def postings(entry: data.Transaction) -> dict[str, Decimal]:
    return {p.account: p.units.number for p in entry.postings}


def test_summary_entries_equal_the_sums_of_the_detail(posted: Session) -> None:
    entries, errors, _options = load_books(posted.workspace.main_file)
    assert errors == []
    transactions = [e for e in entries if isinstance(e, data.Transaction)]
    found = summaries(entries)
    assert sorted(found) == ["SUM-2026-10-31-accrual", "SUM-2026-11-01-invoice"]
    assert len(transactions) == 2  # not 6: one per kind and day, not per customer
    accrual, invoice = found["SUM-2026-10-31-accrual"], found["SUM-2026-11-01-invoice"]
    assert postings(accrual) == {
        "Assets:Receivables:Unbilled": Decimal("7.00"),
        "Income:Usage:Api-Calls": Decimal("-3.50"),
        "Income:Usage:Tokens": Decimal("-3.50"),
    }
    assert postings(invoice) == {
        "Assets:Receivables:Invoiced": Decimal("7.00"),
        "Assets:Receivables:Unbilled": Decimal("-7.00"),
    }
    assert accrual.meta["entries"] == 3 and accrual.meta["customers"] == 3
    assert invoice.meta["invoices"] == "INV-2026-000001..INV-2026-000003"
    # the per-customer detail the summaries add up, derived from the store
    detail = posted.regenerate(NOV_1)[0]
    unbilled = [balance(detail, f"Assets:Receivables:Unbilled:{c}", NOV_1) for c in "ABC"]
    assert unbilled == [Decimal("3.00"), Decimal("2.00"), Decimal("2.00")]
    assert sum(unbilled) == balance(entries, "Assets:Receivables:Unbilled", NOV_1)
    calls_revenue = balance(detail, "Income:Usage:Api-Calls", NOV_1)
    assert calls_revenue == balance(entries, "Income:Usage:Api-Calls", NOV_1) == Decimal("-3.50")
    # no per-customer account is opened; each invoice keeps its document
    opened = {e.account for e in entries if isinstance(e, data.Open)}
    assert not any(a.endswith((":A", ":B", ":C")) for a in opened)
    documents = [e for e in entries if isinstance(e, data.Document)]
    assert {e.account for e in documents} == {"Assets:Receivables:Invoiced"}
    assert len(documents) == 3


def test_a_rebuild_gives_the_same_bytes(posted: Session) -> None:
    before = book_hashes(posted.workspace.books_dir)
    posted.post(through=NOV_1)
    assert book_hashes(posted.workspace.books_dir) == before


def test_close_asserts_the_control_balances_and_check_passes(posted: Session) -> None:
    root = posted.workspace.root
    result = run_cli(root, "close", "2026-10")
    assert result.exit_code == 0, result.output
    close = (root / "books/2026/2026-10.close.beancount").read_text()
    assert "balance Assets:Receivables:Unbilled                     7.00 USD" in close
    assert "balance Income:Usage:Tokens" in close and ":A " not in close
    entries, errors, _options = load_books(posted.workspace.main_file)
    assert errors == []
    assert [
        b.amount.number
        for b in entries
        if isinstance(b, data.Balance) and b.account == "Assets:Receivables:Unbilled"
    ] == [Decimal("7.00")]
    check = run_cli(root, "check")
    assert check.exit_code == 0, check.output
    assert "store-to-ledger tie-out" in check.output


def test_the_reconciler_catches_a_planted_difference(posted: Session) -> None:
    assert run_reconcilers(posted, "2026-10") == []
    month = posted.workspace.books_dir / "2026/2026-10.beancount"
    month.write_text(
        month.read_text() + '\n2026-10-31 * "planted"\n  Assets:Receivables:Unbilled  1.00 USD\n'
        "  Income:Usage:Api-Calls  -1.00 USD\n"
    )
    found = {f.id: f for f in run_reconcilers(posted, "2026-10")}
    unbilled = found["control-accounts:Assets:Receivables:Unbilled:2026-10"]
    assert (unbilled.severity, unbilled.expected, unbilled.actual) == (
        "error",
        Decimal("7.00"),
        Decimal("8.00"),
    )
    revenue = found["control-accounts:Income:Usage:Api-Calls:2026-10"]
    assert (revenue.expected, revenue.actual) == (Decimal("-3.50"), Decimal("-4.50"))
    assert not any(f.check == "store-vs-ledger" for f in found.values())


def test_trace_and_statement_work_per_customer(posted: Session, tmp_path: Path) -> None:
    root = posted.workspace.root
    cycle = run_cli(root, "trace", "a-2026-10-01")
    assert cycle.exit_code == 0, cycle.output
    assert "verified: the books equal the recomputation from the store" in cycle.output
    assert "tokens revenue" in cycle.output and "2.00 USD" in cycle.output
    assert "^SUM-2026-10-31-accrual adds up this entry with 2 others: ok" in cycle.output
    invoice = run_cli(root, "trace", "INV-2026-000002")
    assert invoice.exit_code == 0, invoice.output
    expanded = run_cli(root, "trace", "SUM-2026-10-31-accrual")
    assert expanded.exit_code == 0, expanded.output
    assert "Summary of 3 accrual entries (3 customers)" in expanded.output
    assert expanded.output.count("Usage accrual 2026-10-01/2026-11-01 through 2026-10-31") == 3
    assert "verified: the summary equals the sum of its 3 per-customer entries" in expanded.output
    # the statement reads the store, as with per-customer books
    statement = run_cli(
        root, "statement", "b", "--cycle", "2026-10-01", "--out", str(tmp_path / "s")
    )
    assert statement.exit_code == 0, statement.output
    html = (tmp_path / "s" / "b-2026-10-01.html").read_text()
    assert "2.00" in html


def test_trace_names_a_summary_that_differs_from_its_detail(posted: Session) -> None:
    month = posted.workspace.books_dir / "2026/2026-10.beancount"
    month.write_text(
        month.read_text().replace("-3.50 USD", "-3.40 USD", 1).replace("7.00 USD", "6.90 USD", 1)
    )
    expanded = run_cli(posted.workspace.root, "trace", "SUM-2026-10-31-accrual")
    assert expanded.exit_code == 1
    assert "NOT verified" in expanded.output and "DIFFERS" in expanded.output


def test_customer_books_are_the_default(tmp_path: Path) -> None:
    session = summary_workspace(tmp_path, "customer")
    session.post(through=OCT_31)
    entries, errors, _options = load_books(session.workspace.main_file)
    assert errors == [] and summaries(entries) == {}
    assert balance(entries, "Assets:Receivables:Unbilled:A", NOV_1) == Decimal("3.00")


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
        config='books_detail = "totals"\n' + STORE,
    )
    result = run_cli(tmp_path, "check")
    assert result.exit_code == 2
    assert "books_detail: expected 'customer' or 'summary', got 'totals'" in result.output
    assert "Traceback" not in result.output


def test_control_accounts_and_links() -> None:
    templates = {"receivable": "Assets:AR:{customer}:Invoiced"}
    control = ControlAccounts(lambda key: templates.get(key, "Income:Usage:{meter}"))
    assert control("Assets:AR:Acme:Invoiced") == "Assets:AR:Invoiced"
    assert control("Income:Usage:Api-Calls") == "Income:Usage:Api-Calls"
    assert is_summary_link("^SUM-2026-11-01-invoice")
    assert not is_summary_link("sum-2026-11-01")


def test_favas_customers_page_reads_the_sub_ledger(posted: Session) -> None:
    """Summary books have no per-customer account: the Customers page still gives a's 3.00
    of revenue, invoiced on Nov 1 (receivable 3.00, unbilled 0.00), and the total 7.00."""
    import re

    from ledger import serve

    app = serve.create_app(posted.workspace.main_file)
    client = app.test_client()
    slug = client.get("/").headers["Location"].strip("/").split("/")[0]
    response = client.get(f"/{slug}/extension/MeterbookCustomers/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S):
        texts = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if texts:
            rows[texts[0]] = texts
    assert rows["a"][:5] == ["a", "USD", "3.00", "3.00", "0.00"]
    assert rows["total (3 customers)"][2:4] == ["7.00", "7.00"]


@pytest.mark.parametrize("sealed_with", ["summary", "customer"])
def test_the_detail_cannot_change_after_a_seal(tmp_path: Path, sealed_with: str) -> None:
    """October is closed with one detail; switching ``books_detail`` afterwards would leave
    the sealed control (or per-customer) assertions against accounts the new books no longer
    post to. ``post`` and ``invoice`` refuse with one line naming meterbook.toml and the key,
    exit 2, and write nothing; switching back posts again."""
    session = summary_workspace(tmp_path, sealed_with)
    session.post(through=OCT_31)
    root = session.workspace.root
    assert run_cli(root, "close", "2026-10").exit_code == 0
    other = "customer" if sealed_with == "summary" else "summary"
    config = (root / "meterbook.toml").read_text()
    (root / "meterbook.toml").write_text(
        config.replace(f'books_detail = "{sealed_with}"', f'books_detail = "{other}"')
    )
    before = book_hashes(root / "books")
    for command in (("post", "--through", "2026-11-01"), ("invoice", "--through", "2026-11-01")):
        refused = run_cli(root, *command)
        assert refused.exit_code == 2, refused.output
        assert refused.output.count("\n") == 1, refused.output
        assert "meterbook.toml: books_detail: 2026-10 is sealed with " + sealed_with in (
            refused.output
        )
    assert book_hashes(root / "books") == before
    (root / "meterbook.toml").write_text(config)
    assert run_cli(root, "post", "--through", "2026-11-01").exit_code == 0


def test_reports_are_the_same_with_summary_books(tmp_path: Path) -> None:
    """The same store posted with customer books and with summary books: every finance report
    of October gives the same figures (only the method text may differ). The per-customer
    tables read the sub-ledger behind the control accounts: unbilled a 3.00, b 2.00, c 2.00
    (7.00 in all, the control account's balance), not an empty table."""
    import json

    reports = ("revenue", "unbilled", "deferred", "aging", "rollforward", "arpu", "tax")
    got: dict[str, dict[str, object]] = {}
    for detail in ("customer", "summary"):
        session = summary_workspace(tmp_path / detail, detail)
        session.post(through=OCT_31)
        session.invoice(through=NOV_1)
        for name in reports:
            result = run_cli(session.workspace.root, "report", name, "--month", "2026-10", "--json")
            assert result.exit_code == 0, result.output
            body = json.loads(result.output)
            body.pop("method")
            got[f"{detail} {name}"] = body
    for name in reports:
        assert got[f"summary {name}"] == got[f"customer {name}"], name
    rows = got["summary unbilled"]["tables"][0]["rows"]  # type: ignore[index]
    assert [(r["customer"], r["total"]) for r in rows] == [
        ("a", "3.00"),
        ("b", "2.00"),
        ("c", "2.00"),
        ("(total)", "7.00"),
    ]
