"""A real browser on the meterbook pages: Debian's chromium driven by Playwright.

Fava runs on a free loopback port (the cheroot server ``meterbook serve``
uses) over the workspace of ``test_fava``; each page is opened the way a
reader would, through Fava's own single-page app, at a 1,280 px wide window, a
number checked on it, and a screenshot saved in the test's temporary directory
(``pytest --basetemp DIR`` keeps them where you can look): Fava's income
statement with revenue positive, the customers by name, the Close page fitting
the window and the close report rendered as a page.
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
WIDTH = 1280
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


def _on_screen(page: Any, selector: str) -> None:
    """The element is inside the window's width: nothing to scroll sideways to."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (selector, box)


def _weight(page: Any, selector: str) -> int:
    return int(page.locator(selector).first.evaluate("e => getComputedStyle(e).fontWeight"))


def test_each_page_in_chromium(base_url: str, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}/income_statement/")
    page.wait_for_selector("aside")
    # Fava's income statement with the invert option main.beancount sets: Income shows
    # 194.00 (160.00 in September + 34.00 in October), not Beancount's -194.00
    income = page.locator('.tree-table-new p:has(> [data-account-name="Income"]) > .num').first
    assert income.inner_text().split() == ["194.00"]
    page.screenshot(path=str(tmp_path / "income_statement.png"), full_page=True)
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

    # Customers: by name, the total row bold
    page.click('aside a[href*="/extension/MeterbookCustomers/"]')
    page.wait_for_selector("#customers-total-USD")
    shown = page.inner_text("#customers")
    assert "Acme Corp" in shown and "Beta & Sons <Ltd>" in shown
    assert "194.00" in page.inner_text("#customers-total-USD")
    assert _weight(page, "#customers-total-USD td.num") >= 700

    # Close at 1,280 px: findings wrap, acceptances, the report link and the form stay on screen
    page.click('aside a[href*="/extension/MeterbookClose/"]')
    page.wait_for_selector("#accept-form-2026-10")
    for selector in (
        "#close-2026-10 td:nth-child(4)",
        "#close-2026-09 td:nth-child(5)",
        "#close-2026-09 .close-report-link",
        "#accept-form-2026-10 select",
        "#accept-form-2026-10 button",
    ):
        _on_screen(page, selector)
    assert page.evaluate("() => document.querySelector('article').scrollWidth") <= WIDTH
    page.screenshot(path=str(tmp_path / "MeterbookClose-1280.png"), full_page=True)
    page.select_option("#accept-form-2026-10 select", "planted:beta:2026-10")
    page.fill('#accept-form-2026-10 input[name="reason"]', "meter vendor confirmed the 29")
    page.click("#accept-form-2026-10 button")
    page.wait_for_selector("#accept-command-2026-10")
    assert page.inner_text("#accept-command-2026-10") == (
        "meterbook close 2026-10 --accept planted:beta:2026-10 "
        "--reason 'meter vendor confirmed the 29'"
    )
    _on_screen(page, "#accept-command-2026-10")
    page.screenshot(path=str(tmp_path / "MeterbookClose-command.png"), full_page=True)

    # the close report as a page in Fava: HTML tables, the total row bold, invoices linked
    page.click('aside a[href*="/extension/MeterbookClose/"]')
    page.click("#close-2026-09 .close-report-link")
    page.wait_for_selector("#close-report table")
    assert page.inner_text("#close-report h1") == "Close 2026-09"
    assert "| month |" not in page.inner_text("#close-report")
    assert _weight(page, "#close-report tr.meterbook-total td") >= 700
    invoice = page.locator('#close-report a:text-is("INV-2026-000001")').first
    document = page.request.get(invoice.evaluate("a => a.href"))  # absolute
    assert document.ok and "INV-2026-000001" in document.text()
    assert page.evaluate("() => document.querySelector('article').scrollWidth") <= WIDTH
    page.screenshot(path=str(tmp_path / "MeterbookClose-report.png"), full_page=True)

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
