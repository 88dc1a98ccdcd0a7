"""The rerate workspace (test_rerate's module docstring works its numbers): plan ``u``, 1.00 a
call, calendar cycles from Sep 1; ``acme`` 30 calls in September, 20 in October, 10 in
November; ``beta`` 10 in October, paid on Nov 5; and plan versions added after the fact.

Shared by test_rerate and test_operations.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from ledger.events import Event, parse_time
from ledger.payments import ingest_payments
from tests.support.workspaces import METERS_CALLS, insert_events, open_session, write_workspace

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""
CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""


def version(price: str, effective: str = "2026-10-01") -> str:
    """``PLANS`` with a version of plan ``u`` charging ``price`` a call from ``effective``."""
    return (
        PLANS
        + f"""\
    versions:
      - effective: {effective}
        charges:
          - {{meter: api_calls, model: unit, unit_price: "{price}"}}
"""
    )


def _calls(customer: str, month: int, n: int) -> list[Event]:
    """``n`` ``api.request`` events of ``customer`` at noon UTC in ``month`` of 2026."""
    return [
        Event.build(
            source="t",
            id=f"{customer}-{month}-{i}",
            customer=customer,
            type="api.request",
            time=parse_time(f"2026-{month:02d}-{1 + i % 28:02d}T12:00:00Z"),
            properties={},
        )
        for i in range(n)
    ]


def make(tmp_path: Path, store: str = "sqlite:///var/events.sqlite") -> Path:
    """The workspace above in ``tmp_path / "ws"``, invoiced through Nov 1, beta's invoice paid on
    Nov 5, posted through Nov 20."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        config=f'store = "{store}"\n',
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *_calls("acme", 9, 30),
            *_calls("acme", 10, 20),
            *_calls("acme", 11, 10),
            *_calls("beta", 10, 10),
        ],
    )
    issued = session.invoice(date(2026, 11, 1))
    assert [(i.number, i.customer, i.total) for i in issued] == [
        ("INV-2026-000001", "acme", Decimal("30.00")),
        ("INV-2026-000002", "acme", Decimal("20.00")),
        ("INV-2026-000003", "beta", Decimal("10.00")),
    ]
    payments = tmp_path / "payments.csv"
    payments.write_text(
        "date,amount,currency,invoice,reference\n2026-11-05,10.00,USD,INV-2026-000003,BANK-1\n"
    )
    assert ingest_payments(session.engine, payments).accepted == 1
    session.post(date(2026, 11, 20))
    return root
