"""Tax on invoices: rates from ``rules/taxes.yaml`` (or a tax plugin), tax lines, postings.

A German customer billed 100.00 EUR of usage at 19 % VAT, prices exclusive of
tax (the default)::

    INV-2026-000003  kunde  2026-11-01  EUR
      usage       api_calls                                   100.00   clears unbilled
                                                  subtotal    100.00
      VAT 19% (DE) on 100.00                                   19.00   → Liabilities:Tax:DE
                                                     total    119.00   → receivable

    2026-11-01 * "kunde" "Invoice INV-2026-000003" ^INV-2026-000003
      Assets:Receivables:Invoiced:Kunde   119.00 EUR
      Assets:Receivables:Unbilled:Kunde  -100.00 EUR
      Liabilities:Tax:DE                  -19.00 EUR

Tax is never revenue: it is owed to the jurisdiction from the invoice date
(Dr receivable / Cr ``Liabilities:Tax:{jurisdiction}``, accounts key ``tax``).
With ``prices = "inclusive"`` the lines already hold the tax (119.00 billed:
base 100.00, tax 19.00). The accruals take it out before the invoice
(:class:`ledger.accruals.Inclusion`: the rates the tax plugin says the cycle's lines will carry),
so revenue, unbilled and deferred revenue hold 100.00 and the invoice moves
them: Dr receivable 119.00 / Cr unbilled 100.00 / Cr ``Liabilities:Tax:DE``
19.00. Where the invoice's tax differs from what the accruals took out, the
difference is booked on the invoice to ``tax_included`` (``Income:Tax-Included``,
:func:`included_difference`).


Rounding is half-even to the currency's minor unit, either per invoice line
(``rounding = "line"``: each line's tax rounded, then added) or once per rate
on the invoice's taxable base (``rounding = "invoice"``, the default).

Who decides the tax: every ``meterbook_tax`` hook implementation
(:func:`ledger.hookspecs.meterbook_tax`) gets a :class:`TaxDraft` and returns a
:class:`Tax` or None; at most one may answer for an invoice. The first-party
plugin ``ledger.plugins.tax_rules`` answers from ``rules/taxes.yaml``; with no
such file nothing is taxed and no invoice, document or book changes.

    >>> from datetime import date
    >>> rate = TaxRate(jurisdiction="DE", rate=Decimal("0.19"), name="VAT")
    >>> tax = standard_tax([(Decimal("100.00"), (rate,))], "EUR", rounding="invoice")
    >>> [(t.jurisdiction, t.rate, t.base, t.amount) for t in tax.lines]
    [('DE', Decimal('0.19'), Decimal('100.00'), Decimal('19.00'))]
    >>> tax.amount, tax.added
    (Decimal('19.00'), Decimal('19.00'))
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as date_
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ledger.accounts import component, is_valid_component
from ledger.accruals import Inclusion
from ledger.errors import PluginError, WorkspaceError
from ledger.facts.invoices import (
    EXEMPT,
    REVERSE_CHARGE,
    STANDARD,
    TREATMENTS,
    Tax,
    TaxLine,
)
from ledger.money import ZERO, round_money

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice, InvoiceLine
    from ledger.rating import CycleRating, Rating
    from ledger.registry import Registry
    from ledger.rules import Customer, Rules

#: printed on an invoice whose customer accounts for the tax
#: (EU VAT Directive, Art. 196 and 226(11a))
REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)"
)
FILE = "taxes.yaml"


# --- what an invoice carries ------------------------------------------------------------------


# --- settings and rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class TaxSettings:
    """``[tax]`` in ``meterbook.toml``::

    [tax]
    seller_tax_id = "DE811111111"   # printed on every taxed invoice
    prices = "exclusive"            # exclusive (default) | inclusive
    rounding = "invoice"            # invoice (default): per rate on the base | line: per line
    """

    seller_tax_id: str = ""
    inclusive: bool = False
    rounding: Literal["line", "invoice"] = "invoice"

    @classmethod
    def load(cls, config: Path) -> TaxSettings:
        """Read ``[tax]`` from ``meterbook.toml`` (absent: the defaults); bad values name
        the key."""
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8")).get("tax", {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return cls()  # Workspace.load has reported it already
        if not isinstance(data, dict):
            raise WorkspaceError(f"{config}: tax: expected a table [tax]")
        known = {"seller_tax_id", "prices", "rounding"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WorkspaceError(
                f"{config}: tax.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
            )
        for key, value in data.items():
            if not isinstance(value, str):
                raise WorkspaceError(
                    f"{config}: tax.{key}: expected a string, got {type(value).__name__}"
                )
        prices = data.get("prices", "exclusive")
        if prices not in ("exclusive", "inclusive"):
            raise WorkspaceError(f"{config}: tax.prices: {prices!r} is not exclusive or inclusive")
        rounding = data.get("rounding", "invoice")
        if rounding not in ("line", "invoice"):
            raise WorkspaceError(f"{config}: tax.rounding: {rounding!r} is not line or invoice")
        return cls(
            seller_tax_id=data.get("seller_tax_id", ""),
            inclusive=prices == "inclusive",
            rounding=rounding,
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaxRate(_Model):
    """A named rate: ``de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}``."""

    jurisdiction: str
    rate: Decimal
    name: str = "tax"

    @field_validator("rate", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write rates as strings ("0.19"), never floats')
        if isinstance(value, str | int):
            rate = Decimal(str(value))
            if not ZERO <= rate < 1:
                raise ValueError(f'{value!r} is not a rate between 0 and 1 (19 % is "0.19")')
        return value

    @field_validator("jurisdiction")
    @classmethod
    def _jurisdiction(cls, value: str) -> str:
        if not is_valid_component(component(value) if value.strip() else ""):
            raise ValueError(f"{value!r} cannot name an account (Liabilities:Tax:<jurisdiction>)")
        return value


class TaxTreatment(_Model):
    """How a customer (or a plan's lines) is taxed."""

    treatment: Literal["standard", "exempt", "reverse_charge"] = "standard"
    rates: tuple[str, ...] = ()
    tax_id: str = ""
    jurisdiction: str = ""
    reason: str = ""


class TaxRules(_Model):
    """``rules/taxes.yaml``: named rates, then treatments per customer and per plan.

    .. code-block:: yaml

        taxes:
          rates:
            de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}
            us_ca: {jurisdiction: US-CA, rate: "0.0725", name: sales tax}
          default: {rates: [de_vat]}        # customers not listed (optional; absent: untaxed)
          customers:
            kunde: {rates: [de_vat], tax_id: DE123456789}
            client_fr: {treatment: reverse_charge, tax_id: FR40303265045, jurisdiction: FR}
            school: {treatment: exempt, reason: "Art. 132(1)(i) education", jurisdiction: DE}
          plans:
            books: {rates: [de_reduced]}     # this plan's lines at another rate
            grant: {treatment: exempt, reason: "outside the scope of VAT"}
    """

    rates: Mapping[str, TaxRate] = field(default_factory=dict)
    default: TaxTreatment | None = None
    customers: Mapping[str, TaxTreatment] = field(default_factory=dict)
    plans: Mapping[str, TaxTreatment] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.default or self.customers or self.plans)

    def treatment_of(self, customer: str) -> TaxTreatment | None:
        return self.customers.get(customer, self.default)


def load_tax_rules(rules_dir: Path, rules: Rules | None = None) -> TaxRules:
    """Load ``rules/taxes.yaml`` (absent or empty: no taxes), every error naming file, key
    and line."""
    from ledger.rules import _Source, _validate

    source = _Source(rules_dir / FILE, "taxes")
    section = source.section()
    taxes: TaxRules = _validate(TaxRules, section, source, ("taxes",))
    entries: list[tuple[tuple[str, ...], TaxTreatment | None]] = (
        [(("taxes", "default"), taxes.default)] if taxes.default else []
    )
    entries += [(("taxes", "customers", k), v) for k, v in taxes.customers.items()]
    entries += [(("taxes", "plans", k), v) for k, v in taxes.plans.items()]
    for path, entry in entries:
        assert entry is not None
        for i, name in enumerate(entry.rates):
            if name not in taxes.rates:
                raise source.error(
                    f"unknown rate {name!r} (known: {', '.join(taxes.rates) or 'none'})",
                    (*path, "rates", i),
                )
        if entry.treatment == STANDARD and not entry.rates and path[1] != "plans":
            raise source.error(
                "a standard treatment needs rates (or treatment: exempt / reverse_charge)", path
            )
        if entry.treatment != STANDARD and entry.rates:
            raise source.error(f"{entry.treatment} charges no tax: give no rates", (*path, "rates"))
        if entry.treatment == REVERSE_CHARGE and not entry.tax_id.strip():
            raise source.error(
                "reverse charge needs the customer's tax_id (it is printed on the invoice)", path
            )
        if entry.treatment == EXEMPT and not entry.reason.strip():
            raise source.error("an exemption needs its reason (it is printed on the invoice)", path)
        if path[1] == "plans" and entry.treatment == REVERSE_CHARGE:
            raise source.error(
                "reverse charge is a customer's treatment, not a plan's", (*path, "treatment")
            )
        if entry.jurisdiction and not is_valid_component(component(entry.jurisdiction)):
            raise source.error(
                f"{entry.jurisdiction!r} cannot name an account", (*path, "jurisdiction")
            )
    if rules is not None:
        for kind, known, names in (
            ("customer", rules.customers, taxes.customers),
            ("plan", rules.plans, taxes.plans),
        ):
            for name in names:
                if name not in known:
                    raise source.error(f"unknown {kind} {name!r}", ("taxes", f"{kind}s", name))
    return taxes


# --- the hook's argument and the standard computation -------------------------------------------


@dataclass(frozen=True)
class TaxDraft:
    """What a ``meterbook_tax`` plugin gets: an invoice about to be issued and its context.

    - ``invoice``: the draft (:class:`ledger.invoicing.Invoice`: ``customer``,
      ``date``, ``currency``, ``lines``, ``number`` still empty).
    - ``customer``: the customer's rules record (``id``, ``name``, ``currency``, ...).
    - ``plans``: per invoice line, the plan whose cycle it bills (``""`` for a
      prepaid-credit grant or late usage without a cycle's plan).
    - ``settings``: ``[tax]`` of ``meterbook.toml`` (seller tax id, inclusive
      prices, rounding); a plugin should honour them (:func:`standard_tax` does).
    - ``rules``: ``rules/taxes.yaml`` as loaded (empty when there is none).
    - ``adjusts``: per invoice line, the tax an issued invoice charged on the supply the
      line corrects (a debit adjustment's or late usage's line of an invoiced cycle: that
      cycle's line, its tax lines only), or None. A correction of a supply's price is
      taxed as that supply was, whatever the rules say today (the customer's treatment
      or a rate may have changed since); :func:`rules_tax` does so.
    - ``accrual``: True when the draft is no invoice but one cycle's lines being accrued
      with tax-inclusive prices (dated the cycle's end, one line per charge, the
      commitment and the base fee): the answer says what tax the prices hold, so revenue
      is accrued net of it (:func:`included_taxes`). None: accrue the prices as they are;
      the invoice then books its tax out of revenue (:func:`included_difference`).
    """

    invoice: Invoice
    customer: Customer
    plans: tuple[str, ...]
    settings: TaxSettings
    rules: TaxRules
    adjusts: tuple[Tax | None, ...] = ()
    #: True: no invoice, but a cycle being accrued with prices that include the tax: what tax
    #: will its lines hold (:func:`included_taxes`)? Nothing is issued or stored.
    accrual: bool = False


def standard_tax(
    bases: Sequence[tuple[Decimal, Sequence[TaxRate]]],
    currency: str,
    *,
    rounding: str = "invoice",
    inclusive: bool = False,
) -> Tax:
    """Tax lines for amounts each taxed at some rates, half-even to the minor unit.

    ``bases``: ``(line amount, rates)`` per invoice line. Per invoice: the tax of
    each rate is rounded once on the sum of its lines; per line: each line's tax
    is rounded, then added. Three lines of 0.10 at 19 %::

        >>> r = TaxRate(jurisdiction="DE", rate=Decimal("0.19"), name="VAT")
        >>> three = [(Decimal("0.10"), (r,))] * 3
        >>> standard_tax(three, "EUR").amount                    # round(0.30 × 0.19 = 0.057)
        Decimal('0.06')
        >>> standard_tax(three, "EUR", rounding="line").amount   # 3 × round(0.019)
        Decimal('0.06')
        >>> five = [(Decimal("0.05"), (r,))] * 3
        >>> standard_tax(five, "EUR", rounding="line").amount  # 3 × round(0.0095)
        Decimal('0.03')
        >>> standard_tax(five, "EUR").amount   # round(0.0285)
        Decimal('0.03')
        >>> two = [(Decimal("0.03"), (r,))] * 2     # where the rules differ
        >>> standard_tax(two, "EUR").amount, standard_tax(two, "EUR", rounding="line").amount
        (Decimal('0.01'), Decimal('0.02'))

    Each invoice line's share of each tax line (:attr:`Tax.line_tax`, what a credit of that
    line gives back): per invoice, the rate's tax spread by cumulative rounding::

        >>> standard_tax(two, "EUR").line_tax    # round(0.0057) = 0.01, round(0.0114) − 0.01 = 0
        (((0, Decimal('0.01')),), ((0, Decimal('0.00')),))

    Inclusive prices: a line's amount holds its tax; the tax is
    amount × rate ÷ (1 + all its rates)::

        >>> t = standard_tax([(Decimal("119.00"), (r,))], "EUR", inclusive=True)
        >>> t.lines[0].base, t.lines[0].amount
        (Decimal('100.00'), Decimal('19.00'))
    """
    # lines taxed at the same rates form a group: its rates share one base
    groups: dict[tuple[TaxRate, ...], list[Decimal]] = defaultdict(list)
    for amount, rates in bases:
        if rates:
            groups[_group(rates)].append(amount)
    base: dict[tuple[str, Decimal, str], Decimal] = defaultdict(lambda: ZERO)
    taxed: dict[tuple[str, Decimal, str], Decimal] = defaultdict(lambda: ZERO)
    # per invoice line, its share of each rate's tax: per line, its own rounded tax; per
    # invoice, the rate's tax spread over its lines by cumulative rounding (adds up exactly)
    per_line: list[dict[tuple[str, Decimal, str], Decimal]] = [{} for _ in bases]
    for rates, amounts in groups.items():
        combined = sum((r.rate for r in rates), ZERO)
        divisor = 1 + combined if inclusive else Decimal(1)
        members = [i for i, (_, rr) in enumerate(bases) if rr and _group(rr) == rates]
        shares = {}
        for r in rates:
            key = (r.jurisdiction, r.rate, r.name)
            if rounding == "line":
                shares[r] = sum(
                    (round_money(a * r.rate / divisor, currency) for a in amounts), ZERO
                )
                for i in members:
                    per_line[i][key] = round_money(bases[i][0] * r.rate / divisor, currency)
            else:
                shares[r] = round_money(sum(amounts, ZERO) * r.rate / divisor, currency)
                exact = done = ZERO
                for i in members:
                    exact += bases[i][0] * r.rate / divisor
                    per_line[i][key] = round_money(exact, currency) - done
                    done += per_line[i][key]
        net = sum(amounts, ZERO) - (sum(shares.values(), ZERO) if inclusive else ZERO)
        for r in rates:
            key = (r.jurisdiction, r.rate, r.name)
            base[key] += net
            taxed[key] += shares[r]
    keys = sorted(base)
    lines = [
        TaxLine(
            jurisdiction=j,
            rate=rate,
            base=base[(j, rate, name)],
            amount=taxed[(j, rate, name)],
            name=name,
        )
        for j, rate, name in keys
    ]
    line_tax = tuple(
        tuple((keys.index(key), amount) for key, amount in sorted(mine.items()))
        for mine in per_line
    )
    return Tax(lines=tuple(lines), inclusive=inclusive, line_tax=line_tax)


def _group(rates: Sequence[TaxRate]) -> tuple[TaxRate, ...]:
    """Rates in one order, so lines taxed at the same rates form one group."""
    return tuple(sorted(rates, key=lambda r: (r.jurisdiction, r.rate, r.name)))


def rules_tax(draft: TaxDraft) -> Tax | None:
    """The first-party decision from ``rules/taxes.yaml`` (None: this customer is not taxed).

    The customer's treatment decides the invoice: ``exempt`` or ``reverse_charge``
    puts the whole net amount on one zero-rated line with its reason; ``standard``
    taxes each line at its plan's rates when ``plans:`` names the plan, else at the
    customer's rates; a plan marked ``exempt`` leaves its lines untaxed (an exempt
    line with the plan's reason). A prepaid-credit grant bills no cycle: it is taxed
    as the plan of the customer's subscription on the invoice date, the plan its
    drawdown lines (``prepaid credit applied``, negative) will be taxed as.
    """
    rules, invoice, settings = draft.rules, draft.invoice, draft.settings
    treatment = rules.treatment_of(invoice.customer)
    if treatment is None:
        return None
    if any(draft.adjusts):
        return _with_corrections(draft, treatment)
    net = sum((line.amount for line in invoice.lines), ZERO)
    ids = {"seller_tax_id": settings.seller_tax_id, "customer_tax_id": treatment.tax_id}
    nil = round_money(ZERO, invoice.currency)
    untaxed = tuple(((0, nil),) for _ in invoice.lines)  # every line on the one untaxed line
    if treatment.treatment == REVERSE_CHARGE:
        return Tax(
            lines=(TaxLine(treatment.jurisdiction, ZERO, net, nil, "VAT", REVERSE_CHARGE),),
            exemption=treatment.reason or REVERSE_CHARGE_MENTION,
            inclusive=settings.inclusive,
            line_tax=untaxed,
            **ids,
        )
    if treatment.treatment == EXEMPT:
        return Tax(
            lines=(
                TaxLine(
                    treatment.jurisdiction,
                    ZERO,
                    net,
                    round_money(ZERO, invoice.currency),
                    "tax",
                    EXEMPT,
                ),
            ),
            exemption=treatment.reason,
            inclusive=settings.inclusive,
            line_tax=untaxed,
            **ids,
        )
    bases: list[tuple[Decimal, Sequence[TaxRate]]] = []
    exempt: dict[str, Decimal] = defaultdict(lambda: ZERO)
    reasons: list[str | None] = []  # per line: its plan's exemption, or None (taxed)
    for line, plan in zip(invoice.lines, draft.plans, strict=True):
        if not plan and line.kind == "credit_grant":
            # prepaid credit is spent on the plan's usage (its drawdown lines bill that plan's
            # cycles): taxed at that plan's rates, so the drawdown's negative line cancels it
            plan = plan_on(draft.customer, invoice.date)
        entry = rules.plans.get(plan) if plan else None
        if entry is not None and entry.treatment == EXEMPT:
            exempt[entry.reason] += line.amount
            bases.append((line.amount, ()))
            reasons.append(entry.reason)
            continue
        names = entry.rates if entry is not None and entry.rates else treatment.rates
        bases.append((line.amount, tuple(rules.rates[n] for n in names)))
        reasons.append(None)
    tax = standard_tax(
        bases, invoice.currency, rounding=settings.rounding, inclusive=settings.inclusive
    )
    where = treatment.jurisdiction or (tax.lines[0].jurisdiction if tax.lines else "")
    extra = tuple(TaxLine(where, ZERO, base, nil, "tax", EXEMPT) for base in exempt.values())
    at = {reason: len(tax.lines) + i for i, reason in enumerate(exempt)}
    line_tax = tuple(
        ((at[reason], nil),) if reason is not None else mine
        for reason, mine in zip(reasons, tax.line_tax, strict=True)
    )
    return Tax(
        lines=(*tax.lines, *extra),
        exemption="; ".join(exempt),
        inclusive=settings.inclusive,
        line_tax=line_tax,
        **ids,
    )


def _with_corrections(draft: TaxDraft, treatment: TaxTreatment) -> Tax:
    """:func:`rules_tax` for an invoice holding corrections of issued supplies: each such line
    is taxed as the supply it corrects (``draft.adjusts``), the others as the rules say.

    kunde's October usage was invoiced with 19 % VAT; kunde is reverse-charged since. A
    debit adjustment of 10.00 for October billed in December is taxed 19 % (1.90): the
    price of the October supply went up, and that supply was taxed in Germany.
    """
    rules, invoice, settings = draft.rules, draft.invoice, draft.settings
    nil = round_money(ZERO, invoice.currency)
    bases: list[tuple[Decimal, Sequence[TaxRate]]] = []
    special: dict[tuple[str, str, str, str], Decimal] = defaultdict(lambda: ZERO)
    marks: list[tuple[str, str, str, str] | None] = []  # per line: its untaxed line, or None
    tax_ids = [treatment.tax_id]
    for line, plan, adjusts in zip(invoice.lines, draft.plans, draft.adjusts, strict=True):
        if adjusts is not None:
            tax_ids.append(adjusts.customer_tax_id)
            charged = [t for t in adjusts.lines if t.treatment == STANDARD]
            if charged:
                rates = tuple(
                    TaxRate(jurisdiction=t.jurisdiction, rate=t.rate, name=t.name) for t in charged
                )
                bases.append((line.amount, rates))
                marks.append(None)
                continue
            first = adjusts.lines[0]
            mention = adjusts.exemption or (
                REVERSE_CHARGE_MENTION if first.treatment == REVERSE_CHARGE else ""
            )
            mark = (first.treatment, first.jurisdiction, first.name, mention)
        elif treatment.treatment != STANDARD:
            mention = treatment.reason or (
                REVERSE_CHARGE_MENTION if treatment.treatment == REVERSE_CHARGE else ""
            )
            name = "VAT" if treatment.treatment == REVERSE_CHARGE else "tax"
            mark = (treatment.treatment, treatment.jurisdiction, name, mention)
        else:
            if not plan and line.kind == "credit_grant":
                plan = plan_on(draft.customer, invoice.date)
            entry = rules.plans.get(plan) if plan else None
            if entry is None or entry.treatment != EXEMPT:
                names = entry.rates if entry is not None and entry.rates else treatment.rates
                bases.append((line.amount, tuple(rules.rates[n] for n in names)))
                marks.append(None)
                continue
            mark = (EXEMPT, treatment.jurisdiction, "tax", entry.reason)
        special[mark] += line.amount
        bases.append((line.amount, ()))
        marks.append(mark)
    tax = standard_tax(
        bases, invoice.currency, rounding=settings.rounding, inclusive=settings.inclusive
    )
    where = treatment.jurisdiction or (tax.lines[0].jurisdiction if tax.lines else "")
    extra = tuple(
        TaxLine(j or (where if kind == EXEMPT else ""), ZERO, base, nil, name, kind)
        for (kind, j, name, _), base in special.items()
    )
    at = {mark: len(tax.lines) + i for i, mark in enumerate(special)}
    line_tax = tuple(
        ((at[mark], nil),) if mark is not None else mine
        for mark, mine in zip(marks, tax.line_tax, strict=True)
    )
    mentions = [m for (_, _, _, m) in special if m]
    return Tax(
        lines=(*tax.lines, *extra),
        exemption="; ".join(dict.fromkeys(mentions)),
        inclusive=settings.inclusive,
        seller_tax_id=settings.seller_tax_id,
        customer_tax_id=next((t for t in tax_ids if t), ""),
        line_tax=line_tax,
    )


def corrected_supplies(invoice: Invoice, issued: Sequence[Invoice]) -> tuple[Tax | None, ...]:
    """Per line of ``invoice``, the tax an issued invoice charged on the supply the line corrects
    (``TaxDraft.adjusts``): a debit adjustment's (``rerate``) or late usage's line bills more
    for a cycle an earlier invoice billed; that invoice's line of the cycle carries the tax
    lines it was charged (all of the invoice's when it does not say which are whose)."""
    out: list[Tax | None] = []
    for line in invoice.lines:
        found: Tax | None = None
        if line.kind in ("rerate", "late_usage") and line.cycle:
            for earlier in issued:
                if earlier.customer != invoice.customer or earlier.tax is None:
                    continue
                billed = [
                    k
                    for k, ln in enumerate(earlier.lines)
                    if ln.cycle == line.cycle and ln.kind not in ("rerate", "late_usage")
                ]
                # the same charge first (a meter's usage; late usage is usage), then the cycle's
                same = [
                    k
                    for k in billed
                    if (
                        earlier.lines[k].meter == line.meter
                        if line.meter
                        else earlier.lines[k].kind == "usage"
                    )
                ]
                if not billed:
                    continue
                index = (same or billed)[0]
                tax = earlier.tax
                if len(tax.line_tax) == len(earlier.lines):
                    mine = tuple(tax.lines[j] for j, _ in tax.line_tax[index])
                    tax = Tax(
                        lines=mine, exemption=tax.exemption, customer_tax_id=tax.customer_tax_id
                    )
                found = tax if tax.lines else None
                break
        out.append(found)
    return tuple(out)


def plan_on(customer: Customer, day: date_) -> str:
    """The plan of the customer's subscription in effect on ``day`` ("" when none is): its main
    subscription's, before an add-on's."""
    for sub in sorted(customer.subscriptions, key=lambda s: s.id != ""):
        if sub.start <= day and (sub.end is None or day < sub.end):
            return sub.plan
    return ""


# --- the engine's side: asking the plugins --------------------------------------------------------


def line_plans(invoice: Invoice, customer: Customer, rules: Rules) -> tuple[str, ...]:
    """Per invoice line, the plan of the cycle it bills ("" when it bills none)."""
    from ledger.cycles import cycle_at, link_series

    plans = []
    for line in invoice.lines:
        plan = ""
        if line.cycle:
            start = line.cycle.partition("/")[0]
            try:
                from datetime import date

                day = date.fromisoformat(start)
                cycle = cycle_at(customer, rules.plans, day, link_series(line.link or ""))
            except ValueError:
                cycle = None
            plan = cycle.plan if cycle is not None and cycle.key == line.cycle else ""
        plans.append(plan)
    return tuple(plans)


def check_tax(tax: object, plugin: str, invoice: Invoice) -> Tax:
    """What a plugin returned, checked: a :class:`Tax` whose amounts are at the currency's
    minor unit."""
    where = f"plugin {plugin}: meterbook_tax for {invoice.customer} {invoice.date.isoformat()}"
    if not isinstance(tax, Tax):
        raise PluginError(
            f"{where}: returned {type(tax).__name__}, not a ledger.facts.invoices.Tax or None"
        )
    for line in tax.lines:
        if not isinstance(line, TaxLine):
            raise PluginError(
                f"{where}: a tax line is {type(line).__name__}, not a ledger.facts.invoices.TaxLine"
            )
        for name in ("rate", "base", "amount"):
            value = getattr(line, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise PluginError(f"{where}: {name} {value!r} is not a Decimal")
        if line.amount != round_money(line.amount, invoice.currency):
            raise PluginError(
                f"{where}: tax {line.amount} is not rounded to {invoice.currency}'s minor unit"
            )
        if line.treatment not in TREATMENTS:
            raise PluginError(
                f"{where}: treatment {line.treatment!r} is not one of {', '.join(TREATMENTS)}"
            )
        if line.treatment != STANDARD and line.amount:
            raise PluginError(f"{where}: a {line.treatment} line charges no tax, not {line.amount}")
        if line.amount and not is_valid_component(
            component(line.jurisdiction) if line.jurisdiction.strip() else ""
        ):
            raise PluginError(f"{where}: jurisdiction {line.jurisdiction!r} cannot name an account")
    if tax.line_tax:  # which tax is whose: one entry per invoice line, adding up per tax line
        if len(tax.line_tax) != len(invoice.lines):
            raise PluginError(
                f"{where}: line_tax has {len(tax.line_tax)} entries for {len(invoice.lines)} lines"
            )
        summed: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for shares in tax.line_tax:
            for j, amount in shares:
                if not 0 <= j < len(tax.lines) or not isinstance(amount, Decimal):
                    raise PluginError(f"{where}: line_tax entry ({j!r}, {amount!r}) is not valid")
                summed[j] += amount
        for j, t in enumerate(tax.lines):
            if summed[j] != t.amount:
                raise PluginError(
                    f"{where}: line_tax gives {summed[j]} of {t.label}, which is {t.amount}"
                )
    return tax


def assess(registry: Registry, draft: TaxDraft) -> Tax | None:
    """Ask every ``meterbook_tax`` implementation; at most one may answer
    (else :class:`PluginError`)."""
    answers: list[tuple[str, Tax]] = []
    for impl in registry.hook.meterbook_tax.get_hookimpls():
        kwargs = {"draft": draft}
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name}: meterbook_tax raised {type(exc).__name__}: {exc}"
            ) from None
        if result is not None:
            answers.append((impl.plugin_name, check_tax(result, impl.plugin_name, draft.invoice)))
    if len(answers) > 1:
        names = ", ".join(sorted(name for name, _ in answers))
        raise PluginError(
            f"plugins {names} all taxed {draft.invoice.customer}'s invoice of "
            f"{draft.invoice.date.isoformat()}: only one meterbook_tax plugin may answer"
        )
    return answers[0][1] if answers else None


def check_tax_setup(rules_dir: Path, config: Path, rules: Rules) -> None:
    """Load ``rules/taxes.yaml`` and ``[tax]`` once for their errors (exit 2, naming file, key and
    line), so every command refuses a broken tax setup, not only the invoice run that reads it.

    A reverse-charged customer needs ``seller_tax_id``: such an invoice must show both
    parties' VAT numbers (EU VAT Directive, Art. 226(3) and (4)), else it is no invoice the
    customer can account for the tax on."""
    taxes = load_tax_rules(rules_dir, rules)
    settings = TaxSettings.load(config)
    reverse = [
        name
        for name, entry in (("default", taxes.default), *taxes.customers.items())
        if entry is not None and entry.treatment == REVERSE_CHARGE
    ]
    if reverse and not settings.seller_tax_id.strip():
        raise WorkspaceError(
            f"{config}: tax.seller_tax_id: missing, and {FILE} reverse-charges {reverse[0]}: "
            'a reverse-charge invoice shows the seller\'s VAT number (seller_tax_id = "DE...")'
        )


def apply_taxes(
    drafts: Iterable[Invoice],
    *,
    registry: Registry,
    rules: Rules,
    rules_dir: Path,
    config: Path,
    issued: Sequence[Invoice] = (),
) -> list[Invoice]:
    """The drafts with the tax the plugins give them (unchanged when none answers); ``issued``:
    the invoices issued before them, whose supplies the drafts' corrections are taxed as."""
    from dataclasses import replace

    drafts = list(drafts)
    if not drafts or not registry.hook.meterbook_tax.get_hookimpls():
        return drafts
    taxes = load_tax_rules(rules_dir, rules)
    settings = TaxSettings.load(config)
    out = []
    for inv in drafts:
        customer = rules.customers.get(inv.customer)
        if customer is None:
            out.append(inv)
            continue
        draft = TaxDraft(
            inv,
            customer,
            line_plans(inv, customer, rules),
            settings,
            taxes,
            corrected_supplies(inv, issued),
        )
        tax = assess(registry, draft)
        out.append(replace(inv, tax=tax) if tax is not None else inv)
    return out


# --- tax-inclusive prices: accrued net of the tax they hold --------------------------------------


def booked_share(line: InvoiceLine, part: Decimal, currency: str) -> Decimal:
    """What ``part`` of an invoice line's amount stands for in the account the line settles:
    ``part`` itself, or, when the line was booked net of the tax its tax-inclusive price holds
    (:attr:`ledger.facts.invoices.InvoiceLine.booked`), ``part − round(tax × part ÷ amount)``.

    59.50 of a 119.00 advance fee booked 100.00 to deferred revenue is 50.00 of it::

        >>> from dataclasses import replace
        >>> from ledger.facts.invoices import InvoiceLine
        >>> fee = InvoiceLine("base_fee", "fee", "deferred", Decimal("119.00"))
        >>> fee = replace(fee, net=Decimal("100.00"))
        >>> booked_share(fee, Decimal("59.50"), "EUR")
        Decimal('50.00')
    """
    tax = line.amount - line.booked
    if not tax or not line.amount:
        return part
    return part - round_money(tax * part / line.amount, currency)


def included_taxes(
    rating: Rating,
    issued: Sequence[Invoice],
    *,
    registry: Registry,
    rules: Rules,
    rules_dir: Path,
    config: Path,
) -> dict[str, Inclusion]:
    """Per cycle link, the tax its tax-inclusive prices hold (:class:`Inclusion`), so its
    revenue, unbilled and deferred revenue are posted net of it. Empty when prices exclude
    the tax (``[tax] prices``, the default): the books are what they always were.

    Each cycle is asked once, as a ``meterbook_tax`` draft with ``accrual=True``: its lines
    at its latest rating (one per charge, the commitment shortfall and the base fee, even at
    0, so that every part gets its rates), dated its invoice date (the cycle's end). A line
    holds the rates of the tax lines the answer gives it (:attr:`Tax.line_tax`; without it,
    all the answer's rates). No answer, or one with prices exclusive: the prices are accrued
    as they are (the invoice then takes its tax out, :func:`included_difference`).
    """
    from ledger.facts.invoices import Invoice

    settings = TaxSettings.load(config)
    fees = {
        line.link: (line.amount, line.booked)
        for inv in issued
        for line in inv.lines
        if line.kind == "base_fee" and line.account == "deferred" and line.link
    }
    asked = settings.inclusive and bool(registry.hook.meterbook_tax.get_hookimpls())
    if not asked and not any(a != b for a, b in fees.values()):
        return {}
    taxes = load_tax_rules(rules_dir, rules) if asked else TaxRules()
    latest = {rated.cycle.link: rated for rated in rating.cycles}
    out: dict[str, Inclusion] = {}
    for link, rated in sorted(latest.items()):
        cycle = rated.cycle
        customer = rules.customers.get(cycle.customer)
        if customer is None:
            continue
        rates: dict[str, tuple[Decimal, ...]] = {}
        if asked:
            parts = _accrual_parts(rated)
            draft = Invoice(
                customer=cycle.customer,
                date=cycle.end,
                currency=rated.currency,
                lines=tuple(line for _, line in parts),
                rules=rules.hash,
            )
            plans = (cycle.plan,) * len(parts)
            tax = assess(registry, TaxDraft(draft, customer, plans, settings, taxes, accrual=True))
            if tax is not None and tax.inclusive:
                rates = _held_rates(tax, [part for part, _ in parts])
        if rates or link in fees:
            out[link] = Inclusion(rated.currency, rates, fees.get(link))
    return out


def _accrual_parts(rated: CycleRating) -> list[tuple[str, InvoiceLine]]:
    """A cycle's lines for a tax plugin asked at accrual, each with the part it bills: one per
    charge (``usage:<meter>``), the commitment shortfall and the base fee, even at 0."""
    from ledger.facts.invoices import InvoiceLine

    cycle = rated.cycle

    def line(kind: str, text: str, account: str, amount: Decimal, meter: str = "") -> InvoiceLine:
        return InvoiceLine(kind, text, account, amount, cycle.key, cycle.link, meter)

    parts = [
        (
            f"usage:{c.meter}",
            line("usage", f"{c.meter} ({c.model})", "unbilled", c.amount, c.meter),
        )
        for c in rated.charges
    ]
    shortfall = rated.commitment_shortfall
    parts.append(("commitment", line("commitment", "minimum commitment", "unbilled", shortfall)))
    fee = rated.base_fee
    if fee is not None:
        account = "deferred" if fee.timing == "advance" else "unbilled"
        parts.append(("base_fee", line("base_fee", f"{cycle.plan} base fee", account, fee.billed)))
    return parts


def _held_rates(tax: Tax, parts: Sequence[str]) -> dict[str, tuple[Decimal, ...]]:
    """Per part, the rates of the standard tax lines ``tax`` charges on its line (all the
    tax's when it does not say which are whose, :attr:`Tax.line_tax`)."""
    known = len(tax.line_tax) == len(parts)
    rates: dict[str, tuple[Decimal, ...]] = {}
    for i, part in enumerate(parts):
        mine = [j for j, _ in tax.line_tax[i]] if known else range(len(tax.lines))
        held = tuple(
            tax.lines[j].rate
            for j in mine
            if tax.lines[j].treatment == STANDARD and tax.lines[j].rate
        )
        if held:
            rates[part] = held
    return rates


# --- the books ----------------------------------------------------------------------------------


def tax_account(rules: Rules, jurisdiction: str) -> str:
    """``Liabilities:Tax:DE`` (accounts key ``tax``; the jurisdiction as an account component).

    >>> from ledger.accounts import AccountMap
    >>> class R: accounts = AccountMap({})
    >>> tax_account(R(), "US-CA"), tax_account(R(), "de")
    ('Liabilities:Tax:US-CA', 'Liabilities:Tax:De')
    """
    return rules.accounts.template("tax").replace("{jurisdiction}", component(jurisdiction))


def is_tax_account(rules: Rules, account: str) -> bool:
    """Whether ``account`` is a tax liability (what the close asserts with the others)."""
    prefix = rules.accounts.template("tax").split("{jurisdiction}")[0]
    return account.startswith(prefix) if prefix else False


def tax_postings(
    tax: Tax | None, rules: Rules, currency: str, sign: int = 1
) -> list[tuple[str, Decimal]]:
    """``(account, amount)`` of an invoice's tax (``sign`` -1: a credit note's share reversed):
    Cr ``Liabilities:Tax:{jurisdiction}`` per jurisdiction."""
    if tax is None:
        return []
    by_account: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in tax.lines:
        if line.amount:
            by_account[tax_account(rules, line.jurisdiction)] -= sign * line.amount
    return [(account, amount) for account, amount in sorted(by_account.items()) if amount]


def included_difference(invoice: Invoice) -> Decimal:
    """What an invoice debits to ``tax_included`` (``Income:Tax-Included``; negative: credits):
    the tax it charges on prices that include it, less the tax the books took out of those
    prices before it (each line's amount less what it settles, :attr:`InvoiceLine.booked`).

    The invoice is exact whatever was accrued: Dr receivable (its total) / Cr what each line
    settles / Cr the tax, and this difference balances it. 0 when prices exclude the tax, or
    when the accruals took out exactly the invoice's tax (the usual case: the same rules). A
    difference is a correction of the revenue accrued: the invoice's tax rounded per invoice
    over several lines (0.01), a line taxed as the supply it corrects (late usage, a debit
    adjustment), a tax plugin answering at the invoice otherwise than at accrual, or an
    invoice issued before accruals were net of tax (all its tax: 19.00 on 119.00)::

        >>> from ledger.facts.invoices import Invoice, InvoiceLine
        >>> rate = TaxRate(jurisdiction="DE", rate=Decimal("0.19"), name="VAT")
        >>> tax = standard_tax([(Decimal("119.00"), (rate,))], "EUR", inclusive=True)
        >>> line = InvoiceLine("usage", "api_calls", "unbilled", Decimal("119.00"))
        >>> inv = Invoice("kunde", date_(2026, 11, 1), "EUR", (line,), "", tax=tax)
        >>> included_difference(inv)                                    # accrued gross
        Decimal('19.00')
        >>> from dataclasses import replace
        >>> included_difference(replace(inv, lines=(replace(line, net=Decimal("100.00")),)))
        Decimal('0.00')
        >>> tax7 = standard_tax([(Decimal("119.00"), (rate.model_copy(update={"rate":
        ...     Decimal("0.07")}),))], "EUR", inclusive=True)      # 7.79: 11.21 more revenue
        >>> included_difference(replace(inv, tax=tax7, lines=(replace(line,
        ...     net=Decimal("100.00")),)))
        Decimal('-11.21')
    """
    booked = sum((line.booked for line in invoice.lines), ZERO)
    charged = invoice.tax.amount if invoice.tax is not None else ZERO
    return booked + charged - invoice.total


def _key(line: TaxLine) -> tuple[str, Decimal, str, str]:
    return (line.jurisdiction, line.rate, line.name, line.treatment)


def _left(tax: Tax, given: Iterable[Tax | None]) -> dict[tuple[str, Decimal, str, str], Decimal]:
    """Per tax line, the invoice's tax not given back yet by the earlier notes' ``given``."""
    left: dict[tuple[str, Decimal, str, str], Decimal] = defaultdict(lambda: ZERO)
    for t in tax.lines:
        left[_key(t)] += t.amount
    for note in given:
        for t in note.lines if note is not None else ():
            left[_key(t)] -= t.amount
    return left


def _line_tax(invoice: Invoice) -> tuple[tuple[tuple[int, Decimal], ...], ...] | None:
    """The invoice's tax per line (:attr:`Tax.line_tax`), or None when the plugin gave none."""
    tax = invoice.tax
    if tax is None or len(tax.line_tax) != len(invoice.lines):
        return None
    return tax.line_tax


def _upto(value: Decimal, part: Decimal, whole: Decimal, currency: str) -> Decimal:
    """``value × part ÷ whole`` rounded half-even: the cumulative share of a line's tax."""
    return round_money(value * part / whole, currency) if whole else ZERO


def line_creditable(
    invoice: Invoice,
    line: int,
    credited: Mapping[int, Decimal],
    given: Iterable[Tax | None] = (),
) -> Decimal | None:
    """What invoice line ``line`` (1-based) can still be credited, with the tax charged on that
    line itself, after ``credited`` of each line's amount (1-based line → amount) and the tax
    ``given`` back by the earlier notes; None when the tax plugin did not say which tax is
    whose (:attr:`Tax.line_tax`).

    A 200.00 invoice of 100.00 at 19 % (19.00) and 100.00 at 7 % (7.00), 226.00: line 1 can
    be credited 119.00 and line 2 107.00 (the invoice's average would say 113.00 each).
    After 50.00 of line 1: 50.00 + 19.00 − 9.50 = 59.50.
    """
    own = _own_left(invoice, line, credited, given)
    if own is None:
        return None
    whole = invoice.lines[line - 1].amount
    left = whole - credited.get(line, ZERO)
    if invoice.tax is not None and invoice.tax.inclusive:  # the line holds its tax
        return left
    return left + sum(own.values(), ZERO)


def _own_left(
    invoice: Invoice, line: int, credited: Mapping[int, Decimal], given: Iterable[Tax | None]
) -> dict[int, Decimal] | None:
    """Per tax line of invoice line ``line``, its tax not given back yet: what the invoice has
    left on that tax line less the other lines' rest (each ``round(tax × part left ÷
    amount)``), so the lines' rests add up to what is left whatever earlier notes did."""
    tax, alloc = invoice.tax, _line_tax(invoice)
    if tax is None or alloc is None:
        return None
    cur = invoice.currency
    left = _left(tax, given)
    own: dict[int, Decimal] = {}
    for j, _t in alloc[line - 1]:
        rest = left[_key(tax.lines[j])]
        for k, shares in enumerate(alloc, 1):
            whole = invoice.lines[k - 1].amount
            for jj, t in shares:
                if k != line and _key(tax.lines[jj]) == _key(tax.lines[j]):
                    rest -= t - _upto(t, credited.get(k, ZERO), whole, cur)
        own[j] = max(rest, ZERO)
    return own


def _line_credit(
    invoice: Invoice,
    line: int,
    credited: Mapping[int, Decimal],
    amount: Decimal,
    given: Sequence[Tax | None],
) -> Tax | None:
    """The tax a note of ``amount`` on invoice line ``line`` gives back: that line's own tax lines,
    cumulative over what the line was credited before, never more than it has left."""
    tax, alloc = invoice.tax, _line_tax(invoice)
    limit = line_creditable(invoice, line, credited, given)
    own = _own_left(invoice, line, credited, given)
    if tax is None or alloc is None or limit is None or own is None:
        return None
    cur = invoice.currency
    whole = invoice.lines[line - 1].amount
    before = credited.get(line, ZERO)
    mine = alloc[line - 1]
    paid_in = min(amount, max(limit, ZERO))  # more (--force) is credited beyond the line, untaxed
    gross = whole + (ZERO if tax.inclusive else sum((t for _, t in mine), ZERO))
    if paid_in == limit:  # the rest of the line: all the tax it has left
        shares = dict(own)
    else:
        if tax.inclusive:
            upto = before + paid_in
        else:
            upto = before + (round_money(paid_in * whole / gross, cur) if gross else ZERO)
        shares = {
            j: max(ZERO, min(_upto(t, upto, whole, cur) - _upto(t, before, whole, cur), own[j]))
            for j, t in mine
        }
    base = paid_in - sum(shares.values(), ZERO)
    return Tax(
        lines=tuple(
            TaxLine(t.jurisdiction, t.rate, base, shares[j], t.name, t.treatment)
            for j, t in enumerate(tax.lines)
            if j in shares
        ),
        exemption=tax.exemption,
        seller_tax_id=tax.seller_tax_id,
        customer_tax_id=tax.customer_tax_id,
    )


def credited_tax(
    invoice: Invoice,
    before: Decimal,
    amount: Decimal,
    *,
    line: int | None = None,
    credited: Mapping[int, Decimal] | None = None,
    given: Iterable[Tax | None] = (),
) -> Tax | None:
    """The share of ``invoice``'s tax a credit note of ``amount`` reverses, after earlier notes of
    ``before`` (their tax ``given``): per tax line, cumulative and rounded half-even, so notes
    crediting the whole invoice reverse exactly all its tax.

    A 119.00 invoice (100.00 + 19.00 VAT) credited 59.50: 9.50 of tax, 50.00 of base; its
    taxable base goes down by the note's net part (amount − tax) spread over the tax lines.

    A note on one ``line`` (after ``credited`` of each line's amount, 1-based) gives
    back that line's own tax when the plugin said which tax is whose
    (:func:`line_creditable`): 119.00 on the 19 % line of a 19 % + 7 % invoice is 19.00 of
    VAT at 19 % and none at 7 %.
    """
    tax = invoice.tax
    total = invoice.total
    if tax is None or not total:
        return None
    given = list(given)
    if line is not None and _line_tax(invoice) is not None:
        return _line_credit(invoice, line, credited or {}, amount, given)
    left = _left(tax, given)

    def share(t: TaxLine) -> Decimal:
        upto = min(before + amount, total)
        done = min(before, total)
        cur = invoice.currency
        if upto == total:  # the rest of the invoice: all the tax it has left
            return (
                max(left[_key(t)], ZERO)
                if given
                else t.amount - round_money(t.amount * done / total, cur)
            )
        value = round_money(t.amount * upto / total, cur) - round_money(
            t.amount * done / total, cur
        )
        return max(ZERO, min(value, left[_key(t)])) if given else value

    amounts = [share(t) for t in tax.lines]
    net_total = total - tax.amount
    net = min(before + amount, total) - min(before, total) - sum(amounts, ZERO)

    def base(value: Decimal) -> Decimal:  # the base credited: the note's net part, per tax line
        return round_money(value * net / net_total, invoice.currency) if net_total else ZERO

    lines = tuple(
        TaxLine(t.jurisdiction, t.rate, base(t.base), share_amount, t.name, t.treatment)
        for t, share_amount in zip(tax.lines, amounts, strict=True)
    )
    return Tax(
        lines=lines,
        exemption=tax.exemption,
        inclusive=False,
        seller_tax_id=tax.seller_tax_id,
        customer_tax_id=tax.customer_tax_id,
    )


def tax_json(tax: Tax | None) -> str:
    """The tax as canonical JSON text (tests and documents compare it)."""
    return json.dumps(tax.to_dict() if tax else None, sort_keys=True)


def with_tax(invoice: Invoice, net: Decimal) -> Decimal:
    """``net`` of the invoice's lines with the tax the invoice charges on it, rounded half-even:
    what crediting that much of its lines gives back. 50.00 of a 100.00 + 19.00 invoice: 59.50.
    Untaxed, or prices that include the tax: ``net`` itself."""
    if invoice.tax is None or not invoice.tax.added or not invoice.subtotal:
        return net
    return round_money(net * invoice.total / invoice.subtotal, invoice.currency)


def credit_of_lines(
    invoice: Invoice, net: Decimal, lines: Mapping[int, Decimal] | None = None
) -> tuple[Decimal, Tax | None]:
    """A credit note for ``net`` of the invoice's lines (a rerate's or a subscription change's
    decrease): its amount and the tax it gives back, each tax line's share
    ``round(tax × net ÷ lines' total)``. Prices exclusive of tax: the amount is ``net`` plus
    that tax, so the lines are credited exactly ``net``; inclusive: the lines hold the tax, the
    amount is ``net``. Untaxed: ``(net, None)``.

    20.05 off a 100.25 + 19.05 VAT invoice: tax round(19.05 × 20.05 ÷ 100.25 = 3.81) = 3.81,
    amount 23.86.

    ``lines`` (invoice line, 1-based → its decrease, adding up to ``net``): each line gives
    back its own tax when the plugin said which is whose (:attr:`Tax.line_tax`),
    ``round(the line's tax × decrease ÷ line amount)``: 10.00 off the 19 % line of a 19 % +
    7 % invoice gives back 1.90 at 19 % (the average would give 0.95 + 0.35).
    """
    tax = invoice.tax
    if tax is None or not invoice.subtotal:
        return net, None
    cur = invoice.currency
    alloc = _line_tax(invoice)
    if alloc is not None and lines and sum(lines.values(), ZERO) == net:
        amounts: dict[int, Decimal] = defaultdict(lambda: ZERO)
        bases: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for number, decrease in sorted(lines.items()):
            whole = invoice.lines[number - 1].amount
            mine = {j: _upto(t, decrease, whole, cur) for j, t in alloc[number - 1]}
            for j, amount in mine.items():
                amounts[j] += amount
                bases[j] += decrease - (sum(mine.values(), ZERO) if tax.inclusive else ZERO)
        own = Tax(
            lines=tuple(
                TaxLine(t.jurisdiction, t.rate, bases[j], amounts[j], t.name, t.treatment)
                for j, t in enumerate(tax.lines)
                if j in amounts
            ),
            exemption=tax.exemption,
            seller_tax_id=tax.seller_tax_id,
            customer_tax_id=tax.customer_tax_id,
        )
        return (net if tax.inclusive else net + own.amount), own
    average = tuple(
        TaxLine(
            t.jurisdiction,
            t.rate,
            round_money(t.base * net / invoice.subtotal, cur),
            round_money(t.amount * net / invoice.subtotal, cur),
            t.name,
            t.treatment,
        )
        for t in tax.lines
    )
    share = Tax(
        lines=average,
        exemption=tax.exemption,
        seller_tax_id=tax.seller_tax_id,
        customer_tax_id=tax.customer_tax_id,
    )
    return (net if tax.inclusive else net + share.amount), share
