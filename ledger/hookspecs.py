"""The plugin author's manual: every hook meterbook calls (pluggy project ``meterbook``).

(Skeleton: markers and the core hooks; docstrings are being expanded.)
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "meterbook"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def meterbook_pricing_models() -> list[Any]:
    """Return pricing models (objects following ``ledger.pricing.PricingModel``)."""
    raise NotImplementedError


@hookspec
def meterbook_importers() -> list[Any]:
    """Return importers (``beangulp.Importer`` subclasses instances) for ``meterbook ingest``."""
    raise NotImplementedError


@hookspec
def meterbook_reconcilers() -> list[Any]:
    """Return reconciliation checks."""
    raise NotImplementedError
