"""The alerts workspace (test_alerts' module docstring works its crossings): plan ``g``,
api_calls graduated (10 free, then 0.05), calendar cycles from Sep 1; ``capped`` (cap 100
calls; 10 calls a day Sep 1–30 and Oct 1–10), ``spender`` (spend cap 4.00, alerts at 50 % and
100 %; 10 calls a day in September) and ``quiet`` (10 calls a day Sep 1–3).

Shared by test_alerts and test_webhooks.
"""

from __future__ import annotations

from pathlib import Path

from ledger.events import Event, parse_time
from ledger.session import Session
from tests.support.workspaces import METERS_CALLS, insert_events, open_session, write_workspace

PLANS = """\
plans:
  g:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
CUSTOMERS = """\
customers:
  capped:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    caps: {api_calls: 100}
  spender:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    spend_cap: "4.00"
    alert_thresholds: ["0.5", "1.0"]
  quiet:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
"""


def _calls(customer: str, days: list[str]) -> list[Event]:
    """Ten ``api.request`` events at noon UTC on each day given."""
    return [
        Event.build(
            source="t",
            id=f"{customer}-{day}-{i}",
            customer=customer,
            type="api.request",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={},
        )
        for day in days
        for i in range(10)
    ]


def make_workspace(
    root: Path, store: str, *, alerts: str = "", plugins: dict[str, str] | None = None
) -> Session:
    """The workspace above on the store ``store``, its events stored; ``alerts`` is TOML added to
    meterbook.toml (an ``[alerts]`` table)."""
    write_workspace(
        root,
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'store = "{store}"\n' + alerts,
        plugins=plugins or None,
    )
    session = open_session(root)
    sep = [f"2026-09-{d:02d}" for d in range(1, 31)]
    insert_events(
        session.engine,
        [
            *_calls("capped", sep),
            *_calls("capped", [f"2026-10-{d:02d}" for d in range(1, 11)]),
            *_calls("spender", sep),
            *_calls("quiet", sep[:3]),
        ],
    )
    return session
