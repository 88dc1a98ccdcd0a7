"""Effective-dated plan versions and ``meterbook rerate``, through the real pipeline and Beancount.

Plan ``u`` charges 1.00 per API call. Calendar customers:

- ``acme``: 30 calls in September (INV-2026-000001 of Oct 1: 30.00), 20 in October
  (INV-2026-000002 of Nov 1: 20.00), 10 in November;
- ``beta``: 10 calls in October (INV-2026-000003 of Nov 1: 10.00), paid on Nov 5.

Then a version effective 2026-10-01 is added to the plan, after the fact.
The workspace: tests/support/rerate.py. Every number below is computed by hand in the
comments.
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

from ledger.books import close_path, load_books, month_path
from ledger.errors import RulesError
from ledger.events import Event, parse_time
from ledger.facts.adjustments import load_adjustments
from ledger.facts.credit_notes import load_credit_notes
from ledger.facts.invoices import load_invoices
from ledger.rules import load_rules
from tests.support.rerate import CUSTOMERS, PLANS, make, version
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    book_hashes,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

BEAN_CHECK = Path(sys.executable).parent / "bean-check"


def books(root: Path) -> list[data.Directive]:
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    return entries


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_price_cut_after_a_sealed_close_is_a_credit_note_in_the_open_month(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert run_cli(root, "close", "2026-09").exit_code == 0
    assert run_cli(root, "close", "2026-10").exit_code == 0
    sealed = {
        p: sha(p)
        for p in (
            month_path(root / "books", "2026-09"),
            close_path(root / "books", "2026-09"),
            month_path(root / "books", "2026-10"),
            close_path(root / "books", "2026-10"),
        )
    }
    before = books(root)
    # 30.00 + 20.00 invoiced to acme, nothing paid; beta's 10.00 paid
    assert balance(before, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 21)) == Decimal(
        "50.00"
    )

    (root / "rules" / "plans.yaml").write_text(
        version("0.80")
    )  # retroactive: October costs 0.80 a call
    # Issued cycles keep the version they were invoiced under: posting alone changes nothing billed.
    open_session(root).post(date(2026, 11, 20))
    assert not [e for e in books(root) if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert balance(books(root), "Income:Usage:Api-Calls", date(2026, 11, 21)) == Decimal("-60.00")

    dry = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "-4.00" in dry.output
    assert (
        load_adjustments(open_session(root).engine) == []
        and load_credit_notes(open_session(root).engine) == []
    )

    result = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # acme's October: 20 calls × 0.80 = 16.00 against 20.00 invoiced → −4.00;
    # beta's: 8.00 − 10.00 = −2.00
    assert any(
        line.split()
        == [
            "INV-2026-000002",
            "2026-10-01/2026-11-01",
            "api_calls",
            "20.00",
            "16.00",
            "-4.00",
            "CN-2026-000001",
        ]
        for line in lines
    ), result.output
    assert any(
        line.split()
        == [
            "INV-2026-000003",
            "2026-10-01/2026-11-01",
            "api_calls",
            "10.00",
            "8.00",
            "-2.00",
            "CN-2026-000002",
        ]
        for line in lines
    ), result.output
    assert "INV-2026-000001" not in result.output  # September starts before --from
    assert "posted 2 credit notes and 0 debit adjustments" in result.output

    assert {p: sha(p) for p in sealed} == sealed
    checked = subprocess.run(
        [str(BEAN_CHECK), str(root / "books" / "main.beancount")],
        capture_output=True,
        text=True,
        env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"},
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    entries = books(root)
    notes = {
        e.meta["credit_note"]: e
        for e in entries
        if isinstance(e, data.Transaction) and "credit_note" in e.meta
    }
    acme = notes["CN-2026-000001"]
    assert acme.date == date(2026, 11, 20) and acme.meta["rerate"] is True
    assert (
        acme.meta["rules"] == open_session(root).rules.hash
        and acme.meta["cycle"] == "2026-10-01/2026-11-01"
    )
    assert {"CN-2026-000001", "INV-2026-000002", "acme-2026-10-01"} <= acme.links
    # the unpaid invoice: acme owes exactly 4.00 less; the paid one: 2.00 is owed back to beta
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 21)) == Decimal(
        "46.00"
    )
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", date(2026, 11, 21)) == 0
    assert balance(entries, "Liabilities:Refunds:Beta", date(2026, 11, 21)) == Decimal("-2.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 21)) == Decimal("6.00")
    assert "CN-2026-000001" in month_path(root / "books", "2026-11").read_text()
    assert (root / "books" / "documents" / "CN-2026-000001.html").exists()
    assert run_cli(root, "check").exit_code == 0

    # a second run posts nothing: the differences are already in the store and the books
    snapshot = book_hashes(root / "books")
    again = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert again.exit_code == 0, again.output
    assert "nothing to re-rate" in again.output
    assert (
        len(load_credit_notes(open_session(root).engine)) == 2
        and book_hashes(root / "books") == snapshot
    )
    # and never into a sealed month
    sealed_date = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-10-31")
    assert sealed_date.exit_code == 2 and "sealed month" in sealed_date.output
    for args, needle in (
        (["--from", "10/01/2026"], "--from: '10/01/2026'"),
        (["--from", "2026-10-01", "--date", "20261120"], "--date: '20261120'"),
    ):
        bad = run_cli(root, "rerate", *args)
        assert (
            bad.exit_code == 2
            and needle in bad.output
            and len(bad.output.strip().splitlines()) == 1
        )
    assert book_hashes(root / "books") == snapshot


def test_price_rise_is_a_debit_adjustment_billed_on_the_next_invoice(
    tmp_path: Path, store_url: str
) -> None:
    root = make(tmp_path, store_url)
    (root / "rules" / "plans.yaml").write_text(version("1.25"))
    result = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    # acme: 20 × 1.25 = 25.00 − 20.00 = +5.00; beta: 12.50 − 10.00 = +2.50
    assert [
        (r["customer"], r["invoice"], r["invoiced"], r["rerated"], r["difference"], r["document"])
        for r in rows
        if r["type"] == "line"
    ] == [
        ("acme", "INV-2026-000002", "20.00", "25.00", "5.00", "DA-2026-000001"),
        ("beta", "INV-2026-000003", "10.00", "12.50", "2.50", "DA-2026-000002"),
    ]
    assert rows[-1]["type"] == "summary" and rows[-1]["documents"] == [
        "DA-2026-000001",
        "DA-2026-000002",
    ]
    entries = books(root)
    debit = [
        e for e in entries if isinstance(e, data.Transaction) and e.meta.get("debit_adjustment")
    ]
    assert [(e.date, e.meta["rerate"], sorted(e.links)) for e in debit] == [
        (date(2026, 11, 20), True, ["DA-2026-000001", "INV-2026-000002", "acme-2026-10-01"]),
        (date(2026, 11, 20), True, ["DA-2026-000002", "INV-2026-000003", "beta-2026-10-01"]),
    ]
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 21)) == Decimal(
        "5.00"
    )
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 11, 21)) == Decimal(
        "-67.50"
    )  # 60.00 + 7.50

    session = open_session(root)
    issued = session.invoice(date(2026, 12, 1))
    # acme's Dec 1 invoice: November 10 calls at the new price 12.50 + the 5.00 adjustment = 17.50
    assert [(i.customer, i.total) for i in issued] == [("acme", Decimal("17.50"))]
    assert [(line.kind, line.amount) for line in issued[0].lines] == [
        ("usage", Decimal("12.50")),
        ("rerate", Decimal("5.00")),
    ]
    entries = books(root)
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 12, 2)) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 12, 2)) == Decimal(
        "67.50"
    )
    # beta has no December invoice: its 2.50 waits in unbilled for the next one
    assert balance(entries, "Assets:Receivables:Unbilled:Beta", date(2026, 12, 2)) == Decimal(
        "2.50"
    )
    assert len(load_invoices(session.engine)) == 4
    again = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-12-01")
    assert again.exit_code == 0 and "nothing to re-rate" in again.output
    assert session.invoice(date(2026, 12, 1)) == []


def test_rating_picks_the_version_in_effect_at_the_cycle_start(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=version("0.80"),
        customers=(
            "customers:\n  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: u, "
            "start: 2026-09-15}]}\n"
        ),
    )
    session = open_session(root)
    events_ = [
        Event.build(
            source="t",
            id=f"a{i}",
            customer="ann",
            type="api.request",
            time=parse_time(f"2026-{day}T12:00:00Z"),
            properties={},
        )
        for i, day in enumerate(["09-20", "10-05", "10-20", "11-01"])
    ]
    insert_events(session.engine, events_)
    latest = {r.cycle.key: r.usage_amount for r in session.rate(date(2026, 11, 14)).latest()}
    # [Sep 15, Oct 15) started before the version: 2 calls × 1.00, even the one on Oct 5;
    # [Oct 15, Nov 15) started after it: 2 calls × 0.80
    assert latest == {
        "2026-09-15/2026-10-15": Decimal("2.00"),
        "2026-10-15/2026-11-15": Decimal("1.60"),
    }


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            '      - {effective: 2026-10-01, minimum_commitment: "5"}\n'
            '      - {effective: 2026-09-01, minimum_commitment: "6"}\n',
            "plans.yaml:8: plans.u.versions[1].effective: effective 2026-09-01 must be after the "
            "previous version's "
            "2026-10-01",
        ),
        (
            '      - {effective: 2026-10-01, currency: EUR, minimum_commitment: "5"}\n',
            "plans.yaml:7: plans.u.versions[0].currency: a version cannot change the plan's "
            "currency (USD → EUR)",
        ),
        (
            '      - {effective: 2026-10-01, cycle: yearly, minimum_commitment: "5"}\n',
            "plans.yaml:7: plans.u.versions[0].cycle: a version cannot change the plan's cycle",
        ),
        (
            "      - {effective: 2026-10-01}\n",
            "plans.yaml:7: plans.u.versions[0]: a version changes charges, base_fee or "
            "minimum_commitment",
        ),
        (
            "      - {effective: 2026-10-01, charges: [{meter: nope, model: unit, unit_price: "
            '"1"}]}\n',
            "plans.yaml:7: plans.u.versions[0].charges[0].meter: unknown meter 'nope'",
        ),
        (
            "      - {effective: 2026-10-01, charges: [{meter: api_calls, model: unit, "
            "unit_price: 0.8}]}\n",
            "plans.yaml:7: plans.u.versions[0].charges[0]: unit: unit_price: expected a decimal "
            "string",
        ),
        (
            '      - {effective: 2026-10-01, price: "1"}\n',
            "plans.yaml:7: plans.u.versions[0].price: unknown key",
        ),
        (
            '      - {effective: soon, minimum_commitment: "5"}\n',
            "plans.yaml:7: plans.u.versions[0].effective: Input should be a valid date",
        ),
    ],
    ids=[
        "dates-decrease",
        "currency",
        "cycle",
        "empty",
        "unknown-meter",
        "float-price",
        "unknown-key",
        "bad-date",
    ],
)
def test_versions_validation_names_file_line_and_key(
    tmp_path: Path, versions: str, message: str
) -> None:
    from ledger.registry import load_registry

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS_CALLS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    (rules_dir / "plans.yaml").write_text(PLANS + "    versions:\n" + versions)
    with pytest.raises(RulesError) as err:
        load_rules(rules_dir, load_registry(None).pricing_models)
    assert message in str(err.value)


def test_versions_are_cumulative_and_change_the_rules_hash(tmp_path: Path) -> None:
    from ledger.registry import load_registry

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS_CALLS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    (rules_dir / "plans.yaml").write_text(PLANS)
    plain = load_rules(rules_dir).hash
    (rules_dir / "plans.yaml").write_text(
        version("0.80") + '      - {effective: 2026-12-01, minimum_commitment: "9"}\n'
    )
    rules = load_rules(rules_dir, load_registry(None).pricing_models)
    assert rules.hash != plain
    plan = rules.plans["u"]
    december = plan.as_of(plan.version_at(date(2026, 12, 1)))
    # the December version only adds a commitment: the October price carries over
    assert december.minimum_commitment == Decimal("9")
    assert december.charges[0].terms == plan.as_of(date(2026, 10, 1)).charges[0].terms
    assert plan.as_of(plan.version_at(date(2026, 9, 30))).charges[0].params == {
        "unit_price": "1.00"
    }


# --- terms edited in place after invoicing ----------------------------------------------------
#
# Plan ``g`` charges tokens in graduated tiers: the first 1,000 free, then 0.02 each.
# acme (from Oct 1) uses 5,500 tokens in October: 4,500 × 0.02 = 90.00 on INV-2026-000001
# of Nov 1; September (sealed) and October are closed. Raising 0.02 to 0.025 *in place*
# would re-price October at 4,500 × 0.025 = 112.50, a silent +22.50.

TOKENS = "meters:\n  tokens: {event_type: llm.call, aggregation: sum, value: tokens, unit: token}\n"
TIERED = """\
plans:
  g:
    currency: USD
    base_fee: {amount: "5.00", timing: arrears}
    charges:
      - meter: tokens
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0"}
          - {unit_price: "0.02"}
"""
# the same terms written otherwise: keys reordered, other quotes, 1000 as a string,
# "0.020" for "0.02", "5" for "5.00", flow style for block style
REFORMATTED = """\
plans:
  g:
    charges:
      - tiers: [{unit_price: '0', up_to: '1000'}, {unit_price: '0.020'}]
        model: 'graduated'
        meter: tokens
    base_fee:
      timing: "arrears"
      amount: '5'
    currency: "USD"
"""
EDITED = TIERED.replace('"0.02"', '"0.025"')
# the way to make that change: original terms restored, a version from Oct 1
VERSIONED = (
    TIERED
    + """\
    versions:
      - effective: 2026-10-01
        charges:
          - meter: tokens
            model: graduated
            tiers:
              - {up_to: 1000, unit_price: "0"}
              - {unit_price: "0.025"}
"""
)
#: plans.yaml line 2 is the plan ``g:``, whose original terms were edited
REFUSAL = (
    "rules/plans.yaml:2: plans.g: the terms of plan 'g' or of its meters that INV-2026-000001 "
    "billed for cycle acme-2026-10-01 "
    "(original terms) changed in place: restore the terms, add a `versions:` entry effective "
    "from the change "
    "date, then run `meterbook rerate --from DATE`. Nothing was written"
)


def tiered(tmp_path: Path) -> Path:
    """acme on plan g from Oct 1: 5,500 tokens in October, invoiced 95.00 on Nov 1; October closed
    (September, before the first activity, cannot be)."""
    root = write_workspace(
        tmp_path / "ws",
        meters=TOKENS,
        plans=TIERED,
        customers=(
            "customers:\n  acme: {currency: USD, billing_anchor: calendar, subscriptions: "
            "[{plan: g, start: 2026-10-01}]}\n"
        ),
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            Event.build(
                source="t",
                id=f"t{i}",
                customer="acme",
                type="llm.call",
                time=parse_time(f"2026-10-{day:02d}T12:00:00Z"),
                properties={"tokens": tokens},
            )
            for i, (day, tokens) in enumerate([(3, "2000"), (14, "2000"), (27, "1500")])
        ],
    )
    issued = session.invoice(date(2026, 11, 1))
    # 4,500 tokens above the free 1,000 × 0.02 = 90.00, plus the 5.00 arrears fee
    assert [(i.number, i.total) for i in issued] == [("INV-2026-000001", Decimal("95.00"))]
    session.post(date(2026, 11, 20))
    closed = run_cli(root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    return root


def account_totals(entries: list[data.Directive]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        for p in e.postings if isinstance(e, data.Transaction) else ():
            key = (p.account, p.units.currency)
            totals[key] = totals.get(key, Decimal(0)) + p.units.number
    return totals


def test_tier_price_edited_in_place_after_invoicing_is_named_and_refused(tmp_path: Path) -> None:
    from ledger.pins import changed_terms, require_unchanged_terms

    root = tiered(tmp_path)
    snapshot = book_hashes(root / "books")
    assert changed_terms(open_session(root).engine, open_session(root).rules) == []
    (root / "rules" / "plans.yaml").write_text(EDITED)

    session = open_session(root)
    drifts = changed_terms(session.engine, session.rules)
    assert [
        (d.invoice, d.customer, d.link, d.cycle, d.plan, d.version, d.part) for d in drifts
    ] == [
        (
            "INV-2026-000001",
            "acme",
            "acme-2026-10-01",
            "2026-10-01/2026-11-01",
            "g",
            date.min,
            "usage",
        )
    ]
    assert drifts[0].describe() == (
        "INV-2026-000001 acme-2026-10-01 (2026-10-01/2026-11-01): plan g, original "
        "terms: charges, commitment and arrears base fee (or its meters' definitions) edited "
        "since invoiced"
    )
    with pytest.raises(RulesError) as err:
        require_unchanged_terms(session)
    assert str(err.value) == REFUSAL
    # rerate would compare the edited terms with themselves (0 lines): it refuses instead
    refused = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert (refused.exit_code, refused.output) == (2, f"meterbook: error: {REFUSAL}\n")
    assert book_hashes(root / "books") == snapshot


def test_edit_in_place_stops_post_invoice_close_and_fails_check(tmp_path: Path) -> None:
    """Needs the wiring in ``Session.generate``/``Session.invoice`` and ``check_books``."""
    root = tiered(tmp_path)
    (root / "rules" / "plans.yaml").write_text(EDITED)
    snapshot = book_hashes(root / "books")
    for args in (
        ["post", "--through", "2026-11-20"],
        ["invoice", "--through", "2026-12-01"],
        ["close", "2026-11"],
    ):
        refused = run_cli(root, *args)
        assert (refused.exit_code, refused.output) == (2, f"meterbook: error: {REFUSAL}\n"), args
    # nothing was posted: no "Late adjustment" of +22.50 on the sealed, invoiced October
    assert book_hashes(root / "books") == snapshot
    assert len(load_invoices(open_session(root).engine)) == 1
    checked = run_cli(root, "check")
    assert checked.exit_code == 1, checked.output
    assert (
        "FAILED  pinned plan terms\n          1 pinned terms edited in place after invoicing: "
        "restore" in checked.output
    )
    assert (
        "INV-2026-000001 acme-2026-10-01 (2026-10-01/2026-11-01): plan g, original terms: charges, "
        "commitment and arrears base fee (or its meters' definitions) edited since invoiced"
    ) in checked.output


def test_reformatted_yaml_is_not_an_edit(tmp_path: Path) -> None:
    from ledger.pins import changed_terms

    root = tiered(tmp_path)
    before = open_session(root).rules.hash
    totals = account_totals(books(root))
    (root / "rules" / "plans.yaml").write_text(REFORMATTED)
    session = open_session(root)
    assert session.rules.hash != before  # other bytes, same terms
    assert changed_terms(session.engine, session.rules) == []
    posted = run_cli(root, "post", "--through", "2026-11-20")
    assert posted.exit_code == 0, posted.output
    assert not [e for e in books(root) if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert account_totals(books(root)) == totals
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
    assert (
        "ok      pinned plan terms\n          1 issued cycles, 1 pinned terms as invoiced\n"
        in checked.output
    )


def test_restored_terms_and_a_version_rerate_as_a_debit_adjustment(tmp_path: Path) -> None:
    from ledger.pins import changed_terms, require_unchanged_terms

    root = tiered(tmp_path)
    (root / "rules" / "plans.yaml").write_text(EDITED)
    assert len(changed_terms(open_session(root).engine, open_session(root).rules)) == 1
    # the fix the message asks for: the original terms back, the new price as a version
    (root / "rules" / "plans.yaml").write_text(VERSIONED)
    assert changed_terms(open_session(root).engine, open_session(root).rules) == []
    result = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    # October re-rated: 4,500 × 0.025 = 112.50 − 90.00 invoiced = +22.50, a debit adjustment
    assert [
        (r["invoice"], r["cycle"], r["invoiced"], r["rerated"], r["difference"], r["document"])
        for r in rows
        if r["type"] == "line"
    ] == [
        ("INV-2026-000001", "2026-10-01/2026-11-01", "90.00", "112.50", "22.50", "DA-2026-000001")
    ]
    entries = books(root)
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 21)) == Decimal(
        "22.50"
    )
    # the sealed October is untouched; the 22.50 is dated in the open November, with its document
    debit = [
        e for e in entries if isinstance(e, data.Transaction) and e.meta.get("debit_adjustment")
    ]
    assert [(e.date, e.meta["debit_adjustment"]) for e in debit] == [
        (date(2026, 11, 20), "DA-2026-000001")
    ]
    assert not [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert run_cli(root, "check").exit_code == 0

    # November is invoiced under the version: no tokens, the 5.00 fee and the 22.50 adjustment
    issued = open_session(root).invoice(date(2026, 12, 1))
    assert [(i.number, i.total) for i in issued] == [("INV-2026-000002", Decimal("27.50"))]
    # editing that version in place is caught too, at its own line (versions[0] is line 12)
    (root / "rules" / "plans.yaml").write_text(VERSIONED.replace('"0.025"', '"0.03"'))
    with pytest.raises(RulesError) as err:
        require_unchanged_terms(open_session(root))
    assert str(err.value).startswith(
        "rules/plans.yaml:12: plans.g.versions[0]: the terms of plan 'g' or of its meters that "
        "INV-2026-000002 billed for cycle "
        "acme-2026-11-01 (version effective 2026-10-01) changed in place: restore the terms"
    )


def test_pins_from_before_digests_are_unknown_not_drift(tmp_path: Path) -> None:
    """A store migrated from the schema without digests: its pins get NULL digests."""
    from sqlalchemy import inspect, text

    from ledger.pins import changed_terms, pinned_terms_check, unverified_pins
    from ledger.store import MIGRATIONS, _v_terms_digest, open_store

    root = tiered(tmp_path)
    url = f"sqlite:///{root / 'var' / 'events.sqlite'}"
    engine = open_store(url)
    columns = ("usage_digest", "fee_digest", "usage_invoice", "fee_invoice")
    with engine.begin() as conn:  # back to the previous schema, as an older meterbook left it
        for column in columns:
            conn.exec_driver_sql(f"ALTER TABLE cycle_terms DROP COLUMN {column}")
        conn.execute(
            text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
            {"v": str(MIGRATIONS.index(_v_terms_digest))},
        )
    engine.dispose()
    engine = open_store(url)  # the forward migration adds the columns back, empty
    with engine.connect() as conn:
        assert set(columns) <= {c["name"] for c in inspect(conn).get_columns("cycle_terms")}
        assert conn.execute(
            text("SELECT link, usage_version, usage_digest FROM cycle_terms")
        ).all() == [("acme-2026-10-01", "", None)]
    engine.dispose()

    (root / "rules" / "plans.yaml").write_text(EDITED)
    session = open_session(root)
    assert (
        changed_terms(session.engine, session.rules) == [] and unverified_pins(session.engine) == 1
    )
    result = pinned_terms_check(session)
    assert result.ok and result.details == (
        "1 issued cycles, 0 pinned terms as invoiced",
        "1 issued cycles pinned before meterbook kept term digests: their terms at invoicing are "
        "unknown, not checked",
    )


def test_pinned_terms_split_usage_from_the_advance_fee() -> None:
    from ledger.pins import pinned_terms, terms_digest
    from ledger.rules import BaseFee, Charge, Plan

    plan = Plan(
        id="p",
        currency="USD",
        base_fee=BaseFee(amount=Decimal("10.00")),
        minimum_commitment=Decimal("50"),
        charges=(
            Charge(meter="a", model="unit", unit_price="1.00"),
            Charge(meter="b", model="unit", unit_price="2.00"),
        ),
    )
    fee_raised = plan.model_copy(update={"base_fee": BaseFee(amount=Decimal("12.00"))})
    swapped = plan.model_copy(update={"charges": plan.charges[::-1]})
    # the advance fee is billed by its own invoice: only the fee pin covers its amount
    assert terms_digest(fee_raised, date.min, "usage") == terms_digest(plan, date.min, "usage")
    assert terms_digest(fee_raised, date.min, "fee") != terms_digest(plan, date.min, "fee")
    # an arrears fee is billed with the usage: then the usage pin covers it
    arrears = plan.model_copy(
        update={"base_fee": BaseFee(amount=Decimal("10.00"), timing="arrears")}
    )
    assert pinned_terms(arrears, date.min, "usage")["base_fee"] == {
        "amount": "10",
        "timing": "arrears",
    }
    # the order of the charges is not a term; a commitment is
    assert terms_digest(swapped, date.min, "usage") == terms_digest(plan, date.min, "usage")
    lower = plan.model_copy(update={"minimum_commitment": Decimal("40")})
    assert terms_digest(lower, date.min, "usage") != terms_digest(plan, date.min, "usage")


def test_a_meter_definition_edited_after_invoicing_is_refused_too(tmp_path: Path) -> None:
    """Summing a different property (or filtering, or counting) re-prices October as surely as a
    tier price: refused. The meter's unit is a label, not a term. A pin stored before meters were
    digested (the plan's terms alone) is still checked as it was."""
    from sqlalchemy import update

    from ledger.pins import changed_terms, terms_digest
    from ledger.store import cycle_terms

    root = tiered(tmp_path)
    meters = root / "rules" / "meters.yaml"
    meters.write_text(TOKENS.replace("unit: token", "unit: tok"))
    session = open_session(root)
    assert changed_terms(session.engine, session.rules) == []
    meters.write_text(TOKENS.replace("aggregation: sum, value: tokens", "aggregation: count"))
    refused = run_cli(root, "post", "--through", "2026-11-20")
    assert refused.exit_code == 2
    assert "the terms of plan 'g' or of its meters that INV-2026-000001 billed" in refused.output
    # a pin from before: digest of the plan alone, so the meter edit is not seen, a plan edit is
    session = open_session(root)
    plan = session.rules.plans["g"]
    with session.engine.begin() as conn:
        conn.execute(update(cycle_terms).values(usage_digest=terms_digest(plan, date.min, "usage")))
    assert changed_terms(session.engine, session.rules) == []
    (root / "rules" / "plans.yaml").write_text(EDITED)
    session = open_session(root)
    [drift] = changed_terms(session.engine, session.rules)
    assert drift.describe().endswith(
        "original terms: charges, commitment and arrears base fee edited since invoiced"
    )


def test_usage_after_a_rerate_is_a_rerate_to_run_not_an_unexplained_document(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 78419). acme's October, 20 calls invoiced 20.00 on
    INV-2026-000002, is re-rated to the 0.80 version: CN-2026-000001, −4.00 (beta's 10 calls:
    CN-2026-000002, −2.00). Five more October calls of acme arrive after: late usage, priced
    with the pinned version (1.00) as late usage is, 5.00 billed on the next invoice. The
    rerate's document still explains what it re-rated (20 × −0.20); the 5 × −0.20 = −1.00 is
    a rerate still to run, as for a line never re-rated, so ``check`` passes and says so
    (it failed: "reratings posted −4.00, the current rules explain −5.00"). A second
    ``rerate`` posts CN-2026-000003, −1.00. With the version then taken out, both re-rated
    lines are unexplained again (acme's −5.00 and beta's −2.00 against 0.00): ``check`` fails."""
    root = make(tmp_path)
    (root / "rules" / "plans.yaml").write_text(version("0.80"))
    rerate = ("rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert run_cli(root, *rerate).exit_code == 0
    session = open_session(root)
    late = [
        Event.build(
            source="t",
            id=f"late-{day}",
            customer="acme",
            type="api.request",
            time=parse_time(f"2026-10-{day:02d}T12:00:00Z"),
            properties={},
        )
        for day in range(21, 26)
    ]
    insert_events(session.engine, late)
    assert run_cli(root, "post", "--through", "2026-11-20").exit_code == 0
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
    assert (
        "1 with usage since their rerate, priced as invoiced until `meterbook rerate --from "
        "2026-10-01` re-prices it: INV-2026-000002 api_calls (cycle acme-2026-10-01)"
    ) in " ".join(checked.output.split())

    again = run_cli(root, *rerate)
    assert again.exit_code == 0, again.output
    notes = load_credit_notes(open_session(root).engine)
    assert [(n.number, n.invoice, n.amount) for n in notes] == [
        ("CN-2026-000001", "INV-2026-000002", Decimal("4.00")),
        ("CN-2026-000002", "INV-2026-000003", Decimal("2.00")),
        ("CN-2026-000003", "INV-2026-000002", Decimal("1.00")),
    ]
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
    assert "with usage since their rerate" not in checked.output

    (root / "rules" / "plans.yaml").write_text(PLANS)
    checked = run_cli(root, "check")
    assert checked.exit_code == 1
    flat = " ".join(checked.output.split())
    assert "2 of 2 re-rated invoice lines, 3 documents no longer follow" in flat
    assert "reratings posted -5.00 USD (CN-2026-000001, CN-2026-000003)" in flat


def test_pins_are_read_and_written_in_chunks(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issuing 116,667 invoices at once on PostgreSQL pinned their cycles with one ``IN`` list
    of every link, over its 65,535 bound parameters a statement (the 100,000-customer scale
    run failed there). The links are now read in chunks (10,000; 1 here, so each of the
    rerate workspace's pins is its own chunk): the three invoices of ``make`` pin acme's
    September and October and beta's October, each once; pinning them again finds every
    one of them across the chunks and writes nothing (a missed one would be inserted twice
    and break the table's key)."""
    import ledger.pins
    from ledger.facts.pins import load_pins
    from ledger.pins import record_pins

    monkeypatch.setattr(ledger.pins, "_CHUNK", 1)
    root = make(tmp_path, store=store_url)
    session = open_session(root)
    pins = load_pins(session.engine)
    assert sorted(pins) == ["acme-2026-09-01", "acme-2026-10-01", "beta-2026-10-01"]
    with session.engine.begin() as conn:
        record_pins(conn, session.rules, load_invoices(session.engine))
    assert load_pins(session.engine) == pins
