"""Terms pins: the plan version each invoiced cycle was billed under.

When an invoice is issued, every cycle on it is pinned (the store's
``cycle_terms``) to the plan version and terms digest it was rated with, so an
edit to the rules later cannot silently re-price billed usage
(:mod:`ledger.pins` checks and records them; :mod:`ledger.rerate` re-prices on
purpose).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, select

from ledger.store import cycle_terms


@dataclass(frozen=True)
class TermsPin:
    """The plan version an issued cycle was invoiced under (``ledger.rerate`` keeps them).

    ``usage``: the version of the cycle's charges, commitment and arrears base fee,
    pinned when its arrears were invoiced; ``fee``: the version of its advance base
    fee, pinned when that was invoiced. A version is named by its ``effective``
    date (``date.min``: the plan's original terms); None means not pinned.
    """

    usage: date | None = None
    fee: date | None = None


def load_pins(engine: Engine) -> dict[str, TermsPin]:
    """The plan version every issued cycle was invoiced under, by cycle link."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(cycle_terms.c.link, cycle_terms.c.usage_version, cycle_terms.c.fee_version)
        )
        return {link: TermsPin(version_date(usage), version_date(fee)) for link, usage, fee in rows}


def version_text(version: date | None) -> str | None:
    if version is None:
        return None
    return "" if version == date.min else version.isoformat()


def version_date(text: str | None) -> date | None:
    if text is None:
        return None
    return date.min if text == "" else date.fromisoformat(text)
