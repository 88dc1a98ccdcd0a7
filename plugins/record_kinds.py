"""The first-party kinds of record beside usage events: payments and live meter totals.

An importer only reads a file; the kind it declares says where its records are stored.
This plugin registers the two first-party kinds through ``meterbook_importer_kinds``,
the door a third party's kind uses too, so ``meterbook ingest`` routes::

    bank.csv    importer payments-csv  kind payments     ledger.payments.store_file
    meter.csv   importer live-totals   kind live_totals  ledger.live_totals.store_file

(usage events are meterbook's own kind, stored by :mod:`ledger.ingest`). Each
``store_file`` judges every row, stores it idempotently in the kind's own table and
returns the file's :class:`ledger.ingest.ImportReport`.

    >>> sorted(kind.name for kind in meterbook_importer_kinds())
    ['live_totals', 'payments']
"""

from __future__ import annotations

from ledger import live_totals, payments
from ledger.hookspecs import ImporterKind, hookimpl
from ledger.importers.live_totals import LiveTotalsCsv
from ledger.importers.payments import PaymentsCsv


@hookimpl
def meterbook_importer_kinds() -> list[ImporterKind]:
    """Payments go to the ``payments`` table (matched to invoices when the books are posted),
    live totals to ``live_totals`` (compared with the batch events by ``dual-track``)."""
    return [
        ImporterKind(PaymentsCsv.kind, payments.store_file),
        ImporterKind(LiveTotalsCsv.kind, live_totals.store_file),
    ]
