"""Posting throughput: a year of books for 1,000 customers on the demo's rules.

    $ python -m ledger.bench post --customers 1000 --months 12       # 2 cores
    workspace: 1,000 customers, 12 months (2025-01 to 2025-12), 144,000 events stored in 12.3 s
    post     through 2025-12-31: 11,814 entries, 12 files in 16.4 s (CPU 16.1 s)
    invoice  through 2025-12-31: 7,920 invoices issued, books re-posted in 45.1 s (CPU 39.2 s)
             (this line before the invoice gate was measured too; the run now prints
             "… issued (0 held), reconciled N months, books re-posted in …")
    load     books/main.beancount: 29,499 entries (19,734 transactions), 0 errors in 4.6 s (CPU 4.6 s)
    peak RSS 314 MB

The workspace copies the repository's demo rules (``rules/meters.yaml``,
``plans.yaml``, ``accounts.yaml``: graduated, volume, package, percentage,
unit and flat charges, base fees in advance and in arrears, a commitment, a
quarterly plan, EUR and USD) and gives ``--customers`` customers the demo's
plans in turn, a third of them on anniversary cycles, some with prepaid
credits. Usage is modest (``--events`` per customer per month, spread over the
month) and put straight into the store: it is the books that are measured.

Stages, each timed on its own:

- ``post``: rate every cycle at every accrual point and write the books
  (:meth:`ledger.session.Session.post`), no invoice issued yet;
- ``invoice``: what ``meterbook invoice`` runs (:func:`ledger.closing.invoice_gated`):
  draft every invoice dated in the year, post, run every reconciler for each month the
  drafts bill (the invoice gate), issue what no error finding holds and re-post;
- ``load``: Beancount's loader with validation on ``books/main.beancount``
  (what ``bean-check`` and Fava do; the load cache is off).
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ledger.events import Event
from ledger.period import add_months
from ledger.store import batches, events

RULES = Path(__file__).resolve().parents[2] / "rules"
START = date(2025, 1, 1)
PATTERN = (
    "scale",
    "ai",
    "pro",
    "hybrid_eu",
    "ai",
    "scale",
    "pro",
    "ai_eu",
    "payments",
    "ai",
    "scale",
    "enterprise",
)
CURRENCY = {"ai_eu": "EUR", "hybrid_eu": "EUR"}
#: the event kinds each plan's customers produce: (type, property, low, high)
STREAMS = {
    "pro": (("api.request", "", 0, 0), ("storage.snapshot", "gb", 20, 400)),
    "scale": (("api.request", "", 0, 0),),
    "ai": (("llm.completion", "tokens", 1000, 60000),),
    "ai_eu": (("llm.completion", "tokens", 1000, 60000),),
    "hybrid_eu": (("api.request", "", 0, 0),),
    "payments": (("payment.processed", "amount", 5, 900),),
    "enterprise": (("api.request", "", 0, 0), ("llm.completion", "tokens", 1000, 60000)),
}


def customers_yaml(count: int, months: int, rng: random.Random) -> str:
    lines = ["customers:"]
    for i in range(count):
        plan = PATTERN[i % len(PATTERN)]
        anniversary = plan != "enterprise" and rng.random() < 0.35
        start = START.replace(day=rng.randint(2, 27)) if anniversary else START
        lines += [
            f"  cus-{i:05d}:",
            f"    currency: {CURRENCY.get(plan, 'USD')}",
            f"    subscriptions: [{{plan: {plan}, start: {start.isoformat()}}}]",
            f"    billing_anchor: {'start' if anniversary else 'calendar'}",
        ]
        if plan in ("ai", "ai_eu") and i % 8 == 1:
            expires = add_months(START, max(1, months // 2))
            lines.append(
                f'    credits: [{{amount: "200.00", granted: {START.isoformat()}, '
                f"expires: {expires.isoformat()}}}]"
            )
    return "\n".join(lines) + "\n"


def usage(count: int, months: int, per_month: int, rng: random.Random) -> list[Event]:
    """``per_month`` events per customer per month, on days spread over the month."""
    out: list[Event] = []
    for i in range(count):
        customer = f"cus-{i:05d}"
        streams = STREAMS[PATTERN[i % len(PATTERN)]]
        for m in range(months):
            first = add_months(START, m)
            days = (add_months(START, m + 1) - first).days
            for n in range(per_month):
                type_, prop, low, high = streams[n % len(streams)]
                when = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(
                    days=n * days // per_month, seconds=rng.randrange(86400)
                )
                props: dict[str, str] = (
                    {"user": f"u{rng.randrange(20):02d}"} if type_ == "api.request" else {}
                )
                if prop:
                    props[prop] = str(rng.randint(low, high))
                    if type_ == "llm.completion":
                        props["region"] = "eu" if CURRENCY.get(PATTERN[i % len(PATTERN)]) else "us"
                out.append(
                    Event.build(
                        source="bench",
                        id=f"{customer}-{m:02d}-{n:03d}",
                        customer=customer,
                        type=type_,
                        time=when,
                        properties=props,
                    )
                )
    return out


def build(root: Path, customers: int, months: int, per_month: int, seed: int) -> int:
    """The workspace at ``root`` with its store filled; the number of events stored."""
    from ledger.store import open_store

    if not (RULES / "plans.yaml").exists():
        raise SystemExit(f"the demo rules are not at {RULES} (run from a checkout of meterbook)")
    (root / "rules").mkdir(parents=True)
    for name in ("meters.yaml", "plans.yaml", "accounts.yaml"):
        shutil.copy(RULES / name, root / "rules" / name)
    rng = random.Random(seed)
    (root / "rules" / "customers.yaml").write_text(customers_yaml(customers, months, rng))
    (root / "meterbook.toml").write_text(
        'books = "books"\nrules = "rules"\nstore = "sqlite:///var/events.sqlite"\n'
        'timezone = "UTC"\noperating_currency = "USD"\nplugins_dir = ""\n'
    )
    engine = open_store(f"sqlite:///{root / 'var' / 'events.sqlite'}")
    rows = usage(customers, months, per_month, rng)
    with engine.begin() as conn:
        key = conn.execute(
            batches.insert().values(
                file="bench",
                sha256="",
                importer="bench",
                started_at="2026-01-01T00:00:00+00:00",
                received=len(rows),
                accepted=len(rows),
                reasons="{}",
            )
        ).inserted_primary_key
        assert key is not None
        batch = int(key[0])
        for start in range(0, len(rows), 20_000):
            conn.execute(events.insert(), [e.row(batch) for e in rows[start : start + 20_000]])
    engine.dispose()
    return len(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench post", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--events", type=int, default=12, help="events per customer per month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="work directory, kept (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ["BEANCOUNT_DISABLE_LOAD_CACHE"] = "1"
    from beancount import loader
    from beancount.core import data

    from ledger.closing import invoice_gated
    from ledger.session import Session
    from ledger.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as tmp:
        root = (args.dir or Path(tmp)) / "workspace"
        if root.exists():
            shutil.rmtree(root)
        begin = time.perf_counter()
        stored = build(root, args.customers, args.months, args.events, args.seed)
        end = add_months(START, args.months) - timedelta(days=1)
        print(
            f"workspace: {args.customers:,} customers, "
            f"{args.months} months ({START:%Y-%m} to {end:%Y-%m}), "
            f"{stored:,} events stored in {time.perf_counter() - begin:.1f} s"
        )

        session = Session.open(Workspace.load(root))
        begin, cpu = time.perf_counter(), time.process_time()
        posted = session.post(end)
        print(
            f"post     through {end}: {posted.entries:,} entries, {len(posted.months)} files in "
            f"{time.perf_counter() - begin:.1f} s (CPU {time.process_time() - cpu:.1f} s)"
        )
        begin, cpu = time.perf_counter(), time.process_time()
        issued, gate = invoice_gated(session, end)  # as `meterbook invoice` does
        print(
            f"invoice  through {end}: {len(issued):,} invoices issued "
            f"({len(gate.held):,} held), reconciled {len(gate.findings)} months, "
            "books re-posted in "
            f"{time.perf_counter() - begin:.1f} s (CPU {time.process_time() - cpu:.1f} s)"
        )
        session.engine.dispose()

        main_file = root / "books" / "main.beancount"
        begin, cpu = time.perf_counter(), time.process_time()
        entries, errors, _options = loader.load_file(str(main_file))
        seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
        transactions = sum(isinstance(e, data.Transaction) for e in entries)
        print(
            f"load     books/main.beancount: "
            f"{len(entries):,} entries ({transactions:,} transactions), "
            f"{len(errors)} errors in {seconds:.1f} s (CPU {cpu:.1f} s)"
        )
        for error in errors[:5]:
            print(f"  {error.message}", file=sys.stderr)
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 1 if errors else 0
