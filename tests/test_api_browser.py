"""A real browser on the customer portal: Debian's chromium driven by Playwright, as
``test_browser``.

acme signs in with its portal key, reads the projected cost of its cycle on the page (the same
figure ``/portal/summary`` gives: the worked example of ``test_api``), and raises its api_calls
cap from 100 to 500 with the page's form; the page then shows 500 and the store holds the change
made with acme's key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.api.keys import create_key
from ledger.api.portal import load_changes
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.api import CONFIG, FIVE, body, customers, plans, post, start_api
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_customer_reads_its_projected_cost_and_raises_its_cap(
    tmp_path: Path, browser: Any
) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(root))
    ingest = create_key(session.engine, session.rules, "ingest").secret
    acme = create_key(session.engine, session.rules, "portal", "acme")
    url, service, server, thread = start_api(root)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ingest}"}) as client:
            assert post(client, body(FIVE[:3])).json()["accepted"] == 3
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {acme.secret}"}
        ) as client:
            projected = client.get("/portal/summary").json()["projection"]["total"]
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/portal/login")
        page.fill("#key", acme.secret)
        page.click("#sign-in")
        page.wait_for_selector("#projected-total")
        assert page.inner_text("#projected-total") == projected
        assert page.inner_text("#usage-api_calls") == "2 call"
        assert page.inner_text("#cap-api_calls") == "100"
        page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)

        page.fill("#new-cap-api_calls", "500")
        page.click("#set-cap-api_calls")
        page.wait_for_selector("#cap-api_calls:text-is('500')")
        assert errors == []
        [change] = load_changes(session.engine, "acme")
        assert (change.meter, change.previous, change.cap, change.key_id) == (
            "api_calls",
            100,
            500,
            acme.key.id,
        )

        page.fill("#new-cap-api_calls", "5000")  # over the plan's maximum, 1000
        page.click("#set-cap-api_calls")
        page.wait_for_selector("#error")
        assert "at most 1000" in page.inner_text("#error")
        assert page.inner_text("#cap-api_calls") == "500"
        page.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()
        session.engine.dispose()
