"""First-party pluggy plugins: pricing models and reconciliation checks, one module each
(installed as ``ledger.plugins``)."""
