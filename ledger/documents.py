"""Invoice documents: HTML for people and JSON for machines, under ``books/documents/``.

``books/documents/INV-2026-000007.html`` and ``.json`` carry the same lines:
quantities, tier breakdown with unit prices, credits applied and totals. The
JSON is the store's canonical invoice record; the HTML is self-contained (no
external assets) so it can be mailed or archived as is. A ``document``
directive links the HTML to the customer's receivable account in Fava.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

from ledger.facts.invoices import SUPPLEMENTARY, Invoice, Tax
from ledger.rules import Rules

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:56rem;color:#1d2330}
h1{font-size:1.4rem;margin:0}table{border-collapse:collapse;width:100%;margin-top:1.2rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #dde2ea;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.tiers{color:#5b6475;font-size:.85rem}
tfoot td{font-weight:600;border-top:2px solid #1d2330}.meta{color:#5b6475}
"""


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,} {currency}"


def invoice_html(invoice: Invoice, rules: Rules) -> str:
    """A self-contained HTML invoice."""
    customer = rules.customers.get(invoice.customer)
    name = customer.name if customer and customer.name else invoice.customer
    heading = "Supplementary invoice" if invoice.kind == SUPPLEMENTARY else "Invoice"
    note = (
        " · bills what was posted after the last invoice of subscriptions that have ended"
        if invoice.kind == SUPPLEMENTARY
        else ""
    )
    rows = []
    for line in invoice.lines:
        qty = f"{line.quantity:,} {escape(line.unit)}" if line.quantity is not None else ""
        tiers = "".join(
            f"<div class='tiers'>{escape(t.description)}: {t.quantity:,}"
            f"{' × ' + str(t.unit_price) if t.unit_price is not None else ''} = {t.amount}</div>"
            for t in line.tiers
        )
        exact = sum((t.amount for t in line.tiers), Decimal(0))
        if (
            line.kind == "usage" and line.tiers and exact != line.amount
        ):  # rounding happens once, on the cumulative amount
            tiers += (
                f"<div class='tiers'>rounded half-even to the currency's minor unit: "
                f"{line.amount - exact:+}</div>"
            )
        rows.append(
            f"<tr><td>{escape(line.description)}{tiers}</td><td>{escape(line.cycle)}</td>"
            f"<td class='num'>{qty}</td><td class='num'>{_money(line.amount, invoice.currency)}</td></tr>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(invoice.number)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{heading} {escape(invoice.number)}</h1>"
        f"<p class='meta'>{escape(name)} ({escape(invoice.customer)}) · dated {invoice.date.isoformat()}"
        f" · due {invoice.due_date.isoformat()}"
        f" · rules {escape(invoice.rules)}{note}</p>"
        + tax_ids_html(invoice.tax)
        + "<table><thead><tr><th>Line</th><th>Cycle</th><th class='num'>Quantity</th>"
        "<th class='num'>Amount</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody><tfoot>"
        + tax_rows_html(invoice.tax, invoice.subtotal, invoice.currency, 3)
        + f"<tr><td colspan='3'>Total due</td><td class='num'>"
        f"{_money(invoice.total, invoice.currency)}</td></tr></tfoot></table>"
        + tax_mention_html(invoice.tax)
        + "</body></html>\n"
    )


def tax_ids_html(tax: Tax | None) -> str:
    """The seller's and the customer's tax ids (nothing on an untaxed document)."""
    if tax is None:
        return ""
    labelled = (("seller tax id", tax.seller_tax_id), ("customer tax id", tax.customer_tax_id))
    ids = [f"{label} {escape(value)}" for label, value in labelled if value]
    return f"<p class='meta tax-ids'>{' · '.join(ids)}</p>" if ids else ""


def tax_rows_html(tax: Tax | None, subtotal: Decimal, currency: str, span: int) -> str:
    """Footer rows: the subtotal, then per tax line its label, rate, base and tax."""
    if tax is None:
        return ""
    included = " (prices include tax)" if tax.inclusive else ""
    rows = [
        f"<tr><td colspan='{span}'>Subtotal{included}</td>"
        f"<td class='num'>{_money(subtotal, currency)}</td></tr>"
    ]
    for line in tax.lines:
        rows.append(
            f"<tr class='tax'><td colspan='{span}'>{escape(line.label)} on "
            f"{_money(line.base, currency)}</td>"
            f"<td class='num'>{_money(line.amount, currency)}</td></tr>"
        )
    return "".join(rows)


def tax_mention_html(tax: Tax | None) -> str:
    """The exemption's reason or the reverse-charge mention, where it applies."""
    if tax is None or not tax.exemption:
        return ""
    return f"<p class='tax-mention'>{escape(tax.exemption)}</p>"


def invoice_documents(invoice: Invoice, rules: Rules) -> dict[str, str]:
    """``{relative path under books/: content}`` for one invoice."""
    return {
        f"documents/{invoice.number}.html": invoice_html(invoice, rules),
        f"documents/{invoice.number}.json": invoice.to_json() + "\n",
    }
