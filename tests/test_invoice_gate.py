"""DESIGN: an error finding blocks invoicing (and close) until fixed or accepted with a reason.

The close tests' workspace: ``cal`` (calendar) is invoiced on Oct 1 for its
September cycle, ``ann`` (anniversary from Sep 15) on Oct 15 for
``[Sep 15, Oct 15)``. The workspace reconciler ``planted`` raises an error
finding ``planted:<customer>:<month>`` for each customer named in the file
``planted``, in every month it is run for.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.books import load_books
from ledger.closing import billed_months, load_acceptances
from ledger.facts.invoices import Invoice, InvoiceLine, load_invoices
from tests.support.close import CUSTOMERS, PLANS, PLANTED
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        plugins={"planted": PLANTED},
    )
    insert_events(
        open_session(root).engine,
        [
            *calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]),
            *calls("ann", [f"2026-09-{16 + i:02d}" for i in range(14)]),
            *calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "oct"),
        ],
    )
    return root


def issued(root: Path) -> list[tuple[str, str, date]]:
    return [
        (inv.number, inv.customer, inv.date) for inv in load_invoices(open_session(root).engine)
    ]


def test_a_finding_holds_its_customers_invoice_until_accepted(root: Path) -> None:
    (root / "planted").write_text("cal\n")
    held = run_cli(root, "invoice", "--through", "2026-10-15")
    assert held.exit_code == 1, held.output
    assert "INV-2026-000001  2026-10-15  ann" in held.output  # ann is not named: billed
    assert (
        "held    2026-10-01  cal                            1.00 USD  by planted:cal:2026-09"
        in held.output
    )
    assert (
        "error   planted:cal:2026-09: planted discrepancy [expected 30, actual 29]" in held.output
    )
    assert "1 invoices held by open error findings" in held.output
    assert issued(root) == [("INV-2026-000001", "ann", date(2026, 10, 15))]

    again = run_cli(
        root,
        "invoice",
        "--through",
        "2026-10-15",
        "--accept",
        "planted:cal:2026-09",
        "--reason",
        "meter vendor confirmed the 29",
    )
    assert again.exit_code == 0, again.output
    assert "INV-2026-000002  2026-10-01  cal                            1.00 USD" in again.output
    assert issued(root)[-1] == ("INV-2026-000002", "cal", date(2026, 10, 1))
    assert load_acceptances(open_session(root).engine, "2026-09") == {
        "planted:cal:2026-09": "meter vendor confirmed the 29"
    }


def test_bad_acceptances_are_refused_before_anything_is_issued(root: Path) -> None:
    (root / "planted").write_text("cal\n")
    unknown = run_cli(
        root,
        "invoice",
        "--through",
        "2026-10-15",
        "--accept",
        "planted:nobody:2026-09",
        "--reason",
        "x",
    )
    assert unknown.exit_code == 2
    assert unknown.output.strip().splitlines() == [
        "meterbook: error: --accept planted:nobody:2026-09: no such finding in the months these "
        "invoices bill "
        "(2026-09, 2026-10; findings: gaps-spikes:ann:api_calls:gap-2026-09-30:2026-09, "
        "planted:cal:2026-09, "
        "planted:cal:2026-10)"
    ]
    no_reason = run_cli(
        root, "invoice", "--through", "2026-10-15", "--accept", "planted:cal:2026-09"
    )
    assert no_reason.exit_code == 2 and "needs its own non-empty --reason" in no_reason.output
    assert issued(root) == []


def test_close_refuses_while_an_invoice_due_in_the_month_is_held(root: Path) -> None:
    (root / "planted").write_text("ann\n")
    first = run_cli(
        root, "close", "2026-09", "--accept", "planted:ann:2026-09", "--reason", "known"
    )
    assert first.exit_code == 0, first.output
    refused = run_cli(root, "close", "2026-10")
    assert refused.exit_code == 1, refused.output
    assert (
        "refused to close 2026-10: 1 invoice dated on or before 2026-10-31 held by open error "
        "findings" in refused.output
    )
    assert "error   planted:ann:2026-10" in refused.output
    assert issued(root) == [
        ("INV-2026-000001", "cal", date(2026, 10, 1))
    ]  # cal's September: not held
    closed = run_cli(
        root, "close", "2026-10", "--accept", "planted:ann:2026-10", "--reason", "known too"
    )
    assert closed.exit_code == 0, closed.output
    assert issued(root)[-1] == ("INV-2026-000002", "ann", date(2026, 10, 15))
    assert (
        'custom "meterbook-accept" "2026-10" "planted:ann:2026-10" "known too"'
        in (root / "books" / "2026" / "2026-10.close.beancount").read_text()
    )


def test_billed_months_are_the_months_its_cycles_span() -> None:
    def invoice(*cycles: str) -> Invoice:
        lines = tuple(
            InvoiceLine(kind="usage", description="", account="unbilled", amount=0, cycle=c)
            for c in cycles
        )
        return Invoice(customer="c", date=date(2026, 10, 15), currency="USD", lines=lines, rules="")

    assert billed_months(invoice("2026-09-15/2026-10-15")) == ["2026-09", "2026-10"]
    assert billed_months(invoice("2026-09-01/2026-10-01")) == ["2026-09"]
    assert billed_months(invoice("2026-07-01/2026-10-01", "2026-10-01/2026-11-01")) == [
        "2026-07",
        "2026-08",
        "2026-09",
        "2026-10",
    ]
    assert billed_months(invoice("")) == ["2026-10"]  # a credit grant: the invoice's own month


def test_books_that_cannot_be_written_issue_nothing(root: Path) -> None:
    """An invoice number is never taken back: unwritable books stop `invoice` before it numbers
    anything."""
    (root / "books").mkdir()
    (root / "books" / "documents").write_text("a file where the documents folder should be\n")
    result = run_cli(root, "invoice", "--through", "2026-10-15")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert (
        line.startswith(f"meterbook: error: {root / 'books' / 'documents'}: ")
        and "nothing was issued" in line
    )
    assert issued(root) == []


def test_post_says_when_due_invoices_are_not_issued(root: Path) -> None:
    posted = run_cli(root, "post", "--through", "2026-10-15")
    assert posted.exit_code == 0, posted.output
    assert (
        "note: 2 invoices dated on or before 2026-10-15 not issued yet: run "
        "`meterbook invoice --through 2026-10-15`"
    ) in posted.output
    assert run_cli(root, "invoice", "--through", "2026-10-15").exit_code == 0
    again = run_cli(root, "post", "--through", "2026-10-15")
    assert again.exit_code == 0 and "note:" not in again.output


def test_a_close_re_run_with_an_acceptance_it_already_recorded(tmp_path: Path) -> None:
    """Found by the simulator (seed 60349, issue 12). adv (anniversary from Sep 10) pays a
    30.00 fee in advance: INV-2026-000001, dated Sep 10, bills ``[Sep 10, Oct 10)``, so the
    findings of September and October hold it. ``planted`` names adv (planted:adv:2026-09
    and :2026-10) and nobody (planted:nobody:2026-09: names no invoice's customer, holds
    nothing, blocks the close).

    ``close 2026-09`` refuses on the held invoice (the findings that hold it). Accepting
    those two issues the invoice, records planted:adv:2026-10 for October, then refuses
    on September's own planted:nobody:2026-09. Run again with all three (the operator
    adds the new one to the command line), the close goes through: October's acceptance
    was recorded by the run before, not an unknown id (it was refused, exit 2, "no such
    finding for 2026-09"). The close file seals September's two acceptances, the books
    hold the 30.00 invoice in Receivables:Invoiced:Adv, and October's acceptance waits for
    October's close."""
    plans = PLANS + '  f:\n    currency: USD\n    base_fee: {amount: "30.00", timing: advance}\n'
    customers = (
        "customers:\n  adv: {currency: USD, billing_anchor: start, "
        "subscriptions: [{plan: f, start: 2026-09-10}]}\n"
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=plans,
        customers=customers,
        plugins={"planted": PLANTED},
    )
    (root / "planted").write_text("adv\nnobody\n")
    held = run_cli(root, "close", "2026-09")
    assert held.exit_code == 1 and "1 invoice dated on or before 2026-09-30 held" in held.output
    accept = ["--reason", "known"]
    adv = [
        *("--accept", "planted:adv:2026-09", *accept),
        *("--accept", "planted:adv:2026-10", *accept),
    ]
    second = run_cli(root, "close", "2026-09", *adv)
    assert second.exit_code == 1, second.output
    assert "issued INV-2026-000001  2026-09-10  adv" in second.output
    assert "error   planted:nobody:2026-09" in second.output
    third = run_cli(root, "close", "2026-09", *adv, "--accept", "planted:nobody:2026-09", *accept)
    assert third.exit_code == 0, third.output
    close_file = (root / "books" / "2026" / "2026-09.close.beancount").read_text()
    assert [line for line in close_file.splitlines() if '"meterbook-accept" "2026' in line] == [
        '2026-10-01 custom "meterbook-accept" "2026-09" "planted:adv:2026-09" "known"',
        '2026-10-01 custom "meterbook-accept" "2026-09" "planted:nobody:2026-09" "known"',
    ]
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Assets:Receivables:Invoiced:Adv", date(2026, 10, 1)) == Decimal(
        "30.00"
    )
    engine = open_session(root).engine
    assert load_acceptances(engine, "2026-10") == {"planted:adv:2026-10": "known"}
