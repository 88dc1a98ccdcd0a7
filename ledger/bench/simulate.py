"""The operations simulator: random operational histories through the public CLI, with the
ledger's invariants checked as they go (issue 12).

    python -m ledger.bench simulate --histories 200 --seed 7

Each history starts from an empty workspace (three customers: calendar and anniversary
cycles, advance fees, graduated and volume tiers, a commitment, prepaid credit) and runs
random operations in simulated time from 2026-09-01: usage ingested on time, late,
duplicated or conflicting; ``post``; ``invoice``; payments (full, partial, over,
unapplied); ``credit``; ``apply`` and ``refund``; plan versions and ``rerate``;
subscription changes (cancellations, plan changes, cancellations taken back; backdated,
dated ahead, before or after billing); a support add-on taken or ended beside the plan
(``addon``: its own cycles, anchored on its start or the calendar); prepaid grants;
discounts (coupons) added from a day back or ahead; invoice thresholds set, changed or taken
off (``threshold``: threshold invoicing); wallet top-ups (``topup`` or a payments
file's ``topup`` row); ``close`` of each finished month (accepting its
findings when it refuses); commands re-run. Every operation is a CLI call (click's
CliRunner), as an operator would type it.

After every step: no traceback, exit codes 0/1/2 only, refusals only where they are the
right answer, and the books load with 0 errors. Every ``--check-every`` steps and at the
end (after invoicing and posting through the clock): ``check`` passes; ``trace`` verifies
every invoice; every invoiced cycle's unbilled and contract-asset postings net to 0 through
its last invoice; per customer, invoiced − credited (store) = recognized + deferred −
unbilled − contract assets (books); every advance fee is back to 0 in deferred revenue at
its cycle's end; no customer's deferred revenue is a debit balance (at the end and at each
cycle end); every transaction of a customer touches only that customer's accounts and
balances; a rebuild of the open months
from the store gives the same bytes; invoice numbers are gapless and never reused.

A failing history is shrunk (operations removed one at a time while it still fails) and
printed. ``tests/test_simulator.py`` runs a few seeds in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.period import month_start, next_month

START = date(2026, 9, 1)
END = date(2026, 12, 1)
METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count, unit: call}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens, unit: token}
"""
PLANS = {
    "basic": """\
  basic:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "%(price)s"}
""",
    "pro": """\
  pro:
    currency: USD
    base_fee: {amount: "62.00", timing: advance}
    minimum_commitment: "40.00"
    charges:
      - meter: tokens
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0"}
          - {unit_price: "%(price)s"}
""",
    "vol": """\
  vol:
    currency: USD
    charges:
      - meter: api_calls
        model: volume
        tiers:
          - {up_to: 20, unit_price: "%(price)s"}
          - {unit_price: "0.05"}
""",
}
#: the add-on a customer may hold beside its plan (``addon``): a fee for support, no meter
ADDON = """\
  support:
    currency: USD
    base_fee: {amount: "15.50", timing: advance}
"""
PRICES = {
    "basic": ["0.10", "0.08", "0.12"],
    "pro": ["0.02", "0.015", "0.03"],
    "vol": ["0.20", "0.15", "0.25"],
}
CUSTOMERS = {  # id: (billing anchor, first plan, start)
    "cal": ("calendar", "basic", date(2026, 9, 1)),
    "ann": ("start", "pro", date(2026, 9, 10)),
    "vee": ("calendar", "vol", date(2026, 9, 15)),
}
EXPECTED_REFUSALS = (
    "a billed cycle is not re-cut",
    "of that day is already issued",
    "already issued for that day",
    "a sealed month is not rewritten",
    "a billed fee's discounts are not changed",
)
#: the meter each plan charges (a discount may name it)
PLAN_METERS = {"basic": "api_calls", "pro": "tokens", "vol": "api_calls"}


class Failure(Exception):
    """An invariant broken (or an unexpected refusal or crash) at one step."""


@dataclass
class World:
    """What the simulator knows of the workspace it drives."""

    root: Path
    clock: date = START
    subs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per customer, its add-on subscriptions (id ``support``), one after the other
    addons: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    grants: dict[str, list[tuple[str, date, date]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    versions: dict[str, list[tuple[date, str]]] = field(default_factory=lambda: defaultdict(list))
    #: per customer, its discounts as YAML flow mappings (``discounts:``)
    discounts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: each customer's ``invoice_threshold`` ("" or absent: none)
    thresholds: dict[str, str] = field(default_factory=dict)
    events: int = 0
    files: list[Path] = field(default_factory=list)
    payments: int = 0
    payouts: int = 0
    closed: list[str] = field(default_factory=list)
    numbers: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    posted_through: date | None = None
    log: list[str] = field(default_factory=list)
    #: what the books held when they last loaded clean, and everything the full invariants
    #: read when they last passed (:func:`fingerprint`): unchanged, they cannot fail now
    loaded: str = ""
    checked: str = ""

    # --- the workspace -----------------------------------------------------------------------

    def write_rules(self) -> None:
        plans = ["plans:\n"]
        for plan, text in PLANS.items():
            plans.append(text % {"price": PRICES[plan][0]})
            versions = self.versions.get(plan, [])
            if versions:
                plans.append("    versions:\n")
                for effective, price in versions:
                    charge = (text % {"price": price}).split("    charges:\n", 1)[1]
                    plans.append(f"      - effective: {effective.isoformat()}\n        charges:\n")
                    plans.append("".join("    " + line + "\n" for line in charge.splitlines()))
        plans.append(ADDON)
        (self.root / "rules" / "plans.yaml").write_text("".join(plans))
        lines = ["customers:\n"]
        for cid, (anchor, _plan, _start) in CUSTOMERS.items():
            subs = ", ".join(_subscription(s) for s in (*self.subs[cid], *self.addons[cid]))
            lines.append(
                f"  {cid}:\n    currency: USD\n    billing_anchor: {anchor}\n"
                f"    subscriptions: [{subs}]\n"
            )
            if self.thresholds.get(cid):
                lines.append(f'    invoice_threshold: "{self.thresholds[cid]}"\n')
            if self.grants.get(cid):
                lines.append(
                    "    credits:\n"
                    + "".join(
                        f'      - {{amount: "{a}", granted: {g.isoformat()}, '
                        f"expires: {x.isoformat()}}}\n"
                        for a, g, x in self.grants[cid]
                    )
                )
            if self.discounts.get(cid):
                lines.append(
                    "    discounts:\n" + "".join(f"      - {d}\n" for d in self.discounts[cid])
                )
        (self.root / "rules" / "customers.yaml").write_text("".join(lines))

    def cli(self, *args: str, allowed: Sequence[int] = (0,)) -> Any:
        from click.testing import CliRunner

        from ledger.cli import cli

        result = CliRunner().invoke(cli, ["--workspace", str(self.root), *args])
        self.log.append(f"    $ meterbook {' '.join(args)}  -> {result.exit_code}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tb = "".join(traceback.format_exception(result.exception))
            raise Failure(f"`meterbook {' '.join(args)}` crashed:\n{tb}")
        if result.exit_code not in allowed:
            raise Failure(
                f"`meterbook {' '.join(args)}` exited {result.exit_code}:\n{result.output[-3000:]}"
            )
        return result


def _subscription(sub: dict[str, Any]) -> str:
    end = f", end: {sub['end'].isoformat()}" if sub.get("end") else ""
    addon = f", id: {sub['id']}, billing_anchor: {sub['anchor']}" if sub.get("id") else ""
    return f"{{plan: {sub['plan']}, start: {sub['start'].isoformat()}{end}{addon}}}"


def new_world() -> World:
    root = Path(tempfile.mkdtemp(prefix="meterbook-sim-")) / "ws"
    (root / "rules").mkdir(parents=True)
    (root / "meterbook.toml").write_text('store = "sqlite:///var/events.sqlite"\n')
    (root / "rules" / "meters.yaml").write_text(METERS)
    world = World(root)
    world.subs = {
        cid: [{"plan": plan, "start": start}] for cid, (_a, plan, start) in CUSTOMERS.items()
    }
    world.write_rules()
    return world


# --- operations --------------------------------------------------------------------------------
#
# An operation is (name, params): abstract numbers resolved against the world when it runs,
# so any sub-list of a history is still a history (shrinking removes operations).

Op = tuple[str, tuple[float, ...]]


def generate(rng: random.Random, steps: int) -> list[Op]:
    names = [
        "advance",
        "usage",
        "usage",
        "usage",
        "post",
        "invoice",
        "pay",
        "credit",
        "apply",
        "refund",
        "version",
        "subchange",
        "grant",
        "close",
        "rerun",
        "addon",
        "discount",
        "threshold",
        "topup",
    ]
    weights = [6, 6, 3, 2, 3, 4, 3, 1, 1, 1, 1, 2, 1, 3, 1, 1, 1, 1, 1]
    return [
        (rng.choices(names, weights)[0], tuple(rng.random() for _ in range(4)))
        for _ in range(steps)
    ]


def _pick(items: Sequence[Any], x: float) -> Any:
    return items[min(int(x * len(items)), len(items) - 1)]


def _invoices(world: World) -> list[Any]:
    from ledger.facts.invoices import load_invoices
    from ledger.store import open_store

    engine = open_store(f"sqlite:///{world.root / 'var' / 'events.sqlite'}")
    try:
        return load_invoices(engine)
    finally:
        engine.dispose()


def _store_rows(world: World, loader: str) -> list[Any]:
    from ledger.facts import adjustments, credit_notes, payments
    from ledger.store import open_store

    engine = open_store(f"sqlite:///{world.root / 'var' / 'events.sqlite'}")
    try:
        if loader == "notes":
            return credit_notes.load_credit_notes(engine)
        if loader == "adjustments":
            return adjustments.load_adjustments(engine)
        return payments.load_payments(engine)
    finally:
        engine.dispose()


def run_op(world: World, op: Op) -> None:
    name, (a, b, c, d) = op
    today = world.clock
    world.log.append(f"  {today}  {name} {', '.join(f'{x:.2f}' for x in (a, b, c, d))}")
    if name == "advance":
        world.clock = min(END, today + timedelta(days=1 + int(a * 12)))
    elif name == "usage":
        _usage(world, a, b, c, d)
    elif name == "post":
        post(world)
    elif name == "invoice":
        world.cli("invoice", "--through", today.isoformat(), allowed=(0, 1))
    elif name == "pay":
        _pay(world, a, b)
    elif name == "credit":
        invoices = [inv for inv in _invoices(world) if inv.total > 0]
        if invoices:
            inv = _pick(invoices, a)
            amount = (inv.total * Decimal(str(round(0.1 + 0.5 * b, 2)))).quantize(Decimal("0.01"))
            if amount > 0:
                world.cli(
                    "credit",
                    inv.number,
                    "--amount",
                    str(amount),
                    "--reason",
                    "simulated",
                    "--date",
                    max(today, inv.date).isoformat(),
                    allowed=(0, 2),
                )
    elif name in ("apply", "refund"):
        _cash(world, name, a, b, c)
    elif name == "version":
        plan = _pick(list(PLANS), a)
        effective = max(START, today - timedelta(days=int(b * 40)))
        if all(effective > e for e, _ in world.versions[plan]):
            world.versions[plan].append((effective, _pick(PRICES[plan][1:], c)))
            world.write_rules()
            world.cli(
                "rerate", "--from", effective.isoformat(), "--date", today.isoformat(), allowed=(0,)
            )
    elif name == "subchange":
        _subchange(world, a, b, c)
    elif name == "addon":
        _addon(world, a, b, c)
    elif name == "grant":
        cid = _pick(list(CUSTOMERS), a)
        world.grants[cid].append(
            (f"{10 + int(b * 40)}.00", today, today + timedelta(days=20 + int(c * 40)))
        )
        world.write_rules()
        if not _posted_or_taken_back(world):
            world.grants[cid].pop()
            world.write_rules()
    elif name == "discount":
        _discount(world, a, b, c, d)
    elif name == "threshold":  # threshold invoicing set, changed or taken off; then invoice
        cid = _pick(list(CUSTOMERS), a)
        world.thresholds[cid] = _pick(["", "0.50", "1.00", "5.00"], b)
        world.write_rules()
        world.cli("invoice", "--through", today.isoformat(), allowed=(0, 1))
    elif name == "topup":  # a wallet top-up: the command, or a payments file's topup row
        cid, amount = _pick(list(CUSTOMERS), a), f"{5 + int(b * 40)}.00"
        expires = (today + timedelta(days=15 + int(c * 50))).isoformat()
        sealed = bool(world.closed) and today < month_start(next_month(world.closed[-1]))
        if d < 0.5:
            # its own reference: the default (customer/date/amount) of two top-ups of the same
            # figures and another expiry is one reference with two meanings, rightly refused
            world.payments += 1
            args = (
                *("--amount", amount, "--date", today.isoformat(), "--expires", expires),
                *("--reference", f"SIM-TOPUP-{world.payments}"),
            )
            world.cli("topup", cid, *args, allowed=(2,) if sealed else (0,))
        else:
            world.payments += 1
            path = world.root.parent / f"topup-{world.payments}.csv"
            path.write_text(
                "date,amount,currency,invoice,reference,kind,customer,expires\n"
                f"{today.isoformat()},{amount},USD,,TOPUP-{world.payments},topup,{cid},{expires}\n"
            )
            world.cli("ingest", str(path), allowed=(1,) if sealed else (0,))
    elif name == "close":
        close_next(world)
    elif name == "rerun":
        if world.posted_through is not None:
            post(world, world.posted_through)
        world.cli("invoice", "--through", today.isoformat(), allowed=(0, 1))


def post(world: World, through: date | None = None) -> None:
    through = through or world.clock
    if world.closed:
        first_open = month_start(next_month(world.closed[-1]))
        through = max(through, first_open)
    world.cli("post", "--through", through.isoformat(), allowed=(0,))
    world.posted_through = max(world.posted_through or through, through)


def _usage(world: World, a: float, b: float, c: float, d: float) -> None:
    cid = _pick(list(CUSTOMERS), a)
    mode = _pick(["ontime", "ontime", "late", "dup", "conflict"], d)
    if mode == "dup" and world.files:
        world.cli("ingest", str(_pick(world.files, b)), allowed=(0,))
        return
    back = int(c * 3) if mode != "late" else 5 + int(c * 40)
    day = max(START, world.clock - timedelta(days=back))
    path = world.root.parent / f"usage-{len(world.files)}.csv"
    rows = ["id,source,customer,type,time,tokens"]
    count = 1 + int(b * 6)
    for _ in range(count):
        world.events += 1
        kind = "llm.completion" if cid == "ann" else "api.request"
        rows.append(
            f"e{world.events},sim,{cid},{kind},"
            f"{day.isoformat()}T{8 + world.events % 12:02d}:00:00Z,"
            f"{200 + 50 * (world.events % 30)}"
        )
    if mode == "conflict" and world.events > count:
        # an id seen before with another payload: quarantined, never overwriting
        rows.append(f"e{world.events - count},sim,{cid},api.request,{day.isoformat()}T23:00:00Z,1")
    path.write_text("\n".join(rows) + "\n")
    world.files.append(path)
    world.cli("ingest", str(path), allowed=(0,))


def _pay(world: World, a: float, b: float) -> None:
    invoices = [inv for inv in _invoices(world) if inv.total > 0]
    mode = _pick(["full", "partial", "over", "unapplied"], b)
    world.payments += 1
    reference = f"BANK-{world.payments}"
    if mode == "unapplied" or not invoices:
        line = f"{world.clock.isoformat()},{5 + int(a * 20)}.00,USD,,{reference}"
    else:
        inv = _pick(invoices, a)
        amount = {
            "full": inv.total,
            "partial": (inv.total / 2).quantize(Decimal("0.01")),
            "over": inv.total + Decimal("3.00"),
        }[mode]
        if amount <= 0:
            return
        line = f"{max(world.clock, inv.date).isoformat()},{amount},USD,{inv.number},{reference}"
    path = world.root.parent / f"bank-{world.payments}.csv"
    path.write_text("date,amount,currency,invoice,reference\n" + line + "\n")
    world.cli("ingest", str(path), allowed=(0,))


def _cash(world: World, name: str, a: float, b: float, c: float) -> None:
    sources = [p.reference for p in _store_rows(world, "payments")] + [
        n.number for n in _store_rows(world, "notes")
    ]
    if not sources:
        return
    source = _pick(sources, a)
    if name == "apply":
        invoices = [inv for inv in _invoices(world) if inv.date <= world.clock]
        if not invoices:
            return
        world.cli(
            "apply",
            source,
            "--invoice",
            _pick(invoices, b).number,
            "--date",
            world.clock.isoformat(),
            allowed=(0, 2),
        )
    else:
        world.payouts += 1
        world.cli(
            "refund",
            source,
            "--reference",
            f"PAYOUT-{world.payouts}",
            "--date",
            world.clock.isoformat(),
            allowed=(0, 2),
        )


def _subchange(world: World, a: float, b: float, c: float) -> None:
    cid = _pick(list(CUSTOMERS), a)
    kind = _pick(["cancel", "change", "uncancel"], b)
    on = max(START + timedelta(days=1), world.clock + timedelta(days=int(c * 40) - 20))
    subs = world.subs[cid]
    before = [dict(s) for s in subs]
    last = subs[-1]
    if kind == "uncancel":
        if not last.get("end"):
            return
        last.pop("end")
    elif on <= last["start"]:
        return
    elif kind == "cancel":
        last["end"] = on
    else:
        plans = [p for p in PLANS if p != last["plan"]]
        last.pop("end", None)
        subs.append({"plan": _pick(plans, c), "start": on})
    world.write_rules()
    if not _posted_or_taken_back(world):
        world.subs[cid] = before  # the operator takes the edit back, as the refusal says
        world.write_rules()


def _addon(world: World, a: float, b: float, c: float) -> None:
    """A customer takes the support add-on (its own cycles: anchored on its start or on the
    calendar) or ends the one it has, on a day up to 20 days back or ahead."""
    cid = _pick(list(CUSTOMERS), a)
    on = max(START + timedelta(days=1), world.clock + timedelta(days=int(c * 40) - 20))
    addons = world.addons[cid]
    before = [dict(s) for s in addons]
    last = addons[-1] if addons else None
    if last is not None and not last.get("end"):
        if on <= last["start"]:
            return
        last["end"] = on
    elif last is None or on >= last["end"]:
        anchor = _pick(["start", "calendar"], b)
        addons.append({"plan": "support", "start": on, "id": "support", "anchor": anchor})
    else:
        return
    world.write_rules()
    if not _posted_or_taken_back(world):
        world.addons[cid] = before
        world.write_rules()


def _discount(world: World, a: float, b: float, c: float, d: float) -> None:
    """A discount (coupon) added to a customer's rules, from a day up to 20 days back or ahead:
    a percentage or an amount, on the whole invoice, a charge of its plans or the base fee,
    for 1 to 3 cycles or forever. Refused when it would change a billed advance fee."""
    cid = _pick(list(CUSTOMERS), a)
    n = len(world.discounts[cid]) + 1
    off = _pick(
        ['percent: "10"', 'percent: "25"', 'percent: "100"', 'amount: "3.00"', 'amount: "7.50"'], b
    )
    names = sorted({PLAN_METERS[s["plan"]] for s in world.subs[cid]} | {"base_fee"})
    scope = _pick(["", *(f", charges: [{name}]" for name in names)], c)
    cycles = _pick(["", ", cycles: 1", ", cycles: 3"], d)
    start = max(START, world.clock + timedelta(days=int(d * 40) - 20))
    world.discounts[cid].append(f"{{id: d{n}, {off}{scope}{cycles}, start: {start.isoformat()}}}")
    world.write_rules()
    if not _posted_or_taken_back(world):
        world.discounts[cid].pop()
        world.write_rules()


def _posted_or_taken_back(world: World) -> bool:
    """Post after a rules edit: True when accepted; False when refused for a reason the
    refusal states (the caller takes the edit back); any other refusal is a failure."""
    result = world.cli(
        "post",
        "--through",
        max(world.clock, world.posted_through or world.clock).isoformat(),
        allowed=(0, 2),
    )
    if result.exit_code == 0:
        return True
    if not any(reason in result.output for reason in EXPECTED_REFUSALS):
        raise Failure(
            f"rules edit refused for a reason the simulator does not expect:\n{result.output}"
        )
    world.log.append("    (edit refused as expected; taken back)")
    return False


def _accepting(world: World, *args: str) -> None:
    """Run ``args``; while it refuses with error findings (exit 1), accept them and run it again."""
    accepted: set[str] = set()
    result = world.cli(*args, allowed=(0, 1))
    while result.exit_code == 1:
        ids = {
            line.split()[1].rstrip(":")
            for line in result.output.splitlines()
            if line.startswith("error ") and len(line.split()) > 1
        } - accepted
        if not ids or len(accepted) > 50:
            raise Failure(
                f"`{' '.join(args)}` refused without a new error finding to accept:\n"
                f"{result.output[-3000:]}"
            )
        accepted |= ids
        extra = [
            x
            for fid in sorted(accepted)
            for x in ("--accept", fid, "--reason", "simulated acceptance")
        ]
        result = world.cli(*args, *extra, allowed=(0, 1))


def invoice_all(world: World) -> None:
    """Issue everything due by the clock, accepting the findings that hold invoices."""
    _accepting(world, "invoice", "--through", world.clock.isoformat())


def close_next(world: World) -> None:
    month = world.closed[-1] if world.closed else "2026-08"
    nxt = next_month(month)
    first_of_next = month_start(next_month(nxt))
    if first_of_next > world.clock:
        return
    # accept what it names (issuing the month's invoices may bring findings of their own)
    _accepting(world, "close", nxt)
    world.closed.append(nxt)
    if world.posted_through is None or world.posted_through < first_of_next - timedelta(days=1):
        world.posted_through = first_of_next - timedelta(days=1)


# --- invariants ----------------------------------------------------------------------------------


def fingerprint(world: World, *, store: bool = True) -> str:
    """A digest of the books' files (and, with ``store``, of the store, the rules and the
    simulator's own record): equal digests, the same inputs to every invariant."""
    digest = hashlib.sha256()
    roots = [world.root / "books"]
    if store:
        roots += [world.root / "var", world.root / "rules"]
        digest.update(repr((world.clock, world.posted_through, world.closed)).encode())
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith((".lock", "-journal", "-wal", "-shm")):
                digest.update(path.relative_to(world.root).as_posix().encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load(world: World, *, again: bool = True) -> list[Any]:
    """The books' entries; a :class:`Failure` when they do not load with 0 errors. Without
    ``again``, books that loaded clean before with the same bytes are not loaded again
    (returns [])."""
    from ledger.books import load_books

    main = world.root / "books" / "main.beancount"
    if not main.exists():
        return []
    books = fingerprint(world, store=False)
    if not again and books == world.loaded:
        return []
    entries, errors, _ = load_books(main)
    if errors:
        raise Failure(f"the books do not load: {len(errors)} errors, first: {errors[0].message}")
    world.loaded = books
    return entries


def check_all(world: World) -> None:
    """The expensive invariants (see the module docstring), after invoicing and posting."""
    from beancount.core import data

    invoice_all(world)
    post(world, max(world.clock, world.posted_through or world.clock))
    state = fingerprint(world)
    if state == world.checked:
        world.log.append("    (store, rules and books as at the last full check: passed then)")
        return
    entries = load(world)
    checked = world.cli("check", allowed=(0, 1))
    if checked.exit_code:
        raise Failure(f"check failed:\n{checked.output[-3000:]}")
    invoices = _invoices(world)
    # invoice numbers: gapless per year, never reused
    by_year: dict[str, list[int]] = defaultdict(list)
    for inv in invoices:
        by_year[inv.number[4:8]].append(int(inv.number[9:]))
        key = (inv.customer, inv.date.isoformat(), str(inv.total))
        if world.numbers.setdefault(inv.number, key) != key:
            raise Failure(
                f"{inv.number} was {world.numbers[inv.number]}, is now {key}: a number reused"
            )
    for year, seqs in by_year.items():
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            raise Failure(f"invoice numbers of {year} are not gapless: {sorted(seqs)}")
    _trace_all(world, invoices)
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    _cycles_cleared(txns, invoices)
    _customer_accounts(world, txns)
    assert world.posted_through is not None
    notes = _store_rows(world, "notes")
    _customer_equation(txns, invoices, notes, world.posted_through)
    _fees_recognized(
        txns,
        invoices,
        notes,
        _store_rows(world, "adjustments"),
        world.posted_through,
        _cycle_ends(world, invoices),
    )
    _rebuild(world)
    world.checked = fingerprint(world)


def _trace_all(world: World, invoices: list[Any]) -> None:
    """``trace`` verifies every invoice: the newest through the CLI (``meterbook trace``), the
    others through the same function in-process, with one session (the CLI opens one per
    command: rules, plugins and store, the same for every invoice here)."""
    from ledger.errors import BadInput
    from ledger.session import Session
    from ledger.trace import trace
    from ledger.workspace import Workspace

    if not invoices:
        return
    *others, newest = sorted(invoices, key=lambda inv: inv.number)
    traced = world.cli("trace", newest.number, allowed=(0, 1))
    if traced.exit_code:
        raise Failure(f"trace {newest.number} not verified:\n{traced.output[-3000:]}")
    if not others:
        return
    session = Session.open(Workspace.load(world.root))
    try:
        for inv in others:
            try:
                result = trace(session, inv.number)
            except BadInput as exc:
                raise Failure(f"trace {inv.number} refused: {exc}") from None
            except Exception as exc:  # what the CLI would show as a traceback
                tb = "".join(traceback.format_exception(exc))
                raise Failure(f"`meterbook trace {inv.number}` crashed:\n{tb}") from None
            world.log.append(f"    (trace {inv.number} in-process: {result.verified})")
            if not result.verified:
                raise Failure(f"trace {inv.number} not verified:\n{result.render()[-3000:]}")
    finally:
        session.engine.dispose()


def _cycles_cleared(txns: list[Any], invoices: list[Any]) -> None:
    """Every invoiced cycle's unbilled and contract-asset postings net to 0 through its last
    invoice: what its accruals, late entries and debit adjustments put there before that
    invoice's day is what the invoices' lines for the cycle took out (a late entry dated
    the invoice day arrived after it, for the next invoice). A cycle billed by threshold
    invoices too: all its invoices' lines count, and its last one may be a threshold invoice,
    which bills all its usage accrued through the day before (no arrears fee here)."""
    last: dict[str, date] = {}
    billed: dict[str, Decimal] = defaultdict(Decimal)
    same_day: set[tuple[Any, ...]] = set()  # a supplementary invoice bills what its own day posted
    for inv in invoices:
        for line in inv.lines:
            if line.link and line.account in ("unbilled", "contract_asset"):
                last[line.link] = max(last.get(line.link, inv.date), inv.date)
                billed[line.link] += line.booked
                if inv.kind != "regular":
                    same_day.add(("supplementary", line.link, inv.date))
                by_threshold = any(snap.link == line.link for snap in inv.progress)
                if not by_threshold and (
                    inv.kind != "regular" or line.kind not in ("late_usage", "rerate")
                ):
                    # a supplementary invoice bills what its day posted; the cycle's own (first)
                    # invoice bills its catch-up adjustments of that day with its cumulative usage;
                    # a threshold invoice bills through the day before (its day, the cycle's last
                    # day included, waits for the next invoice: a commitment shortfall)
                    same_day.add((line.link, inv.date))
    numbers = {inv.number for inv in invoices}
    accrued: dict[str, Decimal] = defaultdict(Decimal)
    optional: dict[str, Decimal] = defaultdict(Decimal)
    for txn in txns:
        if (
            (txn.meta or {}).get("invoice") in numbers
            and "debit_adjustment" not in (txn.meta or {})
            and "late" not in (txn.meta or {})
        ):
            continue  # the invoice itself (and its payments, notes): what ``billed`` counts
        cycles = [link for link in txn.links or () if link in last]
        if len(cycles) != 1:
            continue
        link = cycles[0]
        waits = "debit_adjustment" in (txn.meta or {}) or (txn.narration or "").startswith(
            "Late usage"
        )
        catch_up = (txn.narration or "").startswith("Late adjustment")
        # a late entry or debit adjustment of a supplementary invoice's day: billed by it when it
        # was posted before the invoice was issued, else by the next one (a rerate run after it)
        either = waits and txn.date == last[link] and ("supplementary", link, txn.date) in same_day
        if txn.date > last[link] or (
            txn.date == last[link]
            and not catch_up  # may be billed in part by that day's invoice (below)
            and ((link, txn.date) not in same_day or waits)
            and not (waits and ("supplementary", link, txn.date) in same_day)
        ):
            # a late entry or debit adjustment of a regular invoice's day waits for the next
            continue
        # a catch-up adjustment of the invoice's day belongs to that invoice when the cycle was
        # not invoiced before (its cumulative usage includes it), else to the next one: either
        # reading must tie out
        # a sealed month's catch-up is "now − sealed" in one entry: it may hold usage that arrived
        # after a later invoice billed the rest (late usage billed in two parts is posted whole
        # on the first part's day, a documented limit), so any invoice may bill part of it
        for p in txn.postings:
            if p.account.startswith(("Assets:Receivables:Unbilled:", "Assets:Contract-Assets:")):
                (optional if catch_up or either else accrued)[link] += p.units.number
    # the invoice may also bill only part of a same-day catch-up: the usage it knew of when it
    # was issued, the rest (usage that came after it) waiting for the next invoice; trace checks
    # each invoice's part against the store exactly
    left = {
        link: accrued[link] - billed[link]
        for link in last
        if not min(Decimal(0), optional[link])
        <= billed[link] - accrued[link]
        <= max(Decimal(0), optional[link])
    }
    if left:
        raise Failure(
            f"invoiced cycles with unbilled or contract assets left (accrued − billed): {left}"
        )


def _pending_fees(world: World, components: dict[str, str]) -> dict[str, tuple[date, Decimal]]:
    """Per deferred-revenue account: the earliest start and the sum of the advance fees of
    cycles started by the clock that only the next day's invoice bills."""
    from ledger.session import Session
    from ledger.workspace import Workspace

    day = world.clock + timedelta(days=1)
    session = Session.open(Workspace.load(world.root))
    try:
        drafts = session.draft(session.rate(day), day)
    finally:
        session.engine.dispose()
    found: dict[str, tuple[date, Decimal]] = {}
    for inv in drafts:
        for line in inv.lines:
            start = date.fromisoformat(line.cycle[:10]) if line.cycle else day
            if line.kind == "base_fee" and line.account == "deferred" and start <= world.clock:
                account = f"Liabilities:Deferred-Revenue:{components.get(inv.customer, '')}"
                since, total = found.get(account, (start, Decimal(0)))
                found[account] = (min(since, start), total + line.amount)
    return found


def _customer_accounts(world: World, txns: list[Any]) -> None:
    """A customer's transactions touch only its own accounts; its deferred revenue is never a
    debit balance, at the end nor at any of its cycles' ends (the balance after the cycle's
    last day), once everything dated by the clock is invoiced."""
    components = {"cal": "Cal", "ann": "Ann", "vee": "Vee"}
    deferred: dict[str, Decimal] = defaultdict(Decimal)
    moves: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    ends: dict[str, set[date]] = defaultdict(set)
    for txn in txns:
        customer = (txn.meta or {}).get("customer")
        for p in txn.postings:
            parts = p.account.split(":")
            mine = components.get(str(customer)) if customer is not None else None
            if (
                parts[0] in ("Assets", "Liabilities")
                and parts[-1] in components.values()
                and customer is not None
                and mine != parts[-1]
            ):
                raise Failure(f"{txn.date} {txn.narration!r} of {customer} posts to {p.account}")
            if p.account.startswith("Liabilities:Deferred-Revenue:"):
                deferred[p.account] += p.units.number
                moves[p.account].append((txn.date, p.units.number))
        cycle = (txn.meta or {}).get("cycle")
        if customer is not None and isinstance(cycle, str):
            owner = f"Liabilities:Deferred-Revenue:{components.get(str(customer), '')}"
            for key in cycle.split(","):
                if "/" in key:
                    ends[owner].add(date.fromisoformat(key.split("/")[1]))
    # an advance fee the next day's invoice bills (a subscription backdated into a sealed month,
    # entered after the customer's invoice of today: seed 93190) is recognized by then with no
    # invoice behind it: up to that fee, and from its cycle's start, a debit is its due state
    pending = _pending_fees(world, components)
    debit = {
        account: amount
        for account, amount in deferred.items()
        if amount > pending.get(account, (date.max, Decimal(0)))[1]
    }
    # and at each cycle end of the customer: its balance when the cycle's last day is done
    for account, days in sorted(ends.items()):
        since, allowed = pending.get(account, (date.max, Decimal(0)))
        for end in sorted(days):
            held = sum((n for day, n in moves[account] if day < end), Decimal(0))
            if held > (allowed if end > since else 0) and (
                world.posted_through or START
            ) >= end - timedelta(days=1):
                debit[f"{account} at {end.isoformat()}"] = held
    if debit:
        raise Failure(f"deferred revenue with a debit balance: {debit}")


def _customer_equation(
    txns: list[Any], invoices: list[Any], notes: list[Any], through: date
) -> None:
    """Per customer and currency, the store against the books: invoiced − credited (the
    store's invoices and credit notes dated by ``through``) = revenue recognized + deferred
    revenue − unbilled − contract assets (the books: the customer's transactions' income and
    those balances). A debit adjustment is on neither side until invoiced: it moves unbilled
    and deferred revenue (or revenue) by the same amount, and its invoice line is invoiced."""
    store: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for inv in invoices:
        if inv.date <= through:
            store[(inv.customer, inv.currency)] += inv.total
    for note in notes:
        if note.date <= through:
            store[(note.customer, note.currency)] -= note.amount
    books: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    prefixes = (
        "Income:",
        "Liabilities:Deferred-Revenue:",
        "Assets:Receivables:Unbilled:",
        "Assets:Contract-Assets:",
    )
    for txn in txns:
        customer = (txn.meta or {}).get("customer")
        if customer is None or txn.date > through:
            continue
        for p in txn.postings:
            if p.account.startswith(prefixes):
                books[(str(customer), p.units.currency)] -= p.units.number
    differ = {
        key: (store[key], books[key])
        for key in sorted(set(store) | set(books))
        if store[key] != books[key]
    }
    if differ:
        raise Failure(
            "invoiced − credited (store) ≠ recognized + deferred − unbilled − contract assets "
            f"(books), per customer: {differ}"
        )


def _cycle_ends(world: World, invoices: list[Any]) -> dict[str, date]:
    """The end of every cycle an advance fee was billed for, as the subscriptions give it now
    (a change after the invoice may have cut or lengthened it)."""
    from ledger.cycles import cycle_of_link
    from ledger.rules import load_rules

    rules = load_rules(world.root / "rules")
    ends = {}
    for inv in invoices:
        customer = rules.customers.get(inv.customer)
        for line in inv.lines:
            if line.kind == "base_fee" and line.link and line.cycle and customer is not None:
                cycle = cycle_of_link(customer, rules.plans, line.link)
                if cycle is not None and cycle.link == line.link:
                    ends[line.link] = cycle.end
    return ends


def _fees_recognized(
    txns: list[Any],
    invoices: list[Any],
    notes: list[Any],
    adjustments: list[Any],
    through: date,
    now: dict[str, date] | None = None,
) -> None:
    """Each advance fee's deferred revenue is back to 0 when its cycle ends: billed (the base-fee
    lines of the store's invoices for the cycle) + its debit adjustments − what credit notes
    took out of deferred revenue for it = the subscription revenue the books recognized for it
    (its accruals and late entries), once the books are posted through the cycle's last day:
    ``now`` (the subscriptions' cycle ends), else the books' latest accrual of the cycle, else
    the cycle as billed."""
    lines: dict[tuple[str, int], Any] = {}
    owed: dict[str, Decimal] = defaultdict(Decimal)
    billed_end: dict[str, date] = {}  # as billed; the books' accruals carry the cycle as it is
    for inv in invoices:
        for i, line in enumerate(inv.lines, 1):
            lines[(inv.number, i)] = line
            if line.kind == "base_fee" and line.account == "deferred" and line.link:
                owed[line.link] += line.amount
                billed_end[line.link] = date.fromisoformat(line.cycle.split("/")[1])
    for note in notes:
        for part in note.parts:
            line = lines.get((note.invoice, part.line))
            if line is not None and line.link in owed and part.deferred:
                owed[line.link] -= part.deferred
    for adj in adjustments:
        if adj.kind == "subscription" and adj.link in owed:
            owed[adj.link] += adj.amount
    recognized: dict[str, Decimal] = defaultdict(Decimal)
    ends: dict[str, tuple[date, date]] = {}
    for txn in txns:
        meta = txn.meta or {}
        links = [link for link in txn.links or () if link in owed]
        if len(links) != 1:  # an invoice of several cycles posts no subscription revenue
            continue
        link = links[0]
        cycle = meta.get("cycle")
        accrual = "invoice" not in meta or "late" in meta  # the cycle as it is now
        if accrual and isinstance(cycle, str) and "," not in cycle and "/" in cycle:
            end = date.fromisoformat(cycle.split("/")[1])
            if txn.date >= ends.get(link, (date.min, end))[0]:
                ends[link] = (txn.date, end)
        for p in txn.postings:
            if p.account.startswith("Income:Subscriptions:"):
                recognized[link] -= p.units.number
    left = {
        link: owed[link] - recognized[link]
        for link in sorted(owed)
        if (now or {}).get(link, ends.get(link, (date.min, billed_end[link]))[1])
        - timedelta(days=1)
        <= through
        and owed[link] != recognized[link]
    }
    if left:
        raise Failure(
            "advance fees not back to 0 in deferred revenue at their cycle's end "
            f"(billed + adjusted − credited − recognized): {left}"
        )


def _rebuild(world: World) -> None:
    """Delete the open months' files and post again: the same bytes."""
    from ledger.books import sealed_months

    books = world.root / "books"
    before = {
        p.relative_to(books).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(books.rglob("*"))
        if p.is_file()
    }
    sealed = sealed_months(books)
    for path in books.glob("[0-9]*/[0-9]*-[0-9][0-9].beancount"):
        if path.stem not in sealed:
            path.unlink()
    assert world.posted_through is not None
    world.cli("post", "--through", world.posted_through.isoformat(), allowed=(0,))
    after = {
        p.relative_to(books).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(books.rglob("*"))
        if p.is_file()
    }
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        raise Failure(f"a rebuild from the store changed {changed[:5]}")


# --- histories --------------------------------------------------------------------------------


@contextlib.contextmanager
def one_registry() -> Iterator[None]:
    """Load the plugins once for the histories run inside, not once per command.

    Every command opens the plugin registry: it imports and registers the first-party
    pricing, reconciliation and importer plugins and scans the installed packages' entry
    points, about a fifth of a history's time. The simulated workspace has no plugins of its
    own and nothing is installed while it runs, so every command would load the same
    registry; it is loaded by the first and shared (``ledger.registry`` has its own tests).
    """
    from ledger import opened, registry

    loaded: dict[Any, Any] = {}
    real = registry.load_registry

    def load_registry(plugins_dir: Path | None = None) -> Any:
        if plugins_dir is not None:
            return real(plugins_dir)
        if None not in loaded:
            loaded[None] = real(None)
        return loaded[None]

    registry.load_registry = load_registry  # type: ignore[assignment]
    opened.load_registry = load_registry  # type: ignore[assignment]
    try:
        yield
    finally:
        registry.load_registry = real  # type: ignore[assignment]
        opened.load_registry = real  # type: ignore[assignment]


def run_history(ops: Sequence[Op], *, check_every: int = 8, keep: bool = False) -> World:
    """Run one history; raise :class:`Failure` at the first broken invariant."""
    with one_registry():
        return _run_history(ops, check_every=check_every, keep=keep)


def _run_history(ops: Sequence[Op], *, check_every: int, keep: bool) -> World:
    world = new_world()
    try:
        for i, op in enumerate(ops, 1):
            run_op(world, op)
            load(world, again=False)
            if check_every and i % check_every == 0:
                check_all(world)
        # the end: every finished month closed, everything invoiced, every invariant
        while True:
            before = len(world.closed)
            close_next(world)
            if len(world.closed) == before:
                break
        check_all(world)
        return world
    finally:
        if not keep:
            shutil.rmtree(world.root.parent, ignore_errors=True)


def failure_of(ops: Sequence[Op], check_every: int) -> str | None:
    try:
        run_history(ops, check_every=check_every)
    except Failure as exc:
        return str(exc)
    return None


def _kind(message: str) -> str:
    return message.split(":", 1)[0].split("`")[0]


def shrink(ops: list[Op], check_every: int, deadline: float) -> tuple[list[Op], str]:
    """Remove operations one at a time while the history still fails the same way."""
    message = failure_of(ops, check_every) or ""
    i = 0
    while i < len(ops) and time.monotonic() < deadline:
        candidate = ops[:i] + ops[i + 1 :]
        found = failure_of(candidate, check_every)
        if found is not None and _kind(found) == _kind(message):
            ops, message = candidate, found
        else:
            i += 1
    return ops, message


def describe(ops: Sequence[Op]) -> str:
    return "\n".join(
        f"  {i:3d}. {name} {', '.join(repr(x) for x in params)}"
        for i, (name, params) in enumerate(ops, 1)
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench simulate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--histories", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=30, help="operations per history")
    parser.add_argument(
        "--check-every",
        type=int,
        default=10,
        help="run the expensive invariants every N steps (0: at the end only)",
    )
    parser.add_argument("--shrink-seconds", type=float, default=600)
    args = parser.parse_args(argv)
    os.environ.setdefault("BEANCOUNT_DISABLE_LOAD_CACHE", "1")
    started = time.monotonic()
    counts: dict[str, int] = defaultdict(int)
    for n in range(args.histories):
        seed = args.seed + n
        ops = generate(random.Random(seed), args.steps)
        for name, _ in ops:
            counts[name] += 1
        message = failure_of(ops, args.check_every)
        if message is not None:
            print(f"history {n + 1} (seed {seed}) FAILED: {message.splitlines()[0]}", flush=True)
            small, message = shrink(
                list(ops), args.check_every, time.monotonic() + args.shrink_seconds
            )
            print(
                f"shrunk from {len(ops)} to {len(small)} "
                f"operations:\n{describe(small)}\n\n{message}",
                flush=True,
            )
            return 1
        print(
            f"history {n + 1}/{args.histories} (seed {seed}) clean  "
            f"[{time.monotonic() - started:.0f} s]",
            flush=True,
        )
    print(
        f"{args.histories} histories clean (seeds {args.seed}..{args.seed + args.histories - 1}, "
        f"{args.steps} operations each, {sum(counts.values())} operations: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f") in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
