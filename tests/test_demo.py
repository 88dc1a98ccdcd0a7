"""``meterbook demo``: the committed books are the default demo's output, byte for byte,
and a small demo shows every planted problem where the accounting puts it.

The small demo (5 customers, 2 months, seed 3) closes August and leaves
September open. Its roster is acme, globex, initech, umbrella and one generated
``scale`` customer that churns on 2026-08-18. Per month the export has 7 bad
rows (one per reason below, two ``bad_time``) and the re-send 2 corrected rows
(conflicts), so over 2 months: 14 rejected, 4 conflicts.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from click.testing import Result

from ledger import demo
from ledger.books import load_books
from ledger.demo import DemoOptions
from ledger.workspace import Workspace
from tests.support.workspaces import book_hashes, run_cli

REPO = Path(__file__).resolve().parent.parent


def copy_workspace(tmp_path: Path, name: str = "ws") -> Path:
    """The repository's workspace (config and rules, no books, no store) under ``tmp_path/name``."""
    root = tmp_path / name
    root.mkdir(parents=True)
    shutil.copy(REPO / "meterbook.toml", root / "meterbook.toml")
    shutil.copytree(REPO / "rules", root / "rules")
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    root = copy_workspace(tmp_path_factory.mktemp("small"))
    result = run_cli(root, "demo", "--customers", "5", "--months", "2", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    return root, result


def test_committed_books_are_the_default_demo_output(tmp_path: Path) -> None:
    committed = REPO / "books"
    marker = committed / demo.MARKER
    assert marker.is_file(), (
        "books/ was not made by meterbook demo: run `meterbook demo` at the repository root"
    )
    # the title comes from meterbook.toml, so a checkout under any directory name gives the same
    # books
    root = copy_workspace(tmp_path, "any-name")
    result = run_cli(root, "demo", "--quiet")
    assert result.exit_code == 0, result.output
    assert (root / "rules" / "customers.yaml").read_bytes() == (
        REPO / "rules" / "customers.yaml"
    ).read_bytes()
    want, have = book_hashes(committed), book_hashes(root / "books")
    assert sorted(have) == sorted(want), (
        "regenerate with `meterbook demo` at the repository root and commit books/"
    )
    changed = [name for name in want if want[name] != have[name]]
    assert not changed, f"{changed[:5]} differ: regenerate with `meterbook demo` and commit books/"
    _entries, errors, _options = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert (
        result.output.splitlines()[0]
        == "meterbook demo: 40 customers, 3 months (2026-08 to 2026-10), seed 7"
    )
    assert result.output.splitlines()[-1].startswith("next: meterbook serve")


def test_small_demo_accounts_for_every_row_and_closes_with_the_planted_findings(
    small: tuple[Path, Result],
) -> None:
    root, result = small
    lines = result.output.splitlines()
    assert lines[0] == "meterbook demo: 5 customers, 2 months (2026-08 to 2026-09), seed 3"
    events = re.search(
        r"received ([\d,]+): accepted ([\d,]+), duplicates ([\d,]+), conflicts ([\d,]+), "
        r"rejected ([\d,]+) \((.*)\)",
        result.output,
    )
    assert events is not None
    received, accepted, duplicates, conflicts, rejected = (
        int(g.replace(",", "")) for g in events.groups()[:5]
    )
    assert received == accepted + duplicates + conflicts + rejected
    assert (conflicts, rejected) == (4, 14)
    assert events.group(6) == (
        "bad_number 2, bad_time 4, missing_field 2, negative_quantity 2, "
        "unknown_customer 2, unknown_type 2"
    )
    # September repeats August's last 20 rows, plus a few retried rows each month
    assert 20 + 2 * 3 <= duplicates <= 20 + 2 * 6
    assert "closed    2026-08 (sealed); 2026-09 open: meterbook close 2026-09" in result.output

    close = (root / "books" / "2026" / "2026-08.close.beancount").read_text()
    accepted_ids = re.findall(r'custom "meterbook-accept" "2026-08" "([^"]+)"', close)
    planted = [i for i in accepted_ids if i.startswith("dual-track:")]
    assert len(planted) == 1 and planted[0].endswith(":api_calls:2026-08")
    assert "live meter counted 12 retried requests twice on 2026-08-17" in close
    assert "unapplied-cash:WIRE-20260821-0001:2026-08" in accepted_ids


def test_small_demo_books_show_late_usage_partial_and_unapplied_payments(
    small: tuple[Path, Result],
) -> None:
    root, _result = small
    entries, errors, _options = load_books(root / "books" / "main.beancount")
    assert errors == []
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    late = [t for t in txns if t.meta.get("late") is True]
    assert late and all(t.date == demo.START.replace(month=9) for t in late)  # first open day
    wire = [t for t in txns if t.meta.get("reference") == "WIRE-20260821-0001"]
    assert len(wire) == 1
    assert {(p.account, p.units.number) for p in wire[0].postings} == {
        ("Assets:Bank:Operating", Decimal("250.00")),
        ("Liabilities:Unapplied-Cash", Decimal("-250.00")),
    }
    # the partial payment: exactly half of its invoice (rounded to the cent)
    payments = [t for t in txns if "invoice" in t.meta and "reference" in t.meta]
    invoices = {
        t.meta["invoice"]: t
        for t in txns
        if t.meta.get("reference") is None
        and "invoice" in t.meta
        and any(
            p.account.startswith("Assets:Receivables:Invoiced:") and p.units.number > 0
            for p in t.postings
        )
    }
    halves = []
    for pay in payments:
        paid = next(p.units.number for p in pay.postings if p.account == "Assets:Bank:Operating")
        billed = next(
            (
                p.units.number
                for p in invoices[pay.meta["invoice"]].postings
                if p.account.startswith("Assets:Receivables:Invoiced:")
            ),
            None,
        )
        if billed is not None and paid != billed:
            halves.append((paid, billed))
    assert len(halves) == 1
    paid, billed = halves[0]
    assert paid == (billed / 2).quantize(Decimal("0.01"))


def test_another_seed_generates_other_usage() -> None:
    seven, eight = DemoOptions(seed=7), DemoOptions(seed=8)
    august = demo.START
    rows = demo.month_usage(seven, demo.roster(seven), august)
    assert rows == demo.month_usage(seven, demo.roster(seven), august)
    assert rows != demo.month_usage(eight, demo.roster(eight), august)


def test_demo_runs_again_over_its_own_books_with_the_same_result(
    small: tuple[Path, Result],
) -> None:
    """A reset and a second run: the same seed gives the same books, byte for byte."""
    root, _result = small
    before = book_hashes(root / "books")
    result = run_cli(root, "demo", "--customers", "5", "--months", "2", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert book_hashes(root / "books") == before


def test_an_interrupted_demo_can_be_run_again(
    small: tuple[Path, Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the reset (here: the first close raises), the books are still the demo's to
    replace."""
    root, _result = small
    before = book_hashes(root / "books")

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ledger.closing.close_month", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(Workspace.load(root), DemoOptions(customers=5, months=2, seed=3))
    assert (root / "books" / "demo.json").is_file() and book_hashes(root / "books") != before
    monkeypatch.undo()
    result = run_cli(root, "demo", "--customers", "5", "--months", "2", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert book_hashes(root / "books") == before


def test_demo_refuses_books_and_roster_it_did_not_make(workspace: Path, tmp_path: Path) -> None:
    # a `meterbook init` workspace: its customers.yaml is hand-written
    result = run_cli(workspace, "demo")
    assert result.exit_code == 2
    assert "customers.yaml: not written by meterbook demo" in result.output

    root = copy_workspace(tmp_path, "repo")
    (root / "books" / "2026").mkdir(parents=True)
    (root / "books" / "2026" / "2026-08.beancount").write_text("; someone's books\n")
    result = run_cli(root, "demo")
    assert result.exit_code == 2
    assert "these books were not made by meterbook demo" in result.output
    assert (root / "books" / "2026" / "2026-08.beancount").read_text() == "; someone's books\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "4"], "--customers: 4 is not between 5 and 400"),
        (["--months", "1"], "--months: 1 is not between 2 and 12"),
    ],
)
def test_demo_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(copy_workspace(tmp_path), "demo", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_roster_shows_off_the_rules_features() -> None:
    profiles = demo.roster(DemoOptions())
    text = demo.customers_yaml(DemoOptions(), profiles)
    assert len(profiles) == 40 and [p.id for p in profiles[:4]] == [
        "acme",
        "globex",
        "initech",
        "umbrella",
    ]
    plans = {plan for p in profiles for plan, _start, _end in p.subscriptions}
    assert plans == set(demo.PLANS)
    assert "billing_anchor: start" in text and "billing_anchor: calendar" in text
    assert "currency: EUR" in text and "credits:" in text and "caps:" in text
    assert text.count("# churned") == 1


def test_docstring_examples() -> None:
    import doctest

    result = doctest.testmod(demo)
    assert result.attempted > 0 and result.failed == 0
