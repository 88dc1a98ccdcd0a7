"""The ingest tests' rules and helpers: five meters of every aggregation, two customers, and
an import run against a store URL at a fixed ``NOW`` (2026-11-01, UTC).

Shared by test_ingest, test_ingest_pg, test_ingest_parallel and test_rejects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from ledger.ingest import ImportReport, default_importers, ingest_file, select_importer
from ledger.rules import Rules, load_rules
from ledger.store import open_store

NOW = datetime(2026, 11, 1, tzinfo=UTC)

METERS = """meters:
  api_calls: {event_type: api.request, aggregation: count}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
  eu_bytes: {event_type: llm.completion, aggregation: sum, value: bytes, filter: {region: eu}}
  storage: {event_type: storage.snapshot, aggregation: max, value: gb}
  users: {event_type: login, aggregation: unique_count, value: user}
"""
PLANS = "plans:\n  basic: {currency: USD, charges: []}\n"
CUSTOMERS = "customers:\n  acme: {currency: USD}\n  globex: {currency: USD}\n"


def make_rules(directory: Path, customers: str = CUSTOMERS) -> Rules:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meters.yaml").write_text(METERS)
    (directory / "plans.yaml").write_text(PLANS)
    (directory / "customers.yaml").write_text(customers)
    return load_rules(directory)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


HEADER = "id,source,customer,type,time,tokens,bytes,region,gb,user\n"


def run(url: str, rules_dir: Path, path: Path, **kw: object) -> ImportReport:
    engine = open_store(url)
    try:
        rules = (
            make_rules(rules_dir)
            if not (rules_dir / "meters.yaml").exists()
            else load_rules(rules_dir)
        )
        return ingest_file(
            engine, rules, path, select_importer(path, default_importers()), now=NOW, **kw
        )  # type: ignore[arg-type]
    finally:
        engine.dispose()


def table(url: str, t: sa.Table) -> list[sa.Row]:  # type: ignore[type-arg]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(t)))
    finally:
        engine.dispose()


def check_sum(report: ImportReport) -> None:
    assert (
        report.received == report.accepted + report.duplicates + report.conflicts + report.rejected
    )
    assert report.rejected == sum(report.reasons.values())
