"""Precise error types. Every error a user can cause is one line naming where it is.

The CLI maps :class:`BadInput` (and subclasses) to exit code 2 and
:class:`ProblemsFound` to exit code 1; anything else is a bug.
"""

from __future__ import annotations


class MeterbookError(Exception):
    """Base class of every error meterbook raises on purpose."""

    exit_code = 2


class BadInput(MeterbookError):
    """Bad usage or bad input (a file, a flag, a rules key): exit code 2."""


class WorkspaceError(BadInput):
    """No workspace found, or ``meterbook.toml`` is invalid."""


class RulesError(BadInput):
    """The rules YAML is invalid. The message names file, key path and line."""

    def __init__(self, message: str, *, file: str = "", key: str = "", line: int | None = None):
        self.file = file
        self.key = key
        self.line = line
        where = file
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        parts = [p for p in (where, key) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class StoreError(BadInput):
    """The event store cannot be opened or is of an unknown schema version."""


class SealedMonthError(BadInput):
    """A write dated inside the sealed months (a post, an invoice run, a credit note, a rerate,
    a cash application): the engine refuses it before anything is written. Sealed books are
    the record; what arrives late for them is posted in the first open month."""


class AfterTodayError(BadInput):
    """A write dated after today in the workspace's time zone: an invoice number, a credit note
    or posted books cannot be taken back once tomorrow turns out different."""


class PluginError(MeterbookError):
    """A plugin raised or returned something that is not what its hook promises."""


class ProblemsFound(MeterbookError):
    """The command ran and found problems (findings, failed checks): exit code 1."""

    exit_code = 1
