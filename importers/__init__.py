"""First-party beangulp importers (installed as ``ledger.importers``)."""
