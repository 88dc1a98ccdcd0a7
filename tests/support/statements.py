"""The statements workspace (test_statements' module docstring works its totals): timezone
Europe/Berlin; plan ``g`` (graduated api_calls, 10 free then 0.05; eu tokens at 0.01) and
``b`` (a 30.00 base fee in advance and the same api_calls); ``acme`` (with edge-of-cycle
events and eu and us tokens), ``fee`` on plan ``b``, ``cred`` with 5.00 of prepaid credit.

Shared by test_statements and test_hostile_input.
"""

from __future__ import annotations

from pathlib import Path

from ledger.events import Event, parse_time
from ledger.session import Session
from tests.support.workspaces import insert_events, open_session, write_workspace

METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count, unit: call}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens, unit: token,
           filter: {region: eu}}
"""
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
      - meter: tokens
        model: unit
        unit_price: "0.01"
  b:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
CUSTOMERS = """\
customers:
  acme:
    name: "<Acme & Co>"
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    caps: {api_calls: 100}
    spend_cap: "40.00"
  fee: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: b, start: 2026-09-01}]}
  cred:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    credits: [{amount: "5.00", granted: 2026-09-01}]
"""
SEPTEMBER = [f"2026-09-{d:02d}" for d in range(1, 31)]


def statement_event(
    customer: str, ident: str, time: str, type_: str = "api.request", **props: str
) -> Event:
    """An event from the source ``app`` at ``time`` (ISO 8601)."""
    return Event.build(
        source="app",
        id=ident,
        customer=customer,
        type=type_,
        time=parse_time(time),
        properties=props,
    )


def _daily(customer: str) -> list[Event]:
    """Ten ``api.request`` events at noon UTC on every day of September."""
    return [
        statement_event(customer, f"{customer}-{day}-{i}", f"{day}T12:00:00Z")
        for day in SEPTEMBER
        for i in range(10)
    ]


def make_session(root: Path, store: str) -> Session:
    """The workspace above in ``root`` on the store ``store``, its events stored."""
    write_workspace(
        root,
        meters=METERS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'store = "{store}"\ntimezone = "Europe/Berlin"\n',
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *_daily("acme"),
            *_daily("fee"),
            *_daily("cred"),
            statement_event("acme", "edge-in-first", "2026-08-31T22:30:00Z"),
            statement_event("acme", "edge-in-last", "2026-09-30T21:59:59Z"),
            statement_event("acme", "edge-out-next", "2026-09-30T22:00:00Z"),
            statement_event("acme", "edge-out-before", "2026-08-31T21:59:59Z"),
            statement_event(
                "acme",
                "tok-eu",
                "2026-09-05T09:00:00Z",
                "llm.completion",
                tokens="1000",
                region="eu",
            ),
            statement_event(
                "acme",
                "tok-us",
                "2026-09-05T09:00:00Z",
                "llm.completion",
                tokens="500",
                region="us",
            ),
            statement_event("acme", "view", "2026-09-05T09:00:00Z", "page.view"),
        ],
    )
    return session
