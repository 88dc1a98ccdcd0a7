"""Shared fixtures: real stores (SQLite always, PostgreSQL when configured) and workspaces.

PostgreSQL tests read ``METERBOOK_TEST_DATABASE_URL`` (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and skip with a clear
reason when it is unset. Each test gets its own PostgreSQL schema, dropped after.

Shared data and helpers live in the ``tests/support`` package; the fixtures several
test modules use live here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from beancount import loader

from tests.support.faults import build, meterbook
from tests.support.workspaces import REPO, sqlite_url

# Beancount 3's pickle cache is keyed on file mtimes only, not plugin code.
os.environ.setdefault("BEANCOUNT_DISABLE_LOAD_CACHE", "1")
loader.initialize(False)

PG_URL = os.environ.get("METERBOOK_TEST_DATABASE_URL", "")
PG_SKIP = "METERBOOK_TEST_DATABASE_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


_SETUP_SECONDS = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """While mutmut times the tests (``MUTANT_UNDER_TEST=stats``, ``python3 tasks.py
    mutation``), a test's time includes its fixtures' setup.

    mutmut runs a mutant's tests fastest first and stops at the first failure, timing each
    by its call alone: a test whose fixture builds a workspace and its books would count as
    instant and run before the millisecond worked examples that usually kill the mutant.
    """
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    if call.when == "setup":
        item.stash[_SETUP_SECONDS] = call.duration
    elif call.when == "call":
        call.duration += item.stash.get(_SETUP_SECONDS, 0.0)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the `meterbook init` template workspace."""
    from click.testing import CliRunner

    from ledger.cli import cli

    root = tmp_path / "ws"
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def demo_rules(tmp_path: Path) -> Path:
    """A copy of the repository's demo rules directory."""
    target = tmp_path / "rules"
    shutil.copytree(REPO / "rules", target)
    return target


# --- the faults workspace of test_reliability and test_attacks (tests.support.faults) ---


@pytest.fixture(scope="module")
def posted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Posted and invoiced through 2026-11-30 (September closed), built once and copied per test."""
    root = build(tmp_path_factory.mktemp("template") / "ws")
    assert meterbook(root, "invoice", "--through", "2026-11-30").returncode == 0
    closed = meterbook(root, "close", "2026-09")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    return root


@pytest.fixture
def ws(posted_template: Path, tmp_path: Path) -> Path:
    """A copy of ``posted_template`` for one test."""
    target = tmp_path / "ws"
    shutil.copytree(posted_template, target)
    return target


@pytest.fixture
def closed(ws: Path) -> Path:
    """October closed too: its invoices INV-…1 (Oct 1) and INV-…2 (Oct 15) are sealed documents."""
    assert meterbook(ws, "close", "2026-10").returncode == 0
    return ws
