"""Reconciliation: checks that compare two independent records of the same thing.

A reconciler is a plugin (hook ``meterbook_reconcilers``) with a ``name`` and a
``check(context)`` that yields :class:`Finding` records. A worked example, the
dual-track check of batch events against live meter totals::

    Finding(id="dual-track:acme:api_calls:2026-10", severity="error",
            check="dual-track", customer="acme", meter="api_calls", period="2026-10",
            expected=Decimal("25000"), actual=Decimal("24988"),
            explanation="batch events count 24,988 calls; the live meter reported 25,000")

An ``error`` finding blocks close and invoicing of its period until it is fixed
or explicitly accepted with a reason (recorded in the books); ``warning`` and
``info`` findings are reported only. Findings are values: a reconciler never
raises to report a problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One discrepancy (or note) a reconciler found.

    ``id`` is stable across runs for the same discrepancy, so that an acceptance
    recorded in the books keeps matching it: build it with :func:`finding_id`.
    ``expected`` and ``actual`` are the two figures compared (a Decimal amount or
    quantity, or a short text when the check is not numeric).
    """

    id: str
    severity: Severity
    check: str
    customer: str | None
    meter: str | None
    period: str
    expected: Decimal | str | None
    actual: Decimal | str | None
    explanation: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"finding {self.id!r}: severity must be one of {', '.join(SEVERITIES)}, "
                f"got {self.severity!r}"
            )

    @property
    def blocks_close(self) -> bool:
        """Error findings block close and invoicing until fixed or accepted."""
        return self.severity == "error"


def finding_id(check: str, period: str, *parts: str | None) -> str:
    """A stable finding id from the check, period and what it is about.

    >>> finding_id("dual-track", "2026-10", "acme", "api_calls")
    'dual-track:acme:api_calls:2026-10'
    >>> finding_id("unapplied-cash", "2026-10", None, "PAY-17")
    'unapplied-cash:PAY-17:2026-10'
    """
    return ":".join([check, *(p for p in parts if p), period])


@runtime_checkable
class Reconciler(Protocol):
    """What a reconciliation plugin provides.

    ``context`` is what the check may read: the workspace, its rules, the event
    store, the books and the period under review. Its exact type is still being
    settled, so it is typed loosely here; read only the attributes you need
    (e.g. ``context.rules``, ``context.period``) and yield nothing when something
    you depend on is absent.
    """

    #: A short, stable, kebab-case name (``dual-track``); used as ``Finding.check``.
    name: str

    def check(self, context: Any) -> Iterable[Finding]:
        """Yield findings for the period in ``context``; yield nothing when all is well."""
        ...


@dataclass(frozen=True)
class CheckResult:
    """One line of ``meterbook check``: a named check, ok or not, and what was found."""

    name: str
    ok: bool
    details: tuple[str, ...] = ()
