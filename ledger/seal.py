"""The period seal: a hash chain over closed months, checked at every load.

A closed month's close file ends with a manifest and the seal. For October
2026 sealed as the first month of the chain, ``books/2026/2026-10.close.beancount``
reads::

    2026-11-01 balance Assets:Receivables:Unbilled:Acme   4.00 USD

    2026-11-01 custom "meterbook-seal-manifest" "2026-10" 3
      e1: "2026-10-01 open 5b0c4e33e1a6f4e2 Assets:Receivables:Unbilled:Acme"
      e2: "2026-10-31 transaction 9d1f0c2a7b3e8d44 acme | Usage accrual"
      e3: "2026-11-01 balance 0e7d2f9a1c3b5a66 Assets:Receivables:Unbilled:Acme | USD"

    2026-11-01 custom "meterbook-seal" "2026-10" "0000…0000" "c41f…9a27"

With ``plugin "ledger.seal"`` in main.beancount, editing, adding or removing
any entry sealed in October makes ``bean-check`` (and Fava) report the first
entry that differs, at its own file and line (a removed entry at the seal)::

    books/2026/2026-10.beancount:12: month 2026-10 is sealed but an entry was changed: 2026-10-31 transaction "acme | Usage accrual" (1 difference)
    books/2026/2026-10.close.beancount:9: month 2026-10 is sealed but an entry was removed: 2026-10-31 transaction "acme | Usage accrual" (1 difference)

and, for the seal lines themselves, ``month 2026-10: seal line altered: …``,
``month 2026-11: seal chain broken: …`` (a wrong previous hash, a missing
month, a removed first seal) or ``month 2026-10: seal manifest altered``.

**Which entries a month seals.** Every entry belongs to at most one month:

- a ``balance`` dated the 1st of a month belongs to the month *before* (it
  asserts that month's closing balance, per DESIGN: "balance assertions for
  the end of month M are dated the 1st of M+1");
- a ``custom "meterbook-…"`` whose first value is a string ``"YYYY-MM"``
  belongs to that month (acceptances of findings, recorded at close);
- the seal and manifest directives themselves (``meterbook-seal``,
  ``meterbook-seal-manifest``), ``custom "fava-…"`` directives (presentation
  settings, not accounting) and padding transactions synthesized by Beancount
  from ``pad`` directives (flag ``P``; the ``pad`` itself is sealed) belong to
  no month;
- every other entry belongs to the month of its date.

**Canonical form.** Each entry is one line of compact JSON (no spaces,
``ensure_ascii=False``): ``[kind, date, fields…, meta]``. It does not depend
on Beancount's printer, so a Beancount upgrade that prints differently does
not break a seal. The kinds and their fields:

======================  ==============================================================
kind                    fields after the date
======================  ==============================================================
``open``                account, sorted currencies, booking method name or null
``close``               account
``commodity``           currency
``pad``                 account, source account
``balance``             account, amount, tolerance (number text or null)
``transaction``         flag, payee, narration, sorted tags, sorted links, postings
``note``                account, comment, sorted tags, sorted links
``event``               type, description
``query``               name, query string
``price``               currency, amount
``document``            account, file path relative to the declaring file, tags, links
``custom``              type, typed values
======================  ==============================================================

- A posting is ``[account, units, cost, price, flag, meta]``, in the
  transaction's order (posting order is part of the record).
- An amount is ``"<number> <currency>"``; a cost is ``[number, currency,
  date, label]``; absent values are ``null``.
- Numbers are Python's ``str(Decimal)``: the General Decimal Arithmetic
  *to-scientific-string* of the number **as parsed**, not normalized. ``1.50``
  and ``1.5`` are different texts: the printed digits are part of what an
  auditor signed off. (So a seal must be built from entries as Beancount
  loads them from the books, which :func:`build_seal` is given.)
- ``meta`` is a sorted list of ``[key, value]`` without ``filename``,
  ``lineno`` and keys that start with ``__`` (Beancount's own
  ``__tolerances__``, ``__automatic__``, …). Metadata and custom values are
  typed text: ``str:…``, ``num:…``, ``bool:TRUE``, ``date:YYYY-MM-DD``,
  ``amount:<number> <currency>``, ``account:…`` (custom values only), null.

    >>> import datetime
    >>> from decimal import Decimal
    >>> from beancount.core import data
    >>> from beancount.core.amount import Amount
    >>> meta = {"filename": "x", "lineno": 3, "customer": "acme", "quantity": Decimal("14000")}
    >>> txn = data.Transaction(meta, datetime.date(2026, 10, 31), "*", "acme", "Usage accrual",
    ...     frozenset(), frozenset({"acme-2026-10-15"}), [
    ...         data.Posting("Assets:Receivables:Unbilled:Acme", Amount(Decimal("4.00"), "USD"),
    ...                      None, None, None, {"filename": "x", "lineno": 4}),
    ...         data.Posting("Income:Usage:Api-Calls", Amount(Decimal("-4.00"), "USD"),
    ...                      None, None, None, None)])
    >>> print(canonical_line(txn).replace("],[", "],\\n["))    # one line, broken here to read
    ["transaction","2026-10-31","*","acme","Usage accrual",[],
    ["acme-2026-10-15"],
    [["Assets:Receivables:Unbilled:Acme","4.00 USD",null,null,null,[]],
    ["Income:Usage:Api-Calls","-4.00 USD",null,null,null,[]]],
    [["customer","str:acme"],
    ["quantity","num:14000"]]]

**Hashes.** ``month_digest`` is the SHA-256 of the month's canonical lines,
sorted (by code point) and each ended by ``\\n``, so the order of entries in
the files does not matter. The seal hash chains it with the previous seal:
``sha256("<month>\\n<previous seal hash>\\n<digest>")``; the first seal's
previous hash is ``GENESIS`` (64 zeros). Months are sealed consecutively.

    >>> month_digest([])
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    >>> seal_hash("2026-10", GENESIS, month_digest([]))[:16]
    '09bd467a49e585ad'

**Manifest.** The hash alone says *that* a month changed, not *what*. The
manifest lists, for each sealed entry, ``<date> <kind> <16 hex of the
sha256 of its canonical line> <summary>`` (the summary names the entry without
its amounts: payee and narration, account, custom type…), sorted. Comparing it
with the entries as loaded names the first entry changed, added or removed.
The manifest is a function of the sealed entries, so it is checked by
recomputation: an edited manifest is an error too.

What a hash chain inside the books cannot detect is a rewrite of the whole
chain from some month on, or the removal of the *latest* seal: the latest
seal hash is the anchor, printed in the close report and returned by
:func:`verify_seals` for ``meterbook check`` to compare with the record.
"""  # noqa: E501

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from beancount.core import account, data, flags
from beancount.core.amount import Amount
from beancount.parser.grammar import ValueType

from ledger.period import is_month, month_of, month_start, next_month, previous_month

__plugins__ = ("seal",)

SEAL = "meterbook-seal"
MANIFEST = "meterbook-seal-manifest"
#: The directive that seals a month's documents and close report by their SHA-256
#: (:func:`coverage_text`).
DOCUMENTS = "meterbook-seal-documents"
GENESIS = "0" * 64
#: Credited by this plugin, once per sealed month whose seal and chain verify; each close file
#: asserts its balance (:func:`guard_entries`), so books loaded without the plugin fail to check.
GUARD_ACCOUNT = "Equity:Meterbook:Seals-Verified"
#: The other side of the guard postings.
GUARD_SOURCE = "Equity:Meterbook:Seal-Plugin"
GUARD_ACCOUNTS = frozenset({GUARD_ACCOUNT, GUARD_SOURCE})
GUARD_CURRENCY = "SEAL"
#: Metadata key of the entries the plugin adds (no key written in a file can start with ``_``).
GUARD_MARK = "__meterbook_seal_guard__"
#: What stands for the seal hash in a close report while it is hashed (:func:`report_digest`).
REPORT_PLACEHOLDER = "<meterbook seal hash>"

_HASH = re.compile(r"[0-9a-f]{64}")
_SHORT = 16  # hex digits of an entry's hash in the manifest
_SUMMARY = 80  # characters of an entry's summary in the manifest


class SealError(NamedTuple):
    """A broken seal, reported by Beancount like any load error."""

    source: data.Meta
    message: str
    entry: data.Directive | None


class Seal(NamedTuple):
    """A ``custom "meterbook-seal"`` directive, read."""

    month: str
    previous: str
    hash: str
    entry: data.Custom


class SealStatus(NamedTuple):
    """One sealed month as verified: ``ok`` with an empty message, or the first problem."""

    month: str
    hash: str
    ok: bool
    message: str


# -- which entries a month seals ----------------------------------------------


def period_of(entry: data.Directive) -> str | None:
    """The month whose seal covers ``entry``, or None (see the module docstring)."""
    if entry.meta and GUARD_MARK in entry.meta:
        return None  # added by this plugin at load time (guard_entries), never in a file
    if isinstance(entry, data.Custom):
        if entry.type in (SEAL, MANIFEST) or entry.type.startswith("fava-"):
            return None
        if entry.type.startswith("meterbook-") and entry.values:
            first = entry.values[0].value
            if is_month(first):
                return str(first)
    elif isinstance(entry, data.Transaction) and entry.flag == flags.FLAG_PADDING:
        return None
    elif isinstance(entry, data.Balance) and entry.date.day == 1:
        return previous_month(month_of(entry.date))
    return month_of(entry.date)


def sealed_entries(entries: Iterable[data.Directive], month: str) -> list[data.Directive]:
    """The entries that the seal of ``month`` covers."""
    return [entry for entry in entries if period_of(entry) == month]


# -- canonical form -----------------------------------------------------------


def _amount(value: Amount | None) -> str | None:
    if value is None:
        return None
    number = "null" if value.number is None else str(value.number)
    return f"{number} {value.currency}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _typed(value: object, dtype: object = None) -> str | None:
    if value is None:
        return None
    if dtype == account.TYPE:
        return f"account:{value}"
    if isinstance(value, bool):
        return "bool:TRUE" if value else "bool:FALSE"
    if isinstance(value, Decimal | int):
        return f"num:{value}"
    if isinstance(value, datetime.date):
        return f"date:{value.isoformat()}"
    if isinstance(value, Amount):
        return f"amount:{_amount(value)}"
    if isinstance(value, str):
        return f"str:{value}"
    return f"{type(value).__name__}:{value}"


def _meta(meta: data.Meta | None) -> list[list[str | None]]:
    if not meta:
        return []
    return [
        [key, _typed(value)]
        for key, value in sorted(meta.items())
        if key not in ("filename", "lineno") and not key.startswith("__")
    ]


def _cost(cost: object) -> list[str | None] | None:
    if cost is None:
        return None
    if isinstance(cost, data.Cost):
        return [_text(cost.number), cost.currency, _text(cost.date), cost.label]
    if isinstance(cost, data.CostSpec):  # unbooked: only if booking failed
        return [
            "spec",
            _text(cost.number_per),
            _text(cost.number_total),
            _text(cost.currency),
            _text(cost.date),
            _text(cost.label),
            _text(cost.merge),
        ]
    return [str(cost)]


def _sorted(items: Iterable[str] | None) -> list[str]:
    return sorted(items or ())


def _document_path(entry: data.Document) -> str:
    """The document's path relative to the file declaring it, so moving books keeps seals."""
    source = (entry.meta or {}).get("filename")
    if isinstance(source, str) and os.path.isabs(source) and os.path.isabs(entry.filename):
        relative = os.path.relpath(entry.filename, os.path.dirname(source))
        return relative.replace(os.sep, "/")
    return entry.filename


def _fields(entry: data.Directive) -> tuple[str, list[Any]]:
    if isinstance(entry, data.Transaction):
        postings = [
            [p.account, _amount(p.units), _cost(p.cost), _amount(p.price), p.flag, _meta(p.meta)]
            for p in entry.postings
        ]
        return "transaction", [
            entry.flag,
            entry.payee,
            entry.narration,
            _sorted(entry.tags),
            _sorted(entry.links),
            postings,
        ]
    if isinstance(entry, data.Balance):
        return "balance", [entry.account, _amount(entry.amount), _text(entry.tolerance)]
    if isinstance(entry, data.Open):
        booking = entry.booking.name if entry.booking is not None else None
        return "open", [entry.account, _sorted(entry.currencies), booking]
    if isinstance(entry, data.Close):
        return "close", [entry.account]
    if isinstance(entry, data.Commodity):
        return "commodity", [entry.currency]
    if isinstance(entry, data.Pad):
        return "pad", [entry.account, entry.source_account]
    if isinstance(entry, data.Note):
        return "note", [entry.account, entry.comment, _sorted(entry.tags), _sorted(entry.links)]
    if isinstance(entry, data.Event):
        return "event", [entry.type, entry.description]
    if isinstance(entry, data.Query):
        return "query", [entry.name, entry.query_string]
    if isinstance(entry, data.Price):
        return "price", [entry.currency, _amount(entry.amount)]
    if isinstance(entry, data.Document):
        return "document", [
            entry.account,
            _document_path(entry),
            _sorted(entry.tags),
            _sorted(entry.links),
        ]
    if isinstance(entry, data.Custom):
        return "custom", [entry.type, [_typed(v.value, v.dtype) for v in entry.values]]
    return type(entry).__name__.lower(), []


def _canonical(entry: data.Directive) -> tuple[str, str]:
    kind, fields = _fields(entry)
    line = json.dumps(
        [kind, entry.date.isoformat(), *fields, _meta(entry.meta)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return kind, line


def canonical_line(entry: data.Directive) -> str:
    """The canonical form of one entry (see the module docstring)."""
    return _canonical(entry)[1]


def _digest(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def month_digest(entries_of_month: Iterable[data.Directive]) -> str:
    """SHA-256 over the sorted canonical lines of a month's sealed entries."""
    return _digest(canonical_line(entry) for entry in entries_of_month)


def seal_hash(month: str, previous: str, digest: str) -> str:
    """``sha256("<month>\\n<previous>\\n<digest>")``: the month's link in the chain."""
    return hashlib.sha256(f"{month}\n{previous}\n{digest}".encode()).hexdigest()


# -- manifest -----------------------------------------------------------------


def summary(entry: data.Directive) -> str:
    """What names an entry to a reader, without its amounts (so an edit reads as a change)."""
    parts: list[object]
    if isinstance(entry, data.Transaction):
        parts = [entry.payee, entry.narration]
    elif isinstance(entry, data.Balance):
        parts = [entry.account, entry.amount.currency if entry.amount else None]
    elif isinstance(entry, data.Open | data.Close | data.Note):
        parts = [entry.account]
    elif isinstance(entry, data.Pad):
        parts = [entry.account, entry.source_account]
    elif isinstance(entry, data.Document):
        parts = [entry.account, os.path.basename(entry.filename)]
    elif isinstance(entry, data.Price):
        parts = [entry.currency, entry.amount.currency if entry.amount else None]
    elif isinstance(entry, data.Commodity):
        parts = [entry.currency]
    elif isinstance(entry, data.Event):
        parts = [entry.type]
    elif isinstance(entry, data.Query):
        parts = [entry.name]
    elif isinstance(entry, data.Custom):
        parts = [entry.type, *(v.value for v in entry.values[:1])]
    else:
        parts = []
    text = " | ".join(str(p) for p in parts if p not in (None, ""))
    return " ".join(text.split())[:_SUMMARY]


def _manifest_line(entry: data.Directive, kind: str, line: str) -> str:
    short = hashlib.sha256(line.encode("utf-8")).hexdigest()[:_SHORT]
    return f"{entry.date.isoformat()} {kind} {short} {summary(entry)}".rstrip()


def manifest_line(entry: data.Directive) -> str:
    """``<date> <kind> <short hash> <summary>``: one sealed entry in the manifest."""
    return _manifest_line(entry, *_canonical(entry))


def manifest(entries_of_month: Iterable[data.Directive]) -> list[str]:
    """The sorted manifest lines of a month's sealed entries."""
    return sorted(manifest_line(entry) for entry in entries_of_month)


def _manifest_key(line: str) -> tuple[str, str, str]:
    """(date, kind, summary): the same entry before and after an edit."""
    parts = line.split(" ", 3)
    parts += [""] * (4 - len(parts))
    return parts[0], parts[1], parts[3]


def read_manifest(entry: data.Custom) -> list[str]:
    """The lines of a ``meterbook-seal-manifest`` directive, in their ``eN`` order."""
    items = []
    for key, value in (entry.meta or {}).items():
        if re.fullmatch(r"e\d+", key) and isinstance(value, str):
            items.append((int(key[1:]), value))
    return [value for _, value in sorted(items)]


# -- directives ---------------------------------------------------------------


def _custom(
    type_: str, month: str, values: Sequence[Any], meta: data.Meta | None = None
) -> data.Custom:
    date = month_start(next_month(month))
    new_meta = data.new_metadata("<ledger.seal>", 0)
    new_meta.update(meta or {})
    typed = [ValueType(v, type(v)) for v in values]
    return data.Custom(new_meta, date, type_, typed)


def seal_directive(month: str, previous: str, this: str) -> data.Custom:
    """``YYYY-MM-01 custom "meterbook-seal" "<month>" "<previous>" "<this>"``, dated the next
    month's 1st."""
    return _custom(SEAL, month, [month, previous, this])


def manifest_directive(month: str, lines: Sequence[str]) -> data.Custom:
    """The manifest of ``month``: ``custom "meterbook-seal-manifest" "<month>" <count>`` with
    ``eN`` lines."""
    meta = {f"e{i}": line for i, line in enumerate(lines, start=1)}
    return _custom(MANIFEST, month, [month, Decimal(len(lines))], meta)


def build_seal(
    month: str, entries_of_ledger: Iterable[data.Directive], previous_hash: str
) -> list[data.Directive]:
    """The manifest and seal directives that seal ``month``, ready to print at the end of its
    close file.

    ``entries_of_ledger`` are the entries as Beancount loads them from the
    books, the close file's balance assertions included, so that the plugin
    recomputes exactly what is sealed here. ``previous_hash`` is the hash of
    the previous month's seal, or :data:`GENESIS` for the first.
    """
    if not is_month(month):
        raise ValueError(f"{month!r} is not a month (YYYY-MM)")
    if not _HASH.fullmatch(previous_hash):
        raise ValueError(f"{previous_hash!r} is not a seal hash (64 hex digits)")
    entries = sealed_entries(entries_of_ledger, month)
    this = seal_hash(month, previous_hash, month_digest(entries))
    return [
        manifest_directive(month, manifest(entries)),
        seal_directive(month, previous_hash, this),
    ]


# -- verification -------------------------------------------------------------


def read_seals(entries: Iterable[data.Directive]) -> tuple[list[Seal], list[SealError]]:
    """Every well-formed seal directive, sorted by month, and errors for malformed ones."""
    seals: list[Seal] = []
    errors: list[SealError] = []
    for entry in entries:
        if not (isinstance(entry, data.Custom) and entry.type == SEAL):
            continue
        values = [v.value for v in entry.values]
        if (
            len(values) == 3
            and is_month(values[0])
            and all(isinstance(v, str) and _HASH.fullmatch(v) for v in values[1:])
        ):
            seals.append(Seal(values[0], values[1], values[2], entry))
        else:
            errors.append(
                SealError(
                    entry.meta,
                    'malformed seal: expected custom "meterbook-seal" '
                    '"YYYY-MM" "<previous hash>" "<this hash>"',
                    entry,
                )
            )
    seals.sort(key=lambda s: s.month)
    return seals, errors


def latest_seal(entries: Iterable[data.Directive]) -> Seal | None:
    """The seal of the last sealed month, or None when nothing is sealed."""
    seals, _ = read_seals(entries)
    return seals[-1] if seals else None


def located(error: SealError) -> str:
    """``<file>:<line>: <message>``, as bean-check prints it (no location for generated entries)."""
    source = error.source or {}
    filename, lineno = source.get("filename"), source.get("lineno")
    if not filename or str(filename).startswith("<"):
        return error.message
    return f"{filename}:{lineno}: {error.message}"


def _describe(line: str) -> str:
    date, kind, text = _manifest_key(line)
    return f'{date} {kind} "{text}"' if text else f"{date} {kind}"


def _content_error(
    seal: Seal, stored: list[str], current: dict[str, list[data.Directive]]
) -> SealError:
    """Name the first entry that differs between the manifest and the entries as loaded."""
    now = Counter({line: len(found) for line, found in current.items()})
    removed = Counter(stored) - now
    added = now - Counter(stored)
    removed_keys = {_manifest_key(line) for line in removed}
    added_keys = {_manifest_key(line) for line in added}
    differences = [
        (_manifest_key(line), "changed" if _manifest_key(line) in removed_keys else "added", line)
        for line in added
    ]
    differences += [
        (_manifest_key(line), "removed", line)
        for line in removed
        if _manifest_key(line) not in added_keys
    ]
    count = len(differences)
    plural = "difference" if count == 1 else "differences"
    if not differences:  # the manifest was only reordered: it cannot say what changed
        return SealError(
            seal.entry.meta,
            f"month {seal.month} is sealed but its entries or its seal line changed",
            seal.entry,
        )
    _key, what, line = min(differences)
    if what == "removed":
        return SealError(
            seal.entry.meta,
            f"month {seal.month} is sealed but an entry was removed: "
            f"{_describe(line)} ({count} {plural})",
            seal.entry,
        )
    entry = current[line][0]
    return SealError(
        entry.meta,
        f"month {seal.month} is sealed but an entry was {what}: "
        f"{_describe(line)} ({count} {plural})",
        entry,
    )


def check(entries: Sequence[data.Directive]) -> tuple[list[SealStatus], list[SealError]]:
    """Verify every seal and the chain; one status per sealed month, and the errors."""
    seals, errors = read_seals(entries)
    by_month: dict[str, list[data.Directive]] = defaultdict(list)
    manifests: dict[str, list[data.Custom]] = defaultdict(list)
    for entry in entries:
        if isinstance(entry, data.Custom) and entry.type == MANIFEST:
            if entry.values and is_month(entry.values[0].value):
                manifests[str(entry.values[0].value)].append(entry)
            continue
        month = period_of(entry)
        if month is not None:
            by_month[month].append(entry)

    statuses: list[SealStatus] = []
    prior: Seal | None = None
    for seal in seals:
        problems: list[SealError] = []

        def fail(message: str, at: data.Directive, problems: list[SealError] = problems) -> None:
            problems.append(SealError(at.meta, message, at))

        # The chain: consecutive months, each pointing at the prior seal's recorded hash.
        if prior is None:
            if seal.previous != GENESIS:
                fail(
                    f"month {seal.month}: seal chain broken: the first seal's previous hash is "
                    f"{seal.previous[:16]}…, not the genesis hash (was an earlier seal removed?)",
                    seal.entry,
                )
        elif prior.month == seal.month:
            fail(f"month {seal.month} is sealed twice", seal.entry)
        else:
            if next_month(prior.month) != seal.month:
                fail(
                    f"month {seal.month}: seal chain broken: no seal for {next_month(prior.month)} "
                    f"between {prior.month} and {seal.month}",
                    seal.entry,
                )
            if seal.previous != prior.hash:
                fail(
                    f"month {seal.month}: seal chain broken: "
                    f"previous hash {seal.previous[:16]}… is not "
                    f"the {prior.month} seal hash {prior.hash[:16]}…",
                    seal.entry,
                )

        # The content and the seal line.
        lines: list[str] = []
        current: dict[str, list[data.Directive]] = defaultdict(list)
        for entry in by_month.get(seal.month, []):
            kind, line = _canonical(entry)
            lines.append(line)
            current[_manifest_line(entry, kind, line)].append(entry)
        now = sorted(line for line, found in current.items() for _ in found)
        found_manifests = manifests.pop(seal.month, [])
        stored = read_manifest(found_manifests[0]) if found_manifests else None
        recomputed = seal_hash(seal.month, seal.previous, _digest(lines))
        if len(found_manifests) > 1:
            fail(
                f"month {seal.month} has {len(found_manifests)} seal manifests", found_manifests[1]
            )
        if recomputed != seal.hash:
            if stored is None:
                fail(
                    f"month {seal.month} is sealed but its entries or its seal line changed "
                    "(no manifest to name the entry)",
                    seal.entry,
                )
            elif stored != now:
                problems.append(_content_error(seal, stored, current))
            else:
                fail(
                    f"month {seal.month}: seal line altered: recorded hash {seal.hash[:16]}…, "
                    f"recomputed {recomputed[:16]}…",
                    seal.entry,
                )
        elif stored is None:
            fail(f"month {seal.month}: seal manifest missing", seal.entry)
        elif stored != now:
            fail(
                f"month {seal.month}: seal manifest altered "
                "(it no longer lists the sealed entries)",
                found_manifests[0],
            )

        errors.extend(problems)
        statuses.append(
            SealStatus(
                seal.month, seal.hash, not problems, located(problems[0]) if problems else ""
            )
        )
        prior = seal

    for month, orphans in sorted(manifests.items()):
        errors.append(
            SealError(orphans[0].meta, f"month {month}: seal manifest without a seal", orphans[0])
        )
    return statuses, errors


# -- what else a seal covers: documents, close report, the plugin itself --------------


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def report_digest(text: str, seal_hash: str) -> str:
    """SHA-256 of a close report with its own seal hash replaced by :data:`REPORT_PLACEHOLDER`.

    The report prints the seal hash, and the seal covers the report's hash: so the
    report is hashed as rendered with the placeholder, before the seal exists, and
    checked by putting the placeholder back::

        >>> pending, final = "Seal: <meterbook seal hash>", "Seal: " + "ab" * 32
        >>> report_digest(pending, "ab" * 32) == report_digest(final, "ab" * 32)
        True
    """
    return hashlib.sha256(text.replace(seal_hash, REPORT_PLACEHOLDER).encode("utf-8")).hexdigest()


def _books_relative(path: str, books_dir: str) -> str:
    return os.path.relpath(path, books_dir).replace(os.sep, "/")


def covered_documents(entries: Iterable[data.Directive], month: str, books_dir: str) -> list[str]:
    """The documents the seal of ``month`` covers, relative to the books folder: the file of
    every ``document`` entry of the month (the HTML) and its ``.json`` twin when there is one."""
    found: set[str] = set()
    for entry in entries:
        if isinstance(entry, data.Document) and period_of(entry) == month:
            found.add(_books_relative(entry.filename, books_dir))
            twin = os.path.splitext(entry.filename)[0] + ".json"
            if os.path.exists(twin):
                found.add(_books_relative(twin, books_dir))
    return sorted(found)


def coverage_text(
    month: str,
    books_dir: str,
    entries: Iterable[data.Directive],
    report: tuple[str, str],
    sealed_before: int,
) -> str:
    """The close-file lines written with the seal: the documents directive and the guard assertion.

    ``report``: the close report's path relative to the books folder and its text with
    :data:`REPORT_PLACEHOLDER` for the seal hash; ``sealed_before``: how many months the
    chain seals before ``month``. For October 2026, the third sealed month::

        2026-11-01 custom "meterbook-seal-documents" "2026-10" 2
          d1: "documents/INV-2026-000007.html 5e1c…(sha256)"
          d2: "documents/INV-2026-000007.json 0b7a…"
          report: "2026/2026-10.close.md 93d0…"

        ; Credited only by plugin "ledger.seal" once it checked every seal through 2026-10:
        ; loaded without the plugin (bean-check, Fava), these books fail here.
        2026-11-01 balance Equity:Meterbook:Seals-Verified  3 SEAL
    """
    day = month_start(next_month(month)).isoformat()
    files = covered_documents(entries, month, books_dir)
    lines = [f'{day} custom "{DOCUMENTS}" "{month}" {len(files)}']
    lines += [
        f'  d{n}: "{path} {file_digest(os.path.join(books_dir, path))}"'
        for n, path in enumerate(files, 1)
    ]
    report_path, report_text = report
    lines.append(f'  report: "{report_path} {report_digest(report_text, REPORT_PLACEHOLDER)}"')
    lines += [
        "",
        f'; Credited only by plugin "ledger.seal" once it checked every seal through {month}:',
        "; loaded without the plugin (bean-check, Fava), these books fail here.",
        f"{day} balance {GUARD_ACCOUNT}  {sealed_before + 1} {GUARD_CURRENCY}",
    ]
    return "\n".join(lines) + "\n"


class Coverage(NamedTuple):
    """A sealed month's documents directive, checked against the files: ``problems`` empty when
    all match."""

    month: str
    files: int
    problems: tuple[str, ...]


def check_documents(
    entries: Sequence[data.Directive],
    books_dir: str,
) -> tuple[list[Coverage], list[SealError]]:
    """Hash every file a ``meterbook-seal-documents`` directive lists and compare; the close
    report with its month's seal hash put back to the placeholder (:func:`report_digest`)."""
    seals = {seal.month: seal.hash for seal in read_seals(entries)[0]}
    coverages: list[Coverage] = []
    errors: list[SealError] = []
    for entry in entries:
        if not (
            isinstance(entry, data.Custom)
            and entry.type == DOCUMENTS
            and entry.values
            and is_month(entry.values[0].value)
        ):
            continue
        month = str(entry.values[0].value)
        problems: list[str] = []
        listed = [
            (key, value)
            for key, value in (entry.meta or {}).items()
            if (re.fullmatch(r"d\d+", key) or key == "report") and isinstance(value, str)
        ]
        for key, value in listed:
            path, _, recorded = value.rpartition(" ")
            full = os.path.join(books_dir, path)
            try:
                if key == "report":
                    with open(full, encoding="utf-8") as handle:
                        found = report_digest(handle.read(), seals.get(month, REPORT_PLACEHOLDER))
                else:
                    found = file_digest(full)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(
                    f"month {month} is sealed but its document {path} cannot be read: "
                    f"{getattr(exc, 'strerror', None) or exc}"
                )
                continue
            if found != recorded:
                what = "close report" if key == "report" else "document"
                problems.append(
                    f"month {month} is sealed but its {what} {path} was changed "
                    f"(sha256 {found[:16]}…, sealed {recorded[:16]}…)"
                )
        errors.extend(SealError(entry.meta, problem, None) for problem in problems)
        coverages.append(
            Coverage(month, sum(1 for key, _value in listed if key != "report"), tuple(problems))
        )
    return coverages, errors


def guard_entries(statuses: Sequence[SealStatus]) -> list[data.Directive]:
    """What the plugin adds once it has checked the chain: the two guard accounts, opened on
    the first sealed month's first day, and ``1 SEAL`` to :data:`GUARD_ACCOUNT` on the last
    day of each sealed month it checked. A broken seal is already a load error of its own, so
    its month is credited too (one error per problem); what the guard catches is a load
    without the plugin, where nothing credits it and every close file's assertion fails."""
    if not statuses:
        return []
    meta = {"filename": "<ledger.seal>", "lineno": 0, GUARD_MARK: True}
    opened = month_start(statuses[0].month)
    added: list[data.Directive] = [
        data.Open(dict(meta), opened, account, [], None) for account in sorted(GUARD_ACCOUNTS)
    ]
    for status in statuses:
        last = month_start(next_month(status.month)) - datetime.timedelta(days=1)
        one = Decimal(1)
        added.append(
            data.Transaction(
                dict(meta),
                last,
                "*",
                None,
                f"ledger.seal checked the seal of {status.month}",
                frozenset(),
                frozenset(),
                [
                    data.Posting(
                        GUARD_ACCOUNT, Amount(one, GUARD_CURRENCY), None, None, None, None
                    ),
                    data.Posting(
                        GUARD_SOURCE, Amount(-one, GUARD_CURRENCY), None, None, None, None
                    ),
                ],
            )
        )
    return added


def verify_seals(entries: Sequence[data.Directive]) -> list[SealStatus]:
    """One status per sealed month, in month order: for ``meterbook check`` and the Fava page."""
    return check(entries)[0]


def seal(
    entries: list[data.Directive], options_map: dict[str, Any]
) -> tuple[list[data.Directive], list[SealError]]:
    """Beancount plugin: recompute every seal; a broken one is a load error.

    Args:
      entries: The loaded directives.
      options_map: The options map (unused).
    Returns:
      The entries plus the guard entries (:func:`guard_entries`), and a list of
      :class:`SealError`: broken seals, then sealed documents whose hash changed.
    """
    statuses, errors = check(entries)
    main = (options_map or {}).get("filename")
    if isinstance(main, str) and os.path.isabs(main):
        errors.extend(check_documents(entries, os.path.dirname(main))[1])
    return [*entries, *guard_entries(statuses)], errors
