"""Live meter totals through `meterbook ingest`: routing, exact quantities, duplicates, conflicts,
rejects.

Runs on SQLite and, when METERBOOK_TEST_DATABASE_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import doctest
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import ledger.importers.live_totals as importer_module
import ledger.live_totals as live_module
from ledger.cli import cli
from ledger.live_totals import daily_live_totals
from ledger.store import batches, live_total_conflicts, live_totals, open_store, rejects
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""
HEADER = "date,customer,meter,quantity,source\n"
TOTALS = (
    HEADER
    + """\
2026-10-01,acme,api_calls,812,gateway-eu
2026-10-01,acme,api_calls,388,gateway-us
2026-10-02,acme,tokens,1250000.5,gateway-eu
2026-10-02,beta,api_calls,0.000000001,
"""
)


@pytest.fixture
def root(tmp_path: Path, store_url: str) -> Path:
    return write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'store = "{store_url}"\n',
    )


def ingest(root: Path, name: str, text: str) -> Result:
    path = root / name
    path.write_text(text)
    return CliRunner().invoke(cli, ["--workspace", str(root), "ingest", "--json", str(path)])


def report(result: Result) -> dict[str, object]:
    """The import's JSON report; the exit code is 1 exactly when it rejected a row."""
    out = json.loads(result.output.strip().splitlines()[-1])
    assert result.exit_code == (1 if out["rejected"] else 0), result.output
    return out


def engine(root: Path) -> sa.Engine:
    return open_store(
        (root / "meterbook.toml")
        .read_text()
        .split('"')[1]
        .replace("sqlite:///var", f"sqlite:///{root}/var")
    )


def test_ingest_picks_the_live_totals_importer_and_stores_exact_quantities(root: Path) -> None:
    out = report(ingest(root, "totals.csv", TOTALS))
    assert out == {
        "file": str(root / "totals.csv"),
        "received": 4,
        "accepted": 4,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "reasons": {},
    }
    store = engine(root)
    with store.connect() as conn:
        assert conn.execute(sa.select(batches.c.importer)).scalar_one() == "live-totals"
        # an empty source is "default", as for usage events
        assert (
            conn.execute(
                sa.select(live_totals.c.source).where(live_totals.c.customer == "beta")
            ).scalar_one()
            == "default"
        )
    totals = daily_live_totals(store, start=date(2026, 10, 1), end=date(2026, 11, 1))
    # the two gateways are partitions of one meter: 812 + 388 = 1200 on Oct 1
    assert totals == {
        ("api_calls", "acme"): {date(2026, 10, 1): Decimal("1200")},
        ("tokens", "acme"): {date(2026, 10, 2): Decimal("1250000.5")},
        ("api_calls", "beta"): {date(2026, 10, 2): Decimal("1E-9")},
    }
    # the month window is half-open and filters by meter
    assert daily_live_totals(
        store, start=date(2026, 10, 2), end=date(2026, 10, 3), meters={"tokens"}
    ) == {("tokens", "acme"): {date(2026, 10, 2): Decimal("1250000.5")}}


def test_reimport_is_duplicates_and_another_quantity_is_a_conflict_kept_aside(root: Path) -> None:
    report(ingest(root, "totals.csv", TOTALS))
    again = report(ingest(root, "totals.csv", TOTALS))
    assert (again["accepted"], again["duplicates"], again["conflicts"]) == (0, 4, 0)
    # same key (gateway-eu, Oct 1, acme, api_calls) with 813: a conflict; within one file the
    # second row of a new key is a duplicate of the first
    changed = HEADER + (
        "2026-10-01,acme,api_calls,813,gateway-eu\n"
        "2026-10-03,acme,api_calls,5,gateway-eu\n"
        "2026-10-03,acme,api_calls,5.0,gateway-eu\n"
    )
    out = report(ingest(root, "changed.csv", changed))
    assert (out["received"], out["accepted"], out["duplicates"], out["conflicts"]) == (3, 1, 1, 1)
    store = engine(root)
    with store.connect() as conn:
        conflict = conn.execute(sa.select(live_total_conflicts)).one()
        assert (conflict.stored_quantity, conflict.quantity, conflict.line) == ("812", "813", 2)
    # the first total stored wins: still 812 + 388
    assert daily_live_totals(store, start=date(2026, 10, 1), end=date(2026, 10, 2)) == {
        ("api_calls", "acme"): {date(2026, 10, 1): Decimal("1200")}
    }


def test_rows_that_cannot_be_stored_are_rejected_with_one_reason_each(root: Path) -> None:
    bad = (
        HEADER
        + """\
2026-10-01,acme,api_calls,,gw
01/10/2026,acme,api_calls,5,gw
2999-01-01,acme,api_calls,5,gw
2026-10-01,acme,storage,5,gw
2026-10-01,nobody,api_calls,5,gw
2026-10-01,acme,api_calls,five,gw
2026-10-01,acme,api_calls,0.0000000001,gw
2026-10-01,acme,api_calls,-4,gw
2026-10-01,acme,api_calls,5,gw,extra
2026-10-01,acme,api_calls,5,gw
"""
    )
    out = report(ingest(root, "bad.csv", bad))
    assert (out["received"], out["accepted"], out["rejected"]) == (10, 1, 9)
    assert out["reasons"] == {
        "bad_csv": 1,
        "bad_date": 1,
        "bad_number": 2,
        "future_date": 1,
        "missing_field": 1,
        "negative_quantity": 1,
        "unknown_customer": 1,
        "unknown_meter": 1,
    }
    with engine(root).connect() as conn:
        kept = {r.line: (r.reason, r.raw) for r in conn.execute(sa.select(rejects))}
    assert kept[4] == ("future_date", "2999-01-01,acme,api_calls,5,gw")
    assert kept[10] == ("bad_csv", "2026-10-01,acme,api_calls,5,gw,extra")


def test_source_is_optional_and_a_file_without_a_quantity_column_is_refused_whole(
    root: Path,
) -> None:
    out = report(
        ingest(root, "nosource.csv", "date,customer,meter,quantity\n2026-10-01,acme,api_calls,5\n")
    )
    assert (out["received"], out["accepted"]) == (1, 1)
    with engine(root).connect() as conn:
        assert conn.execute(sa.select(live_totals.c.source)).scalar_one() == "default"
    half = root / "half.csv"
    half.write_text("date,customer,meter,source\n2026-10-01,acme,api_calls,gw\n")
    result = CliRunner().invoke(
        cli, ["--workspace", str(root), "ingest", "--importer", "live-totals", str(half)]
    )
    assert result.exit_code == 2
    assert "half.csv: line 1: header: missing column 'quantity'" in result.output
    with engine(root).connect() as conn:  # nothing written: still the one batch of nosource.csv
        assert conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar_one() == 1


def test_worked_examples_in_the_docstrings() -> None:
    for module in (live_module, importer_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
