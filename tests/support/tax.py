"""The tax workspace (test_tax's module docstring works its invoices): calendar cycles from
2026-10-01 at 0.25 a call, seller tax id DE811111111; ``kunde`` (EUR, German VAT 19 %),
``client_fr`` (EUR, reverse charge) and ``acme_us`` (USD, California state and San
Francisco district sales tax), with 401, 400 and 401 calls in October by default.

Shared by test_tax and test_export.
"""

from __future__ import annotations

from pathlib import Path

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
  us:
    currency: USD
    charges: [{meter: api_calls, model: unit, unit_price: "0.25"}]
  eu:
    currency: EUR
    charges: [{meter: api_calls, model: unit, unit_price: "0.25"}]
"""
CUSTOMERS = """\
customers:
  kunde:
    {currency: EUR, billing_anchor: calendar, subscriptions: [{plan: eu, start: 2026-10-01}]}
  client_fr:
    {currency: EUR, billing_anchor: calendar, subscriptions: [{plan: eu, start: 2026-10-01}]}
  acme_us:
    {currency: USD, billing_anchor: calendar, subscriptions: [{plan: us, start: 2026-10-01}]}
"""
TAXES = """\
taxes:
  rates:
    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}
    ca_state: {jurisdiction: US-CA, rate: "0.0725", name: state sales tax}
    ca_district: {jurisdiction: US-CA-SF, rate: "0.01375", name: district sales tax}
  customers:
    kunde: {rates: [de_vat], tax_id: DE123456789}
    client_fr: {treatment: reverse_charge, tax_id: FR40303265045, jurisdiction: FR}
    acme_us: {rates: [ca_state, ca_district]}
"""
CONFIG = 'store = "sqlite:///var/events.sqlite"\n[tax]\nseller_tax_id = "DE811111111"\n'


def tax_workspace(
    root: Path,
    *,
    taxes: str | None = TAXES,
    config: str = CONFIG,
    plugins: dict[str, str] | None = None,
    counts: tuple[int, int, int] = (401, 400, 401),
) -> Session:
    write_workspace(
        root, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS, config=config, plugins=plugins
    )
    if taxes is not None:
        (root / "rules" / "taxes.yaml").write_text(taxes)
    session = open_session(root)
    kunde, fr, us = counts
    insert_events(
        session.engine,
        calls("kunde", ["2026-10-05"] * kunde)
        + calls("client_fr", ["2026-10-06"] * fr)
        + calls("acme_us", ["2026-10-07"] * us),
    )
    return session
