"""Journal export: a month of the books per general-ledger account, balanced, checked through
Beancount.

The taxed workspace of ``test_tax`` closed through November: November holds the
invoices of Nov 1 (kunde 119.30 EUR, client_fr 100.00 EUR, acme_us 108.90 USD)
and kunde's payment of 119.30 on Nov 20. The demo books' sealed September is
exported with the demo's ``rules/gl_accounts.yaml``.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data, realization
from beancount.core.amount import Amount
from hypothesis import given
from hypothesis import strategies as st

from ledger import seal
from ledger.books import load_books
from ledger.export import GlMapping, build_journal, load_gl_mapping, month_movements
from ledger.session import Session
from tests.support.readme import manual_text
from tests.support.tax import tax_workspace
from tests.support.workspaces import REPO, run_cli

GL = """\
gl_accounts:
  Assets:Bank: "1000"
  Assets:Receivables:Invoiced: "1200"
  Assets:Receivables:Unbilled: "1210"
  Liabilities:Tax:DE: "2210"
  Liabilities:Tax: "2200"
  Income: "4000"
"""
ROOTS = {"1": "Assets", "2": "Liabilities", "4": "Income"}


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Session:
    session = tax_workspace(tmp_path_factory.mktemp("export") / "ws")
    session.invoice(through=date(2026, 11, 1))
    root = session.workspace.root
    (root / "pay.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-11-20,119.30,EUR,INV-2026-000003,P1\n"
    )
    assert run_cli(root, "ingest", str(root / "pay.csv")).exit_code == 0
    for month in ("2026-10", "2026-11"):
        result = run_cli(root, "close", month)
        assert result.exit_code == 0, result.output
    (root / "rules" / "gl_accounts.yaml").write_text(GL)
    return session


def export(root: Path, fmt: str, month: str = "2026-11") -> list[dict[str, str]]:
    result = run_cli(root, "export", "journal", "--month", month, "--format", fmt)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def realized_month(
    main: Path, month_start: date, month_end: date
) -> dict[tuple[str, str], Decimal]:
    """Per account and currency, the month's movement as Beancount's realization computes it."""
    entries, errors, _ = load_books(main)
    assert errors == []
    txns = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and month_start <= e.date <= month_end
        and seal.GUARD_MARK not in e.meta
    ]  # the seal plugin's count of verified seals, not money
    real = realization.realize(txns)
    out = {}
    for account in realization.iter_children(real):
        for pos in account.balance:
            if pos.units.number:
                out[(account.account, pos.units.currency)] = pos.units.number
    return out


def test_csv_export_sums_to_the_months_movements_for_every_account(closed: Session) -> None:
    """November, EUR: bank +119.30 (kunde's payment); receivables 119.30 + 100.00 − 119.30 =
    +100.00;
    unbilled −200.25 (October's usage invoiced); VAT DE −19.05 under its own code 2210; income 0.00
    (recognized in October) so it has no line. USD: receivable +108.90, unbilled −100.25,
    tax −8.65."""
    rows = export(closed.workspace.root, "csv")
    got = {
        (r["currency"], r["account"]): Decimal(r["debit"] or "0") - Decimal(r["credit"] or "0")
        for r in rows
    }
    assert got == {
        ("EUR", "1000"): Decimal("119.30"),
        ("EUR", "1200"): Decimal("100.00"),
        ("EUR", "1210"): Decimal("-200.25"),
        ("EUR", "2210"): Decimal("-19.05"),
        ("USD", "1200"): Decimal("108.90"),
        ("USD", "1210"): Decimal("-100.25"),
        ("USD", "2200"): Decimal("-8.65"),
    }
    # every account's realized November movement is in exactly one line; the lines add up to them
    realized = realized_month(closed.workspace.main_file, date(2026, 11, 1), date(2026, 11, 30))
    mapping = load_gl_mapping(closed.workspace.rules_dir)
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (account, currency), amount in realized.items():
        expected[(currency, str(mapping.code(account)))] += amount
    assert {k: v for k, v in expected.items() if v} == got
    listed = {(r["currency"], a) for r in rows for a in r["accounts"].split()}
    assert listed == {(c, a) for (a, c) in realized}
    # each entry balances, is dated the month's last day and names the seal
    [seal] = [
        e.values[2].value
        for e in load_books(closed.workspace.main_file)[0]
        if isinstance(e, data.Custom)
        and e.type == "meterbook-seal"
        and e.values[0].value == "2026-11"
    ]
    for currency in ("EUR", "USD"):
        assert sum((v for (c, _), v in got.items() if c == currency), Decimal(0)) == 0
    assert {(r["journal"], r["date"], r["memo"]) for r in rows} == {
        ("MB-2026-11-EUR", "2026-11-30", f"meterbook 2026-11 seal {seal}"),
        ("MB-2026-11-USD", "2026-11-30", f"meterbook 2026-11 seal {seal}"),
    }


def test_csv_export_reimported_into_a_second_beancount_file_balances_and_matches(
    closed: Session, tmp_path: Path
) -> None:
    """The export as a second ledger (one account per GL code, one transaction per journal entry)
    loads without errors (each transaction balances) and holds per GL code exactly the books'
    movement."""
    rows = export(closed.workspace.root, "csv")
    codes = sorted({r["account"] for r in rows})
    lines = [f"2026-11-01 open {ROOTS[c[0]]}:GL-{c}" for c in codes]
    for journal in sorted({r["journal"] for r in rows}):
        mine = [r for r in rows if r["journal"] == journal]
        lines.append(f'\n{mine[0]["date"]} * "{mine[0]["memo"]}" ^{journal}')
        for r in mine:
            amount = Decimal(r["debit"] or "0") - Decimal(r["credit"] or "0")
            lines.append(f"  {ROOTS[r['account'][0]]}:GL-{r['account']}  {amount} {r['currency']}")
    gl_file = tmp_path / "gl.beancount"
    gl_file.write_text("\n".join(lines) + "\n")
    # README shows this very file (the seal hash written <seal>)
    [seal] = {r["memo"].rsplit(" ", 1)[1] for r in rows}
    assert readme_block("<!-- export-example -->", "```beancount\n") == gl_file.read_text().replace(
        seal, "<seal>"
    )
    entries, errors, _ = loader.load_file(str(gl_file))
    assert errors == []
    real = realization.realize(entries)
    second = {
        (acc.account.split("GL-")[1], pos.units.currency): pos.units.number
        for acc in realization.iter_children(real)
        for pos in acc.balance
        if pos.units.number
    }
    mapping = load_gl_mapping(closed.workspace.rules_dir)
    books_side: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    movements = month_movements(load_books(closed.workspace.main_file)[0], "2026-11")
    for (account, currency), amount in movements.items():
        books_side[(str(mapping.code(account)), currency)] += amount
    assert second == {k: v for k, v in books_side.items() if v}


def test_named_formats_follow_each_products_columns_and_balance(closed: Session) -> None:
    qbo = export(closed.workspace.root, "quickbooks")
    assert list(qbo[0]) == [
        "Journal No.",
        "Journal Date",
        "Currency",
        "Account Name",
        "Debits",
        "Credits",
        "Description",
        "Name",
    ]
    assert {r["Journal Date"] for r in qbo} == {"11/30/2026"}
    # Xero's manual journal has no currency column: one currency per file (--currency)
    result = run_cli(
        closed.workspace.root, "export", "journal", "--month", "2026-11", "--format", "xero"
    )
    assert result.exit_code == 2, result.output
    assert "Xero manual journals hold the base currency only" in result.output
    assert "2026-11 journal has EUR, USD" in result.output
    result = run_cli(
        closed.workspace.root,
        "export",
        "journal",
        "--month",
        "2026-11",
        "--format",
        "xero",
        "--currency",
        "EUR",
    )
    assert result.exit_code == 0, result.output
    xero = list(csv.DictReader(io.StringIO(result.stdout)))
    # EUR alone: bank 119.30, receivable 100.00, unbilled −200.25, VAT DE −19.05 (sums to 0)
    assert [(r["*AccountCode"], r["*Amount"]) for r in xero] == [
        ("1000", "119.30"),
        ("1200", "100.00"),
        ("1210", "-200.25"),
        ("2210", "-19.05"),
    ]
    result = run_cli(
        closed.workspace.root, "export", "journal", "--month", "2026-11", "--currency", "JPY"
    )
    assert result.exit_code == 2 and "has no 'JPY' movements (it has EUR, USD)" in result.output
    assert list(xero[0]) == [
        "*Narration",
        "*Date",
        "Description",
        "*AccountCode",
        "*TaxRate",
        "*Amount",
    ]
    assert {r["*Date"] for r in xero} == {"30/11/2026"}
    netsuite = export(closed.workspace.root, "netsuite")
    assert list(netsuite[0])[:7] == [
        "External ID",
        "Date",
        "Currency",
        "Memo",
        "Account",
        "Debit",
        "Credit",
    ]
    for rows, key, debit, credit in (
        (qbo, "Journal No.", "Debits", "Credits"),
        (netsuite, "External ID", "Debit", "Credit"),
    ):
        for journal in {r[key] for r in rows}:
            mine = [r for r in rows if r[key] == journal]
            assert sum(Decimal(r[debit] or "0") for r in mine) == sum(
                Decimal(r[credit] or "0") for r in mine
            )
    for narration in {r["*Narration"] for r in xero}:
        assert sum(Decimal(r["*Amount"]) for r in xero if r["*Narration"] == narration) == 0


def test_unmapped_accounts_are_named_exit_2(closed: Session, tmp_path: Path) -> None:
    gl = closed.workspace.rules_dir / "gl_accounts.yaml"
    original = gl.read_text()
    try:
        gl.write_text(
            original.replace('  Liabilities:Tax: "2200"\n', "").replace(
                '  Assets:Bank: "1000"\n', ""
            )
        )
        result = run_cli(closed.workspace.root, "export", "journal", "--month", "2026-11")
        assert result.exit_code == 2
        assert (
            "no GL account for Assets:Bank:Operating, Liabilities:Tax:US-CA, "
            "Liabilities:Tax:US-CA-SF" in result.output
        ), result.output
        gl.unlink()
        result = run_cli(closed.workspace.root, "export", "journal", "--month", "2026-11")
        assert result.exit_code == 2 and "rules/gl_accounts.yaml: not found" in result.output
        result = run_cli(
            closed.workspace.root, "export", "journal", "--month", "2026-11", "--format", "sage"
        )
        assert result.exit_code == 2 and "--format: 'sage' is not one of" in result.output
    finally:
        gl.write_text(original)


def test_an_unsealed_month_exports_with_a_warning(closed: Session) -> None:
    """client_fr pays its 100.00 EUR on Dec 2, December is open: bank +100.00,
    receivable −100.00."""
    session = closed
    root = session.workspace.root
    (root / "pay2.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-12-02,100.00,EUR,INV-2026-000002,P2\n"
    )
    assert run_cli(root, "ingest", str(root / "pay2.csv")).exit_code == 0
    session.post(through=date(2026, 12, 3))
    result = run_cli(root, "export", "journal", "--month", "2026-12")
    assert result.exit_code == 0
    assert "warning: 2026-12 is not sealed" in result.stderr
    assert result.stdout.splitlines()[1:] == [
        "MB-2026-12-EUR,2026-12-31,EUR,1000,100.00,,meterbook 2026-12 (not sealed),"
        "Assets:Bank:Operating",
        "MB-2026-12-EUR,2026-12-31,EUR,1200,,100.00,meterbook 2026-12 (not sealed),"
        "Assets:Receivables:Invoiced:Client-Fr",
    ]
    result = run_cli(session.workspace.root, "export", "journal", "--month", "2026-11")
    assert "warning" not in result.stderr


def test_the_demo_books_sealed_september_exports_to_its_exact_movements() -> None:
    """The committed demo books, read only: every account's September movement is in the export."""
    entries, errors, _ = load_books(REPO / "books" / "main.beancount")
    assert errors == []
    journal = build_journal(entries, "2026-09", load_gl_mapping(REPO / "rules"))
    assert journal.seal is not None and len(journal.seal) == 64
    realized = realized_month(
        REPO / "books" / "main.beancount", date(2026, 9, 1), date(2026, 9, 30)
    )
    assert realized == dict(journal.movements)
    for entry in journal.entries:
        assert sum((ln.amount for ln in entry.lines), Decimal(0)) == 0
        summed = sum(
            (realized[(a, entry.currency)] for ln in entry.lines for a in ln.accounts), Decimal(0)
        )
        assert summed == 0
        for line in entry.lines:
            assert line.amount == sum(
                (realized[(a, entry.currency)] for a in line.accounts), Decimal(0)
            )


def readme_block(marker: str, fence: str) -> str:
    text = manual_text()
    return text[text.index(marker) :].split(fence, 1)[1].split("```", 1)[0]


def test_the_readme_shows_this_export(closed: Session) -> None:
    """README's worked example: the mapping file and the csv export, the seal hash written
    <seal>."""
    assert readme_block("<!-- gl-example -->", "```yaml\n") == GL
    result = run_cli(
        closed.workspace.root, "export", "journal", "--month", "2026-11", "--format", "csv"
    )
    [seal] = {row["memo"].rsplit(" ", 1)[1] for row in csv.DictReader(io.StringIO(result.stdout))}
    shown = readme_block("<!-- export-example -->", "```\n")
    assert (
        shown
        == "$ meterbook export journal --month 2026-11 --format csv\n"
        + result.stdout.replace(seal, "<seal>")
    )


ACCOUNTS = [
    "Assets:Bank:Operating",
    "Assets:Receivables:Invoiced:A",
    "Assets:Receivables:Invoiced:B",
    "Assets:Receivables:Unbilled:A",
    "Liabilities:Tax:DE",
    "Liabilities:Tax:US-CA",
    "Income:Usage:Api-Calls",
    "Income:Credit-Notes",
]
MAPPING = GlMapping(
    {
        "Assets:Bank": "1000",
        "Assets:Receivables": "1200",
        "Liabilities:Tax:DE": "2210",
        "Liabilities:Tax": "2200",
        "Income": "4000",
    }
)


@st.composite
def balanced_transactions(draw: st.DrawFn) -> list[data.Transaction]:
    """Transactions over Oct 30 .. Nov 2, each balanced in its currency."""
    out = []
    for n in range(draw(st.integers(1, 12))):
        currency = draw(st.sampled_from(["EUR", "USD"]))
        day = date(2026, 10, 30) + timedelta(days=draw(st.integers(0, 3)))
        amounts = draw(
            st.lists(
                st.integers(-(10**6), 10**6).map(lambda c: Decimal(c).scaleb(-2)),
                min_size=1,
                max_size=4,
            )
        )
        accounts = draw(
            st.lists(
                st.sampled_from(ACCOUNTS), min_size=len(amounts) + 1, max_size=len(amounts) + 1
            )
        )
        legs = [*amounts, -sum(amounts, Decimal(0))]
        postings = [
            data.Posting(a, Amount(x, currency), None, None, None, None)
            for a, x in zip(accounts, legs, strict=True)
        ]
        out.append(
            data.Transaction(
                {"filename": "t", "lineno": n},
                day,
                "*",
                "",
                f"t{n}",
                frozenset(),
                frozenset(),
                postings,
            )
        )
    return out


@given(balanced_transactions())
def test_journal_lines_are_the_months_movements_summed_per_gl_code(
    txns: list[data.Transaction],
) -> None:
    """Whatever the transactions: each entry balances, and per currency and GL code the line is
    the sum of November's postings to the accounts mapped to it (October's are not in it)."""
    journal = build_journal(txns, "2026-11", MAPPING)
    want: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for txn in txns:
        if txn.date.month == 11:
            for p in txn.postings:
                want[(p.units.currency, str(MAPPING.code(p.account)))] += p.units.number
    got = {(e.currency, ln.code): ln.amount for e in journal.entries for ln in e.lines}
    assert got == {k: v for k, v in want.items() if v}
    for entry in journal.entries:
        assert sum((ln.amount for ln in entry.lines), Decimal(0)) == 0
        assert entry.date == date(2026, 11, 30)


def test_netsuite_line_memo_stays_short_with_thousands_of_customers() -> None:
    """2,000 customers' receivables summed into GL 1200 (+1.00 each) and their 2,000.00 of
    revenue: NetSuite's Line Memo names `Assets:Receivables:Invoiced:* (2000 accounts)`
    instead of 2,000 account names (about 70,000 characters in one cell); meterbook's own
    csv still lists them all."""
    from ledger.export import render

    customers = [f"Assets:Receivables:Invoiced:Customer-{n:04d}" for n in range(2000)]
    entries: list[data.Directive] = [
        data.Transaction(
            data.new_metadata("x", n),
            date(2026, 11, 3),
            "*",
            None,
            "usage",
            frozenset(),
            frozenset(),
            [
                data.Posting(account, Amount(Decimal("1.00"), "USD"), None, None, None, None),
                data.Posting(
                    "Income:Usage:Api", Amount(Decimal("-1.00"), "USD"), None, None, None, None
                ),
            ],
        )
        for n, account in enumerate(customers)
    ]
    mapping = GlMapping({"Assets:Receivables:Invoiced": "1200", "Income": "4000"})
    journal = build_journal(entries, "2026-11", mapping)
    rows = list(csv.DictReader(io.StringIO(render(journal, "netsuite", mapping))))
    assert [(r["Account"], r["Debit"], r["Credit"], r["Line Memo"]) for r in rows] == [
        ("1200", "2000.00", "", "Assets:Receivables:Invoiced:* (2000 accounts)"),
        ("4000", "", "2000.00", "Income:Usage:Api"),
    ]
    own = list(csv.DictReader(io.StringIO(render(journal, "csv", mapping))))
    assert len(own[0]["accounts"].split()) == 2000
