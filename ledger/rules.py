"""Rules: meters, plans, customers and accounts, loaded from YAML into typed,
immutable, validated records. Every error names file, key path and line::

    rules/plans.yaml:6: plans.pro.currency: 'usd' is not an ISO 4217 currency code

A worked example of the four files is in ``rules/`` (the demo workspace); every key is in
the manual, ``docs/formats.md``. Amounts are decimal strings; a float in a money field is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
)

from ledger.accounts import (
    DEFAULT_TEMPLATES,
    AccountMap,
    check_template,
    component,
    is_valid_component,
)
from ledger.errors import PluginError, RulesError
from ledger.money import DecimalError, parse_decimal
from ledger.period import CYCLE_MONTHS, add_months
from ledger.pricing import PricingError, PricingModel

FILES = ("meters.yaml", "plans.yaml", "customers.yaml", "accounts.yaml")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def _strict_decimal(value: Any) -> Decimal:
    try:
        return parse_decimal(value, where="value")
    except DecimalError as exc:
        raise ValueError(str(exc).removeprefix("value: ")) from None


Dec = Annotated[Decimal, BeforeValidator(_strict_decimal)]


def _fraction(value: Any) -> Decimal:
    """A threshold such as 0.8 (80 %): not money, so a YAML float is taken as written."""
    if isinstance(value, float) and not isinstance(value, bool):
        value = repr(value)  # the shortest text that reads back as this float: 0.8 → "0.8"
    return _strict_decimal(value)


Fraction = Annotated[Decimal, BeforeValidator(_fraction)]


@dataclass(frozen=True)
class Tolerance:
    """How far the batch events' monthly total of a meter may be from the live meter's.

    Absolute in the meter's unit, or relative to the live total with a ``%``:

    >>> Tolerance.parse("5").allowed(Decimal("25000"))
    Decimal('5')
    >>> Tolerance.parse("0.1%").allowed(Decimal("25000"))
    Decimal('25.0')
    >>> str(Tolerance.parse("0.1%"))
    '0.1%'
    """

    amount: Decimal
    relative: bool = False

    @classmethod
    def parse(cls, value: Any) -> Tolerance:
        if isinstance(value, Tolerance):
            return value
        relative = isinstance(value, str) and value.strip().endswith("%")
        text = value.strip().removesuffix("%") if isinstance(value, str) else value
        try:
            amount = parse_decimal(text, where="value")
        except DecimalError:
            if not relative:
                raise
            raise DecimalError(f"value: {value!r} is not a percentage") from None
        if amount < 0:
            raise DecimalError(f"value: {value!r} is negative")
        return cls(amount, relative)

    def allowed(self, live: Decimal) -> Decimal:
        """The largest difference allowed against a live total of ``live``."""
        return abs(live) * self.amount / 100 if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount}%" if self.relative else str(self.amount)


def _tolerance(value: Any) -> Tolerance:
    try:
        return Tolerance.parse(value)
    except DecimalError as exc:
        raise ValueError(
            str(exc).removeprefix("value: ") + ' (a decimal string such as "5", or "0.1%")'
        ) from None


LiveTolerance = Annotated[Tolerance, BeforeValidator(_tolerance)]


def _iso_currency(value: str) -> str:
    """Three capital letters (``usd`` is refused rather than billed as another currency)."""
    if not (len(value) == 3 and value.isalpha() and value.isupper()):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Meter(_Record):
    """What to measure: events of one type, aggregated per customer and cycle."""

    id: str
    #: the meter's name on invoices and statements ("API calls"); "" prints the id
    name: str = ""
    event_type: str
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"]
    unit: str = "unit"
    value: str | None = None
    filter: Mapping[str, str] = Field(default_factory=dict)
    account: str | None = None
    #: reconciliation: allowed difference between the batch and live meter totals of a month,
    #: absolute in the meter's unit ("5") or relative to the live total ("0.1%")
    live_tolerance: LiveTolerance = Field(default_factory=lambda: Tolerance(Decimal(0)))

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if isinstance(v, bool | float) or not isinstance(v, str | int):
                    raise ValueError(f"filter value for {k!r} must be a string")
                out[str(k)] = str(v)
            return out
        return value


class Tier(_Record):
    up_to: Dec | None = None
    unit_price: Dec = Decimal(0)
    flat_price: Dec = Decimal(0)


class Charge(BaseModel):
    """One priced meter of a plan. Keys other than meter/model are the model's
    parameters, validated by the pricing plugin into ``terms``."""

    model_config = ConfigDict(frozen=True, extra="allow", arbitrary_types_allowed=True)

    meter: str
    model: str
    terms: Any = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BaseFee(_Record):
    amount: Dec
    timing: Literal["advance", "arrears"] = "advance"


class PlanVersion(_Record):
    """New terms of a plan for the cycles that start on or after ``effective``.

    Only the keys given change (``charges`` replaces the whole list); the rest
    carries over from the terms in effect before. Currency and cycle never
    change (they may be repeated, unchanged): that is a new plan.
    """

    effective: date
    charges: tuple[Charge, ...] = ()
    base_fee: BaseFee | None = None
    minimum_commitment: Dec | None = None
    currency: str | None = None
    cycle: Literal["monthly", "quarterly", "yearly"] | None = None


#: The terms a version can change.
VERSIONED = ("charges", "base_fee", "minimum_commitment")


class Plan(_Record):
    id: str
    name: str = ""
    currency: str
    cycle: Literal["monthly", "quarterly", "yearly"] = "monthly"
    base_fee: BaseFee | None = None
    minimum_commitment: Dec | None = None
    charges: tuple[Charge, ...] = ()
    account: str | None = None
    #: effective-dated terms, in increasing ``effective`` order (see :meth:`as_of`)
    versions: tuple[PlanVersion, ...] = ()
    #: the largest usage cap per meter a customer on this plan may set itself (``meterbook api``'s
    #: portal); a meter not listed has no self-service cap
    max_caps: Mapping[str, Dec] = Field(default_factory=dict)
    #: threshold (progressive) invoicing: a cycle's usage not billed yet that reaches this amount
    #: is invoiced on the next ``invoice`` run (:func:`invoice_threshold`); None: at cycle end only
    invoice_threshold: Dec | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return _iso_currency(value)

    def version_at(self, day: date) -> date:
        """The ``effective`` date of the version in effect for a cycle starting on ``day``;
        ``date.min`` for the plan's original terms. A version never splits a cycle.

        >>> october = PlanVersion(effective=date(2026, 10, 1), minimum_commitment=Decimal("80"))
        >>> plan = Plan(id="pro", currency="USD", minimum_commitment=Decimal("100"),
        ...             versions=(october,))
        >>> plan.version_at(date(2026, 9, 15)), plan.version_at(date(2026, 10, 1))
        (datetime.date(1, 1, 1), datetime.date(2026, 10, 1))
        >>> plan.as_of(plan.version_at(date(2026, 10, 15))).minimum_commitment
        Decimal('80')
        """
        found = date.min
        for version in self.versions:
            if version.effective <= day:
                found = version.effective
        return found

    @property
    def priced_meters(self) -> frozenset[str]:
        """The meters its charges price, in its original terms or any version."""
        terms: tuple[Plan | PlanVersion, ...] = (self, *self.versions)
        return frozenset(c.meter for t in terms for c in t.charges)

    def as_of(self, effective: date) -> Plan:
        """This plan with the terms in effect from ``effective`` on (versions are cumulative)."""
        if not self.versions or effective < self.versions[0].effective:
            return self
        update: dict[str, Any] = {}
        for version in self.versions:
            if version.effective > effective:
                break
            update.update(
                {key: getattr(version, key) for key in VERSIONED if key in version.model_fields_set}
            )
        return self.model_copy(update=update)


class Subscription(_Record):
    """One subscription of a customer to a plan over ``[start, end)``.

    ``id`` names the subscription a customer holds alongside its main one (an add-on, a
    second product): subscriptions with the same ``id`` (none: the main one) are one
    subscription whose plan changes, in start order, each ending where the next starts;
    subscriptions with different ids run side by side, each with its own cycles
    (``billing_anchor``: this subscription's own, else the customer's).
    """

    plan: str
    start: date
    end: date | None = None
    id: str = ""
    billing_anchor: Literal["start", "calendar"] | None = None


class CreditGrant(_Record):
    amount: Dec
    granted: date
    expires: date | None = None


class Discount(_Record):
    """A discount (a coupon) on a customer's cycles (``discounts:`` of a customer): a
    ``percent`` of, or a fixed ``amount`` off, each cycle's discountable amount, from the
    cycles starting on or after ``start``, for ``cycles`` of them (None: forever)::

        discounts:
          - {id: launch, percent: "20", charges: [api_calls], cycles: 3, start: 2026-09-01}
          - {id: loyalty, amount: "5.00", start: 2026-09-01}   # the whole invoice, forever

    ``charges``: meter ids of the plan's charges, ``base_fee`` and ``minimum_commitment``
    (empty: all of them, the whole invoice). How each line is discounted, capped and
    booked: :mod:`ledger.discounts`.

        >>> Discount(id="x", percent=Decimal("20"), start=date(2026, 9, 1)).label
        'x: 20% off'
    """

    id: str
    percent: Fraction | None = None
    amount: Dec | None = None
    charges: tuple[str, ...] = ()
    cycles: Annotated[int, Field(ge=1)] | None = None
    start: date

    @property
    def label(self) -> str:
        """How an invoice names it: ``launch: 20% off``, ``loyalty: 5.00 off``."""
        if self.percent is not None:
            return f"{self.id}: {format(self.percent.normalize(), 'f')}% off"
        return f"{self.id}: {self.amount} off"


#: What a discount's ``charges`` may name besides the plans' meters.
DISCOUNT_PARTS = ("base_fee", "minimum_commitment")


class WalletGrant(CreditGrant):
    """A grant that is not in ``credits``: a wallet top-up (stored, recurring or automatic;
    :mod:`ledger.topups`). ``key`` names it (``topup:BANK-7``, ``recurring:2026-10-01``,
    ``auto:2026-11-01``) where a rules grant is named by its date and ordinal, so adding
    top-ups never renames a rules grant."""

    key: str


class RecurringTopUp(_Record):
    """``wallet: {recurring: {amount, every, start, end}}``: a top-up on ``start`` and every
    ``every`` after it (the same day of the month, or the month's last day), before ``end``."""

    amount: Dec
    every: Literal["month", "quarter", "year"] = "month"
    start: date
    end: date | None = None


class Wallet(_Record):
    """A customer's wallet settings (``wallet:`` in customers.yaml; the manual's "Wallet
    top-ups"): an automatic top-up of ``top_up`` when usage draws the balance under
    ``below``, a recurring one, and how long a top-up lasts (``expires_after_days``; None:
    it never expires)."""

    below: Dec | None = None
    top_up: Dec | None = None
    recurring: RecurringTopUp | None = None
    expires_after_days: int | None = None


class ChangePolicy(_Record):
    """How a subscription change or cancellation in the middle of a cycle is billed
    (``[subscription_changes]`` in ``meterbook.toml`` for the workspace,
    ``subscription_changes:`` of a customer for that customer; see the manual "Subscription
    changes").

    ``proration``: ``by_day`` (default) bills the cycle cut by the change for its days
    only, so the unused days of a fee billed in advance are credited; ``none`` bills
    the cut cycle in full (no credit). ``effective``: ``now`` (default) changes on the
    date given; ``next_cycle`` moves a change or end inside a cycle to that cycle's end.
    """

    proration: Literal["by_day", "none"] = "by_day"
    effective: Literal["now", "next_cycle"] = "now"

    def merged(self, override: ChangePolicy | None) -> ChangePolicy:
        """This policy with the keys ``override`` gives replaced (a customer's own setting
        over the workspace's default):

        >>> workspace = ChangePolicy(proration="none")
        >>> workspace.merged(ChangePolicy(effective="next_cycle"))
        ChangePolicy(proration='none', effective='next_cycle')
        >>> workspace.merged(ChangePolicy(proration="by_day")).proration, workspace.merged(None)
        ('by_day', ChangePolicy(proration='none', effective='now'))
        """
        if override is None:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class GapsSpikesTuning(_Record):
    """How the gaps-and-spikes reconciler judges daily usage (``plugins/reconcile_gaps_spikes.py``):
    ``[gaps_spikes]`` in ``meterbook.toml`` for the workspace, ``gaps_spikes:`` on a customer in
    ``customers.yaml`` for that customer (only the keys given change; the rest comes from the
    workspace, then these defaults).

    ``enabled``: false turns the check off. ``min_gap_days``: a gap is reported only when it
    lasts at least this many weekdays (a customer reporting every few days: 3 or more).
    ``spike_factor``: a spike is a day above this many times the trailing median of the
    ``trailing_days`` before it, judged once at least ``min_history`` of those days had usage.

        >>> workspace = GapsSpikesTuning(min_gap_days=2)
        >>> customer = GapsSpikesTuning(spike_factor=Decimal("10"))
        >>> tuned = workspace.merged(customer)
        >>> tuned.min_gap_days, tuned.spike_factor, tuned.trailing_days, tuned.enabled
        (2, Decimal('10'), 14, True)
    """

    enabled: bool = True
    spike_factor: Fraction = Decimal(5)
    trailing_days: Annotated[int, Field(ge=1, le=366)] = 14
    min_history: Annotated[int, Field(ge=1, le=366)] = 7
    min_gap_days: Annotated[int, Field(ge=1, le=366)] = 1

    @field_validator("spike_factor")
    @classmethod
    def _factor(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("spike_factor is a number above 0 (5: five times the trailing median)")
        return value

    def merged(self, override: GapsSpikesTuning | None) -> GapsSpikesTuning:
        """These settings with the keys ``override`` gives replaced."""
        if override is None:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class BillingDetails(_Record):
    """Where a customer's invoices go (``billing:`` of a customer in ``customers.yaml``), printed
    under "Bill to" on its invoices; none of it changes an amount or an account::

        billing:
          contact: Accounts payable
          address: ["1 Main Street", "Springfield, IL 62701", "United States"]
          email: ap@acme.example
          reference: PO-4471      # the customer's purchase order, printed on every invoice

    The customer's tax id is ``tax_id`` of ``rules/taxes.yaml`` (the manual "Taxes"): it is
    recorded on each taxed invoice, so it is not repeated here.
    """

    contact: str = ""
    address: tuple[str, ...] = ()
    email: str = ""
    reference: str = ""

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        local, at, domain = value.partition("@")
        if value and (not at or not local or "." not in domain or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an email address (such as ap@example.com)")
        return value


class Customer(_Record):
    id: str
    #: the customer's name on documents and in Fava; "" prints the id
    name: str = ""
    #: where its invoices go (None: the name only)
    billing: BillingDetails | None = None
    account: str | None = None
    currency: str
    subscriptions: tuple[Subscription, ...] = ()
    billing_anchor: Literal["start", "calendar"] = "start"
    caps: Mapping[str, Dec] = Field(default_factory=dict)
    spend_cap: Dec | None = None
    alert_thresholds: tuple[Fraction, ...] = (Decimal("0.8"), Decimal("1.0"))
    credits: tuple[CreditGrant, ...] = ()
    #: wallet top-ups: automatic and recurring (:mod:`ledger.topups`); None: none
    wallet: Wallet | None = None
    webhook: str | None = None
    #: days from the invoice date to its due date (0: due on receipt)
    payment_terms_days: NonNegativeInt = 0
    subscription_changes: ChangePolicy = ChangePolicy()
    #: this customer's tuning of the gaps-and-spikes reconciler (None: the workspace's)
    gaps_spikes: GapsSpikesTuning | None = None
    #: discounts and coupons on its cycles, applied in this order (:mod:`ledger.discounts`)
    discounts: tuple[Discount, ...] = ()
    #: threshold (progressive) invoicing for this customer's cycles, overriding its plans'
    #: (:func:`invoice_threshold`)
    invoice_threshold: Dec | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return _iso_currency(value)

    def series(self) -> dict[str, tuple[tuple[int, Subscription], ...]]:
        """The subscriptions by ``id`` ("" first: the main one), each with its index in
        ``subscriptions``, in start order: one entry per subscription the customer runs at
        once, whose plan changes follow one another."""
        found: dict[str, list[tuple[int, Subscription]]] = {}
        for index, sub in enumerate(self.subscriptions):
            found.setdefault(sub.id, []).append((index, sub))
        return {key: tuple(found[key]) for key in sorted(found, key=lambda k: (k != "", k))}

    @property
    def last_end(self) -> date | None:
        """The day the last of its subscriptions ends: the latest ``end`` of each ``id``'s last
        subscription (a plan change is not an end). None when one runs open-ended or there is
        none."""
        ends = [subs[-1][1].end for subs in self.series().values()]
        if not ends or any(end is None for end in ends):
            return None
        return max(end for end in ends if end is not None)


def invoice_threshold(customer: Customer, plan: Plan | None) -> Decimal | None:
    """The threshold of a customer's cycles on ``plan``: the customer's own, else the plan's.

    >>> pro = Plan(id="pro", currency="USD", invoice_threshold=Decimal("500.00"))
    >>> acme = Customer(id="acme", currency="USD")
    >>> invoice_threshold(acme, pro), invoice_threshold(
    ...     acme.model_copy(update={"invoice_threshold": Decimal("100.00")}), pro)
    (Decimal('500.00'), Decimal('100.00'))
    """
    if customer.invoice_threshold is not None:
        return customer.invoice_threshold
    return plan.invoice_threshold if plan is not None else None


class Rules(_Record):
    """All rules of a workspace, cross-checked. ``hash`` identifies the files used."""

    meters: Mapping[str, Meter]
    plans: Mapping[str, Plan]
    customers: Mapping[str, Customer]
    accounts: AccountMap
    hash: str
    components: Mapping[tuple[str, str], str]

    def customer_component(self, customer_id: str) -> str:
        return self.components[("customer", customer_id)]

    def meter_component(self, meter_id: str) -> str:
        return self.components[("meter", meter_id)]

    def plan_component(self, plan_id: str) -> str:
        return self.components[("plan", plan_id)]

    def account(self, key: str, *, customer: str = "", meter: str = "", plan: str = "") -> str:
        """The ledger account for ``key`` (DESIGN's table) given ids, not components."""
        return self.accounts.name(
            key,
            customer=self.customer_component(customer) if customer else "",
            meter=self.meter_component(meter) if meter else "",
            plan=self.plan_component(plan) if plan else "",
        )

    def meters_for_type(self, event_type: str) -> tuple[Meter, ...]:
        return tuple(m for m in self.meters.values() if m.event_type == event_type)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(m.event_type for m in self.meters.values())


# --- loading ---------------------------------------------------------------------------


#: libyaml's loader when PyYAML has it: the rules of 100,000 customers parse in seconds, not
#: minutes (the pure-Python scanner spends ~0.8 ms per customer, twice); same safe subset.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _construct(node: yaml.Node) -> Any:
    """The data of a composed document, as ``yaml.safe_load`` gives it."""
    loader = _YAML_LOADER("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


#: libyaml's parser when PyYAML was built with it: the same nodes and data, several times faster
#: (rules are read by every command)
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _parse(parse: Any, text: str) -> Any:
    """``yaml.compose`` or ``yaml.load`` of ``text`` with the safe loader: libyaml's when there
    is one; a document it refuses is parsed again in pure Python, whose message and line the
    error reports (the same wording with or without libyaml)."""
    if _FAST_LOADER is not None:
        try:
            return parse(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return parse(text, Loader=yaml.SafeLoader)


class _Source:
    """One YAML file: its data and the line of every key path."""

    def __init__(self, path: Path, root_key: str):
        self.path = path
        self.name = f"{path.parent.name}/{path.name}"
        self.root_key = root_key
        self.lines: dict[tuple[Any, ...], int] = {}
        self.data: Any = {}
        if not path.exists():
            return
        if not path.is_file():
            raise RulesError(
                "is a directory, not a YAML file" if path.is_dir() else "not a regular file",
                file=self.name,
            )
        try:
            text = path.read_text(encoding="utf-8")
            node = _parse(yaml.compose, text)
        except OSError as exc:
            raise RulesError(f"cannot read: {exc.strerror or exc}", file=self.name) from None
        except UnicodeDecodeError as exc:
            raise RulesError(f"not UTF-8 ({exc.reason})", file=self.name) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise RulesError(
                f"invalid YAML: {problem}",
                file=self.name,
                line=mark.line + 1 if mark is not None else None,
            ) from None
        if node is not None:
            self._index(
                node, ()
            )  # duplicate keys and impossible dates are refused here, with their line
        try:
            self.data = None if node is None else _construct(node)  # parsed once, above
        except yaml.YAMLError as exc:  # what composing did not catch (an unknown tag, a bad merge)
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise RulesError(
                f"invalid YAML: {problem}",
                file=self.name,
                line=mark.line + 1 if mark is not None else None,
            ) from None
        if self.data is None:
            self.data = {}
        if not isinstance(self.data, dict):
            raise RulesError(f"expected a mapping with key {root_key!r}", file=self.name, line=1)
        unknown = sorted(str(k) for k in self.data if k != root_key)
        if unknown:
            raise RulesError(
                f"unknown top-level key (expected {root_key!r})",
                file=self.name,
                key=unknown[0],
                line=self.line((unknown[0],)),
            )

    def _index(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        """Record the line of every key path; refuse a key given twice in one mapping (YAML
        would silently keep the last) and a date that does not exist (``2026-13-01``)."""
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, Any]] = set()
            for key_node, value_node in node.value:
                key = (
                    yaml.safe_load(yaml.serialize(key_node))
                    if not isinstance(key_node, yaml.ScalarNode)
                    else key_node.value
                )
                line = key_node.start_mark.line + 1
                if key_node.tag != "tag:yaml.org,2002:merge":
                    identity = (key_node.tag, key if isinstance(key, str) else repr(key))
                    if identity in seen:
                        raise RulesError(
                            "duplicate key", file=self.name, key=_dotted((*path, key)), line=line
                        )
                    seen.add(identity)
                self.lines[(*path, key)] = line
                self._index(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self._index(item, (*path, i))
        elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                yaml.constructor.SafeConstructor().construct_yaml_timestamp(node)
            except (ValueError, OverflowError) as exc:
                raise RulesError(
                    f"{node.value!r} is not a date ({exc})",
                    file=self.name,
                    key=_dotted(path),
                    line=node.start_mark.line + 1,
                ) from None

    def section(self) -> dict[Any, Any]:
        value = self.data.get(self.root_key) or {}
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping of {self.root_key}", (self.root_key,))
        return value

    def line(self, path: tuple[Any, ...]) -> int | None:
        path = tuple(str(p) if not isinstance(p, int) else p for p in path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, message: str, path: tuple[Any, ...]) -> RulesError:
        return RulesError(message, file=self.name, key=_dotted(path), line=self.line(path))


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(model: type[BaseModel], data: Any, source: _Source, path: tuple[Any, ...]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p not in ("function-before", "function-after"))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown key"
        raise source.error(message, (*path, *loc)) from None


def load_rules(
    rules_dir: Path,
    pricing_models: Mapping[str, PricingModel] | None = None,
    *,
    change_policy: ChangePolicy | None = None,
) -> Rules:
    """Load and cross-check the rules in ``rules_dir``.

    When ``pricing_models`` is given (the plugin manager's models by name),
    each charge's parameters are validated by its model into ``Charge.terms``.
    ``change_policy``: the workspace's default ``[subscription_changes]``
    (``meterbook.toml``); each customer's own ``subscription_changes`` keys
    override it (:meth:`ChangePolicy.merged`). A default other than the built-in
    one is part of :attr:`Rules.hash`, as the billing terms it changes are.
    """
    if not rules_dir.is_dir():
        raise RulesError(
            f"rules directory {rules_dir} "
            + ("is not a directory" if rules_dir.exists() else "not found")
        )
    meters_src = _Source(rules_dir / "meters.yaml", "meters")
    plans_src = _Source(rules_dir / "plans.yaml", "plans")
    customers_src = _Source(rules_dir / "customers.yaml", "customers")
    accounts_src = _Source(rules_dir / "accounts.yaml", "accounts")
    for src in (meters_src, plans_src, customers_src):
        if not src.path.exists():
            raise RulesError("file not found", file=src.name)

    meters: dict[str, Meter] = {}
    for mid, body in meters_src.section().items():
        path = ("meters", mid)
        _check_id(meters_src, mid, path)
        if not isinstance(body, dict):
            raise meters_src.error("expected a mapping", path)
        meter = _validate(Meter, {**body, "id": str(mid)}, meters_src, path)
        if meter.aggregation != "count" and not meter.value:
            raise meters_src.error(
                f"aggregation {meter.aggregation!r} needs 'value' (the property to read)", path
            )
        meters[str(mid)] = meter

    plans: dict[str, Plan] = {}
    for pid, body in plans_src.section().items():
        path = ("plans", pid)
        _check_id(plans_src, pid, path)
        if not isinstance(body, dict):
            raise plans_src.error("expected a mapping", path)
        plan = _validate(Plan, {**body, "id": str(pid)}, plans_src, path)
        _check_plan_money(plan, plans_src, path)
        charges = _parse_charges(
            plan.charges, meters, pricing_models, plans_src, (*path, "charges")
        )
        versions = _check_versions(plan, meters, pricing_models, plans_src, path)
        for meter, most in plan.max_caps.items():
            if meter not in meters:
                raise plans_src.error(f"unknown meter {meter!r}", (*path, "max_caps", meter))
            if most <= 0:
                raise plans_src.error(
                    "a maximum cap is a quantity above 0", (*path, "max_caps", meter)
                )
        plans[str(pid)] = plan.model_copy(update={"charges": charges, "versions": versions})

    customers: dict[str, Customer] = {}
    for cid, body in customers_src.section().items():
        path = ("customers", cid)
        _check_id(customers_src, cid, path)
        if not isinstance(body, dict):
            raise customers_src.error("expected a mapping", path)
        customer = _validate(Customer, {**body, "id": str(cid)}, customers_src, path)
        if change_policy is not None:
            own = (
                customer.subscription_changes
                if "subscription_changes" in (customer.model_fields_set)
                else None
            )
            customer = customer.model_copy(
                update={"subscription_changes": change_policy.merged(own)}
            )
        _check_customer(customer, plans, meters, customers_src, path)
        customers[str(cid)] = customer

    overrides = accounts_src.section() if accounts_src.path.exists() else {}
    for key, template in overrides.items():
        if key not in DEFAULT_TEMPLATES:
            raise accounts_src.error(
                f"unknown account key (known: {', '.join(DEFAULT_TEMPLATES)})", ("accounts", key)
            )
        if not isinstance(template, str):
            raise accounts_src.error("expected an account template string", ("accounts", key))
        problem = check_template(key, template)
        if problem:
            raise accounts_src.error(problem, ("accounts", key))

    components = _components(meters, meters_src, plans, plans_src, customers, customers_src)
    return Rules(
        meters=meters,
        plans=plans,
        customers=customers,
        accounts=AccountMap({str(k): str(v) for k, v in overrides.items()}),
        hash=rules_hash(rules_dir, change_policy),
        components=components,
    )


def _parse_charges(
    charges: tuple[Charge, ...],
    meters: Mapping[str, Meter],
    pricing_models: Mapping[str, PricingModel] | None,
    source: _Source,
    path: tuple[Any, ...],
) -> tuple[Charge, ...]:
    """Check each charge's meter and let its pricing model validate the parameters into
    ``terms``."""
    parsed = []
    for i, charge in enumerate(charges):
        cpath = (*path, i)
        if charge.meter not in meters:
            raise source.error(f"unknown meter {charge.meter!r}", (*cpath, "meter"))
        if pricing_models is not None:
            model = pricing_models.get(charge.model)
            if model is None:
                known = ", ".join(sorted(pricing_models))
                raise source.error(
                    f"unknown pricing model {charge.model!r} (known: {known})", (*cpath, "model")
                )
            try:
                terms = model.parse(charge.params)
            except (PricingError, DecimalError) as exc:
                raise source.error(f"{charge.model}: {exc}", cpath) from None
            except (
                Exception
            ) as exc:  # a plugin bug, not bad rules: name the plugin and where it failed
                detail = " ".join(str(exc).split())
                raise PluginError(
                    f"plugin {_origin(model)}: pricing model {charge.model!r} raised "
                    f"{type(exc).__name__}: {detail} parsing plan {path[1]!r} charge {i + 1} "
                    f"(meter {charge.meter}) at {source.name}:{source.line(cpath)}"
                ) from None
            charge = charge.model_copy(update={"terms": terms})
        parsed.append(charge)
    return tuple(parsed)


def _origin(model: PricingModel) -> str:
    """Where a pricing model's code lives (its module), for error messages."""
    return getattr(type(model), "__module__", None) or type(model).__name__


def _check_versions(
    plan: Plan,
    meters: Mapping[str, Meter],
    pricing_models: Mapping[str, PricingModel] | None,
    source: _Source,
    path: tuple[Any, ...],
) -> tuple[PlanVersion, ...]:
    """Effective dates strictly increasing, currency and cycle unchanged, something changed,
    charges valid."""
    versions = []
    previous: date | None = None
    for i, version in enumerate(plan.versions):
        vpath = (*path, "versions", i)
        if previous is not None and version.effective <= previous:
            raise source.error(
                f"effective {version.effective} must be after the previous version's "
                f"{previous} (versions go in increasing date order)",
                (*vpath, "effective"),
            )
        previous = version.effective
        for key in ("currency", "cycle"):
            value = getattr(version, key)
            if value is not None and value != getattr(plan, key):
                raise source.error(
                    f"a version cannot change the plan's {key} ({getattr(plan, key)} → {value}); "
                    "make a new plan and change the subscription",
                    (*vpath, key),
                )
        if not any(key in version.model_fields_set for key in VERSIONED):
            raise source.error(
                "a version changes charges, base_fee or minimum_commitment (none given)", vpath
            )
        if "charges" in version.model_fields_set:
            charges = _parse_charges(
                version.charges, meters, pricing_models, source, (*vpath, "charges")
            )
            version = version.model_copy(update={"charges": charges})
        versions.append(version)
    return tuple(versions)


#: Charge parameters that are billed as amounts (not prices per unit), by pricing model.
MONEY_PARAMS: Mapping[str, tuple[str, ...]] = {"flat": ("amount",)}


def _check_money(amount: Any, currency: str, source: _Source, path: tuple[Any, ...]) -> None:
    """An amount billed as such (base fee, minimum commitment, flat fee, credit grant) is a whole
    number of the currency's minor unit: ``"49.005"`` USD would be billed as 49.00 (or 49.01),
    so it is a rules error. Unit prices may be finer (the cumulative amount is rounded).

        >>> src = _Source.__new__(_Source); src.name, src.lines = "plans.yaml", {}
        >>> _check_money(Decimal("49.00"), "USD", src, ("plans", "pro", "base_fee", "amount"))
        >>> try:
        ...     _check_money(Decimal("49.005"), "USD", src, ("plans", "pro", "base_fee", "amount"))
        ... except RulesError as exc:
        ...     print(exc)
        plans.yaml: plans.pro.base_fee.amount: 49.005 has more decimal places than USD (2)
    """
    from ledger.money import minor_units, quantum

    try:
        value = parse_decimal(amount, where="value")
    except DecimalError:
        return  # the pricing model or the record's own validation reports it
    if value != value.quantize(quantum(currency)):
        places = minor_units(currency)
        raise source.error(f"{value} has more decimal places than {currency} ({places})", path)


def _check_threshold(
    threshold: Decimal | None, currency: str, source: _Source, path: tuple[Any, ...]
) -> None:
    """An ``invoice_threshold`` is an amount of the currency above 0."""
    if threshold is None:
        return
    if threshold <= 0:
        raise source.error(f"an invoice threshold is an amount of {currency} above 0", path)
    _check_money(threshold, currency, source, path)


def _check_plan_money(plan: Plan, source: _Source, path: tuple[Any, ...]) -> None:
    """Base fee, minimum commitment and flat charge amounts of a plan and its versions, and its
    invoice threshold."""
    _check_threshold(plan.invoice_threshold, plan.currency, source, (*path, "invoice_threshold"))
    terms: list[tuple[tuple[Any, ...], Any]] = [(path, plan)]
    terms += [((*path, "versions", i), version) for i, version in enumerate(plan.versions)]
    for tpath, term in terms:
        if term.base_fee is not None:
            _check_money(
                term.base_fee.amount, plan.currency, source, (*tpath, "base_fee", "amount")
            )
        if term.minimum_commitment is not None:
            _check_money(
                term.minimum_commitment, plan.currency, source, (*tpath, "minimum_commitment")
            )
        for i, charge in enumerate(term.charges):
            params = charge.params
            for key in MONEY_PARAMS.get(charge.model, ()):
                if key in params:
                    _check_money(params[key], plan.currency, source, (*tpath, "charges", i, key))
            tiers = params.get("tiers")
            for j, tier in enumerate(tiers if isinstance(tiers, list) else ()):
                if isinstance(tier, dict) and "flat_price" in tier:
                    _check_money(
                        tier["flat_price"],
                        plan.currency,
                        source,
                        (*tpath, "charges", i, "tiers", j, "flat_price"),
                    )


def _check_id(source: _Source, ident: Any, path: tuple[Any, ...]) -> None:
    if not isinstance(ident, str) or not _ID.match(ident):
        raise source.error(
            "ids are 1..255 letters, digits, '_', '.' or '-' (they appear in ledger links)", path
        )


def _check_customer(
    customer: Customer,
    plans: Mapping[str, Plan],
    meters: Mapping[str, Meter],
    source: _Source,
    path: tuple[Any, ...],
) -> None:
    last: dict[str, Subscription] = {}  # the previous subscription of each id
    for i, sub in enumerate(customer.subscriptions):
        spath = (*path, "subscriptions", i)
        if sub.id and not _ID.match(sub.id):
            raise source.error(
                "ids are 1..255 letters, digits, '_', '.' or '-' (they appear in ledger links)",
                (*spath, "id"),
            )
        plan = plans.get(sub.plan)
        if plan is None:
            raise source.error(f"unknown plan {sub.plan!r}", (*spath, "plan"))
        if plan.currency != customer.currency:
            raise source.error(
                f"plan {sub.plan!r} bills in {plan.currency} "
                f"but the customer in {customer.currency}",
                (*spath, "plan"),
            )
        if sub.end is not None and sub.end <= sub.start:
            raise source.error("end must be after start", (*spath, "end"))
        previous = last.get(sub.id)
        if previous is not None:
            if sub.start <= previous.start:
                raise source.error(
                    "subscriptions must be in order of start date", (*spath, "start")
                )
            if previous.end is not None and previous.end > sub.start:
                raise source.error(
                    "overlaps the previous subscription"
                    + ("" if sub.id else " (an add-on running alongside it needs its own id:)"),
                    (*spath, "start"),
                )
        last[sub.id] = sub
    _check_shared_meters(customer, plans, source, path)
    for meter in customer.caps:
        if meter not in meters:
            raise source.error(f"unknown meter {meter!r}", (*path, "caps", meter))
    for i, threshold in enumerate(customer.alert_thresholds):
        if threshold <= 0:
            raise source.error(
                "thresholds are fractions above 0 (0.8 = 80 %)", (*path, "alert_thresholds", i)
            )
    _check_caps(customer, source, path)
    _check_threshold(
        customer.invoice_threshold, customer.currency, source, (*path, "invoice_threshold")
    )
    for i, grant in enumerate(customer.credits):
        if grant.amount <= 0:
            raise source.error("credit amount must be positive", (*path, "credits", i, "amount"))
        _check_money(grant.amount, customer.currency, source, (*path, "credits", i, "amount"))
        if grant.expires is not None and grant.expires <= grant.granted:
            raise source.error("expires must be after granted", (*path, "credits", i, "expires"))
    _check_discounts(customer, plans, source, path)
    if customer.wallet is not None:
        _check_wallet(customer.wallet, customer.currency, source, (*path, "wallet"))


def _check_discounts(
    customer: Customer, plans: Mapping[str, Plan], source: _Source, path: tuple[Any, ...]
) -> None:
    """A percent in (0, 100] or a positive amount in the currency's minor units (one of the two);
    charges the customer's plans bill; ids unique."""
    charged: set[str] = set(DISCOUNT_PARTS)
    for sub in customer.subscriptions:
        plan = plans[sub.plan]
        charged.update(c.meter for c in plan.charges)
        charged.update(c.meter for version in plan.versions for c in version.charges)
    seen: set[str] = set()
    for i, discount in enumerate(customer.discounts):
        dpath = (*path, "discounts", i)
        if not _ID.match(discount.id):
            raise source.error("ids are 1..255 letters, digits, '_', '.' or '-'", (*dpath, "id"))
        if discount.id in seen:
            raise source.error(f"discount {discount.id!r} is given twice", (*dpath, "id"))
        seen.add(discount.id)
        if (discount.percent is None) == (discount.amount is None):
            raise source.error("give either percent or amount", dpath)
        if discount.percent is not None and not 0 < discount.percent <= 100:
            raise source.error("a percent is above 0 and at most 100", (*dpath, "percent"))
        if discount.amount is not None:
            if discount.amount <= 0:
                raise source.error("a discount amount is above 0", (*dpath, "amount"))
            _check_money(discount.amount, customer.currency, source, (*dpath, "amount"))
        for j, name in enumerate(discount.charges):
            if name not in charged:
                known = ", ".join(sorted(charged))
                raise source.error(
                    f"{name!r} is no charge of the customer's plans (known: {known})",
                    (*dpath, "charges", j),
                )


def _check_shared_meters(
    customer: Customer, plans: Mapping[str, Plan], source: _Source, path: tuple[Any, ...]
) -> None:
    """Two subscriptions running at once (different ``id``) never price the same meter: each
    rates all of the customer's events of its meters, so the usage would be billed twice.

    A subscription's days run from its start to its end, the next one of its ``id``'s start,
    or (``effective: next_cycle``, which moves an end to a cycle's end) a cycle later.
    """
    series = customer.series()
    if len(series) < 2:
        return  # one subscription at a time
    spans: list[tuple[int, Subscription, date, date | None, frozenset[str]]] = []
    for subs in series.values():
        for n, (index, sub) in enumerate(subs):
            end = sub.end
            if n + 1 < len(subs):
                following = subs[n + 1][1].start
                end = following if end is None else min(end, following)
            plan = plans[sub.plan]
            if end is not None and customer.subscription_changes.effective == "next_cycle":
                end = add_months(end, CYCLE_MONTHS[plan.cycle])
            spans.append((index, sub, sub.start, end, plan.priced_meters))
    for index, sub, start, end, meters in sorted(spans, key=lambda s: s[0]):
        for other, theirs, o_start, o_end, o_meters in spans:
            if other >= index or theirs.id == sub.id:
                continue
            if (o_end is not None and o_end <= start) or (end is not None and end <= o_start):
                continue
            shared = sorted(meters & o_meters)
            if shared:
                which = f"subscription {theirs.id!r}" if theirs.id else "the main subscription"
                raise source.error(
                    f"plan {sub.plan!r} prices meter {shared[0]!r}, which {which} (plan "
                    f"{theirs.plan!r}) prices at the same time: its usage would be billed twice",
                    (*path, "subscriptions", index, "plan"),
                )


def _check_wallet(wallet: Wallet, currency: str, source: _Source, path: tuple[Any, ...]) -> None:
    """Top-up amounts are positive amounts of the currency; ``below`` and ``top_up`` go
    together; a recurring top-up ends after it starts."""
    if (wallet.below is None) != (wallet.top_up is None):
        missing = "top_up" if wallet.top_up is None else "below"
        raise source.error(
            f"an automatic top-up needs both below and top_up ({missing} is missing)", path
        )
    if wallet.below is not None:
        if wallet.below < 0:
            raise source.error("below must be 0 or more", (*path, "below"))
        _check_money(wallet.below, currency, source, (*path, "below"))
    amounts = [("top_up", wallet.top_up)]
    if wallet.recurring is not None:
        amounts.append(("recurring", wallet.recurring.amount))
        end = wallet.recurring.end
        if end is not None and end <= wallet.recurring.start:
            raise source.error("end must be after start", (*path, "recurring", "end"))
    for name, amount in amounts:
        if amount is None:
            continue
        where = (*path, name) if name == "top_up" else (*path, name, "amount")
        if amount <= 0:
            raise source.error("a top-up amount must be positive", where)
        _check_money(amount, currency, source, where)
    if wallet.expires_after_days is not None and wallet.expires_after_days <= 0:
        raise source.error("expires_after_days must be 1 or more", (*path, "expires_after_days"))


def _check_caps(customer: Customer, source: _Source, path: tuple[Any, ...]) -> None:
    """Caps are positive; a spend cap is an amount of the customer's currency; webhooks are
    http(s)."""
    from ledger.money import minor_units

    for meter, quantity in customer.caps.items():
        if quantity <= 0:
            raise source.error("a usage cap is a quantity above 0", (*path, "caps", meter))
    cap = customer.spend_cap
    if cap is not None:
        places = minor_units(customer.currency)
        if cap <= 0:
            raise source.error(
                f"a spend cap is an amount of {customer.currency} above 0", (*path, "spend_cap")
            )
        if cap != cap.quantize(Decimal(1).scaleb(-places)):
            raise source.error(
                f"{cap} has more decimal places than {customer.currency} ({places})",
                (*path, "spend_cap"),
            )
    if customer.webhook is not None and not is_http_url(customer.webhook):
        raise source.error("expected an http:// or https:// URL", (*path, "webhook"))


def _components(
    meters: Mapping[str, Meter],
    meters_src: _Source,
    plans: Mapping[str, Plan],
    plans_src: _Source,
    customers: Mapping[str, Customer],
    customers_src: _Source,
) -> dict[tuple[str, str], str]:
    result: dict[tuple[str, str], str] = {}
    groups: list[tuple[str, Mapping[str, Any], _Source]] = [
        ("meter", meters, meters_src),
        ("plan", plans, plans_src),
        ("customer", customers, customers_src),
    ]
    for kind, records, source in groups:
        taken: dict[str, str] = {}
        for ident, record in records.items():
            path = (f"{kind}s", ident)
            explicit = getattr(record, "account", None)
            if explicit is not None and not is_valid_component(explicit):
                raise source.error(
                    f"{explicit!r} is not a valid account component "
                    "(start with a capital letter or digit; letters, digits, '-')",
                    (*path, "account"),
                )
            try:
                name = explicit or component(ident)
            except ValueError as exc:
                raise source.error(str(exc), path) from None
            if name in taken:
                raise source.error(
                    f"account component {name!r} is also used by {kind} {taken[name]!r}", path
                )
            taken[name] = ident
            result[(kind, ident)] = name
    return result


def rules_hash(rules_dir: Path, change_policy: ChangePolicy | None = None) -> str:
    """sha256 over the rules files' names and bytes (first 16 hex digits), and the workspace's
    default subscription-change policy when it is not the built-in one."""
    digest = hashlib.sha256()
    for name in FILES:
        path = rules_dir / name
        if path.exists():
            data = path.read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
    if change_policy is not None and change_policy != ChangePolicy():
        policy = f"{change_policy.proration}\0{change_policy.effective}"
        digest.update(f"meterbook.toml:subscription_changes\0{policy}".encode())
    return digest.hexdigest()[:16]


def is_http_url(url: str) -> bool:
    """True for an absolute ``http://`` or ``https://`` URL with a host.

    >>> is_http_url("https://hooks.example.com/x"), is_http_url("ftp://x"), is_http_url("http:/x")
    (True, False, False)
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() for c in url)
    )
