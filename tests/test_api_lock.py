"""The API writes under the workspace lock, as every other writing command does.

A real ``meterbook post`` (its own process) rates with a workspace plugin whose
price takes 3 s the first time, so it holds the workspace lock for ~3 s. While it
does, an ingest request and a cap change arrive at the API (lock wait 0.5 s): both
are answered ``503 workspace_locked`` with ``Retry-After``, and nothing of them is
stored (events still 1, cap changes 0). The same ingest retried with a wait longer
than the post is stored once post lets go (events 2). ``keys create`` and ``keys
revoke`` wait for the lock too: with the lock held and ``METERBOOK_LOCK_TIMEOUT=0.5``
they exit 2 naming the holder, and no key is added or revoked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from ledger.api.keys import create_key, list_keys
from ledger.lock import workspace_lock
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.api import CONFIG, body, customers, event, post, start_api
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

SLOW = '''"""slow_unit: unit pricing that takes 3 s the first time it prices (a long post)."""
import os
import time
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.pricing import Price, PriceLine, decimal_param


class SlowUnit:
    name = "slow_unit"

    def parse(self, params):
        return decimal_param(params, "unit_price")

    def price_is_final(self, terms):
        return True

    def bands(self, terms):
        return ()

    def price(self, terms, usage):
        marker = os.environ.get("SLOW_MARKER")
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(3)
        amount = usage.quantity * terms
        return Price(amount, (PriceLine("per unit", usage.quantity, terms, amount),))


@hookimpl
def meterbook_pricing_models():
    return [SlowUnit()]
'''

PLANS = """plans:
  pro:
    currency: USD
    charges:
      - {meter: api_calls, model: slow_unit, unit_price: "0.01"}
    max_caps: {api_calls: 1000}
"""


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ledger.cli import main; main()",
            "--workspace",
            str(root),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1", **(env or {})},
    )


def test_api_writes_wait_for_a_real_post_and_answer_503_when_it_holds_the_lock_too_long(
    tmp_path: Path,
) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=PLANS,
        customers=customers(),
        config=CONFIG,
        plugins={"slow": SLOW},
    )
    session = Session.open(Workspace.load(root))
    ingest = create_key(session.engine, session.rules, "ingest").secret
    portal = create_key(session.engine, session.rules, "portal", "acme").secret
    url, service, server, thread = start_api(root)
    service.lock_wait = 0.5
    marker = tmp_path / "post-is-rating"

    def count(table: str) -> int:
        with session.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ingest}"}, timeout=30
        ) as c:
            assert post(c, body([event("before")])).json()["accepted"] == 1
        poster = cli(root, "post", env={"SLOW_MARKER": str(marker)})
        for _ in range(400):  # post has the lock and is rating
            if marker.exists() or poster.poll() is not None:
                break
            time.sleep(0.025)
        assert marker.exists(), poster.communicate()
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ingest}"}, timeout=30
        ) as c:
            busy = post(c, body([event("during")]))
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
            assert busy.json()["error"] == "workspace_locked" and str(root) not in busy.text
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {portal}"}, timeout=30
        ) as p:
            refused = p.post("/portal/caps/api_calls", json={"cap": "500"})
            assert (refused.status_code, refused.json()["error"]) == (503, "workspace_locked")
        assert poster.poll() is None, (
            "post ended before the requests were refused: the test proves nothing"
        )
        assert (count("events"), count("cap_changes")) == (1, 0)
        service.lock_wait = 30  # a patient write waits for post to finish, then is stored
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ingest}"}, timeout=60
        ) as c:
            retried = post(c, body([event("during")]))
        assert poster.wait(timeout=60) == 0, poster.communicate()
        assert retried.status_code == 200 and retried.json()["accepted"] == 1
        assert count("events") == 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()

    before = {k.id: k.revoked for k in list_keys(session.engine)}
    with workspace_lock(root, "close"):
        created = cli(
            root, "keys", "create", "--scope", "ingest", env={"METERBOOK_LOCK_TIMEOUT": "0.5"}
        )
        revoked = cli(
            root, "keys", "revoke", next(iter(before)), env={"METERBOOK_LOCK_TIMEOUT": "0.5"}
        )
        for process in (created, revoked):
            out, err = process.communicate(timeout=60)
            assert (
                process.returncode == 2
                and "locked by `meterbook close`" in err
                and "mbk_" not in out
            )
    assert {k.id: k.revoked for k in list_keys(session.engine)} == before


def test_a_postgresql_store_shared_by_another_workspace_is_locked_too(
    tmp_path: Path, pg_url: str
) -> None:
    """Two workspaces, one PostgreSQL store: while the other workspace's ``close`` holds the
    store's advisory lock, an API write here is 503 (nothing stored); once it lets go, the
    same request is stored, and the API's pooled lock connection is given back each time."""
    config = f'store = "{pg_url}"\ntimezone = "UTC"\n'
    here = write_workspace(
        tmp_path / "here",
        meters=METERS_CALLS_TOKENS,
        plans=PLANS.replace("slow_unit", "unit"),
        customers=customers(),
        config=config,
    )
    session = Session.open(Workspace.load(here))
    ingest = create_key(session.engine, session.rules, "ingest").secret
    url, service, server, thread = start_api(here)
    service.lock_wait = 0.3
    (tmp_path / "there").mkdir()
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ingest}"}, timeout=30
        ) as c:
            with workspace_lock(tmp_path / "there", "close", store_url=pg_url):
                busy = post(c, body([event("pg-1")]))
                assert (busy.status_code, busy.json()["error"]) == (503, "workspace_locked")
            for n in range(3):
                assert post(c, body([event(f"pg-{n}")])).json()["accepted"] == 1
        with workspace_lock(tmp_path / "there", "close", store_url=pg_url, timeout=1):
            pass  # the API holds nothing between writes
        with session.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 3
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()
        session.engine.dispose()
