"""Bad input through the CLI: one line ``meterbook: error: …`` naming the file, line or key,
exit 2, no traceback, and nothing half-written (no credit note without its documents, no
``meterbook.toml`` of a failed init, no future-dated invoice, no alert lost).

Each test drives ``ledger.cli`` with click's CliRunner on real files in a workspace made
by ``meterbook init`` (one customer ``example`` on plan ``starter``, USD, calendar cycles
from 2026-01-01; its sample file holds three API calls on 2026-01-03 and 2026-01-05).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from tests.support.workspaces import run_cli

SAMPLE_CUSTOMERS = """\
customers:
  example:
    name: Example Ltd
    currency: USD
    subscriptions:
      - {plan: starter, start: 2026-01-01}
    billing_anchor: calendar
"""


def one_line_error(result: Result, *parts: str) -> str:
    """The single stderr line of a refused command (exit 2); each of ``parts`` is in it."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("meterbook: error: "), lines[0]
    assert "Traceback" not in result.output
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def ingested(workspace: Path) -> Path:
    result = run_cli(
        workspace, "ingest", "--allow-rejects", str(workspace / "samples" / "events.csv")
    )
    assert result.exit_code == 0, result.output
    return workspace


def invoiced(workspace: Path) -> Path:
    """INV-2026-000001 (2026-01-01, 19.00 base fee in advance) and INV-2026-000002 (2026-02-01)
    issued."""
    result = run_cli(ingested(workspace), "invoice", "--through", "2026-02-01")
    assert result.exit_code == 0, result.output
    assert "issued 2 invoices" in result.output
    return workspace


def store_rows(workspace: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workspace / "var" / "events.sqlite") as conn:
        return conn.execute(query).fetchall()


def today() -> datetime:
    return datetime.now(UTC)  # the init workspace's timezone is UTC


# --- 1. a credit note whose documents cannot be written is not issued ------------------------


def test_credit_note_is_rolled_back_when_its_documents_cannot_be_written(workspace: Path) -> None:
    root = invoiced(workspace)
    documents = root / "books" / "documents"
    documents.rename(root / "books" / "documents.away")
    documents.write_text("a file where the folder should be\n")
    refused = run_cli(root, "credit", "INV-2026-000001", "--amount", "5.00", "--reason", "outage")
    one_line_error(refused, "CN-2026-000001", "no credit note was issued", str(documents))
    assert store_rows(root, "SELECT number FROM credit_notes") == []

    documents.unlink()
    (root / "books" / "documents.away").rename(documents)
    retried = run_cli(root, "credit", "INV-2026-000001", "--amount", "5.00", "--reason", "outage")
    assert retried.exit_code == 0, retried.output
    # the retry issues the first note, not a second one: nothing was credited twice
    assert store_rows(root, "SELECT number, amount FROM credit_notes") == [
        ("CN-2026-000001", "5.00")
    ]
    assert (documents / "CN-2026-000001.html").is_file() and (
        documents / "CN-2026-000001.json"
    ).is_file()


# --- 2. OS errors: one line naming the path ----------------------------------------------------


def test_rules_file_that_is_a_directory(workspace: Path) -> None:
    (workspace / "rules" / "plans.yaml").unlink()
    (workspace / "rules" / "plans.yaml").mkdir()
    one_line_error(
        run_cli(workspace, "rate", "--through", "2026-01-31"), "rules/plans.yaml: is a directory"
    )


def test_rules_path_that_is_a_file(workspace: Path) -> None:
    config = workspace / "meterbook.toml"
    config.write_text(config.read_text().replace('rules = "rules"', 'rules = "meterbook.toml"'))
    one_line_error(run_cli(workspace, "rate"), "meterbook.toml is not a directory")


def test_statement_out_under_a_file_is_one_line(workspace: Path) -> None:
    # the OSError is raised deep in the engine; the CLI group maps it once, centrally
    message = one_line_error(
        run_cli(
            ingested(workspace),
            "statement",
            "example",
            "--cycle",
            "2026-01-15",
            "--out",
            "/dev/null/statements",
        )
    )
    assert message == "meterbook: error: /dev/null/statements: Not a directory"


def test_store_folder_that_cannot_be_created(workspace: Path) -> None:
    config = workspace / "meterbook.toml"
    config.write_text(
        config.read_text().replace(
            "sqlite:///var/events.sqlite", "sqlite:////dev/null/var/e.sqlite"
        )
    )
    one_line_error(
        run_cli(workspace, "rate"), "cannot create its folder /dev/null/var: Not a directory"
    )


def test_init_where_rules_is_a_file_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "rules").write_text("mine\n")
    one_line_error(
        run_cli(None, "init", str(root)),
        f"{root / 'rules'}: is not a directory",
        "nothing was written",
    )
    assert sorted(p.name for p in root.iterdir()) == [
        "rules"
    ]  # no meterbook.toml, samples or books
    assert (root / "rules").read_text() == "mine\n"


def test_meterbook_toml_that_is_a_directory(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "meterbook.toml").mkdir(parents=True)
    one_line_error(run_cli(root, "rate"), "meterbook.toml: is a directory")
    one_line_error(run_cli(None, "init", str(root)), "meterbook.toml: is a directory")


# --- 3. click usage errors: one line too ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (["--workspace", "{file}", "rate"], "Invalid value for '--workspace'"),
        (["ingest", "{dir}"], "is a directory"),
        (["demo", "--customers", "abc"], "'abc' is not a valid integer"),
        (["serve", "--port", "0"], "0 is not in the range 1<=x<=65535"),
        (["rate", "--no-such-option"], "No such option '--no-such-option'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_usage_errors_are_one_line(workspace: Path, args: list[str], part: str) -> None:
    filled = [a.format(file=workspace / "meterbook.toml", dir=workspace / "samples") for a in args]
    one_line_error(run_cli(None, *filled), part)


def test_help_still_works() -> None:
    result = run_cli(None, "rate", "--help")
    assert result.exit_code == 0 and "Usage: " in result.stdout and "--through" in result.stdout


# --- 4. stores that cannot be opened --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        (
            "postgresql+psycopg://meter:s3cret@127.0.0.1:1/meter",
            "store postgresql+psycopg://meter:***@127.0.0.1:1/meter: ",
        ),
        ("sqlite:///meterbook.toml", "meterbook.toml: file is not a database"),
        ("mysql://x", "store URL mysql://x: No module named"),
        ("nosuchdialect://x", "store URL nosuchdialect://x: "),
    ],
)
def test_store_that_cannot_be_opened(workspace: Path, url: str, part: str) -> None:
    config = workspace / "meterbook.toml"
    config.write_text(config.read_text().replace("sqlite:///var/events.sqlite", url))
    message = one_line_error(run_cli(workspace, "rate"), part)
    assert "s3cret" not in message


def test_store_with_a_bad_schema_version(workspace: Path) -> None:
    root = ingested(workspace)
    with sqlite3.connect(root / "var" / "events.sqlite") as conn:
        conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    one_line_error(run_cli(root, "rate"), "schema_version 'abc' is not a version number")


def test_check_with_a_store_that_cannot_be_opened_is_exit_2(workspace: Path) -> None:
    config = workspace / "meterbook.toml"
    config.write_text(
        config.read_text().replace("sqlite:///var/events.sqlite", "sqlite:///meterbook.toml")
    )
    one_line_error(run_cli(workspace, "check"), "file is not a database")


# --- 5. rules YAML: duplicate keys, impossible dates ----------------------------------------------


def test_duplicate_key_in_rules_yaml(workspace: Path) -> None:
    (workspace / "rules" / "customers.yaml").write_text(
        SAMPLE_CUSTOMERS + "  example:\n    currency: USD\n"
    )
    message = one_line_error(run_cli(workspace, "rate"))
    assert message == "meterbook: error: rules/customers.yaml:8: customers.example: duplicate key"


def test_duplicate_nested_key_in_rules_yaml(workspace: Path) -> None:
    (workspace / "rules" / "customers.yaml").write_text(SAMPLE_CUSTOMERS + "    currency: EUR\n")
    message = one_line_error(run_cli(workspace, "rate"))
    assert (
        message
        == "meterbook: error: rules/customers.yaml:8: customers.example.currency: duplicate key"
    )


def test_impossible_date_in_rules_yaml(workspace: Path) -> None:
    (workspace / "rules" / "customers.yaml").write_text(
        SAMPLE_CUSTOMERS.replace("2026-01-01", "2026-13-01")
    )
    one_line_error(
        run_cli(workspace, "rate"),
        "rules/customers.yaml:6: customers.example.subscriptions[0].start: '2026-13-01' is not a "
        "date",
    )


# --- 6. numbers too large -------------------------------------------------------------------------


def test_huge_base_fee_is_a_rules_error(workspace: Path) -> None:
    plans = workspace / "rules" / "plans.yaml"
    plans.write_text(plans.read_text().replace('amount: "19.00"', 'amount: "1e400"'))
    one_line_error(
        run_cli(workspace, "rate"),
        "rules/plans.yaml:7: plans.starter.base_fee.amount: ",
        "too large",
    )


def test_huge_credit_amount(workspace: Path) -> None:
    root = invoiced(workspace)
    one_line_error(
        run_cli(root, "credit", "INV-2026-000001", "--amount", "1e400", "--reason", "x"),
        "--amount: '1e400' is too large",
    )
    assert store_rows(root, "SELECT number FROM credit_notes") == []


@pytest.mark.parametrize(
    ("prepare", "name", "text", "counts", "reasons", "query", "rows"),
    [
        pytest.param(
            invoiced,
            "payments.csv",
            "date,amount,currency,invoice,reference\n"
            "2026-01-10,1e400,USD,INV-2026-000001,BANK-1\n"
            "2026-01-11,1000000000000001,USD,INV-2026-000001,BANK-2\n"
            "2026-01-12,19.00,USD,INV-2026-000001,BANK-3\n",
            (3, 1, 2),
            {"bad_number": 2},
            "SELECT reference, amount FROM payments",
            [("BANK-3", "19.00")],
            id="payment-amount",
        ),
        pytest.param(
            ingested,
            "live.csv",
            "date,customer,meter,quantity,source\n"
            "2026-01-03,example,api_calls,1e30,app\n"
            "2026-01-04,example,api_calls,1000000000000000,app\n",
            (2, 1, 1),
            {"bad_number": 1},
            "SELECT date, units, nanos FROM live_totals",
            [("2026-01-04", 10**15, 0)],
            id="live-total-quantity",
        ),
    ],
)
def test_a_row_with_a_huge_number_is_rejected_and_the_file_continues(
    workspace: Path,
    prepare: Callable[[Path], Path],
    name: str,
    text: str,
    counts: tuple[int, int, int],
    reasons: dict[str, int],
    query: str,
    rows: list[tuple[object, ...]],
) -> None:
    root = prepare(workspace)
    path = root / name
    path.write_text(text)
    result = run_cli(root, "ingest", "--json", str(path))
    assert result.exit_code == 1, result.output  # a row was rejected
    report = json.loads(result.stdout)
    assert (report["received"], report["accepted"], report["rejected"]) == counts
    assert report["reasons"] == reasons
    assert store_rows(root, query) == rows


# --- 7. dates out of range ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["rate", "--through", "9999-12-31"],
        ["post", "--through", "9999-12-31"],
        ["invoice", "--through", "9999-12-31"],
        ["alerts", "--through", "9999-12-31"],
        ["close", "9999-12"],
        ["reconcile", "9999-12"],
        ["statement", "example", "--cycle", "9999-12-31"],
        ["report", "revenue", "--month", "9999-12"],
        ["rerate", "--from", "1969-12-01", "--dry-run"],
        ["credit", "INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "0001-01-01"],
    ],
)
def test_dates_out_of_range(workspace: Path, args: list[str]) -> None:
    latest = f"{today().year + 10}-12-31"
    one_line_error(run_cli(workspace, *args), "is out of range", f"(1970-01-01 to {latest})")


def test_month_zero_is_not_a_month(workspace: Path) -> None:
    one_line_error(run_cli(workspace, "close", "0000-01"), "close: month '0000-01' is not YYYY-MM")


# --- 8. writing commands refuse future dates and sealed days --------------------------------------


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (["invoice", "--through", "{tomorrow}"], "an invoice number is never taken back"),
        (["post", "--through", "{tomorrow}"], "the books are posted only through today"),
        (
            ["credit", "INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "{tomorrow}"],
            "a credit note is dated",
        ),
        (
            ["rerate", "--from", "2026-01-01", "--date", "{tomorrow}"],
            "credit notes and debit adjustments are dated",
        ),
    ],
)
def test_writes_dated_after_today_are_refused(workspace: Path, args: list[str], part: str) -> None:
    root = invoiced(workspace)
    now = today().date()
    tomorrow = (now + timedelta(days=1)).isoformat()
    invoices = store_rows(root, "SELECT number FROM invoices")
    books = sorted(str(p.relative_to(root)) for p in (root / "books").rglob("*"))
    one_line_error(
        run_cli(root, *[a.format(tomorrow=tomorrow) for a in args]),
        f"{tomorrow} is after today ({now.isoformat()}, UTC)",
        part,
    )
    assert store_rows(root, "SELECT number FROM invoices") == invoices
    assert store_rows(root, "SELECT number FROM credit_notes") == []
    assert sorted(str(p.relative_to(root)) for p in (root / "books").rglob("*")) == books


def test_post_through_a_sealed_day_is_refused(workspace: Path) -> None:
    root = ingested(workspace)
    closed = run_cli(root, "close", "2026-01")
    assert closed.exit_code == 0, closed.output
    issued = run_cli(root, "invoice", "--through", "2026-02-01")  # posts the open February too
    assert issued.exit_code == 0, issued.output
    february = root / "books" / "2026" / "2026-02.beancount"
    before = february.read_text()
    assert "INV-2026-000002" in before  # February's advance fee invoice
    for command in ("post", "invoice"):
        one_line_error(
            run_cli(root, command, "--through", "2026-01-15"),
            "--through: 2026-01-15 is inside the sealed months (sealed through 2026-01-31)",
            f"{command} through 2026-01-31 or later",
        )
    assert february.read_text() == before  # the open month was not emptied


# --- 9. alerts that cannot be delivered are not lost ----------------------------------------------


def test_undeliverable_alert_is_retried_not_lost(workspace: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full (a file whose writes fail with ENOSPC) is not available")
    root = ingested(workspace)
    (root / "rules" / "customers.yaml").write_text(SAMPLE_CUSTOMERS + "    caps: {api_calls: 2}\n")
    config = root / "meterbook.toml"
    plain = config.read_text()
    # a webhook nobody listens on, and an outbox whose writes fail (ENOSPC)
    alerts = (
        '[alerts]\nwebhook_url = "http://127.0.0.1:1/hook"\noutbox = "{outbox}"\nattempts = 1\n'
        "timeout_seconds = 1\nbackoff_seconds = 0\n"
    )
    config.write_text(plain + alerts.format(outbox="/dev/full"))
    failed = run_cli(root, "alerts", "--through", "2026-01-31")
    assert failed.exit_code == 1, failed.output
    assert len(failed.stderr.splitlines()) == 1
    assert failed.stderr.startswith(
        "meterbook: error: plugin ledger.plugins.webhook has not taken 2 alerts (last error: "
    )
    assert (
        "No space left on device" in failed.stderr and "the next run retries them" in failed.stderr
    )
    assert (
        failed.stdout.splitlines()[-1]
        == "2 crossings through 2026-01-31, 2 new, 2 deliveries pending"
    )
    ids = [
        "usage-cap:example:api_calls:2026-01-01:80",
        "usage-cap:example:api_calls:2026-01-01:100",
    ]
    assert sorted(store_rows(root, "SELECT id FROM alerts")) == sorted(
        (i,) for i in ids
    )  # raised once
    assert sorted(
        store_rows(root, "SELECT alert_id, plugin, attempts FROM alert_deliveries")
    ) == sorted((i, "ledger.plugins.webhook", 1) for i in ids)  # owed, not lost

    config.write_text(plain + alerts.format(outbox="var/outbox.jsonl"))
    retried = run_cli(root, "alerts", "--through", "2026-01-31")
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.splitlines()[-1] == "2 crossings through 2026-01-31, 0 new"
    outbox = [json.loads(line) for line in (root / "var" / "outbox.jsonl").read_text().splitlines()]
    assert [line["alert"]["id"] for line in outbox] == ids
    assert store_rows(root, "SELECT alert_id FROM alert_deliveries") == []


def test_outbox_that_cannot_exist_is_a_config_error(workspace: Path) -> None:
    config = workspace / "meterbook.toml"
    config.write_text(config.read_text() + '[alerts]\noutbox = "meterbook.toml/outbox.jsonl"\n')
    one_line_error(
        run_cli(workspace, "rate"),
        "meterbook.toml: alerts.outbox: ",
        "meterbook.toml is not a directory",
    )


# --- 10. plugins that raise are named -------------------------------------------------------------

BROKEN_IMPORTER = """\
from beangulp import Importer
from ledger.hookspecs import hookimpl


class Sniffer(Importer):
    @property
    def name(self):
        return "sniffer"

    def identify(self, filepath):
        raise RuntimeError("cannot sniff")

    def account(self, filepath):
        return "Assets:Usage"

    def extract(self, filepath, existing):
        return []


@hookimpl
def meterbook_importers():
    return [Sniffer()]
"""

BROKEN_PRICING = """\
from ledger.hookspecs import hookimpl


class Boom:
    name = "boom"

    def parse(self, params):
        return params["rate"]  # a KeyError, not a PricingError

    def price_is_final(self, terms):
        return True

    def bands(self, terms):
        return []

    def price(self, terms, usage):
        raise NotImplementedError


@hookimpl
def meterbook_pricing_models():
    return [Boom()]
"""


def _with_plugin(root: Path, name: str, source: str) -> None:
    (root / "plugins").mkdir()
    (root / "plugins" / f"{name}.py").write_text(source)
    config = root / "meterbook.toml"
    config.write_text(config.read_text().replace('plugins_dir = ""', 'plugins_dir = "plugins"'))


def test_importer_whose_identify_raises_is_named(workspace: Path) -> None:
    _with_plugin(workspace, "sniff", BROKEN_IMPORTER)
    data = workspace / "usage.dat"
    data.write_text("anything\n")
    one_line_error(
        run_cli(workspace, "ingest", str(data)),
        "importer 'sniffer' (meterbook_local.sniff) failed to identify",
        "RuntimeError: cannot sniff",
    )


def test_pricing_model_whose_parse_raises_is_named(workspace: Path) -> None:
    _with_plugin(workspace, "boom", BROKEN_PRICING)
    plans = workspace / "rules" / "plans.yaml"
    plans.write_text(plans.read_text().replace("model: unit", "model: boom"))
    one_line_error(
        run_cli(workspace, "rate"),
        "plugin meterbook_local.boom: pricing model 'boom' raised KeyError",
        "parsing plan 'starter' charge 2 (meter storage_gb) at rules/plans.yaml:14",
    )


# --- 11. smaller ones -----------------------------------------------------------------------------


def test_init_with_an_empty_directory_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one_line_error(run_cli(None, "init", ""), "init: DIRECTORY is empty")
    assert list(tmp_path.iterdir()) == []


def test_ingest_of_a_device_is_not_a_regular_file(workspace: Path) -> None:
    one_line_error(run_cli(workspace, "ingest", "/dev/null"), "/dev/null: not a regular file")


def test_demo_refuses_before_resetting_when_it_cannot_write(tmp_path: Path) -> None:
    import shutil

    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / "demo"
    shutil.copytree(repo / "rules", root / "rules")
    shutil.copy(repo / "meterbook.toml", root / "meterbook.toml")
    (root / "var").write_text("a file where the store's folder should be\n")
    roster = (root / "rules" / "customers.yaml").read_bytes()
    one_line_error(
        run_cli(root, "demo", "--quiet"),
        f"{root / 'var'}: not a directory, so the demo cannot write",
        "nothing was changed",
    )
    assert (root / "rules" / "customers.yaml").read_bytes() == roster
    # the workspace lock's file (ledger.lock) is all that is new
    assert sorted(p.name for p in root.iterdir()) == [
        ".meterbook.lock",
        "meterbook.toml",
        "rules",
        "var",
    ]
