"""The close workspace (test_close's module docstring works its numbers): two customers on a
graduated plan ``g`` (10 calls free, then 0.05, then 0.01 past 100): ``cal`` on calendar
cycles from Sep 1, ``ann`` on anniversary cycles from Sep 15; and the workspace reconciler
``planted``, one error finding per line of the workspace's file ``planted``.

Shared by test_close, test_invoice_gate, test_reconcilers, test_fava and, through
:mod:`tests.support.faults`, test_reliability and test_attacks.
"""

from __future__ import annotations

PLANS = """\
plans:
  g:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {up_to: 100, unit_price: "0.05"}
          - {unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: g, start: 2026-09-01}]}
  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: g, start: 2026-09-15}]}
"""
# A workspace reconciler: an error finding per line of the file ``planted`` (empty: none).
PLANTED = """\
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding


class Planted:
    name = "planted"

    def check(self, context):
        path = context.workspace.root / "planted"
        if not path.exists():
            return
        for line in path.read_text().split():
            yield Finding(
                id=f"planted:{line}:{context.period}", severity="error", check="planted",
                customer=line, meter="api_calls", period=context.period,
                expected=Decimal("30"), actual=Decimal("29"), explanation="planted discrepancy",
            )


@hookimpl
def meterbook_reconcilers():
    return [Planted()]
"""
