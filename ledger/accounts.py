"""Ledger account names: components derived from ids, templates from ``accounts.yaml``.

>>> component("api_calls")
'Api-Calls'
>>> component("cus_00123")
'Cus-00123'
>>> AccountMap({}).name("unbilled", customer="Acme")
'Assets:Receivables:Unbilled:Acme'
>>> AccountMap({}).name("unapplied_cash")
'Liabilities:Unapplied-Cash'
>>> AccountMap({"unapplied_cash": "Liabilities:Customer-Deposits"}).name("unapplied_cash")
'Liabilities:Customer-Deposits'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_TEMPLATES: dict[str, str] = {
    "unbilled": "Assets:Receivables:Unbilled:{customer}",
    "contract_asset": "Assets:Contract-Assets:{customer}",
    "receivable": "Assets:Receivables:Invoiced:{customer}",
    "deferred": "Liabilities:Deferred-Revenue:{customer}",
    "refund_liability": "Liabilities:Refunds:{customer}",
    "usage_revenue": "Income:Usage:{meter}",
    "subscription_revenue": "Income:Subscriptions:{plan}",
    "commitment_revenue": "Income:Commitment-Shortfall",
    "breakage_revenue": "Income:Credit-Breakage",
    "credit_notes": "Income:Credit-Notes",
    # Discounts and coupons are contra-revenue (a debit-balance income account), per plan with
    # "Income:Discounts:{plan}" (ledger.discounts).
    "discounts": "Income:Discounts",
    "cash": "Assets:Bank:Operating",
    # Money received but not applied to an invoice is owed back to the payer (applied or
    # refunded later): a liability, not a second bank account. DESIGN says
    # Assets:Bank:Unapplied, which goes negative and understates the Assets:Bank subtree.
    "unapplied_cash": "Liabilities:Unapplied-Cash",
    # Tax charged on invoices is owed to the jurisdiction, never revenue (ledger.tax).
    "tax": "Liabilities:Tax:{jurisdiction}",
    # Tax-inclusive prices: the invoice's tax less what the accruals took out of the prices
    # (rounding, a tax plugin's other answer): corrects revenue on the invoice (ledger.tax).
    "tax_included": "Income:Tax-Included",
}
ROOTS = ("Assets", "Liabilities", "Equity", "Income", "Expenses")
_WORD_BREAK = re.compile(r"[^A-Za-z0-9]+")
# Beancount: a component starts with an uppercase letter or a digit, then letters, digits, '-'.
_COMPONENT = re.compile(r"^[A-Z0-9][A-Za-z0-9-]*$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def component(identifier: str) -> str:
    """Derive an account component: runs of non-alphanumerics break words,
    each word capitalized, joined by ``-``."""
    words = [w for w in _WORD_BREAK.split(identifier) if w]
    result = "-".join(w[:1].upper() + w[1:] for w in words)
    if not result:
        raise ValueError(f"{identifier!r} has no letters or digits to name an account")
    return result


def is_valid_component(text: str) -> bool:
    """True if ``text`` is a legal Beancount account component."""
    return bool(_COMPONENT.match(text))


def check_template(key: str, template: str) -> str | None:
    """Return an error message if a template is malformed, else None."""
    placeholders = set(_PLACEHOLDER.findall(template))
    allowed = set(_PLACEHOLDER.findall(DEFAULT_TEMPLATES[key])) | {"customer", "meter", "plan"}
    if placeholders - allowed:
        return f"unknown placeholder {{{sorted(placeholders - allowed)[0]}}}"
    parts = _PLACEHOLDER.sub("X", template).split(":")
    if parts[0] not in ROOTS:
        return f"{template!r} must start with one of {', '.join(ROOTS)}"
    if len(parts) < 2 or not all(is_valid_component(p) for p in parts[1:]):
        return f"{template!r} is not a valid Beancount account name"
    return None


@dataclass(frozen=True)
class AccountMap:
    """Account templates keyed as in DESIGN, defaults filled in."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    def template(self, key: str) -> str:
        return self.overrides.get(key, DEFAULT_TEMPLATES[key])

    def name(self, key: str, *, customer: str = "", meter: str = "", plan: str = "") -> str:
        """The account for ``key`` with components (already derived) filled in."""
        return self.template(key).format(customer=customer, meter=meter, plan=plan)
