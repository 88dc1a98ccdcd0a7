"""A currency without minor units (JPY, 0 decimals) end to end, through the commands:
ingest → invoice → pay → close September and October. Every number computed by hand.

Plan ``y`` prices tokens in graduated tiers with sub-yen unit prices; plan ``f`` is a
1,000 JPY monthly base fee in advance. Rounding is half-even to whole yen, on cumulative
amounts only (README "Exactness"):

- ``kaisha`` (anniversary cycles from Sep 15, net 14) uses 1,469 + 1,000 tokens by Sep 30:
  1,000 × 0.5 + 1,469 × 0.25 = 867.25 → **867** accrued on Sep 30. With 7,000 + 535 more by
  Oct 14 (10,004 tokens): 500 + 9,000 × 0.25 + 4 × 0.125 = 2,750.5 → **2,750** (half-even;
  half-up would say 2,751), so the Oct 14 accrual is 2,750 − 867 = **1,883** and the Oct 15
  invoice INV-2026-000003 is 2,750. Its next cycle has 3 tokens by Oct 31: 1.5 → **2**.
- ``tokyo`` (calendar cycles from Sep 11) pays the base fee in advance: the first cycle
  [Sep 11, Oct 1) is 20 of 30 days, 666.67 → **667** (INV-2026-000001, Sep 11), recognized
  by Sep 30; October's full **1,000** is invoiced Oct 1 (INV-2026-000002).

The bank pays 667 (Oct 5), 2,750 (Oct 20) and 1,000 (Oct 22) against the three invoices;
a fourth row of 1,000.5 JPY is rejected (``bad_number``): a yen has no fraction. Cash on
Nov 1: 667 + 2,750 + 1,000 = **4,417 JPY**.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from click.testing import CliRunner

from ledger.books import close_path, load_books, sealed_months
from ledger.cli import cli
from tests.support.workspaces import balance, module_scope, write_workspace

METERS = (
    "meters:\n  tokens: "
    "{event_type: llm.completion, aggregation: sum, value: tokens, unit: token}\n"
)
PLANS = """\
plans:
  y:
    currency: JPY
    charges:
      - meter: tokens
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0.5"}
          - {up_to: 10000, unit_price: "0.25"}
          - {unit_price: "0.125"}
  f:
    currency: JPY
    base_fee: {amount: "1000", timing: advance}
"""
CUSTOMERS = """\
customers:
  kaisha:
    currency: JPY
    billing_anchor: start
    payment_terms_days: 14
    subscriptions: [{plan: y, start: 2026-09-15}]
  tokyo: {currency: JPY, billing_anchor: calendar, subscriptions: [{plan: f, start: 2026-09-11}]}
"""
USAGE = """\
id,customer,type,time,tokens
k1,kaisha,llm.completion,2026-09-20T09:00:00Z,1469
k2,kaisha,llm.completion,2026-09-28T09:00:00Z,1000
k3,kaisha,llm.completion,2026-10-03T09:00:00Z,7000
k4,kaisha,llm.completion,2026-10-10T09:00:00Z,535
k5,kaisha,llm.completion,2026-10-20T09:00:00Z,3
"""
BANK = """\
date,amount,currency,invoice,reference
2026-10-05,667,JPY,INV-2026-000001,BANK-J1
2026-10-20,2750,JPY,INV-2026-000003,BANK-J2
2026-10-21,1000.5,JPY,INV-2026-000002,BANK-J3
2026-10-22,1000,JPY,INV-2026-000002,BANK-J4
"""


def meterbook(root: Path, *args: str) -> dict[str, object] | str:
    result = CliRunner().invoke(cli, ["--workspace", str(root), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture(scope=module_scope)
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_workspace(
        tmp_path_factory.mktemp("jpy") / "ws", meters=METERS, plans=PLANS, customers=CUSTOMERS
    )
    (root / "usage.csv").write_text(USAGE)
    (root / "bank.csv").write_text(BANK)
    assert meterbook(root, "ingest", "--json", str(root / "usage.csv")) == {
        "file": str(root / "usage.csv"),
        "received": 5,
        "accepted": 5,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "reasons": {},
    }
    meterbook(root, "invoice", "--through", "2026-10-31")
    assert meterbook(root, "ingest", "--allow-rejects", "--json", str(root / "bank.csv")) == {
        "file": str(root / "bank.csv"),
        "received": 4,
        "accepted": 3,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 1,
        "reasons": {"bad_number": 1},
    }
    meterbook(root, "close", "2026-09")
    meterbook(root, "close", "2026-10")
    return root


@pytest.fixture(scope=module_scope)
def entries(root: Path) -> list[data.Directive]:
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []  # what bean-check reports
    return entries


def test_both_months_are_sealed(root: Path, entries: list[data.Directive]) -> None:
    assert sealed_months(root / "books") == {"2026-09", "2026-10"}


def test_usage_accrues_in_whole_yen_rounded_half_even(entries: list[data.Directive]) -> None:
    unbilled = "Assets:Receivables:Unbilled:Kaisha"
    assert balance(entries, unbilled, date(2026, 10, 1)) == Decimal("867")
    assert balance(entries, unbilled, date(2026, 10, 15)) == Decimal("2750")  # 867 + 1,883
    assert balance(entries, unbilled, date(2026, 10, 16)) == 0  # invoiced Oct 15
    assert balance(entries, unbilled, date(2026, 11, 1)) == Decimal("2")  # 3 tokens: 1.5 → 2
    assert balance(entries, "Income:Usage:Tokens", date(2026, 11, 1)) == Decimal("-2752")
    accruals = sorted(
        (e.date, p.units.number)
        for e in entries
        if isinstance(e, data.Transaction)
        for p in e.postings
        if p.account == unbilled and "invoice" not in e.meta
    )
    assert accruals == [
        (date(2026, 9, 30), Decimal("867")),
        (date(2026, 10, 14), Decimal("1883")),
        (date(2026, 10, 31), Decimal("2")),
    ]


def test_base_fee_prorated_to_whole_yen(entries: list[data.Directive]) -> None:
    deferred = "Liabilities:Deferred-Revenue:Tokyo"
    assert balance(entries, deferred, date(2026, 9, 12)) == Decimal(
        "-667"
    )  # 1,000 × 20/30 = 666.67
    assert balance(entries, deferred, date(2026, 10, 1)) == 0
    assert balance(entries, deferred, date(2026, 10, 2)) == Decimal("-1000")
    assert balance(entries, deferred, date(2026, 11, 1)) == 0
    assert balance(entries, "Income:Subscriptions:F", date(2026, 11, 1)) == Decimal("-1667")


def test_payments_settle_every_invoice(entries: list[data.Directive]) -> None:
    assert balance(entries, "Assets:Bank:Operating", date(2026, 11, 1)) == Decimal("4417")
    for customer in ("Kaisha", "Tokyo"):
        assert balance(entries, f"Assets:Receivables:Invoiced:{customer}", date(2026, 11, 1)) == 0


def test_no_yen_has_decimals_in_the_books(root: Path, entries: list[data.Directive]) -> None:
    amounts = [
        p.units.number for e in entries if isinstance(e, data.Transaction) for p in e.postings
    ]
    amounts += [e.amount.number for e in entries if isinstance(e, data.Balance)]
    assert amounts and all(
        a == a.to_integral_value() and a.as_tuple().exponent == 0 for a in amounts
    )
    text = "".join(p.read_text() for p in sorted((root / "books").rglob("*.beancount")))
    assert re.findall(r"-?\d[\d,]*\.\d+\s+JPY", text) == []
    assert re.search(r"Income:Usage:Tokens\s+-1883 JPY", text)


def test_close_asserts_whole_yen_balances(root: Path) -> None:
    september = {
        " ".join(line.split())
        for line in close_path(root / "books", "2026-09").read_text().splitlines()
    }
    assert "2026-10-01 balance Assets:Receivables:Unbilled:Kaisha 867 JPY" in september
    assert "2026-10-01 balance Assets:Receivables:Invoiced:Tokyo 667 JPY" in september
    october = {
        " ".join(line.split())
        for line in close_path(root / "books", "2026-10").read_text().splitlines()
    }
    assert "2026-11-01 balance Assets:Receivables:Unbilled:Kaisha 2 JPY" in october
    assert "2026-11-01 balance Assets:Bank:Operating 4417 JPY" in october


def test_invoice_documents_total_whole_yen(root: Path) -> None:
    documents = {
        p.stem: json.loads(p.read_text())
        for p in sorted((root / "books" / "documents").glob("*.json"))
    }
    assert {
        n: (d["customer"], d["date"], d["total"], [line["amount"] for line in d["lines"]])
        for n, d in documents.items()
    } == {
        "INV-2026-000001": ("tokyo", "2026-09-11", "667", ["667"]),
        "INV-2026-000002": ("tokyo", "2026-10-01", "1000", ["1000"]),
        "INV-2026-000003": ("kaisha", "2026-10-15", "2750", ["2750"]),
    }
    [usage] = documents["INV-2026-000003"]["lines"]
    assert documents["INV-2026-000003"]["due"] == "2026-10-29"
    # the tiers show the exact sub-yen arithmetic; only the cumulative line is rounded
    assert [(t["quantity"], t["unit_price"], Decimal(t["amount"])) for t in usage["tiers"]] == [
        ("1000", "0.5", Decimal("500")),
        ("9000", "0.25", Decimal("2250")),
        ("4", "0.125", Decimal("0.5")),
    ]
    assert usage["quantity"] == "10004"
    # the customer reading the HTML sees why 2,750.5 of tiers bill 2,750
    html = (root / "books" / "documents" / "INV-2026-000003.html").read_text()
    assert "rounded half-even to the currency's minor unit: -0.5" in html
