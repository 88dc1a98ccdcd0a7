"""The reports workspace (test_reports' module docstring works its figures): plan ``p``, a
30.00 base fee in advance and 0.10 per API call; ``cal`` on calendar cycles from Sep 1,
``ann`` on anniversary cycles from Sep 15 with 5.00 of prepaid credit; two payments.

Shared by test_reports, test_close_report and test_hostile_input.
"""

from __future__ import annotations

from pathlib import Path

from ledger.payments import ingest_payments
from ledger.session import Session
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

PLANS = """\
plans:
  p:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
"""
CUSTOMERS = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: p, start: 2026-09-01}]}
  ann:
    currency: USD
    subscriptions: [{plan: p, start: 2026-09-15}]
    credits: [{amount: "5.00", granted: 2026-09-15, expires: 2027-03-15}]
"""
PAYMENTS = """\
date,amount,currency,invoice,reference
2026-09-10,30.00,USD,INV-2026-000001,B1
2026-10-05,10.00,USD,INV-2026-000002,B2
"""


def make_workspace(
    root: Path, meters: str, plans: str, customers: str, store: str = "sqlite:///var/events.sqlite"
) -> Session:
    """A workspace with these rules (YAML text) on the store ``store``, opened."""
    return open_session(
        write_workspace(
            root, meters=meters, plans=plans, customers=customers, config=f'store = "{store}"\n'
        )
    )


def accounting_workspace(root: Path) -> Session:
    """The workspace above in ``root``, its events and payments stored, nothing posted."""
    session = make_workspace(root, METERS_CALLS, PLANS, CUSTOMERS)
    insert_events(
        session.engine,
        [
            *calls("cal", [f"2026-09-{d:02d}" for d in range(1, 21)], "s"),
            *calls("cal", [f"2026-10-{d:02d}" for d in range(1, 11)], "o"),
            *calls("ann", [f"2026-09-{d:02d}" for d in range(16, 30)], "s"),
            *calls("ann", [f"2026-10-{d:02d}" for d in range(1, 12)], "o"),
            *calls("ann", [f"2026-10-{d:02d}" for d in range(20, 25)], "l"),
        ],
    )
    (root / "payments.csv").write_text(PAYMENTS)
    ingest_payments(session.engine, root / "payments.csv")
    return session
