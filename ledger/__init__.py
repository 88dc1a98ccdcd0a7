"""meterbook: an accounting-first, double-entry ledger engine for usage-based billing.

The pipeline is the architecture, one module per stage::

    store  →  metering  →  rating  →  posting  →  books  →  close

See ``../shared/DESIGN.md`` for the contract between the parts.
"""

__version__ = "0.1.0"
