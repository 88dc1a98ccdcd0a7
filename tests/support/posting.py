"""The posting workspace's plans and customers (test_posting works their numbers): plan ``g``
graduated api_calls (10 free, then 0.05, then 0.01 past 100), ``v`` volume-tiered tokens,
``b`` a 30.00 base fee in advance, ``m`` a 20.00 minimum commitment; customers ``cal``,
``ann``, ``vol``, ``bf``, ``cr`` (5.00 prepaid credit) and ``mc``.

Shared by test_posting, test_posting_properties and test_trace.
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
  v:
    currency: USD
    charges:
      - meter: tokens
        model: volume
        tiers:
          - {up_to: 100, unit_price: "0.02"}
          - {unit_price: "0.01"}
  b:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
  m:
    currency: USD
    minimum_commitment: "20.00"
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
CUSTOMERS = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: g, start: 2026-09-01}]}
  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: g, start: 2026-08-15}]}
  vol: {currency: USD, billing_anchor: start, subscriptions: [{plan: v, start: 2026-08-15}]}
  bf: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: b, start: 2026-09-11}]}
  cr:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    credits: [{amount: "5.00", granted: 2026-09-01, expires: 2026-10-15}]
  mc: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: m, start: 2026-09-01}]}
"""
