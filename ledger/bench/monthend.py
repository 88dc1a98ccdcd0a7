"""Month-end cost against history: ``meterbook invoice`` then ``meterbook close``, month by month.

    $ python -m ledger.bench monthend --customers 200 --months 12
    workspace: 200 customers, 12 months (2025-01 to 2025-12), 28,800 events stored in 2.7 s
    month    invoice CPU  close CPU  total CPU     wall     ratings     windows  book loads  …
    2025-01       0.58 s     0.49 s     1.07 s    5.6 s         1+2     250+250         1+3  …
    …
    2025-12       2.88 s     4.60 s     7.48 s   30.4 s         1+1   1506+1506         1+3  …
    month 12 / month 1: 7.00x CPU (invoice + close)

The workspace is :mod:`ledger.bench.post`'s (the demo's rules, ``--customers`` customers
on its plans, every month's usage stored up front). Each month runs what the commands run:
:func:`ledger.closing.invoice_gated` through the month's last day (drafts, post, the
reconcilers of every month the drafts bill, issue, re-post), then
:func:`ledger.closing.close_month`, each on a freshly opened session, as two commands are.

The counts come from wrappers around the engine's own functions, installed by this script:
ratings (each rating of the store, :func:`ledger.rating.rate`'s metering), windows (the
accrual windows those ratings measured, per meter: what grows with the cycles rated), book loads
(Beancount's loader on ``main.beancount``), fact loads (the issued invoices read from the
store) and evidence digests computed, per command (``invoice+close``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledger.bench.post import START, add_months, build


def _count(
    counts: Counter[str], module: Any, name: str, key: str, size: Callable[..., int] | None = None
) -> None:
    original: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1 if size is None else size(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(module, name, counted)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench monthend", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--events", type=int, default=12, help="events per customer per month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="work directory, kept (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ["BEANCOUNT_DISABLE_LOAD_CACHE"] = "1"
    import ledger.books
    import ledger.facts
    import ledger.metering
    import ledger.rating
    from ledger.closing import close_month, invoice_gated
    from ledger.session import Session
    from ledger.workspace import Workspace

    counts: Counter[str] = Counter()
    _count(counts, ledger.rating, "_measure_all", "ratings")
    _count(counts, ledger.books.loader, "load_file", "book loads")
    _count(counts, ledger.facts, "load_invoices", "fact loads")
    _count(counts, ledger.metering, "evidence_digest", "digests")
    _count(counts, ledger.rating, "measure", "windows", lambda *args, **_kw: len(args[2]))
    keys = ("ratings", "windows", "book loads", "fact loads", "digests")

    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as tmp:
        root = (args.dir or Path(tmp)) / "workspace"
        if root.exists():
            shutil.rmtree(root)
        begin = time.perf_counter()
        stored = build(root, args.customers, args.months, args.events, args.seed)
        last = add_months(START, args.months) - timedelta(days=1)
        print(
            f"workspace: {args.customers:,} customers, {args.months} months "
            f"({START:%Y-%m} to {last:%Y-%m}), {stored:,} events stored in "
            f"{time.perf_counter() - begin:.1f} s"
        )
        print(
            f"{'month':8} {'invoice CPU':>11} {'close CPU':>10} {'total CPU':>10} {'wall':>8}  "
            + "  ".join(f"{k:>10}" for k in keys)
        )
        totals: list[float] = []
        for m in range(args.months):
            end = add_months(START, m + 1) - timedelta(days=1)
            month = f"{end:%Y-%m}"
            cpu: list[float] = []
            seen: list[Counter[str]] = []
            wall = time.perf_counter()
            for command in ("invoice", "close"):
                session = Session.open(Workspace.load(root))
                counts.clear()
                began = time.process_time()
                if command == "invoice":
                    invoice_gated(session, end)
                else:
                    closed = close_month(session, month)
                    if closed.refused:
                        print(f"{month}: the close refused: {closed.refused}")
                        return 1
                cpu.append(time.process_time() - began)
                seen.append(Counter(counts))
                session.engine.dispose()
            totals.append(sum(cpu))
            print(
                f"{month:8} {cpu[0]:>9.2f} s {cpu[1]:>8.2f} s {sum(cpu):>8.2f} s "
                f"{time.perf_counter() - wall:>6.1f} s  "
                + "  ".join(f"{f'{seen[0][k]}+{seen[1][k]}':>10}" for k in keys)
            )
        if len(totals) > 1:
            print(
                f"month {len(totals)} / month 1: {totals[-1] / totals[0]:.2f}x CPU "
                "(invoice + close)"
            )
    return 0
