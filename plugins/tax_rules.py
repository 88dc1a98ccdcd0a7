"""First-party taxes: rates and treatments from ``rules/taxes.yaml`` (see :mod:`ledger.tax`).

Answers ``meterbook_tax`` for every customer ``taxes.yaml`` names (or every
customer when it has a ``default:``), and for no one when the file is absent,
so a workspace without tax rules issues exactly the invoices it always did.
A tax service plugin answers for the customers this one leaves alone (two
answers for one invoice are an error).
"""

from __future__ import annotations

from ledger.facts.invoices import Tax
from ledger.hookspecs import hookimpl
from ledger.tax import TaxDraft, rules_tax


@hookimpl
def meterbook_tax(draft: TaxDraft) -> Tax | None:
    """The customer's treatment in ``rules/taxes.yaml``: standard rates, exempt or reverse
    charge."""
    if draft.rules.empty:
        return None
    return rules_tax(draft)
