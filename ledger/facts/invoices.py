"""Issued invoices: their lines, the accruals they froze and the tax they carry.

An invoice is issued once (:mod:`ledger.invoicing` drafts it, the session numbers and
stores it) and kept in the store as its JSON document; everything downstream (the
journal, documents, payments, credit notes, reports) reads it back from there with
:func:`load_invoices`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from ledger.events import dumps
from ledger.money import ZERO
from ledger.pricing import PriceLine
from ledger.store import invoices as invoices_table


@dataclass(frozen=True)
class Snapshot:
    """A cycle's cumulative targets at one accrual point (what the books hold through it)."""

    link: str
    customer: str
    cycle: str
    plan: str
    through: date
    currency: str
    targets: tuple[tuple[str, Decimal], ...]
    quantities: tuple[tuple[str, Decimal], ...] = ()
    evidence: str = ""
    #: tax-inclusive prices: the targets net of the tax the prices hold
    #: (:func:`ledger.accruals.net_targets`), what the books post; empty: the targets themselves
    net: tuple[tuple[str, Decimal], ...] = ()

    def target(self, key: str) -> Decimal:
        return dict(self.targets).get(key, ZERO)

    @property
    def booked(self) -> dict[str, Decimal]:
        """The cumulative balances the books hold for the cycle through ``through``."""
        return dict(self.net or self.targets)


STANDARD = "standard"
EXEMPT = "exempt"
REVERSE_CHARGE = "reverse_charge"
TREATMENTS = (STANDARD, EXEMPT, REVERSE_CHARGE)


@dataclass(frozen=True)
class TaxLine:
    """One tax line: the taxable base at one rate of one jurisdiction, and the tax on it.

    ``treatment`` is ``standard`` (tax charged), ``exempt`` or ``reverse_charge``
    (base reported, no tax: ``rate`` and ``amount`` are 0).
    """

    jurisdiction: str
    rate: Decimal
    base: Decimal
    amount: Decimal
    name: str = "tax"
    treatment: str = STANDARD

    @property
    def label(self) -> str:
        """``VAT 19% (DE)``, ``exempt (US-OR)``, ``reverse charge (FR)``."""
        where = f" ({self.jurisdiction})" if self.jurisdiction else ""
        if self.treatment != STANDARD:
            return f"{self.treatment.replace('_', ' ')}{where}"
        return f"{self.name} {percent(self.rate)}{where}"


@dataclass(frozen=True)
class Tax:
    """The tax of one invoice, as a ``meterbook_tax`` plugin decided it.

    ``exemption``: why no tax (or not all of it) is charged, printed on the
    invoice (the reverse-charge mention, an exemption's legal reason).
    ``inclusive``: the lines' amounts already include the tax.
    """

    lines: tuple[TaxLine, ...] = ()
    exemption: str = ""
    inclusive: bool = False
    seller_tax_id: str = ""
    customer_tax_id: str = ""
    #: per invoice line, ``(index into lines, the tax charged on that line)`` for every tax
    #: line that applies to it (amounts at the minor unit, adding up to each tax line's
    #: amount): what a credit note on one line gives back. Empty: not known (a plugin that
    #: gives none), so a line's credit takes the invoice's average tax.
    line_tax: tuple[tuple[tuple[int, Decimal], ...], ...] = ()

    @property
    def amount(self) -> Decimal:
        """All tax charged on the invoice."""
        return sum((t.amount for t in self.lines), ZERO)

    @property
    def added(self) -> Decimal:
        """What the tax adds to the lines' total: all of it, or nothing when prices include it."""
        return ZERO if self.inclusive else self.amount

    @property
    def reverse_charge(self) -> bool:
        return any(t.treatment == REVERSE_CHARGE for t in self.lines)

    def to_dict(self) -> dict[str, Any]:
        out = {k: _text(v) for k, v in asdict(self).items()}
        if not self.line_tax:  # documents without it stay as they were
            del out["line_tax"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tax:
        return cls(
            lines=tuple(
                TaxLine(
                    jurisdiction=t["jurisdiction"],
                    rate=Decimal(t["rate"]),
                    base=Decimal(t["base"]),
                    amount=Decimal(t["amount"]),
                    name=t["name"],
                    treatment=t["treatment"],
                )
                for t in data["lines"]
            ),
            exemption=data["exemption"],
            inclusive=bool(data["inclusive"]),
            seller_tax_id=data["seller_tax_id"],
            customer_tax_id=data["customer_tax_id"],
            line_tax=tuple(
                tuple((int(j), Decimal(a)) for j, a in line) for line in data.get("line_tax", ())
            ),
        )


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


def percent(rate: Decimal) -> str:
    """``0.19`` → ``19%``, ``0.0725`` → ``7.25%``.

    >>> percent(Decimal("0.19")), percent(Decimal("0.0725")), percent(Decimal("0"))
    ('19%', '7.25%', '0%')
    """
    text = format((rate * 100).normalize(), "f")
    return f"{text}%"


#: ``Invoice.kind``: an invoice of an invoice date (cycle end, advance fee, grant) ...
REGULAR = "regular"
#: ... or the bill of what an ended customer's waiting lines still owe (:func:`supplement`).
SUPPLEMENTARY = "supplementary"
#: ... or the invoice of one wallet top-up (:mod:`ledger.topups`), its one line naming the grant.
TOPUP = "topup"


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice and the account it settles."""

    kind: (
        str  # usage | commitment | base_fee | credit_applied | credit_grant | late_usage | discount
    )
    description: str
    account: str  # unbilled | contract_asset | deferred
    amount: Decimal
    cycle: str = ""  # cycle key "start/end"
    link: str = ""  # cycle link body
    meter: str = ""
    quantity: Decimal | None = None
    unit: str = ""
    tiers: tuple[PriceLine, ...] = ()
    #: tax-inclusive prices: what the books hold of the line in ``account``, its amount less
    #: the tax the accruals took out (:class:`ledger.accruals.Inclusion`); None: the amount
    #: (absent from the JSON)
    net: Decimal | None = None
    #: a ``discount`` line: the part of its cycle it discounts (``usage:<meter>``, ``commitment``,
    #: ``base_fee``; :mod:`ledger.discounts`); "" for every other line (absent from the JSON)
    on: str = ""
    #: a wallet top-up's ``credit_grant`` line: the grant's key (``topup:BANK-7``,
    #: :func:`ledger.rating.grant_key`); "" otherwise (absent from the JSON)
    grant: str = ""

    @property
    def booked(self) -> Decimal:
        """What the invoice moves out of ``account`` for this line: 119.00 of usage accrued
        net of 19.00 VAT is 100.00 of unbilled."""
        return self.amount if self.net is None else self.net


Day = date  # the field ``Invoice.date`` shadows the type inside the class


@dataclass(frozen=True)
class Invoice:
    """An invoice, drafted or issued (then ``number`` is set)."""

    customer: str
    date: date
    currency: str
    lines: tuple[InvoiceLine, ...]
    rules: str
    number: str = ""
    #: the cycles' accruals as they stood when invoiced: the books never move them again
    accruals: tuple[Snapshot, ...] = ()
    #: the due date: the invoice date plus the customer's payment terms when it was drafted
    due: Day | None = None
    #: :data:`REGULAR` or :data:`SUPPLEMENTARY` (absent from a regular invoice's JSON)
    kind: str = REGULAR
    #: the tax a ``meterbook_tax`` plugin charged (:mod:`ledger.tax`); None: untaxed
    #: (absent from the JSON)
    tax: Tax | None = None
    #: threshold invoicing (:func:`ledger.invoicing.threshold_lines`): per cycle it bills before
    #: the cycle ends, the accrual it froze, through the day before its date (absent from the
    #: JSON when empty). Unlike ``accruals`` it does not close the cycle: later points accrue on.
    progress: tuple[Snapshot, ...] = ()

    @property
    def due_date(self) -> Day:
        return self.due or self.date

    @property
    def subtotal(self) -> Decimal:
        """The lines' total (tax excluded, or included when prices include it)."""
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        """What the customer owes: the lines plus any tax they do not include."""
        return self.subtotal + (self.tax.added if self.tax is not None else ZERO)

    @property
    def key(self) -> str:
        """What makes issuing twice impossible: ``acme/2026-10-15`` for the regular invoice of a
        day, ``acme/2026-10-16/supplementary`` for a supplementary one (so neither can shadow the
        other)."""
        day = f"{self.customer}/{self.date.isoformat()}"
        if self.kind == TOPUP:  # one invoice per top-up: ``acme/2026-10-05/topup/topup:BANK-7``
            grant = self.lines[0].grant if self.lines else ""
            if len(day) + len(grant) > 280:
                grant = hashlib.sha256(grant.encode()).hexdigest()
            return f"{day}/topup/{grant}"
        return day if self.kind == REGULAR else f"{day}/{self.kind}"

    def settles(self, account: str) -> Decimal:
        """What this invoice moves out of ``account`` into the receivable."""
        return sum((line.booked for line in self.lines if line.account == account), ZERO)

    @property
    def cycles(self) -> tuple[str, ...]:
        return tuple(sorted({line.link for line in self.lines if line.link}))

    def to_json(self) -> str:
        data = asdict(self)
        if (
            self.kind == REGULAR
        ):  # regular invoices' documents stay as they were before kinds existed
            del data["kind"]
        if self.tax is None:  # untaxed invoices' documents stay as they were before taxes existed
            del data["tax"]
        else:
            data["tax"] = self.tax.to_dict()
        for line in data["lines"]:  # as do lines and accruals not net of an included tax
            if line["net"] is None:
                del line["net"]
            if not line["on"]:  # and lines that are no discount
                del line["on"]
            if not line["grant"]:
                del line["grant"]
        if not self.progress:  # nor do invoices without threshold billing
            del data["progress"]
        for accrual in (*data["accruals"], *data.get("progress", ())):
            if not accrual["net"]:
                del accrual["net"]
        data["total"] = self.total
        return dumps(_jsonable(data))

    @classmethod
    def from_json(cls, text: str) -> Invoice:
        data = json.loads(text)
        lines = tuple(
            InvoiceLine(
                kind=line["kind"],
                description=line["description"],
                account=line["account"],
                amount=Decimal(line["amount"]),
                cycle=line["cycle"],
                link=line["link"],
                meter=line["meter"],
                quantity=Decimal(line["quantity"]) if line["quantity"] is not None else None,
                unit=line["unit"],
                tiers=tuple(
                    PriceLine(
                        t["description"],
                        Decimal(t["quantity"]),
                        Decimal(t["unit_price"]) if t["unit_price"] is not None else None,
                        Decimal(t["amount"]),
                    )
                    for t in line["tiers"]
                ),
                net=Decimal(line["net"]) if line.get("net") is not None else None,
                on=line.get("on", ""),
                grant=line.get("grant", ""),
            )
            for line in data["lines"]
        )
        accruals = tuple(_snapshot(a) for a in data.get("accruals", []))
        return cls(
            customer=data["customer"],
            date=date.fromisoformat(data["date"]),
            currency=data["currency"],
            lines=lines,
            rules=data["rules"],
            number=data["number"],
            accruals=accruals,
            due=date.fromisoformat(data["due"]) if data.get("due") else None,
            kind=data.get("kind", REGULAR),
            tax=Tax.from_dict(data["tax"]) if data.get("tax") else None,
            progress=tuple(_snapshot(a) for a in data.get("progress", [])),
        )

    @property
    def threshold(self) -> bool:
        """Whether it bills part of a cycle before the cycle ends (threshold invoicing)."""
        return bool(self.progress)


def _snapshot(a: Mapping[str, Any]) -> Snapshot:
    """A :class:`Snapshot` from its JSON form."""
    return Snapshot(
        link=a["link"],
        customer=a["customer"],
        cycle=a["cycle"],
        plan=a["plan"],
        through=date.fromisoformat(a["through"]),
        currency=a["currency"],
        targets=tuple((k, Decimal(v)) for k, v in a["targets"]),
        quantities=tuple((k, Decimal(v)) for k, v in a["quantities"]),
        evidence=a["evidence"],
        net=tuple((k, Decimal(v)) for k, v in a.get("net", ())),
    )


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def load_invoices(engine: Engine) -> list[Invoice]:
    """Every issued invoice, in number order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(invoices_table.c.document).order_by(invoices_table.c.seq)
        ).scalars()
        return [Invoice.from_json(doc) for doc in rows]
