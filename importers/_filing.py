"""What beangulp's own CLI needs of a meterbook importer besides ``identify``: where and under
which name ``archive`` files a document, and the ``open`` that makes the filing account valid.

With ``beangulp.Ingest(importers)`` a downloads folder is sorted as for any other importer::

    2026-10-events.csv   -> documents/Income/Usage/2026-10-31.events-csv.2026-10-events.csv
    bank.csv (payments)  -> documents/Assets/Bank/Operating/2026-10-26.payments-csv.bank.csv

* ``date()`` is the latest date the file's readable rows carry (an event's ``time`` in UTC, a
  payment's or a live total's ``date``); None when no row has one, and beangulp then uses
  the file's modification time.
* ``filename()`` is ``<importer name>.<the file's name>``, any ``YYYY-MM-DD.`` prefix an
  earlier archive gave it removed (so archiving an archived file names it the same).
* ``account()`` is the account the importer was built with, else its default: usage events and
  live totals are evidence of usage revenue, filed under ``Income:Usage`` (the parent of
  meterbook's ``Income:Usage:<meter>`` accounts, which meterbook itself never opens); payments
  under ``Assets:Bank:Operating``, the cash account ``meterbook post`` opens when it posts the
  first payment. A Beancount ``document`` needs its account open on its date, so ``extract``
  emits an ``open`` for the filing account, dated on the file's first date, when the existing
  ledger (``-e``) does not open it; a second file of the same run gets it commented out as a
  duplicate. Rows themselves never become entries here: ``meterbook ingest`` stores them and
  the engine posts them per cycle.

This module provides no hook: the registry skips modules whose name starts with ``_``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date
from typing import Any, ClassVar

from beancount.core import data
from beangulp import Importer
from beangulp.extract import DUPLICATE

_DATED = re.compile(r"^(?:\d{4}-\d{2}-\d{2}\.)+")


class Filing(Importer):
    """``account``, ``date``, ``filename``, ``extract`` and ``deduplicate`` for beangulp.

    Subclasses give ``ledger_account`` (the default filing account) and :meth:`dates`.
    """

    ledger_account: ClassVar[str]

    def __init__(self, account: str | None = None) -> None:
        self._account = account or self.ledger_account

    def account(self, filepath: str) -> str:
        return self._account

    def dates(self, filepath: str) -> Iterator[date]:
        """The dates of the file's readable rows (none for an unreadable file)."""
        raise NotImplementedError

    def date(self, filepath: str) -> date | None:
        """The latest date in the file, or None."""
        return max(self.dates(filepath), default=None)

    def filename(self, filepath: str) -> str:
        """``<importer name>.<file name>`` without an archive's date prefix.

        >>> from ledger.importers.payments import PaymentsCsv
        >>> PaymentsCsv().filename("/downloads/2026-10-26.payments-csv.bank.csv")
        'payments-csv.bank.csv'
        >>> PaymentsCsv().filename("/downloads/bank.csv")
        'payments-csv.bank.csv'
        """
        base = _DATED.sub("", os.path.basename(filepath))
        prefix = f"{self.name}."
        return base if base.startswith(prefix) else prefix + base

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        """An ``open`` of the filing account when ``existing`` does not open it; rows become
        no entries (``meterbook ingest`` stores them)."""
        account = self.account(filepath)
        if any(isinstance(e, data.Open) and e.account == account for e in existing):
            return []
        first = min(self.dates(filepath), default=None)
        if first is None:
            return []
        return [data.Open(data.new_metadata(filepath, 0), first, account, [], None)]

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """An ``open`` of an account ``existing`` already opens (an earlier file of the same
        run) is marked a duplicate: beangulp prints it commented out."""
        opened: dict[str, Any] = {e.account: e for e in existing if isinstance(e, data.Open)}
        for entry in entries:
            if isinstance(entry, data.Open) and entry.account in opened:
                entry.meta[DUPLICATE] = opened[entry.account]
