"""Effective-dated plan versions and ``meterbook rerate``, through the real pipeline and Beancount.

Plan ``u`` charges 1.00 per API call. Calendar customers:

- ``acme``: 30 calls in September (INV-2026-000001 of Oct 1: 30.00), 20 in October
  (INV-2026-000002 of Nov 1: 20.00), 10 in November;
- ``beta``: 10 calls in October (INV-2026-000003 of Nov 1: 10.00), paid on Nov 5.

Then a version effective 2026-10-01 is added to the plan, after the fact.
Every number below is computed by hand in the comments.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from click.testing import CliRunner, Result

from ledger.books import close_path, load_books, month_path
from ledger.cli import cli
from ledger.credit_notes import load_credit_notes
from ledger.errors import RulesError
from ledger.events import Event, parse_time
from ledger.invoicing import load_invoices
from ledger.payments import ingest_payments
from ledger.rerate import load_adjustments
from ledger.rules import load_rules
from ledger.session import Session
from ledger.store import batches, events
from ledger.workspace import Workspace

BEAN_CHECK = Path(sys.executable).parent / "bean-check"
METERS = "meters:\n  api_calls: {event_type: api.request, aggregation: count, unit: call}\n"
PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""
CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""


def version(price: str, effective: str = "2026-10-01") -> str:
    return PLANS + f"""\
    versions:
      - effective: {effective}
        charges:
          - {{meter: api_calls, model: unit, unit_price: "{price}"}}
"""


def calls(customer: str, month: int, n: int) -> list[Event]:
    return [Event.build(source="t", id=f"{customer}-{month}-{i}", customer=customer, type="api.request",
                        time=parse_time(f"2026-{month:02d}-{1 + i % 28:02d}T12:00:00Z"), properties={})
            for i in range(n)]


def insert(session: Session, rows: list[Event]) -> None:
    with session.engine.begin() as conn:
        batch = conn.execute(batches.insert().values(
            file="t", sha256="0" * 64, importer="test", started_at="now")).inserted_primary_key[0]
        conn.execute(events.insert(), [e.row(batch) for e in rows])


def make(tmp_path: Path, store: str = "sqlite:///var/events.sqlite") -> Path:
    """The workspace above, invoiced through Nov 1; beta's invoice paid on Nov 5."""
    root = tmp_path / "ws"
    (root / "rules").mkdir(parents=True)
    (root / "meterbook.toml").write_text(f'store = "{store}"\n')
    (root / "rules" / "meters.yaml").write_text(METERS)
    (root / "rules" / "plans.yaml").write_text(PLANS)
    (root / "rules" / "customers.yaml").write_text(CUSTOMERS)
    session = open_(root)
    insert(session, [*calls("acme", 9, 30), *calls("acme", 10, 20), *calls("acme", 11, 10), *calls("beta", 10, 10)])
    issued = session.invoice(date(2026, 11, 1))
    assert [(i.number, i.customer, i.total) for i in issued] == [
        ("INV-2026-000001", "acme", Decimal("30.00")), ("INV-2026-000002", "acme", Decimal("20.00")),
        ("INV-2026-000003", "beta", Decimal("10.00"))]
    payments = tmp_path / "payments.csv"
    payments.write_text("date,amount,currency,invoice,reference\n2026-11-05,10.00,USD,INV-2026-000003,BANK-1\n")
    assert ingest_payments(session.engine, payments).accepted == 1
    session.post(date(2026, 11, 20))
    return root


def open_(root: Path) -> Session:
    return Session.open(Workspace.load(root))


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(root), *args])


def books(root: Path) -> list[data.Directive]:
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    return entries


def balance(entries: list[data.Directive], account: str, on: date) -> Decimal:
    """Balance at the start of ``on`` (like a Beancount balance assertion)."""
    return sum((p.units.number for e in entries if isinstance(e, data.Transaction) and e.date < on
                for p in e.postings if p.account == account), Decimal(0))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "books").rglob("*")) if p.is_file()}


def test_price_cut_after_a_sealed_close_is_a_credit_note_in_the_open_month(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert run(root, "close", "2026-09").exit_code == 0
    assert run(root, "close", "2026-10").exit_code == 0
    sealed = {p: sha(p) for p in (month_path(root / "books", "2026-09"), close_path(root / "books", "2026-09"),
                                  month_path(root / "books", "2026-10"), close_path(root / "books", "2026-10"))}
    before = books(root)
    # 30.00 + 20.00 invoiced to acme, nothing paid; beta's 10.00 paid
    assert balance(before, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 21)) == Decimal("50.00")

    (root / "rules" / "plans.yaml").write_text(version("0.80"))  # retroactive: October costs 0.80 a call
    # Issued cycles keep the version they were invoiced under: posting alone changes nothing billed.
    open_(root).post(date(2026, 11, 20))
    assert not [e for e in books(root) if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert balance(books(root), "Income:Usage:Api-Calls", date(2026, 11, 21)) == Decimal("-60.00")

    dry = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "-4.00" in dry.output
    assert load_adjustments(open_(root).engine) == [] and load_credit_notes(open_(root).engine) == []

    result = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # acme's October: 20 calls × 0.80 = 16.00 against 20.00 invoiced → −4.00; beta's: 8.00 − 10.00 = −2.00
    assert any(line.split() == ["INV-2026-000002", "2026-10-01/2026-11-01", "api_calls", "20.00", "16.00",
                                "-4.00", "CN-2026-000001"] for line in lines), result.output
    assert any(line.split() == ["INV-2026-000003", "2026-10-01/2026-11-01", "api_calls", "10.00", "8.00",
                                "-2.00", "CN-2026-000002"] for line in lines), result.output
    assert "INV-2026-000001" not in result.output  # September starts before --from
    assert "posted 2 credit notes and 0 debit adjustments" in result.output

    assert {p: sha(p) for p in sealed} == sealed
    checked = subprocess.run([str(BEAN_CHECK), str(root / "books" / "main.beancount")], capture_output=True,
                             text=True, env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    entries = books(root)
    notes = {e.meta["credit_note"]: e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta}
    acme = notes["CN-2026-000001"]
    assert acme.date == date(2026, 11, 20) and acme.meta["rerate"] is True
    assert acme.meta["rules"] == open_(root).rules.hash and acme.meta["cycle"] == "2026-10-01/2026-11-01"
    assert {"CN-2026-000001", "INV-2026-000002", "acme-2026-10-01"} <= acme.links
    # the unpaid invoice: acme owes exactly 4.00 less; the paid one: 2.00 is owed back to beta
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 21)) == Decimal("46.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", date(2026, 11, 21)) == 0
    assert balance(entries, "Liabilities:Refunds:Beta", date(2026, 11, 21)) == Decimal("-2.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 21)) == Decimal("6.00")
    assert "CN-2026-000001" in month_path(root / "books", "2026-11").read_text()
    assert (root / "books" / "documents" / "CN-2026-000001.html").exists()
    assert run(root, "check").exit_code == 0

    # a second run posts nothing: the differences are already in the store and the books
    snapshot = files(root)
    again = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert again.exit_code == 0, again.output
    assert "nothing to re-rate" in again.output
    assert len(load_credit_notes(open_(root).engine)) == 2 and files(root) == snapshot
    # and never into a sealed month
    sealed_date = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-10-31")
    assert sealed_date.exit_code == 2 and "sealed month" in sealed_date.output
    for args, needle in ((["--from", "10/01/2026"], "--from: '10/01/2026'"),
                         (["--from", "2026-10-01", "--date", "20261120"], "--date: '20261120'")):
        bad = run(root, "rerate", *args)
        assert bad.exit_code == 2 and needle in bad.output and len(bad.output.strip().splitlines()) == 1
    assert files(root) == snapshot


def test_price_rise_is_a_debit_adjustment_billed_on_the_next_invoice(tmp_path: Path, store_url: str) -> None:
    root = make(tmp_path, store_url)
    (root / "rules" / "plans.yaml").write_text(version("1.25"))
    result = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    # acme: 20 × 1.25 = 25.00 − 20.00 = +5.00; beta: 12.50 − 10.00 = +2.50
    assert [(r["customer"], r["invoice"], r["invoiced"], r["rerated"], r["difference"], r["document"])
            for r in rows if r["type"] == "line"] == [
        ("acme", "INV-2026-000002", "20.00", "25.00", "5.00", "DA-2026-000001"),
        ("beta", "INV-2026-000003", "10.00", "12.50", "2.50", "DA-2026-000002")]
    assert rows[-1]["type"] == "summary" and rows[-1]["documents"] == ["DA-2026-000001", "DA-2026-000002"]
    entries = books(root)
    debit = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("debit_adjustment")]
    assert [(e.date, e.meta["rerate"], sorted(e.links)) for e in debit] == [
        (date(2026, 11, 20), True, ["DA-2026-000001", "INV-2026-000002", "acme-2026-10-01"]),
        (date(2026, 11, 20), True, ["DA-2026-000002", "INV-2026-000003", "beta-2026-10-01"])]
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 21)) == Decimal("5.00")
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 11, 21)) == Decimal("-67.50")  # 60.00 + 7.50

    session = open_(root)
    issued = session.invoice(date(2026, 12, 1))
    # acme's Dec 1 invoice: November 10 calls at the new price 12.50 + the 5.00 adjustment = 17.50
    assert [(i.customer, i.total) for i in issued] == [("acme", Decimal("17.50"))]
    assert [(line.kind, line.amount) for line in issued[0].lines] == [
        ("usage", Decimal("12.50")), ("rerate", Decimal("5.00"))]
    entries = books(root)
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 12, 2)) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 12, 2)) == Decimal("67.50")
    # beta has no December invoice: its 2.50 waits in unbilled for the next one
    assert balance(entries, "Assets:Receivables:Unbilled:Beta", date(2026, 12, 2)) == Decimal("2.50")
    assert len(load_invoices(session.engine)) == 4
    again = run(root, "rerate", "--from", "2026-10-01", "--date", "2026-12-01")
    assert again.exit_code == 0 and "nothing to re-rate" in again.output
    assert session.invoice(date(2026, 12, 1)) == []


def test_rating_picks_the_version_in_effect_at_the_cycle_start(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "rules").mkdir(parents=True)
    (root / "meterbook.toml").write_text('store = "sqlite:///var/events.sqlite"\n')
    (root / "rules" / "meters.yaml").write_text(METERS)
    (root / "rules" / "plans.yaml").write_text(version("0.80"))
    (root / "rules" / "customers.yaml").write_text(
        "customers:\n  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: u, start: 2026-09-15}]}\n")
    session = open_(root)
    events_ = [Event.build(source="t", id=f"a{i}", customer="ann", type="api.request",
                           time=parse_time(f"2026-{day}T12:00:00Z"), properties={})
               for i, day in enumerate(["09-20", "10-05", "10-20", "11-01"])]
    insert(session, events_)
    latest = {r.cycle.key: r.usage_amount for r in session.rate(date(2026, 11, 14)).latest()}
    # [Sep 15, Oct 15) started before the version: 2 calls × 1.00, even the one on Oct 5;
    # [Oct 15, Nov 15) started after it: 2 calls × 0.80
    assert latest == {"2026-09-15/2026-10-15": Decimal("2.00"), "2026-10-15/2026-11-15": Decimal("1.60")}


@pytest.mark.parametrize(("versions", "message"), [
    ("      - {effective: 2026-10-01, minimum_commitment: \"5\"}\n"
     "      - {effective: 2026-09-01, minimum_commitment: \"6\"}\n",
     "plans.yaml:8: plans.u.versions[1].effective: effective 2026-09-01 must be after the previous version's "
     "2026-10-01"),
    ("      - {effective: 2026-10-01, currency: EUR, minimum_commitment: \"5\"}\n",
     "plans.yaml:7: plans.u.versions[0].currency: a version cannot change the plan's currency (USD → EUR)"),
    ("      - {effective: 2026-10-01, cycle: yearly, minimum_commitment: \"5\"}\n",
     "plans.yaml:7: plans.u.versions[0].cycle: a version cannot change the plan's cycle"),
    ("      - {effective: 2026-10-01}\n",
     "plans.yaml:7: plans.u.versions[0]: a version changes charges, base_fee or minimum_commitment"),
    ("      - {effective: 2026-10-01, charges: [{meter: nope, model: unit, unit_price: \"1\"}]}\n",
     "plans.yaml:7: plans.u.versions[0].charges[0].meter: unknown meter 'nope'"),
    ("      - {effective: 2026-10-01, charges: [{meter: api_calls, model: unit, unit_price: 0.8}]}\n",
     "plans.yaml:7: plans.u.versions[0].charges[0]: unit: unit_price: expected a decimal string"),
    ("      - {effective: 2026-10-01, price: \"1\"}\n",
     "plans.yaml:7: plans.u.versions[0].price: unknown key"),
    ("      - {effective: soon, minimum_commitment: \"5\"}\n",
     "plans.yaml:7: plans.u.versions[0].effective: Input should be a valid date"),
], ids=["dates-decrease", "currency", "cycle", "empty", "unknown-meter", "float-price", "unknown-key", "bad-date"])
def test_versions_validation_names_file_line_and_key(tmp_path: Path, versions: str, message: str) -> None:
    from ledger.registry import load_registry

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    (rules_dir / "plans.yaml").write_text(PLANS + "    versions:\n" + versions)
    with pytest.raises(RulesError) as err:
        load_rules(rules_dir, load_registry(None).pricing_models)
    assert message in str(err.value)


def test_versions_are_cumulative_and_change_the_rules_hash(tmp_path: Path) -> None:
    from ledger.registry import load_registry

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    (rules_dir / "plans.yaml").write_text(PLANS)
    plain = load_rules(rules_dir).hash
    (rules_dir / "plans.yaml").write_text(version("0.80") + '      - {effective: 2026-12-01, minimum_commitment: "9"}\n')
    rules = load_rules(rules_dir, load_registry(None).pricing_models)
    assert rules.hash != plain
    plan = rules.plans["u"]
    december = plan.as_of(plan.version_at(date(2026, 12, 1)))
    # the December version only adds a commitment: the October price carries over
    assert december.minimum_commitment == Decimal("9")
    assert december.charges[0].terms == plan.as_of(date(2026, 10, 1)).charges[0].terms
    assert plan.as_of(plan.version_at(date(2026, 9, 30))).charges[0].params == {"unit_price": "1.00"}
