"""The first-party reconcilers, each with a planted discrepancy and a clean case, hand-computed.

The workspace is the close workspace (tests/support/close.py; graduated plan: 10 calls free, then
0.05):

- ``cal`` (calendar cycles): one call a day Sep 1–30 → 30 calls, 20 × 0.05 = 1.00,
  invoiced Oct 1 (INV-2026-000001);
- ``ann`` (anniversary from Sep 15): one call a day Sep 16–29 and Oct 1–11 → 25
  calls in ``[Sep 15, Oct 15)``, 15 × 0.05 = 0.75, invoiced Oct 15 (INV-2026-000002).

ann has no call on Wednesday Sep 30 between Tuesday Sep 29 and Thursday Oct 1:
the one gap of the data, a warning in every September reconciliation below.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.books import close_path
from ledger.closing import reconcile_month
from ledger.events import Event
from ledger.payments import ingest_payments
from ledger.reconcile import Finding
from ledger.session import Session
from ledger.store import invoices
from tests.support.close import CUSTOMERS, PLANS
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

_calls = calls
_session = open_session

ANN_GAP = "gaps-spikes:ann:api_calls:gap-2026-09-30:2026-09"
LIVE_HEADER = "date,customer,meter,quantity,source\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The close workspace, without its planted reconciler: posted through Sep 30."""
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    session = _session(root)
    _insert(
        session,
        [
            *calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]),
            *calls("ann", [f"2026-09-{16 + i:02d}" for i in range(14)]),
            *calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "oct"),
        ],
    )
    session.post(date(2026, 9, 30))
    return root


def _insert(session: Session, rows: list[Event]) -> None:
    insert_events(session.engine, rows)


def findings(root: Path, month: str, check: str | None = None) -> list[Finding]:
    found = reconcile_month(_session(root), month).findings
    return [f for f in found if check is None or f.check == check]


def live_totals(root: Path, per_day: dict[str, dict[int, int]]) -> None:
    """Ingest September live totals: per customer, calls per day of the month (via
    `meterbook ingest`)."""
    lines = [
        f"2026-09-{day:02d},{customer},api_calls,{n},gateway"
        for customer, days in per_day.items()
        for day, n in sorted(days.items())
    ]
    path = root / "totals.csv"
    path.write_text(LIVE_HEADER + "\n".join(lines) + "\n")
    result = run_cli(root, "ingest", str(path))
    assert result.exit_code == 0, result.output
    assert "rejected 0" in result.output


def tolerance(root: Path, value: str) -> None:
    meters = root / "rules" / "meters.yaml"
    meters.write_text(
        f"meters:\n  api_calls: {{event_type: api.request, aggregation: count, unit: call, "
        f'live_tolerance: "{value}"}}\n'
    )


CAL = {day: 1 for day in range(1, 31)}  # 30 calls, as the batch
ANN = {day: 1 for day in range(16, 30)}  # 14 calls, as the batch


def test_clean_september_has_only_anns_gap(root: Path) -> None:
    live_totals(root, {"cal": CAL, "ann": ANN})
    [gap] = findings(root, "2026-09")
    # the median of ann's 14 days before Sep 30 is 1 call
    assert (gap.id, gap.severity, gap.customer, gap.expected, gap.actual) == (
        ANN_GAP,
        "warning",
        "ann",
        Decimal(1),
        Decimal(0),
    )
    assert "2026-09-30 (Wednesday)" in gap.explanation
    result = run_cli(root, "reconcile", "2026-09")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2026-09: 0 errors (0 accepted), 1 warnings, 0 info"


def test_dual_track_outside_and_within_tolerance(root: Path) -> None:
    # the live meter counted 3 calls for cal on Sep 3 (the batch has 1): 32 live vs 30 batch
    live_totals(root, {"cal": {**CAL, 3: 3}, "ann": ANN})
    [error] = findings(root, "2026-09", "dual-track")
    assert (error.id, error.severity, error.expected, error.actual) == (
        "dual-track:cal:api_calls:2026-09",
        "error",
        Decimal(32),
        Decimal(30),
    )
    assert error.explanation == (
        "batch events give 30, the live meter 32 (difference -2, outside the "
        "tolerance 0); days that differ: 2026-09-03 batch 1 live 3"
    )
    tolerance(root, "2")  # |−2| ≤ 2: within, reported as info
    [info] = findings(root, "2026-09", "dual-track")
    assert (info.severity, info.expected, info.actual) == ("info", Decimal(32), Decimal(30))
    tolerance(root, "5%")  # 5% of 32 = 1.6 < 2: an error again
    [error] = findings(root, "2026-09", "dual-track")
    assert error.severity == "error"
    assert "outside the tolerance 5% = 1.6)" in error.explanation
    tolerance(root, "10%")  # 3.2 ≥ 2
    assert [f.severity for f in findings(root, "2026-09", "dual-track")] == ["info"]


def test_dual_track_counts_days_missing_on_either_side(root: Path) -> None:
    # the live meter moved cal's Sep 4 call to Sep 3 (equal over the month: info), and has no
    # total at all for ann (14 batch calls against 0: an error)
    cal = {**CAL, 3: 2}
    del cal[4]
    live_totals(root, {"cal": cal})
    by_customer = {f.customer: f for f in findings(root, "2026-09", "dual-track")}
    assert (
        by_customer["cal"].severity,
        by_customer["cal"].expected,
        by_customer["cal"].actual,
    ) == ("info", Decimal(30), Decimal(30))
    assert by_customer["cal"].explanation == (
        "equal over the month (30), but 2 days differ; days that "
        "differ: 2026-09-03 batch 1 live 2, 2026-09-04 batch 1 live 0"
    )
    assert (
        by_customer["ann"].severity,
        by_customer["ann"].expected,
        by_customer["ann"].actual,
    ) == ("error", Decimal(0), Decimal(14))


def test_no_live_totals_means_no_dual_track(root: Path) -> None:
    assert findings(root, "2026-09", "dual-track") == []


def test_close_refuses_on_a_dual_track_error_until_accepted(root: Path) -> None:
    live_totals(root, {"cal": {**CAL, 3: 3}, "ann": ANN})
    refused = run_cli(root, "close", "2026-09")
    assert refused.exit_code == 1, refused.output
    assert "error   dual-track:cal:api_calls:2026-09: batch events give 30," in refused.output
    assert not close_path(root / "books", "2026-09").exists()
    accepted = run_cli(
        root,
        "close",
        "2026-09",
        "--accept",
        "dual-track:cal:api_calls:2026-09",
        "--reason",
        "gateway double-counted retries on Sep 3",
    )
    assert accepted.exit_code == 0, accepted.output
    text = close_path(root / "books", "2026-09").read_text()
    assert (
        '2026-10-01 custom "meterbook-accept" "2026-09" "dual-track:cal:api_calls:2026-09" '
        '"gateway double-counted retries on Sep 3"'
    ) in text
    # reconcile shows the acceptance and no longer exits 1
    result = run_cli(root, "reconcile", "2026-09", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, result.output.splitlines())}
    assert (
        rows["dual-track:cal:api_calls:2026-09"]["accepted"]
        == "gateway double-counted retries on Sep 3"
    )


def test_reconcile_json_lines_and_exit_code(root: Path) -> None:
    live_totals(root, {"cal": {**CAL, 3: 3}, "ann": ANN})
    result = run_cli(root, "reconcile", "--json")  # default: the first open month, September
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows == [
        {
            "id": "dual-track:cal:api_calls:2026-09",
            "severity": "error",
            "customer": "cal",
            "meter": "api_calls",
            "period": "2026-09",
            "expected": "32",
            "actual": "30",
            "explanation": "batch events give 30, the live meter 32 (difference -2, outside the "
            "tolerance 0); "
            "days that differ: 2026-09-03 batch 1 live 3",
            "check": "dual-track",
            "accepted": None,
        },
        {
            "id": ANN_GAP,
            "severity": "warning",
            "customer": "ann",
            "meter": "api_calls",
            "period": "2026-09",
            "expected": "1",
            "actual": "0",
            "explanation": "no api_calls events on 2026-09-30 (Wednesday), with usage on the "
            "weekdays around "
            "(median day before: 1): an integration down?",
            "check": "gaps-spikes",
            "accepted": None,
        },
    ]
    table = run_cli(root, "reconcile", "2026-09")
    assert table.exit_code == 1
    header, first, second, summary = table.output.splitlines()
    assert header.split() == [
        "ID",
        "SEVERITY",
        "CUSTOMER",
        "METER",
        "PERIOD",
        "EXPECTED",
        "ACTUAL",
        "EXPLANATION",
    ]
    assert first.split()[:7] == [
        "dual-track:cal:api_calls:2026-09",
        "error",
        "cal",
        "api_calls",
        "2026-09",
        "32",
        "30",
    ]
    assert second.split()[:2] == [ANN_GAP, "warning"]
    assert summary == "2026-09: 1 errors (0 accepted), 1 warnings, 0 info"
    assert run_cli(root, "reconcile", "2026-13").exit_code == 2


def test_spike_over_five_times_the_trailing_median(root: Path) -> None:
    # 10 more calls for cal on Sep 25: 11 against a median of 1 over Sep 11–24 (> 5 × 1)
    _insert(_session(root), _calls("cal", ["2026-09-25"] * 10, "spike"))
    spikes = [f for f in findings(root, "2026-09", "gaps-spikes") if f.customer == "cal"]
    assert [(f.id, f.severity, f.expected, f.actual) for f in spikes] == [
        ("gaps-spikes:cal:api_calls:spike-2026-09-25:2026-09", "warning", Decimal(5), Decimal(11))
    ]


def test_five_times_the_median_is_no_spike_and_weekends_are_no_gap(root: Path) -> None:
    _insert(_session(root), _calls("cal", ["2026-09-25"] * 4, "five"))  # 5 calls = 5 × 1: not above
    assert [f.id for f in findings(root, "2026-09", "gaps-spikes")] == [ANN_GAP]


# --- October: invoices, payments, the books --------------------------------------------


def october(root: Path) -> None:
    issued = _session(root).invoice(through=date(2026, 10, 31))
    assert [(i.number, i.customer, i.date, i.total) for i in issued] == [
        ("INV-2026-000001", "cal", date(2026, 10, 1), Decimal("1.00")),
        ("INV-2026-000002", "ann", date(2026, 10, 15), Decimal("0.75")),
    ]


def test_rated_vs_invoiced_clean_then_a_tampered_invoice(root: Path) -> None:
    october(root)
    assert findings(root, "2026-10", "rated-vs-invoiced") == []
    # the stored invoice says 1.10 for cal's 30 calls; the rules price them at 1.00
    with _session(root).engine.begin() as conn:
        doc = conn.execute(
            sa.select(invoices.c.document).where(invoices.c.number == "INV-2026-000001")
        ).scalar_one()
        data = json.loads(doc)
        data["lines"][0]["amount"] = "1.10"
        conn.execute(
            invoices.update()
            .where(invoices.c.number == "INV-2026-000001")
            .values(document=json.dumps(data))
        )
    [error] = findings(root, "2026-10", "rated-vs-invoiced")
    assert (error.id, error.severity, error.expected, error.actual) == (
        "rated-vs-invoiced:cal:api_calls:INV-2026-000001:2026-10",
        "error",
        Decimal("1.00"),
        Decimal("1.10"),
    )


def test_rated_vs_invoiced_late_usage_is_a_warning(root: Path) -> None:
    october(root)
    # one more cal call on Sep 20, after the invoice: 31 calls rate 21 × 0.05 = 1.05
    _insert(_session(root), _calls("cal", ["2026-09-20"], "late"))
    [warning] = findings(root, "2026-10", "rated-vs-invoiced")
    assert (warning.severity, warning.expected, warning.actual) == (
        "warning",
        Decimal("1.05"),
        Decimal("1.00"),
    )
    assert "the difference 0.05 is booked as late usage" in warning.explanation


PAYMENTS = """\
date,amount,currency,invoice,reference
2026-09-28,2.00,USD,,BANK-0
2026-10-10,1.00,USD,INV-2026-000001,BANK-1
2026-10-20,1.00,USD,INV-2026-000002,BANK-2
2026-10-26,5.00,USD,,BANK-3
"""


def test_unapplied_cash_errors_for_the_month_warnings_carried(root: Path) -> None:
    october(root)
    path = root / "payments.csv"
    path.write_text(PAYMENTS)
    session = _session(root)
    ingest_payments(session.engine, path)
    session.post(date(2026, 10, 31))
    found = {
        f.id: (f.severity, f.customer, f.actual)
        for f in findings(root, "2026-10", "unapplied-cash")
    }
    # BANK-1 settles cal's 1.00 exactly; BANK-2 pays 1.00 on ann's 0.75: 0.25 over
    assert found == {
        "unapplied-cash:BANK-0:2026-10": ("warning", None, Decimal("2.00")),
        "unapplied-cash:BANK-2:2026-10": ("error", "ann", Decimal("0.25")),
        "unapplied-cash:BANK-3:2026-10": ("error", None, Decimal("5.00")),
    }
    [bank3] = [
        f
        for f in findings(root, "2026-10", "unapplied-cash")
        if f.id == "unapplied-cash:BANK-3:2026-10"
    ]
    assert (
        "5.00 USD held in Liabilities:Unapplied-Cash until it is applied or refunded"
        in bank3.explanation
    )
    # September: BANK-0 is that month's own, an error there
    assert [(f.id, f.severity) for f in findings(root, "2026-09", "unapplied-cash")] == [
        ("unapplied-cash:BANK-0:2026-09", "error")
    ]
    # the books agree with the store
    assert findings(root, "2026-10", "store-vs-ledger") == []


def test_store_vs_ledger_finds_books_behind_the_store(root: Path) -> None:
    october(root)
    assert findings(root, "2026-10", "store-vs-ledger") == []
    # a payment stored but not posted: the store's receivable for cal is 1.00 − 1.00 = 0.00,
    # the books still say 1.00 (compared on Oct 15, the last day the books are posted for)
    path = root / "payments.csv"
    path.write_text(
        "date,amount,currency,invoice,reference\n2026-10-10,1.00,USD,INV-2026-000001,BANK-1\n"
    )
    ingest_payments(_session(root).engine, path)
    [error] = findings(root, "2026-10", "store-vs-ledger")
    assert (error.id, error.severity, error.customer, error.expected, error.actual) == (
        "store-vs-ledger:cal:receivable:2026-10",
        "error",
        "cal",
        Decimal("0.00"),
        Decimal("1.00"),
    )
    assert error.explanation.startswith(
        "Assets:Receivables:Invoiced:Cal through 2026-10-15: the store gives 0.00 USD"
    )
    _session(root).post(date(2026, 10, 31))
    assert findings(root, "2026-10", "store-vs-ledger") == []


def test_a_bad_tolerance_is_a_rules_error_naming_file_and_key(root: Path) -> None:
    tolerance(root, "1 %%")
    result = run_cli(root, "reconcile", "2026-09")
    assert result.exit_code == 2
    assert (
        "rules/meters.yaml:2: meters.api_calls.live_tolerance: '1 %%' is not a percentage "
        '(a decimal string such as "5", or "0.1%")'
    ) in result.output


def test_worked_examples_in_the_docstrings() -> None:
    import doctest

    import ledger.plugins.reconcile_dual_track as dual_track
    import ledger.plugins.reconcile_gaps_spikes as gaps_spikes
    import ledger.rules as rules

    for module in (dual_track, gaps_spikes, rules):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


# --- tuning the gaps-and-spikes reconciler (issue 14) --------------------------------------


def _tune(root: Path, toml: str = "", ann: str = "") -> None:
    """``[gaps_spikes]`` in meterbook.toml (``toml``: its lines), ann's ``gaps_spikes:``
    (``ann``)."""
    if toml:
        config = root / "meterbook.toml"
        config.write_text(config.read_text() + "[gaps_spikes]\n" + toml)
    if ann:
        (root / "rules" / "customers.yaml").write_text(
            CUSTOMERS.replace(
                "  ann: {currency: USD,", f"  ann: {{gaps_spikes: {ann}, currency: USD,"
            )
        )


def test_gaps_and_spikes_can_be_turned_off(root: Path) -> None:
    """``enabled = false``: neither ann's gap nor cal's spike (11 calls against a median of 1)."""
    _insert(_session(root), _calls("cal", ["2026-09-25"] * 10, "spike"))
    _tune(root, "enabled = false\n")
    assert findings(root, "2026-09", "gaps-spikes") == []
    result = run_cli(root, "reconcile", "2026-09")
    assert "gaps-spikes" not in result.output and ", 0 warnings," in result.output.splitlines()[-1]


def test_a_customer_can_be_turned_off_or_need_longer_gaps(root: Path) -> None:
    """ann's gap is one weekday (Sep 30): ``min_gap_days: 2`` or ``enabled: false`` on ann hides it;
    cal's spike is still reported (cal keeps the workspace's settings)."""
    _insert(_session(root), _calls("cal", ["2026-09-25"] * 10, "spike"))
    cal_spike = "gaps-spikes:cal:api_calls:spike-2026-09-25:2026-09"
    assert [f.id for f in findings(root, "2026-09", "gaps-spikes")] == [ANN_GAP, cal_spike]
    for ann in ("{min_gap_days: 2}", "{enabled: false}"):
        _tune(root, ann=ann)
        assert [f.id for f in findings(root, "2026-09", "gaps-spikes")] == [cal_spike]
    _tune(root, ann="{min_gap_days: 1}")
    assert [f.id for f in findings(root, "2026-09", "gaps-spikes")] == [ANN_GAP, cal_spike]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # 11 calls on Sep 25 against a trailing median of 1: a spike above 10 × 1, none above 11 × 1
        pytest.param('spike_factor = "10"\n', Decimal(10), id="factor-10"),
        pytest.param("spike_factor = 11\n", None, id="factor-11"),
        pytest.param("spike_factor = 10.5\n", Decimal("10.5"), id="factor-float-as-written"),
        # Sep 11–24 holds 14 days with usage: not enough for min_history 15 ...
        pytest.param("min_history = 15\n", None, id="history-15"),
        # ... but Aug 26–Sep 24 (30 days) holds Sep 1–24, 24 days: enough for 20
        pytest.param(
            "min_history = 20\ntrailing_days = 30\n", Decimal(5), id="history-20-in-30-days"
        ),
    ],
)
def test_spike_thresholds_are_tunable(root: Path, toml: str, expected: Decimal | None) -> None:
    _insert(_session(root), _calls("cal", ["2026-09-25"] * 10, "spike"))
    _tune(root, toml)
    spikes = [
        (f.expected, f.actual)
        for f in findings(root, "2026-09", "gaps-spikes")
        if f.customer == "cal"
    ]
    assert spikes == ([] if expected is None else [(expected, Decimal(11))])


@pytest.mark.parametrize(
    ("toml", "ann", "message"),
    [
        (
            "min_gap_days = 0\n",
            "",
            "meterbook.toml: gaps_spikes.min_gap_days: Input should be greater than or equal to 1",
        ),
        (
            'spike_factor = "0"\n',
            "",
            "meterbook.toml: gaps_spikes.spike_factor: spike_factor is a number above 0",
        ),
        ("gap_days = 3\n", "", "meterbook.toml: gaps_spikes.gap_days: unknown key"),
        (
            "",
            "{trailing_days: many}",
            "rules/customers.yaml:3: customers.ann.gaps_spikes.trailing_days: Input should be a "
            "valid integer",
        ),
    ],
)
def test_bad_tuning_is_one_line_exit_2(root: Path, toml: str, ann: str, message: str) -> None:
    _tune(root, toml, ann)
    result = run_cli(root, "reconcile", "2026-09")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
