"""The rating workspace (test_rating works its numbers): plan ``p`` (30.00 base fee in advance,
20.00 minimum commitment, graduated api_calls: 10 free, then 0.05, then 0.01 past 100; storage
at 0.10 a GB, the month's maximum) and ``v`` (volume-tiered tokens); customers ``c``
(anniversary from Aug 15), ``k`` (5.00 prepaid credit expiring Oct 10) and ``t``.

Shared by test_rating, test_rating_edges, test_credit_draws and test_mutation_kills.
"""

from __future__ import annotations

from pathlib import Path

from ledger.events import Event, parse_time
from ledger.registry import load_registry
from ledger.rules import Rules, load_rules

METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count}
  storage_gb: {event_type: storage.snapshot, aggregation: max, value: gb}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
"""
PLANS = """\
plans:
  p:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    minimum_commitment: "20.00"
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {up_to: 100, unit_price: "0.05"}
          - {unit_price: "0.01"}
      - {meter: storage_gb, model: unit, unit_price: "0.10"}
  v:
    currency: USD
    charges:
      - meter: tokens
        model: volume
        tiers:
          - {up_to: 100, unit_price: "0.02"}
          - {unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  c:
    currency: USD
    subscriptions: [{plan: p, start: 2026-08-15}]
    billing_anchor: start
  k:
    currency: USD
    subscriptions: [{plan: p, start: 2026-08-15}]
    credits:
      - {amount: "5.00", granted: 2026-09-01, expires: 2026-10-10}
  t:
    currency: USD
    subscriptions: [{plan: v, start: 2026-09-15}]
    billing_anchor: start
    credits:
      - {amount: "100.00", granted: 2026-09-01}
"""


def rating_rules(tmp_path: Path) -> tuple[Rules, dict]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS)
    (rules_dir / "plans.yaml").write_text(PLANS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    models = dict(load_registry(None).pricing_models)
    return load_rules(rules_dir, models), models


def rating_event(n: int, customer: str, type_: str, time: str, **props: str) -> Event:
    return Event.build(
        source="t",
        id=f"{customer}-{n}",
        customer=customer,
        type=type_,
        time=parse_time(time),
        properties=props,
    )


def cycle_usage(customer: str) -> list[Event]:
    rows = [
        rating_event(i, customer, "api.request", f"2026-09-{16 + i % 14:02d}T12:00:00Z")
        for i in range(14)
    ]
    # the last microsecond of Sep 30 belongs to the Sep 30 accrual point
    rows[-1] = rating_event(13, customer, "api.request", "2026-09-30T23:59:59.999999Z")
    rows += [
        rating_event(100 + i, customer, "api.request", f"2026-10-{1 + i % 13:02d}T08:00:00Z")
        for i in range(11)
    ]
    rows.append(
        rating_event(200, customer, "api.request", "2026-10-15T00:00:00Z")
    )  # next cycle: excluded
    rows.append(rating_event(300, customer, "storage.snapshot", "2026-09-20T00:00:00Z", gb="12.5"))
    rows.append(rating_event(301, customer, "storage.snapshot", "2026-10-01T00:00:00Z", gb="8"))
    return rows
