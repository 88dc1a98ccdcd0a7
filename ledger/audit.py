"""The auditor's check and the store-to-ledger tie-out: ``meterbook check``.

The books are derived from the event store; an auditor re-derives them and
compares. ``meterbook check`` prints one line per check, ok or FAILED, with what
it found (the demo's books, October open)::

    ok      bean-check
    ok      seals (2 sealed months)
              2026-08 3ad7c44924e8814f… ok, 26 documents and the close report
              2026-09 59ca7353c00a7b34… ok, 52 documents and the close report
    ok      rules
              40 customers, 7 plans, rules 62fc21163a215779
    …
    ok      issued invoices in the books
              70 invoices through 2026-10-31
    ok      store-to-ledger tie-out
              59 balances through 2026-10-31
    all checks passed

The range audited is taken from the store, never from the books under audit
(:func:`audit_through`): the last day of the latest seal the store recorded, the
day it recorded the books posted through and the latest issued invoice. Emptying
October's file above (or cutting it short) leaves the range at 2026-10-31, so
``issued invoices in the books`` reports the 31 October invoices the books lost,
``books as posted`` names ``2026/2026-10.beancount`` and the tie-out differs per
customer: check exits 1.

The tie-out recomputes every per-customer unbilled, contract-asset and receivable
balance from the store and the rating (:func:`regenerated_entries`, as if no
month were sealed) and compares it with the books at the end of the range
(:func:`tie_out_balances`); the close asserts the same recomputation
(:func:`ledger.closing.expected_balances`) and the ``store-vs-ledger`` reconciler
reads it through :meth:`ledger.reconcile.ReconcileContext.tie_out`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beancount.core import data
from sqlalchemy import Engine, select

from ledger import books, seal
from ledger.errors import MeterbookError
from ledger.facts.invoices import load_invoices
from ledger.journal.summary import control_accounts, control_balances
from ledger.money import ZERO
from ledger.period import Month, is_month
from ledger.reconcile import CheckResult, TiedBalance
from ledger.store import meta as meta_table

if TYPE_CHECKING:
    from ledger.rules import Rules
    from ledger.session import Session
    from ledger.workspace import Workspace

#: Account kinds per customer that get a closing balance assertion (and revenue: every
#: Income account).
ASSERTED_KINDS = ("unbilled", "contract_asset", "receivable", "deferred", "refund_liability")
#: Account kinds the store-to-ledger tie-out compares per customer.
TIE_OUT_KINDS = ("unbilled", "contract_asset", "receivable")
TIE_OUT = "store-to-ledger tie-out"


# --- the store's side ------------------------------------------------------------------


def regenerated_entries(session: Session, through: date) -> list[data.Directive]:
    """Every entry through ``through`` re-derived from the store, the rating, the issued
    invoices, payments and credit notes, as if no month were sealed (never read from the
    books).

    Late entries of invoiced cycles are dated at their invoice, not at the first open
    day: the books dated each at the first open day *of the run that posted it*, which
    a later seal moves, so only the cumulative balances from the first open day on
    agree — which is what close asserts and check compares."""
    return session.regenerate(through, evidence=False, first_open=date.min, documents=False)[0]


def account_kinds(rules: Rules) -> dict[str, tuple[str, str]]:
    """Per-customer account → (kind, customer) for the kinds the close and check look at."""
    kinds: dict[str, tuple[str, str]] = {}
    for customer in rules.customers:
        for kind in ASSERTED_KINDS:
            kinds[rules.account(kind, customer=customer)] = (kind, customer)
    return kinds


def control_kinds(rules: Rules) -> dict[str, tuple[str, str]]:
    """Summary books: control account → (kind, ``""``) for the kinds the close asserts."""
    control = control_accounts(rules)
    return {
        control(rules.account(kind, customer=customer)): (kind, "")
        for customer in rules.customers
        for kind in ASSERTED_KINDS
    }


def balances_before(
    entries: Iterable[data.Directive], before: date
) -> dict[tuple[str, str], Decimal]:
    """Every account's balance per currency over the transactions dated before ``before``.

    >>> from beancount.parser import parser
    >>> entries, _errors, _options = parser.parse_string('''
    ... 2026-10-31 * "acme" "Usage accrual"
    ...   Assets:Receivables:Unbilled:Acme   13.20 USD
    ...   Income:Usage:Api-Calls            -13.20 USD
    ... 2026-11-01 * "acme" "Invoice INV-1"
    ...   Assets:Receivables:Invoiced:Acme   13.20 USD
    ...   Assets:Receivables:Unbilled:Acme  -13.20 USD
    ... ''')
    >>> balances_before(entries, date(2026, 11, 1))[("Assets:Receivables:Unbilled:Acme", "USD")]
    Decimal('13.20')
    >>> balances_before(entries, date(2026, 11, 2))[("Assets:Receivables:Unbilled:Acme", "USD")]
    Decimal('0.00')
    """
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for entry in entries:
        if isinstance(entry, data.Transaction) and entry.date < before:
            for p in entry.postings:
                if p.units is not None and isinstance(p.units.number, Decimal):
                    totals[(p.account, p.units.currency)] += p.units.number
    return totals


def recorded_seals(engine: Engine) -> dict[str, str]:
    """``{month: seal hash}`` of every seal the store recorded at close (``meta`` keys
    ``seal:YYYY-MM``, :func:`ledger.closing.record_seal`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(meta_table.c.key, meta_table.c.value).where(meta_table.c.key.like("seal:%"))
        )
        return {row.key[5:]: row.value for row in rows}


def audit_through(session: Session) -> date | None:
    """The last day ``check`` audits, from the store alone (None: the store records nothing).

    The latest of: the last day of the latest seal the store recorded, the day it
    recorded the books posted through (:meth:`ledger.session.Session.posted_through`)
    and the latest issued invoice (an invoice is written into the books in the same
    unit that issues it). Never the books' own last date: books truncated or emptied
    behind the store's back would shrink the range to what is left of them. Credit
    notes, payments and cash applications are posted with the next ``post``, so they
    count once it has posted them (through the posted-through day).
    """
    dates = [inv.date for inv in session.stored_facts().invoices]
    seals = recorded_seals(session.engine)
    if seals:
        dates.append(Month.parse(max(seals)).last)
    posted = session.posted_through()
    if posted is not None:
        dates.append(posted)
    return max(dates, default=None)


def tie_out_balances(
    session: Session, entries: Sequence[data.Directive], through: date
) -> list[TiedBalance]:
    """Every per-customer unbilled, contract-asset and receivable balance at the end of
    ``through`` that either side has, store (:func:`regenerated_entries`) and books."""
    day = through + timedelta(days=1)
    expected = balances_before(regenerated_entries(session, through), day)
    actual = balances_before(entries, day)
    if session.workspace.summary_books:
        return control_tie_out(session.rules, expected, actual, through)
    kinds = {a: k for a, k in account_kinds(session.rules).items() if k[0] in TIE_OUT_KINDS}
    return [
        TiedBalance(
            kinds[account][1],
            kinds[account][0],
            account,
            currency,
            through,
            expected.get((account, currency), ZERO),
            actual.get((account, currency), ZERO),
        )
        for account, currency in sorted({k for k in (*expected, *actual) if k[0] in kinds})
    ]


def control_tie_out(
    rules: Rules,
    expected: dict[tuple[str, str], Decimal],
    actual: dict[tuple[str, str], Decimal],
    through: date,
) -> list[TiedBalance]:
    """Summary books: each control account (and revenue account) at the end of ``through``,
    the sum of the per-customer sub-ledger derived from the store (``expected``, per-customer
    balances) against the books (``actual``); ``customer`` is ``""`` and ``kind`` the control
    account's kind (``revenue`` for an ``Income:`` account)."""
    expected = control_balances(expected, rules)
    control = control_accounts(rules)
    kinds = {account: kind for account, (kind, _c) in control_kinds(rules).items()}
    tied = []
    for account, currency in sorted({*expected, *actual}):
        kind = kinds.get(account) or ("revenue" if account.startswith("Income:") else None)
        if kind is None or control(account) != account:
            continue
        tied.append(
            TiedBalance(
                "",
                kind,
                account,
                currency,
                through,
                expected.get((account, currency), ZERO),
                actual.get((account, currency), ZERO),
            )
        )
    return tied


# --- the check -------------------------------------------------------------------------


def error_line(error: Any) -> str:
    """A Beancount load error as one line, ``file:line: message`` when it has a source."""
    source = getattr(error, "source", None) or {}
    where = f"{source.get('filename')}:{source.get('lineno')}: " if source.get("filename") else ""
    return f"{where}{getattr(error, 'message', error)}"


def check_books(workspace: Workspace) -> list[CheckResult]:
    """bean-check, seals, rules, pinned plan terms, the store of record and the store-to-ledger
    tie-out, each a :class:`~ledger.reconcile.CheckResult`."""
    from ledger.session import Session

    main = workspace.main_file
    entries: list[data.Directive] = []
    details: list[str] = []
    if not main.exists():
        results = [
            CheckResult("bean-check", False, (f"{main} does not exist; run meterbook post",))
        ]
    else:
        entries, errors, options = books.load_books(main)  # always with the pickle cache off
        results = [CheckResult("bean-check", not errors, tuple(error_line(e) for e in errors))]
        if "ledger.seal" not in [name for name, _config in options.get("plugin", [])]:
            details.append(
                f'{main}: plugin "ledger.seal" is not declared: bean-check and Fava do not '
                "verify the seals (`meterbook post` writes main.beancount again)"
            )
    ok = not details
    statuses = seal.verify_seals(entries)
    ok = _seals_in_books(workspace, entries, statuses, details) and ok
    session: Session | None = None
    try:
        session = Session.open(workspace)
    except MeterbookError as exc:
        results.append(CheckResult("rules", False, (str(exc),)))
    if session is None:
        return _without_session(results, statuses, ok, details)
    with session.command():  # one command: the issued facts are read once
        return _with_session(session, entries, results, statuses, ok, details)


def _without_session(
    results: list[CheckResult],
    statuses: Sequence[seal.SealStatus],
    ok: bool,
    details: list[str],
) -> list[CheckResult]:
    summary = f"{len(statuses)} sealed month{'s' if len(statuses) != 1 else ''}"
    results.insert(1, CheckResult(f"seals ({summary})", ok, tuple(details)))
    results.append(CheckResult(TIE_OUT, False, ("skipped: the rules do not load",)))
    return results


def _with_session(
    session: Session,
    entries: Sequence[data.Directive],
    results: list[CheckResult],
    statuses: Sequence[seal.SealStatus],
    ok: bool,
    details: list[str],
) -> list[CheckResult]:
    ok = _seals_in_store(session, statuses, details) and ok
    summary = f"{len(statuses)} sealed month{'s' if len(statuses) != 1 else ''}"
    results.insert(1, CheckResult(f"seals ({summary})", ok, tuple(details)))
    rules = session.rules
    results.append(
        CheckResult(
            "rules",
            True,
            (f"{len(rules.customers)} customers, {len(rules.plans)} plans, rules {rules.hash}",),
        )
    )
    results += _stage_checks(session)
    record = store_of_record(session)
    results.append(record)
    if not record.ok:
        results.append(CheckResult(TIE_OUT, False, ("skipped: the store is not the books' own",)))
        return results
    results.append(issued_in_books(session, entries))
    results.append(documents_as_issued(session, entries))
    results.append(books_as_posted(session))
    results.append(tie_out(session, entries))
    return results


def _seals_in_books(
    workspace: Workspace,
    entries: Sequence[data.Directive],
    statuses: Sequence[seal.SealStatus],
    details: list[str],
) -> bool:
    """Every seal of the books verified with its documents, and no close file left without
    its seal; one line per sealed month (and per problem) added to ``details``."""
    coverage = {c.month: c for c in seal.check_documents(entries, str(workspace.books_dir))[0]}
    ok = True
    for s in statuses:
        covered = coverage.get(s.month)
        if not s.ok:
            details.append(f"{s.month} {s.hash[:16]}… FAILED: {s.message}")
        elif covered is None:
            details.append(
                f"{s.month} {s.hash[:16]}… ok (sealed before seals covered documents: its "
                "documents and close report are not verified)"
            )
        elif covered.problems:
            details.extend(f"{s.month} {s.hash[:16]}… FAILED: {p}" for p in covered.problems)
        else:
            details.append(
                f"{s.month} {s.hash[:16]}… ok, {covered.files} documents and the close report"
            )
        ok = ok and s.ok and not (covered is not None and covered.problems)
    sealed_in_books = books.sealed_months(workspace.books_dir)
    for path in sorted(workspace.books_dir.glob("[0-9][0-9][0-9][0-9]/*.close.beancount")):
        month = path.name[:7]
        if is_month(month) and month not in sealed_in_books:
            ok = False
            details.append(
                f"{path.relative_to(workspace.root)}: a close file without a seal: the close of "
                f"{month} stopped half-way; run `meterbook close {month}` to finish it"
            )
    return ok


def _seals_in_store(
    session: Session, statuses: Sequence[seal.SealStatus], details: list[str]
) -> bool:
    """The books' seals are the ones the store recorded at close: a removed or rewritten
    latest seal shows here (one line per difference added to ``details``)."""
    recorded = recorded_seals(session.engine)
    in_books = {s.month: s.hash for s in statuses}
    ok = True
    for month, hash_ in sorted(recorded.items()):
        found = in_books.get(month)
        if found != hash_:
            ok = False
            details.append(
                f"{month}: the store recorded seal {hash_[:16]}… at close, the books have "
                + (f"{found[:16]}…" if found else "no seal")
            )
    for month in sorted(set(in_books) - set(recorded)):
        ok = False
        details.append(
            f"{month}: sealed in the books, but the store has no record of that seal: the close "
            f"of {month} did not finish (run `meterbook close {month}` to finish it) or the seal "
            "was not written by this store's close"
        )
    return ok


def _stage_checks(session: Session) -> list[CheckResult]:
    """The stages' own checks: pinned plan terms (:mod:`ledger.pins`), rerated lines
    (:mod:`ledger.rerate`), subscriptions as invoiced (:mod:`ledger.subscriptions`)."""
    from ledger.pins import pinned_terms_check
    from ledger.rerate import rerated_lines_check
    from ledger.subscriptions import subscriptions_check

    return [
        pinned_terms_check(session),
        rerated_lines_check(session),
        subscriptions_check(session),
    ]


def store_of_record(session: Session) -> CheckResult:
    """Every invoice, credit note, debit adjustment and payment the sealed books name is in
    the store (:meth:`ledger.session.Session.unknown_records`)."""
    name = "store of record"
    missing = session.unknown_records()
    if missing:
        return CheckResult(
            name,
            False,
            (
                f"{len(missing)} invoices, notes or payments sealed in the books are not in the "
                "store (the books were posted from another store; restore it)",
                *missing[:5],
                *([f"… and {len(missing) - 5} more"] if len(missing) > 5 else []),
            ),
        )
    return CheckResult(
        name,
        True,
        (
            "every invoice, credit note, debit adjustment and payment of the sealed months "
            "is in the store",
        ),
    )


def issued_in_books(session: Session, entries: Sequence[data.Directive]) -> CheckResult:
    """Every invoice the store issued through :func:`audit_through` has its transaction in
    the books."""
    through = audit_through(session)
    issued = [
        inv.number
        for inv in session.stored_facts().invoices
        if through is not None and inv.date <= through
    ]
    posted = {
        e.meta.get("invoice")
        for e in entries
        if isinstance(e, data.Transaction) and "reference" not in e.meta
    }
    if session.workspace.summary_books:
        posted = summarized_invoices(session, entries, issued)
    missing = [number for number in issued if number not in posted]
    name = "issued invoices in the books"
    if missing:
        return CheckResult(
            name,
            False,
            (
                f"{len(missing)} of the {len(issued)} invoices the store issued through "
                f"{through} are not in the books (books truncated or not re-posted since; "
                "`meterbook post` rewrites them from the store)",
                ", ".join(missing[:10])
                + (f" … and {len(missing) - 10} more" if len(missing) > 10 else ""),
            ),
        )
    return CheckResult(name, True, (f"{len(issued)} invoices through {through}",))


def summarized_invoices(
    session: Session, entries: Sequence[data.Directive], issued: Sequence[str]
) -> set[object]:
    """Summary books: the issued invoices the books' invoice summaries add up. A day's
    invoices are in the books when its summaries' ``entries`` count them all and their
    ``invoices`` range spans them (``trace SUM-…`` lists them one by one)."""
    by_day: dict[date, list[str]] = defaultdict(list)
    for inv in load_invoices(session.engine):
        if inv.number in issued:
            by_day[inv.date].append(inv.number)
    counted: dict[date, int] = defaultdict(int)
    spans: dict[date, list[tuple[str, str]]] = defaultdict(list)
    for e in entries:
        if isinstance(e, data.Transaction) and e.meta.get("summary") == "invoice":
            counted[e.date] += int(e.meta.get("entries", 0))
            first, _, last = str(e.meta.get("invoices", "")).partition("..")
            spans[e.date].append((first, last))
    found: set[object] = set()
    for day, numbers in by_day.items():
        inside = [n for n in numbers if any(a <= n <= b for a, b in spans[day])]
        if counted[day] >= len(numbers):
            found.update(inside)
    return found


def _says_the_same(sealed_file: Path, current: str) -> bool:
    """True when every field of the sealed JSON document has the same value in ``current``
    (the store's record rendered now); fields only ``current`` has are new, not compared. A
    sealed file that cannot be read is the seal check's to report.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "INV-1.json"
    >>> _ = path.write_text('{"lines":[{"amount":"13.82"}],"total":"149.00"}')
    >>> _says_the_same(path, '{"lines":[{"amount":"13.82"}],"total":"149.00","tax":[]}')
    True
    >>> _says_the_same(path, '{"lines":[{"amount":"1.82"}],"total":"149.00"}')
    False
    """

    def covered(old: object, new: object) -> bool:
        if isinstance(old, dict):
            return isinstance(new, dict) and all(
                k in new and covered(v, new[k]) for k, v in old.items()
            )
        if isinstance(old, list):
            return isinstance(new, list) and len(old) == len(new) and all(map(covered, old, new))
        return old == new

    try:
        sealed = json.loads(sealed_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    try:
        return covered(sealed, json.loads(current))
    except ValueError:
        return False


def books_as_posted(session: Session) -> CheckResult:
    """``main.beancount``, ``accounts.beancount`` and every open month's file are exactly
    what ``post`` writes from the store through the day it recorded
    (:meth:`ledger.session.Session.posted_through`): an entry forged into an open month on
    accounts the tie-out does not compare (revenue against the bank), an extra ``include``
    or an ``option`` added to ``main.beancount`` (a tolerance that hides a difference) fail
    here."""
    name = "books as posted"
    through = session.posted_through()
    if through is None:
        return CheckResult(name, True, ("the store records no post yet",))
    try:
        differs = session.unposted(through)
    except MeterbookError as exc:
        return CheckResult(name, False, (f"the books cannot be generated again: {exc}",))
    if differs:
        return CheckResult(
            name,
            False,
            (
                f"{len(differs)} files differ from what `meterbook post --through {through}` "
                "writes from the store (edited by hand, or events stored since the last post): "
                + ", ".join(differs[:10])
                + (f" … and {len(differs) - 10} more" if len(differs) > 10 else ""),
            ),
        )
    return CheckResult(
        name, True, (f"main.beancount, accounts.beancount and the open months through {through}",)
    )


def documents_as_issued(session: Session, entries: Sequence[data.Directive]) -> CheckResult:
    """Every document not under a seal (the seals verify theirs by hash) holds exactly what the
    store issued, as ``post`` writes it: an invoice's HTML — the copy the customer reads — or
    JSON edited in an open month, replaced or removed fails here; so does a file in
    ``books/documents`` that nothing in the store issued."""
    through = audit_through(session)
    books_dir = session.workspace.books_dir
    expected = session.issued_documents(through) if through is not None else {}
    sealed = books.sealed_documents(books_dir)
    problems: list[str] = []
    for relative, content in sorted(expected.items()):
        if relative in sealed:
            # the JSON is the store's record: the store must still say what was sealed (every
            # field the sealed copy has; a field a later meterbook added is not compared)
            if relative.endswith(".json") and not _says_the_same(books_dir / relative, content):
                problems.append(
                    f"{relative}: the store's record differs from the sealed document "
                    "(the store was edited after the close)"
                )
            continue
        try:
            found = (books_dir / relative).read_bytes()
        except OSError as exc:
            problems.append(f"{relative}: cannot be read: {exc.strerror or exc}")
            continue
        if found != content.encode("utf-8"):
            problems.append(f"{relative}: differs from the document the store issued")
    folder = books_dir / "documents"
    # everything issued, a credit note dated after `through` too, and the PDF print of each
    issued = {*session.issued_document_names(), *sealed}
    extra = (
        sorted(
            p.relative_to(books_dir).as_posix()
            for p in folder.glob("*")
            if not p.name.startswith(".")
        )
        if folder.is_dir()
        else []
    )
    problems += [
        f"{relative}: not a document the store issued (put there by hand, or left by a "
        "command stopped before its store commit: remove it)"
        for relative in extra
        if relative not in issued
    ]
    name = "documents as issued"
    if problems:
        return CheckResult(
            name,
            False,
            (
                f"{len(problems)} documents do not match the store (`meterbook post` writes the "
                "open months' documents again)",
                *problems[:10],
                *([f"… and {len(problems) - 10} more"] if len(problems) > 10 else []),
            ),
        )
    checked = sum(1 for relative in expected if relative not in sealed)
    return CheckResult(
        name, True, (f"{checked} documents of open months as issued, {len(sealed)} under seals",)
    )


def tie_out(session: Session, entries: Sequence[data.Directive]) -> CheckResult:
    """Per customer unbilled, contract-asset and receivable balances: store + rating vs books.

    Both sides are taken at the end of :func:`audit_through`, a day the store gives (books
    that miss events ingested since the last ``post``, or were truncated, do not tie out).
    Books with postings when the store records no post, no seal and no invoice were not
    posted from this store.
    """
    through = audit_through(session)
    if through is None:
        posted = sum(1 for e in entries if isinstance(e, data.Transaction))
        if posted:
            return CheckResult(
                TIE_OUT,
                False,
                (
                    f"the books hold {posted} transactions, but the store records no post, no "
                    "seal and no invoice: they were not posted from this store (`meterbook "
                    "post` writes them from it)",
                ),
            )
        return CheckResult(TIE_OUT, True, ("the books have no postings yet",))
    compared = tie_out_balances(session, entries, through)
    problems = [
        f"{b.customer} {b.kind} {b.account}: store {b.store} {b.currency}, books {b.books} "
        f"{b.currency} (difference {b.books - b.store})"
        for b in compared
        if b.store != b.books
    ]
    note = f"{len(compared)} balances through {through}"
    return CheckResult(TIE_OUT, not problems, (note, *problems))
