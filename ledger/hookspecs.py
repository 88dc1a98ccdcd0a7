"""The plugin author's manual: every hook meterbook calls (pluggy project ``meterbook``).

A plugin is a Python module (or any object) with functions decorated with
:data:`hookimpl` whose names are the hooks below. A complete plugin adding a
pricing model, saved as ``plugins_dir/blocks.py`` in a workspace whose
``meterbook.toml`` says ``plugins_dir = "plugins"``::

    import math
    from dataclasses import dataclass
    from decimal import Decimal

    from ledger.hookspecs import hookimpl
    from ledger.pricing import Price, PriceLine, Usage, check_keys, decimal_param


    @dataclass(frozen=True)
    class BlockTerms:
        block_price: Decimal


    class BlockPricing:
        name = "per_block"                        # plans say `model: per_block`

        def parse(self, params):                  # validate; PricingError names the key
            check_keys(params, required=("block_price",))
            return BlockTerms(decimal_param(params, "block_price"))

        def price_is_final(self, terms):          # True: accrue to unbilled
            return True

        def bands(self, terms):                   # no per-event thresholds
            return ()

        def price(self, terms, usage: Usage) -> Price:   # unrounded
            blocks = Decimal(math.ceil(usage.quantity / 100))   # Decimal // truncates: use ceil
            amount = blocks * terms.block_price
            line = PriceLine(f"{blocks} blocks of 100", blocks, terms.block_price, amount)
            return Price(amount, (line,))


    @hookimpl
    def meterbook_pricing_models():
        return [BlockPricing()]

Plugins are found in three places, all through the same door as the
first-party plugins (``ledger.plugins.*``, ``ledger.importers.*``):

- installed packages declaring the ``meterbook`` entry-point group::

      [project.entry-points.meterbook]
      blocks = "meterbook_blocks"

- modules (``*.py``) and packages in the workspace's ``plugins_dir``, imported
  as ``meterbook_local.<name>``;
- the first-party modules in ``plugins/``.

``meterbook plugins`` lists what was loaded. A hook function may take any
subset of the arguments its specification names, and nothing else.

Collection hooks (pricing models, importers, importer kinds, reconcilers) are
called once per plugin; each must return a ``list`` (possibly empty, never None).
A plugin that raises, returns something other than a list, or returns objects
that do not have what the hook promises stops meterbook with a
:class:`ledger.errors.PluginError` naming the plugin, as do two plugins
providing the same name.

What each hook gets is typed and described below, and is all a plugin should
read: a reconciler gets one :class:`ledger.reconcile.ReconcileContext` (never the
engine's session), a notification hook the alert or invoice, a tax plugin the
draft. The first-party plugins use exactly these doors: the pricing models and
reconcilers of ``plugins/``, the importers of ``importers/`` and the kinds of
record they yield beside meterbook's own usage ``events`` (``payments`` and
``live_totals``, ``plugins/record_kinds.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import pluggy

#: ``date`` as a type where a property named ``date`` shadows it
_Date = date

if TYPE_CHECKING:
    from beangulp import Importer

    from ledger.pricing import PricingModel
    from ledger.reconcile import InvoiceView, Reconciler
    from ledger.rules import Customer
    from ledger.workspace import AlertsConfig

PROJECT = "meterbook"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- what the hooks exchange -------------------------------------------------------------
# Typed here, below every stage that calls a hook: the engine hands in its own records
# (ledger.alerts.Alert, ledger.facts.invoices.Invoice, ledger.tax.TaxDraft), which have
# these attributes and more.


class PluginImporter(Protocol):
    """What the registry checks of each importer :func:`meterbook_importers` returns (a
    ``beangulp.Importer`` with a ``name``), enough to pick one for a file; ``meterbook
    ingest`` reads more of the one it picks (``kind``, ``check``, ``rows``:
    :class:`ledger.ingest.Importer`)."""

    @property
    def name(self) -> str: ...

    def identify(self, filepath: str) -> bool: ...


@dataclass(frozen=True)
class ImporterKind:
    """A kind of record importers yield (their ``kind``) and how a file of them is stored
    (:func:`meterbook_importer_kinds`)."""

    #: what the importers of this kind say in ``kind``; unique across all plugins
    name: str
    #: ``store(engine, rules, path, importer, *, now, chunk_size, progress, name)``: import
    #: one file in one transaction and return its :class:`ledger.ingest.ImportReport`
    store: Callable[..., object]


class AlertView(Protocol):
    """A cap threshold crossed, as :func:`meterbook_alert` gets it."""

    @property
    def kind(self) -> str:
        """``usage_cap`` or ``spend_cap``."""
        ...

    @property
    def customer(self) -> str: ...
    @property
    def meter(self) -> str | None:
        """None for a spend cap."""
        ...

    @property
    def cycle(self) -> str:
        """The cycle key ``start/end``."""
        ...

    @property
    def threshold(self) -> Decimal:
        """``0.8`` = 80 % of the cap."""
        ...

    @property
    def cap(self) -> Decimal: ...
    @property
    def value(self) -> Decimal:
        """The cumulative figure on ``date``, the first day it reached the threshold."""
        ...

    @property
    def unit(self) -> str: ...
    @property
    def date(self) -> _Date: ...
    @property
    def id(self) -> str:
        """Stable across runs: ``usage-cap:acme:api_calls:2026-09-01:80``."""
        ...

    @property
    def message(self) -> str: ...
    @property
    def delivery(self) -> AlertsConfig:
        """The workspace's ``[alerts]`` settings, the customer's own ``webhook`` as URL."""
        ...

    def payload(self) -> Mapping[str, str | None]:
        """The alert as JSON-ready text: the first-party webhook's body."""
        ...


class TaxSettingsView(Protocol):
    """``[tax]`` of ``meterbook.toml``."""

    @property
    def seller_tax_id(self) -> str: ...
    @property
    def inclusive(self) -> bool: ...
    @property
    def rounding(self) -> str:
        """``line`` or ``invoice``."""
        ...


class TaxDraftView(Protocol):
    """An invoice about to be issued and what decides its tax (:func:`meterbook_tax`)."""

    @property
    def invoice(self) -> InvoiceView: ...
    @property
    def customer(self) -> Customer: ...
    @property
    def plans(self) -> Sequence[str]: ...
    @property
    def settings(self) -> TaxSettingsView: ...
    @property
    def rules(self) -> object:
        """``rules/taxes.yaml`` as loaded, for :func:`ledger.tax.rules_tax`."""
        ...

    @property
    def adjusts(self) -> Sequence[object | None]:
        """Per line, the :class:`ledger.facts.invoices.Tax` a correction is taxed as."""
        ...

    @property
    def accrual(self) -> bool:
        """True when a cycle is accrued (tax-inclusive prices), not invoiced."""
        ...


@hookspec
def meterbook_pricing_models() -> list[PricingModel]:
    """Return the pricing models this plugin provides.

    Arguments: none.

    Returns: a list of objects following :class:`ledger.pricing.PricingModel`, generic in
    the model's own terms type: annotate the hook ``-> list[PricingModel[MyTerms]]`` and
    mypy checks that ``parse`` returns ``MyTerms`` and the other methods take them:

    - ``name`` (str): what plans write in ``model:``; unique across all plugins.
    - ``parse(params)``: validate the charge's keys other than ``meter`` and
      ``model`` and return an immutable terms object; raise
      :class:`ledger.pricing.PricingError` naming the bad key (meterbook adds
      file, plan, charge and line). Refuse floats: use
      :func:`ledger.pricing.decimal_param` or :func:`ledger.money.parse_decimal`.
    - ``price_is_final(terms)``: True when earlier units' price can never change
      (accrue to unbilled); False when it can, like volume tiers (accrue to the
      contract asset, cleared by the invoice).
    - ``bands(terms)``: per-event value thresholds the model needs counted,
      usually ``()``; when not empty, ``usage.bands`` holds the count and total
      of events per band ``(previous threshold, threshold]``, the last open.
    - ``price(terms, usage)``: a :class:`ledger.pricing.Price` for the cycle's
      *cumulative* usage, unrounded, pure and deterministic, with breakdown
      lines that add up to the amount. The engine rounds and posts differences.
    - ``ratable`` (optional attribute, default False): True for a price of
      access over the cycle rather than of units (the first-party ``flat``).
      ``price`` then gives the amount for a full cycle; the engine prorates it
      by days for a short cycle and recognizes it by day at each accrual point,
      exactly like the base fee (``flat`` 92.00 a quarter from Oct 1: 31.00,
      30.00, 31.00 at the month ends; 30.00 a month cut after 10 days: 10.00).

    Example::

        @hookimpl
        def meterbook_pricing_models():
            return [BlockPricing()]        # see the module docstring

    Helpers for authors: :func:`ledger.pricing.check_keys`,
    :func:`~ledger.pricing.decimal_param`, :func:`~ledger.pricing.parse_tiers`,
    :func:`~ledger.pricing.tier_label`.
    """
    raise NotImplementedError


@hookspec
def meterbook_importers() -> list[Importer]:
    """Return importers for ``meterbook ingest`` (usage files from a new source).

    Arguments: none.

    Returns: a list of ``beangulp.Importer`` *instances* (not classes), each with
    a unique ``name`` (``meterbook ingest --importer NAME`` selects it) and the
    methods ``ledger.ingest`` reads (``identify``, ``check``, ``rows``; see
    ``ledger.importers.events`` for the first-party ones). Importers never
    crash on a bad row: they yield it, and ingest records its reason.

    Example::

        from ledger.importers.events import CsvEvents

        class BillingExportCsv(CsvEvents):
            @property
            def name(self) -> str:
                return "billing-export-csv"

        @hookimpl
        def meterbook_importers():
            return [BillingExportCsv()]

    An importer whose records are not usage events (``kind`` other than
    ``"events"``) needs its kind registered too: :func:`meterbook_importer_kinds`.
    """
    raise NotImplementedError


@hookspec
def meterbook_importer_kinds() -> list[ImporterKind]:
    """Return the kinds of record this plugin's importers yield, each with how a file of
    them is stored.

    Arguments: none.

    Returns: a list of :class:`ImporterKind` records:

    - ``name`` (str): what the importers of this kind say in their ``kind`` attribute;
      unique across all plugins. ``events`` (usage events) is meterbook's own, stored by
      :mod:`ledger.ingest`; the first-party plugins register ``payments``
      and ``live_totals`` here (:mod:`ledger.plugins.record_kinds`) like any third party.
    - ``store(engine, rules, path, importer, *, now, chunk_size, progress, name)``:
      import one file in one database transaction and return its
      :class:`ledger.ingest.ImportReport` (``received = accepted + duplicates + conflicts +
      rejected``). :func:`ledger.ingest.ingest_records` does the bookkeeping (a batch row,
      rejects kept with their raw row, a re-run on deadlock) given a function that stores
      one record and says ``accepted``, ``duplicates`` or ``conflicts`` (or raises
      :class:`ledger.ingest.Rejected` with a reason).

    ``meterbook ingest`` sends each file to its importer's kind; an importer whose kind
    no plugin registers is refused before anything is written, and a ``store`` that
    returns anything but an ``ImportReport`` stops it with a :class:`ledger.errors.PluginError`.

    A payment processor's refunds, each stored by the plugin (in a table of its own)
    and counted like any row.

    Example::

        from ledger import ingest
        from ledger.hookspecs import ImporterKind

        def store_refunds(engine, rules, path, importer, *, now, chunk_size, progress, name):
            def store(conn, raw, batch_id):
                ...                                # insert the row; "accepted" or "duplicates"
                return "accepted"
            return ingest.ingest_records(engine, path, importer, store, name=name,
                                         progress=progress)

        @hookimpl
        def meterbook_importer_kinds():
            return [ImporterKind("processor_refunds", store_refunds)]
    """
    raise NotImplementedError


@hookspec
def meterbook_reconcilers() -> list[Reconciler]:
    """Return reconciliation checks run by ``meterbook reconcile`` and ``close``.

    Arguments: none.

    Returns: a list of objects following :class:`ledger.reconcile.Reconciler`:
    a unique ``name`` and ``check(context)`` yielding
    :class:`ledger.reconcile.Finding` records (severity ``error`` blocks close
    and invoicing until fixed or accepted with a reason; ``warning`` and
    ``info`` are reported). Report problems as findings, never by raising.

    ``context`` is a :class:`ledger.reconcile.ReconcileContext`, the one object a
    reconciler gets, for the period under review (its fields and properties are
    documented there):

    - ``period`` (``"2026-10"``), ``start`` and ``end`` (its first and last day);
    - ``workspace`` (folders, time zone ``workspace.tz``, ``meterbook.toml`` settings),
      ``rules`` (meters, plans, customers, ``rules.account(kind, ...)``) and ``engine``
      (the event store, to read with :mod:`ledger.metering` or :mod:`ledger.store`);
    - ``first_open`` (the first day not sealed; ``date.min`` when nothing is) and
      ``today`` (in the workspace's time zone);
    - ``rating`` (every cycle rated through ``end``), ``invoices`` (issued, dated
      through ``end``) and ``entries`` (the books as Beancount loads them), computed
      on first use and shared by the reconcilers of one run;
    - ``tie_out(day)``: every per-customer unbilled, contract-asset and receivable
      balance at the end of ``day``, store against books (:class:`ledger.reconcile.TiedBalance`).

    Example::

        from ledger.reconcile import Finding, finding_id

        class NoZeroUsage:
            name = "zero-usage"

            def check(self, context):
                # context: period ("2026-10"), start, end, rules, engine, workspace,
                # rating (every cycle rated through the month's end), invoices, entries
                for rated in context.rating.latest():
                    for charge in rated.charges:
                        if charge.meter == "api_calls" and charge.quantity == 0:
                            customer = rated.cycle.customer
                            yield Finding(
                                id=finding_id(self.name, context.period, customer),
                                severity="warning", check=self.name, customer=customer,
                                meter="api_calls", period=context.period,
                                expected=None, actual=charge.quantity,
                                explanation="no API calls this cycle: integration broken?")

        @hookimpl
        def meterbook_reconcilers():
            return [NoZeroUsage()]
    """
    raise NotImplementedError


@hookspec
def meterbook_alert(alert: AlertView) -> None:
    """Called for every alert raised (usage cap thresholds, spend caps, findings).

    Arguments: ``alert`` (:class:`AlertView`; a :class:`ledger.alerts.Alert`): ``kind``
    (``"usage_cap"`` or ``"spend_cap"``), ``customer``, ``meter`` (None for
    spend), ``cycle``, ``threshold`` (0.8 = 80 %), ``cap``, ``value`` (the
    cumulative figure on ``date``, the first day it reached the threshold),
    ``unit``, a stable ``id`` (``usage-cap:acme:api_calls:2026-09-01:80``), a
    one-line ``message``, ``payload()`` (the JSON-ready dict the first-party
    webhook posts) and ``delivery`` (the workspace's ``[alerts]`` settings, with
    the customer's own ``webhook`` URL when rules set one). Each alert is raised
    once: meterbook remembers it in the store.

    Returns: nothing (the return value is ignored; every plugin is called). A
    plugin that raises is reported and does not stop the others or the command;
    meterbook remembers the failure and calls that plugin alone with the same
    alert on the next run, until it returns, so a plugin sees each alert once it
    returns without raising (``meterbook alerts`` exits 1 while one is owed).

    Example::

        @hookimpl
        def meterbook_alert(alert):
            requests.post(SLACK_WEBHOOK, json={"text": alert.message}, timeout=5)
    """


@hookspec
def meterbook_invoice_issued(invoice: InvoiceView) -> None:
    """Called once for every invoice issued, after it is written to the books.

    Arguments: ``invoice`` (:class:`ledger.reconcile.InvoiceView`; a
    :class:`ledger.facts.invoices.Invoice`: ``number``,
    ``customer``, ``date``, ``currency``, ``lines``, ``total``).

    Returns: nothing (ignored; every plugin is called, best effort as for
    :func:`meterbook_alert`).

    Example::

        @hookimpl
        def meterbook_invoice_issued(invoice):
            send_mail(to=BILLING_CONTACTS[invoice.customer],
                      subject=f"Invoice {invoice.number}: {invoice.total} {invoice.currency}")
    """


@hookspec
def meterbook_tax(draft: TaxDraftView) -> object:
    """Return the tax of an invoice about to be issued, or None to leave it to another plugin.

    Arguments: ``draft`` (:class:`TaxDraftView`; a :class:`ledger.tax.TaxDraft`):

    - ``draft.invoice``: the invoice draft (:class:`ledger.reconcile.InvoiceView`):
      ``customer``, ``date``, ``currency``, ``lines`` (each with ``kind``,
      ``description``, ``amount``, ``cycle``, ``meter``, ``quantity``).
    - ``draft.customer``: the customer's rules record (``id``, ``name``, ...).
    - ``draft.plans``: per line, the plan of the cycle it bills (``""`` if none).
    - ``draft.settings``: ``[tax]`` of ``meterbook.toml``: ``seller_tax_id``,
      ``inclusive`` (prices include tax), ``rounding`` (``"line"``/``"invoice"``).
    - ``draft.rules``: ``rules/taxes.yaml`` as loaded (the first-party rules).
    - ``draft.adjusts``: per line, the tax an issued invoice charged on the supply the line
      corrects (a debit adjustment or late usage for an invoiced cycle), or None: tax a
      correction as that supply was.
    - ``draft.accrual``: True when no invoice is issued but a cycle is accrued with prices
      that include tax (``settings.inclusive``): its lines as it will be invoiced, dated its
      end. The answer's rates (per line, by ``line_tax``) are taken out of the accrued
      revenue; None accrues the prices as they are. Answer as for the invoice: where the
      invoice's tax differs, it books the difference to ``Income:Tax-Included``.

    Returns: a :class:`ledger.facts.invoices.Tax` (anything else is a
    :class:`ledger.errors.PluginError`), or None when this plugin does not tax
    the invoice. ``Tax.lines`` are :class:`ledger.facts.invoices.TaxLine` records
    (``jurisdiction``, ``rate``, taxable ``base``, ``amount`` rounded to the
    currency's minor unit, ``name``, ``treatment`` ``standard`` / ``exempt`` /
    ``reverse_charge``); ``Tax.exemption`` is the reason printed on the invoice
    when no (or not all) tax is charged; ``inclusive`` says whether the lines'
    amounts already hold the tax; ``seller_tax_id`` and ``customer_tax_id`` are
    printed on the documents; ``line_tax`` (optional, :func:`ledger.tax.standard_tax` gives it)
    says which tax is each invoice line's, so crediting one line gives back its own tax
    (without it, the invoice's average). At most one plugin may answer for an invoice (two
    answers stop meterbook with a :class:`ledger.errors.PluginError` naming
    both); with no answer the invoice carries no tax. The answer is stored with
    the invoice when it is issued: the books, the documents and ``meterbook
    report tax`` read it from there, never ask again. A plugin that raises, or
    returns anything but a ``Tax`` or None (a tax amount not at the minor unit,
    tax on an exempt line, a jurisdiction that cannot name an account), stops
    the invoice run with a :class:`ledger.errors.PluginError` and nothing is issued.

    :func:`ledger.tax.standard_tax` rounds as the workspace asks (half-even to the
    minor unit, per line or per invoice, prices exclusive or inclusive); the
    first-party plugin ``ledger.plugins.tax_rules`` answers from ``rules/taxes.yaml``.

    A tax service's plugin (a fixed table stands in for its HTTP API here).

    Example::

        from ledger.hookspecs import hookimpl
        from ledger.tax import Tax, TaxRate, standard_tax

        SALES_TAX = {"acme": [
            TaxRate(jurisdiction="US-WA", rate="0.065", name="state sales tax"),
            TaxRate(jurisdiction="US-WA-Seattle", rate="0.0385", name="city sales tax"),
        ]}

        @hookimpl
        def meterbook_tax(draft):
            rates = SALES_TAX.get(draft.invoice.customer)
            if rates is None:
                return None                    # not ours: another plugin (or no tax)
            bases = [(line.amount, rates) for line in draft.invoice.lines]
            tax = standard_tax(bases, draft.invoice.currency, rounding=draft.settings.rounding,
                               inclusive=draft.settings.inclusive)
            return Tax(lines=tax.lines, inclusive=tax.inclusive, line_tax=tax.line_tax,
                       seller_tax_id=draft.settings.seller_tax_id, customer_tax_id="WA-603-123-456")
    """
