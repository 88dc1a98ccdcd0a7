"""Usage statements (issue 14, item 5): a 7-digit y-axis label fits, prepaid credit about to
expire is mentioned (and not projected), a plan version prices the cycle it governs.

The workspace (UTC): ``api_calls`` (count) and ``tokens`` (sum); plan ``g``: api_calls
graduated, 10 free then 0.05; plan ``t``: tokens at 0.000001; plan ``v``: api_calls at 0.10,
and at 0.20 from its version of 2026-10-01. Calendar cycles from 2026-09-01.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.documents import plot_left
from ledger.events import Event, parse_time
from ledger.statements import StatementFiles, write_statement
from tests.support.workspaces import calls, insert_events, open_session, write_workspace

METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count, unit: call}
  tokens: {name: Tokens, event_type: llm.completion, aggregation: sum, value: tokens,
           unit: token}
"""
PLANS = """\
plans:
  g:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers: [{up_to: 10, unit_price: "0"}, {unit_price: "0.05"}]
  t:
    currency: USD
    charges: [{meter: tokens, model: unit, unit_price: "0.000001"}]
  v:
    currency: USD
    charges: [{meter: api_calls, model: unit, unit_price: "0.10"}]
    versions:
      - effective: 2026-10-01
        charges: [{meter: api_calls, model: unit, unit_price: "0.20"}]
"""
CUSTOMERS = """\
customers:
  big: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: t, start: 2026-09-01}]}
  exp:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    credits: [{amount: "5.00", granted: 2026-10-01, expires: 2026-10-10}]
  ver:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: v, start: 2026-09-01}]
    spend_cap: "100.00"
"""
CHROMIUM = Path("/usr/bin/chromium")


def days(month: str, first: int, last: int) -> list[str]:
    return [f"2026-{month}-{d:02d}" for d in range(first, last + 1)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_workspace(
        tmp_path_factory.mktemp("notices") / "ws", meters=METERS, plans=PLANS, customers=CUSTOMERS
    )
    tokens = Event.build(
        source="t",
        id="big-1",
        customer="big",
        type="llm.completion",
        time=parse_time("2026-09-05T12:00:00Z"),
        properties={"tokens": "2091087"},
    )
    october = [d for d in days("10", 1, 9) for _ in range(10)]
    session = open_session(root)
    try:
        insert_events(
            session.engine,
            [
                tokens,
                *calls("exp", october),
                *calls("ver", [d for d in days("09", 1, 30)], prefix="s"),
                *calls("ver", [d for d in days("10", 1, 10) for _ in range(10)], prefix="o"),
            ],
        )
    finally:
        session.engine.dispose()
    return root


def statement(root: Path, customer: str, which: str, today: date) -> StatementFiles:
    session = open_session(root)
    try:
        return write_statement(session, customer, which=which, out=root / "out", today=today)
    finally:
        session.engine.dispose()


def test_a_seven_digit_peak_label_fits_left_of_the_plot(root: Path) -> None:
    """big's 2,091,087 tokens on Sep 5 are the chart's peak. Its label is right-aligned 4 units
    left of the plot: at the old fixed left edge 56 it ended at 52 but is 56 wide in Chromium
    (7 digits × 7 + 2 commas × 3.5), so its "2" fell off the picture. The plot now starts at
    7 × 7.2 + 2 × 3.6 + 8 = 65.6 → 66, the label ends at 62."""
    assert plot_left(Decimal(2_091_087)) == 66
    html = statement(root, "big", "2026-09-15", date(2026, 9, 10)).html.read_text()
    assert "<text x='62' y='20' text-anchor='end'>2,091,087</text>" in html
    assert "<line class='axis' x1='66' y1='12' x2='66' y2='142'/>" in html
    assert "<h3>Tokens: 2,091,087 token" in html  # the meter's display name


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)
def test_the_peak_label_is_inside_the_picture_in_chromium(root: Path) -> None:
    """Rendered by Chromium: the label's box starts inside the SVG (x ≥ 0)."""
    sync_api: Any = pytest.importorskip("playwright.sync_api")
    html = statement(root, "big", "2026-09-15", date(2026, 9, 10)).html
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(html.as_uri())
            box = page.evaluate(
                "[...document.querySelectorAll('svg text')]"
                ".filter(t => t.textContent === '2,091,087').map(t => t.getBBox())"
                ".map(b => [b.x, b.width])[0]"
            )
        finally:
            browser.close()
    x, width = box
    assert x >= 0 and x + width <= 62.5, box


def test_credit_expiring_tomorrow_is_mentioned_and_not_projected(root: Path) -> None:
    """exp: 5.00 of credit granted Oct 1, expiring Oct 10; 10 calls a day Oct 1–9 (90 calls).
    On Oct 9 the credit expires tomorrow. Credit is drawn at accrual points only, and the
    cycle's only one is Oct 31, after the expiry: all 5.00 is lost, none covers the cycle.
    Projection: 90 ÷ 9 × 31 = 310 calls → (310 − 10) × 0.05 = 15.00, less no credit = 15.00
    (it took 5.00 of credit off before: 10.00)."""
    files = statement(root, "exp", "current", date(2026, 10, 9))
    s = files.statement
    [expiring] = s.expiring
    assert (expiring.amount, expiring.expires, expiring.when, expiring.drawn_at) == (
        Decimal("5.00"),
        date(2026, 10, 10),
        "tomorrow, 2026-10-10",
        (),
    )
    assert [(c.projected_quantity, c.projected_amount) for c in s.projection.charges] == [
        (310, Decimal("15.00"))
    ]
    assert (s.projection.credit, s.projection.total) == (Decimal("0"), Decimal("15.00"))
    html = files.html.read_text()
    assert "<b>5.00 USD of prepaid credit expires tomorrow, 2026-10-10</b>" in html
    assert "(less what expires before it can be drawn)" in s.projection.method
    # a day later the grant has expired: nothing left to mention
    assert statement(root, "exp", "current", date(2026, 10, 10)).statement.expiring == ()


def test_the_projection_and_the_spend_cap_use_the_cycle_s_plan_version(root: Path) -> None:
    """ver, plan v: 0.10 a call, 0.20 from its version of 2026-10-01 (which governs the cycles
    starting on or after it). September (30 calls) is priced 30 × 0.10 = 3.00. October, 100
    calls by Oct 10: 100 × 0.20 = 20.00 to date; projected 100 ÷ 10 × 31 = 310 calls × 0.20
    = 62.00. The spend cap's use is 20.00 (the old price gave 10.00)."""
    september = statement(root, "ver", "2026-09-15", date(2026, 10, 10)).statement
    assert (september.total, september.projection.total) == (Decimal("3.00"), Decimal("3.00"))
    assert "plan v (its original terms)" in september.projection.method
    october = statement(root, "ver", "current", date(2026, 10, 10)).statement
    assert october.total == Decimal("20.00")
    assert [(c.projected_quantity, c.projected_amount) for c in october.projection.charges] == [
        (310, Decimal("62.00"))
    ]
    assert "priced with plan v as of its version of 2026-10-01" in october.projection.method
    [spend] = october.caps
    assert (spend.kind, spend.used, spend.projected) == (
        "spend_cap",
        Decimal("20.00"),
        Decimal("62.00"),
    )
