"""A real browser on the meterbook pages: Debian's chromium driven by Playwright.

Fava runs on a free loopback port (the cheroot server ``meterbook serve``
uses) over the workspace of ``test_fava``; each page is opened the way a
reader would, through Fava's own single-page app, a number checked on it, and
a screenshot saved in the test's temporary directory.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import serve
from tests.support.fava import build_workspace

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = build_workspace(tmp_path_factory.mktemp("browser") / "ws")
    app = serve.create_app(root / "books" / "main.beancount")
    port = _free_port()
    server = serve.make_server(app, "127.0.0.1", port)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    slug = app.test_client().get("/").headers["Location"].strip("/").split("/")[0]
    try:
        yield f"http://127.0.0.1:{port}/{slug}"
    finally:
        server.stop()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
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


# page, selector of the element holding the number, the number
PAGES = [
    ("MeterbookRevenue", "#revenue-USD", "160.00"),
    ("MeterbookCustomers", "#customer-beta", "54.00"),
    ("MeterbookClose", "#close-2026-09", "sealed, verified"),
    ("MeterbookReports", "#meterbook-reports", "Reports"),
]


def test_each_page_in_chromium(base_url: str, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}/income_statement/")
    page.wait_for_selector("aside")
    for name, selector, number in PAGES:
        # through Fava's sidebar: the page is fetched and inserted by Fava's own app
        page.click(f'aside a[href*="/extension/{name}/"]')
        page.wait_for_url(f"**/extension/{name}/")
        page.wait_for_selector(f"article {selector}")
        assert number in page.inner_text(selector)
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000

    # Reports: a report chosen from the list (Fava's app fetches it in place)
    page.click('#report-names a:text-is("revenue")')
    page.wait_for_selector("#report-title")
    assert "150.00" in page.inner_text("article table")  # 150 calls at 1.00 in September
    page.screenshot(path=str(tmp_path / "MeterbookReports-revenue.png"), full_page=True)

    # Revenue: Fava's own components rendered them (its chart switcher draws an SVG chart, its
    # query table formats the amounts with the currency), not meterbook markup
    page.click('aside a[href*="/extension/MeterbookRevenue/"]')
    page.wait_for_selector("#revenue-charts svelte-component svg")
    assert page.locator("#revenue-charts svelte-component svg").count() >= 1
    assert page.locator("#revenue-charts .error, #revenue-USD .error").count() == 0
    page.wait_for_selector("#revenue-USD svelte-component table")
    rendered = page.inner_text("#revenue-USD svelte-component table")
    assert "recognized" in rendered and "160.00 USD" in rendered and "34.00 USD" in rendered
    page.screenshot(path=str(tmp_path / "MeterbookRevenue-components.png"), full_page=True)

    # Evidence: the form, submitted like a reader would
    page.click('aside a[href*="/extension/MeterbookEvidence/"]')
    page.fill("#evidence-ref", "INV-2026-000002")
    page.click("#evidence-form button")
    page.wait_for_selector("#trace-result")
    assert re.search(r"INV-2026-000002:\s+verified", page.inner_text("#trace-result"))
    assert "110.00 USD" in page.inner_text("#trace-text")
    page.screenshot(path=str(tmp_path / "MeterbookEvidence.png"), full_page=True)
    assert errors == []
    page.close()
