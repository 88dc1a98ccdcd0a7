"""The ``meterbook`` command line: one click group, each command a thin function
that parses arguments and calls the engine.

Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage or
bad input. Errors are one line naming what is wrong and where.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ledger.errors import BadInput, MeterbookError
from ledger.escaping import for_terminal
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.session import Session


class CommandError(click.ClickException):
    """A :class:`MeterbookError` shown as one line with its exit code."""

    def __init__(self, error: MeterbookError):
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"meterbook: error: {self.format_message()}", err=True)


def os_error_message(exc: OSError) -> str:
    """``<path>: <strerror>`` (both paths of a rename), or the error itself without a path.

    >>> os_error_message(IsADirectoryError(21, "Is a directory", "rules/plans.yaml"))
    'rules/plans.yaml: Is a directory'
    """
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where = f"{where} -> {os.fsdecode(exc.filename2)}"
        return f"{where}: {text}"
    return text


def store_error_message(exc: Exception, context: Context | None) -> str | None:
    """One line for an error the database raised (a read-only or full store, a write that
    raced another), or None when ``exc`` is not one. The failed transaction was rolled back.

    >>> import sqlite3
    >>> from sqlalchemy.exc import OperationalError
    >>> error = OperationalError(
    ...     "INSERT ...", {}, sqlite3.OperationalError("attempt to write a readonly database")
    ... )
    >>> store_error_message(error, None)  # doctest: +NORMALIZE_WHITESPACE
    'the store refused a write: attempt to write a readonly database (make the store writable);
    the command stopped and its transaction was rolled back'
    """
    from sqlalchemy.exc import DBAPIError, IntegrityError

    if not isinstance(exc, DBAPIError):
        return None
    first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    low = first.lower()
    hint = ""
    if "readonly" in low or "read-only" in low or "read only" in low:
        hint = " (make the store writable)"
    elif "disk is full" in low or "no space" in low or "disk full" in low:
        hint = " (free some space and run the command again)"
    elif isinstance(exc, IntegrityError):
        hint = " (another command wrote the same record at the same time; run this one again)"
    elif "locked" in low:
        hint = " (another program holds the database; run the command again)"
    where = "the store"
    if context is not None and context._workspace is not None:
        from ledger.store import safe_url

        where = f"the store {safe_url(context._workspace.store_url)}"
    return (
        f"{where} refused a write: {first}{hint}; "
        "the command stopped and its transaction was rolled back"
    )


class MeterbookGroup(click.Group):
    """Turns engine errors, OS errors and click usage errors into one line with DESIGN's exit
    codes."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,  # type: ignore[override]
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's own ``main``, but a usage error is one line ``meterbook: error: <message>``
        (exit 2) instead of click's usage block; ``--help`` and ``--version`` still exit 0."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `meterbook`: the help text
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"meterbook: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MeterbookError as exc:
            raise CommandError(exc) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # stdout closed early (`| head`): click stops quietly
                raise
            raise CommandError(BadInput(os_error_message(exc))) from None
        except Exception as exc:
            message = store_error_message(exc, ctx.find_object(Context))
            if message is None:
                raise
            raise CommandError(BadInput(message)) from None
        except KeyboardInterrupt:
            click.echo("meterbook: interrupted; nothing half-written was kept", err=True)
            sys.exit(130)


class Context:
    """What every command gets: the workspace, found lazily."""

    def __init__(self, workspace_dir: Path | None):
        self._workspace_dir = workspace_dir
        self._workspace: Workspace | None = None
        self._session: Session | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            if self._workspace_dir is not None:
                self._workspace = Workspace.load(self._workspace_dir)
            else:
                self._workspace = Workspace.find(Path.cwd())
        return self._workspace

    @property
    def session(self) -> Session:
        """The workspace opened with its rules, plugins and store."""
        if self._session is None:
            from ledger.session import Session

            self._session = Session.open(self.workspace)
        return self._session


pass_context = click.make_pass_decorator(Context)


def holds_lock(
    command: str, *, shared: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Run the command holding the workspace lock (:mod:`ledger.lock`): every command that
    writes the store, the books or the documents; ``shared`` for the commands that read the
    books with the store (``check``, ``trace``, ``report``, ``statement``, ``reconcile``,
    ``export journal``): they run side by side but never see a writer half-way (an invoice in
    the store, its books not yet in place)."""

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(ctx: Context, *args: Any, **kwargs: Any) -> None:
            from ledger.lock import workspace_lock

            workspace = ctx.workspace
            with workspace_lock(
                workspace.root,
                command,
                store_url=workspace.store_url,
                shared=shared,
                waiting=lambda line: click.echo(f"meterbook: {line}", err=True),
            ):
                function(ctx, *args, **kwargs)

        return run

    return decorate


@click.group(cls=MeterbookGroup)
@click.option(
    "--workspace",
    "workspace_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace directory (default: walk up from here to meterbook.toml).",
)
@click.version_option(package_name="meterbook")
@click.pass_context
def cli(ctx: click.Context, workspace_dir: Path | None) -> None:
    """meterbook: usage events in, double-entry Beancount books out."""
    ctx.obj = Context(workspace_dir)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing meterbook.toml and rules.")
def init(directory: str, force: bool) -> None:
    """Create a new, working example workspace in DIRECTORY."""
    if not directory.strip():
        raise BadInput('init: DIRECTORY is empty; give a directory (".", explicitly, for this one)')
    root = Path(directory)
    config = root / "meterbook.toml"
    if config.is_dir():
        raise BadInput(f"{config}: is a directory, not a meterbook.toml file")
    if config.exists() and not force:
        raise BadInput(f"{config} exists; use --force to overwrite")
    template = resources.files("ledger") / "templates" / "init"
    with resources.as_file(template) as source:
        _copy_template(source, root)
    workspace = Workspace.load(root)
    from ledger.rules import load_rules

    load_rules(workspace.rules_dir, change_policy=workspace.subscription_changes)
    click.echo(f"created workspace {workspace.root}")
    ws = f"meterbook --workspace {root}"
    click.echo(f"next: {ws} ingest {root / 'samples' / 'events.csv'}")
    click.echo(f"      {ws} post --through 2026-01-31")
    click.echo(f"      {ws} invoice --through 2026-02-01")


def _copy_template(source: Path, root: Path) -> None:
    """Copy the init template into ``root``, ``meterbook.toml`` last; all or nothing new.

    A path the template needs as a folder that is a file (or the other way round)
    is refused before anything is written; if a copy still fails, every file and
    folder created so far is removed again, so no half workspace (and no
    ``meterbook.toml`` that would make it look like one) is left behind.
    """
    folders = [
        root,
        *(root / p.relative_to(source) for p in sorted(source.rglob("*")) if p.is_dir()),
        root / "books",
    ]
    files = sorted(
        (p for p in source.rglob("*") if p.is_file()),
        key=lambda p: (p.name == "meterbook.toml", str(p)),
    )
    for folder in folders:
        for probe in (folder, *folder.parents):
            if probe.exists() and not probe.is_dir():
                raise BadInput(
                    f"{probe}: is not a directory, but the workspace needs {folder} as one; "
                    "nothing was written"
                )
    for path in files:
        target = root / path.relative_to(source)
        if target.is_dir():
            raise BadInput(f"{target}: is a directory, not a file; nothing was written")
    created: list[Path] = []
    try:
        for folder in folders:
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            created += reversed(missing)
        for path in files:
            target = root / path.relative_to(source)
            if not target.exists():
                created.append(target)
            shutil.copyfile(path, target)
    except OSError as exc:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink(missing_ok=True)
        raise BadInput(f"{os_error_message(exc)}; nothing was kept") from None


# Dates and months on the command line are bounded: nothing is dated before the Unix
# epoch (event times are microseconds since it), and nothing more than YEARS_AHEAD years
# after today (a rating runs cycle by cycle: year 9999 would take minutes, then overflow).
EARLIEST = date(1970, 1, 1)
YEARS_AHEAD = 10


def bounded(day: date, option: str, today: date, shown: str | None = None) -> date:
    """``day`` if it lies from 1970-01-01 through December 31st ``YEARS_AHEAD`` years after
    ``today``'s year, else :class:`BadInput` naming the option.

    >>> bounded(date(2027, 1, 31), "--through", date(2026, 12, 2))
    datetime.date(2027, 1, 31)
    >>> bounded(date(9999, 12, 31), "--through", date(2026, 12, 2))
    Traceback (most recent call last):
    ledger.errors.BadInput: --through: 9999-12-31 is out of range (1970-01-01 to 2036-12-31)
    """
    latest = date(today.year + YEARS_AHEAD, 12, 31)
    if not EARLIEST <= day <= latest:
        raise BadInput(
            f"{option}: {shown or day.isoformat()} is out of range ({EARLIEST.isoformat()} to "
            f"{latest.isoformat()})"
        )
    return day


def parse_day(value: str, option: str, today: date) -> date:
    """A ``YYYY-MM-DD`` option value within :func:`bounded`, or :class:`BadInput` naming it."""
    try:
        day: date | None = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:  # fromisoformat also takes 20261001
        raise BadInput(f"{option}: {value!r} is not a date (YYYY-MM-DD)")
    return bounded(day, option, today)


def parse_month_arg(value: str, option: str, today: date) -> str:
    """A ``YYYY-MM`` argument whose month lies within :func:`bounded`, or :class:`BadInput`."""
    from ledger.period import Month, is_month

    if not is_month(value) or int(value[:4]) < 1:
        raise BadInput(f"{option}: month {value!r} is not YYYY-MM")
    month = Month.parse(value)
    bounded(month.first, option, today, shown=value)
    bounded(month.last, option, today, shown=value)  # the month's last day, too
    return value


def _through(session: Session, value: str | None) -> date:
    if value is None:
        return session.today()
    return parse_day(value, "--through", session.today())


@cli.command()
@click.option("--through", help="Cut-off date YYYY-MM-DD, inclusive (default: today).")
@click.option("--customer", "customers", multiple=True, help="Only this customer (repeatable).")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per cycle and charge, per line."
)
@pass_context
def rate(ctx: Context, through: str | None, customers: tuple[str, ...], as_json: bool) -> None:
    """Print rated lines (cycle-to-date) without writing books."""
    from ledger.rating import rated_lines

    session = ctx.session
    unknown = [c for c in customers if c not in session.rules.customers]
    if unknown:
        raise BadInput(f"--customer: unknown customer {unknown[0]!r}")
    rating = session.rate(_through(session, through), set(customers) or None)
    for line in rated_lines(rating, as_json=as_json):
        click.echo(line)


@cli.command()
@click.option("--through", help="Post up to this date YYYY-MM-DD, inclusive (default: today).")
@pass_context
@holds_lock("post")
def post(ctx: Context, through: str | None) -> None:
    """Rate and (re)write the open months' postings up to DATE."""
    session = ctx.session
    report = session.post(_through(session, through))  # the engine refuses a sealed or later day
    click.echo(
        f"posted {report.entries} entries through {report.through} "
        f"({report.invoices} invoices); wrote {len(report.months)} month files"
    )
    if report.unissued:
        click.echo(
            f"note: {report.unissued} invoice{'s' if report.unissued != 1 else ''} dated on or "
            f"before {report.through} not issued yet: run "
            f"`meterbook invoice --through {report.through}` (until "
            "then the books recognize advance fees that no invoice has billed)"
        )


@cli.command()
@click.option("--through", help="Issue invoices dated up to this date YYYY-MM-DD (default: today).")
@click.option(
    "--accept",
    "accepts",
    multiple=True,
    metavar="FINDING_ID",
    help="Accept this error finding (repeatable; each needs a --reason, in order).",
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="TEXT",
    help="Why the finding before it is accepted.",
)
@pass_context
@holds_lock("invoice")
def invoice(
    ctx: Context, through: str | None, accepts: tuple[str, ...], reasons: tuple[str, ...]
) -> None:
    """Issue every invoice whose invoice date is on or before DATE.

    An open error finding (`meterbook reconcile`) naming a customer in a month an
    invoice bills holds that invoice: the others are issued, the held ones listed,
    and the exit code is 1 until each finding is fixed or accepted with --accept ID --reason TEXT.
    """
    from ledger.closing import invoice_gated

    session = ctx.session
    if len(accepts) != len(reasons) or any(not r.strip() for r in reasons):
        raise BadInput("each --accept FINDING_ID needs its own non-empty --reason TEXT")
    day = _through(session, through)  # the engine refuses a day after today or a sealed one
    issued, gate = invoice_gated(session, day, dict(zip(accepts, reasons, strict=True)))
    for inv in issued:
        click.echo(f"{inv.number}  {inv.date}  {inv.customer:<20} {inv.total:>14} {inv.currency}")
    click.echo(f"issued {len(issued)} invoices")
    for held in gate.held:
        inv = held.invoice
        click.echo(
            f"held    {inv.date}  {inv.customer:<20} {inv.total:>14} {inv.currency}  by "
            + ", ".join(f.id for f in held.findings)
        )
    if gate.held:
        findings = {f.id: f for held in gate.held for f in held.findings}
        for finding in findings.values():
            click.echo(
                for_terminal(
                    f"error   {finding.id}: {finding.explanation} "
                    f"[expected {finding.expected}, actual {finding.actual}]"
                )
            )
        click.echo(
            f"{len(gate.held)} invoices held by open error findings; fix or accept each with "
            "--accept ID --reason TEXT"
        )
        ctx_exit(1)


@cli.command()
@click.argument("invoice_number", metavar="INVOICE")
@click.option(
    "--amount", required=True, help="Amount to credit, a decimal string in the invoice's currency."
)
@click.option(
    "--reason", required=True, help="Why; printed on the credit note and kept in the books."
)
@click.option(
    "--line", "line", type=click.IntRange(min=1), help="Credit only this invoice line (1-based)."
)
@click.option(
    "--date", "on", help="Issue date YYYY-MM-DD (default: today in the workspace timezone)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Allow more than the invoice's (or line's) creditable amount, or more "
    "of a prepaid credit than is still undrawn (the excess is contra-revenue).",
)
@pass_context
@holds_lock("credit")
def credit(
    ctx: Context,
    invoice_number: str,
    amount: str,
    reason: str,
    line: int | None,
    on: str | None,
    force: bool,
) -> None:
    """Issue a credit note against INVOICE (posted with the next `meterbook post`)."""
    session = ctx.session
    day = parse_day(on, "--date", session.today()) if on is not None else session.today()
    note = session.credit(
        invoice_number, amount=amount, reason=reason, on=day, line=line, force=force
    )
    click.echo(
        f"{note.number}  {note.date}  {note.customer:<20} {note.amount:>14} {note.currency}"
        f"  for {note.invoice}{'  (forced)' if note.forced else ''}"
    )


@cli.command("apply")
@click.argument("source")
@click.option(
    "--invoice",
    "invoice_number",
    required=True,
    metavar="INVOICE",
    help="The issued invoice the cash pays.",
)
@click.option(
    "--amount", help="Amount to apply (default: all the source holds, at most what INVOICE owes)."
)
@click.option(
    "--date", "on", help="Application date YYYY-MM-DD (default: today in the workspace timezone)."
)
@click.option(
    "--reference",
    default="",
    help="This application's own key (default: "
    "APPLY-<SOURCE>-<INVOICE>-<DATE>); the same one again records nothing.",
)
@pass_context
@holds_lock("apply")
def apply_command(
    ctx: Context,
    source: str,
    invoice_number: str,
    amount: str | None,
    on: str | None,
    reference: str,
) -> None:
    """Apply cash already held to INVOICE: a payment's unapplied cash (SOURCE = its reference)
    or a customer's credit balance (SOURCE = a credit note number). Posted with the next `post`."""
    _record_cash(ctx, "apply", source, invoice_number, amount, on, reference)


@cli.command("refund")
@click.argument("source")
@click.option("--reference", required=True, help="The payout's bank reference (this refund's key).")
@click.option("--amount", help="Amount paid out (default: all the source holds).")
@click.option(
    "--date", "on", help="Payout date YYYY-MM-DD (default: today in the workspace timezone)."
)
@pass_context
@holds_lock("refund")
def refund_command(
    ctx: Context, source: str, reference: str, amount: str | None, on: str | None
) -> None:
    """Record a refund paid out of SOURCE: a payment's unapplied cash (its reference) or a
    customer's credit balance (a credit note number). Posted with the next `post`."""
    _record_cash(ctx, "refund", source, "", amount, on, reference)


def _record_cash(
    ctx: Context,
    kind: str,
    source: str,
    invoice_number: str,
    amount: str | None,
    on: str | None,
    reference: str,
) -> None:
    from ledger.money import DecimalError, parse_decimal

    session = ctx.session
    day = parse_day(on, "--date", session.today()) if on is not None else session.today()
    number = None
    if amount is not None:
        try:
            number = parse_decimal(amount.strip(), where="--amount")
        except DecimalError as exc:
            raise BadInput(str(exc)) from None
    if kind == "refund":
        application, stored = session.refund(source, on=day, amount=number, reference=reference)
    else:
        application, stored = session.apply(
            source, invoice_number, on=day, amount=number, reference=reference
        )
    target = f"to {application.invoice}" if application.kind == "apply" else "paid out"
    click.echo(
        f"{application.reference}  {application.date}  {application.source:<20} "
        f"{application.amount:>14} {application.currency}  {target}"
        f"{'' if stored else '  (recorded before; nothing changed)'}"
    )


@cli.command("topup")
@click.argument("customer")
@click.option("--amount", required=True, help="Credit bought, in the customer's currency.")
@click.option(
    "--date", "on", help="Top-up date YYYY-MM-DD (default: today in the workspace timezone)."
)
@click.option("--expires", help="Expiry date YYYY-MM-DD (default: never).")
@click.option(
    "--reference",
    default="",
    help="This top-up's own key (default: CUSTOMER/DATE/AMOUNT); the same one again records "
    "nothing.",
)
@pass_context
@holds_lock("topup")
def topup_command(
    ctx: Context,
    customer: str,
    amount: str,
    on: str | None,
    expires: str | None,
    reference: str,
) -> None:
    """Record a wallet top-up: prepaid credit CUSTOMER bought, invoiced by the next `invoice`
    into deferred revenue and drawn by usage like a grant."""
    from ledger.money import DecimalError, parse_decimal

    session = ctx.session
    day = parse_day(on, "--date", session.today()) if on is not None else session.today()
    until = parse_day(expires, "--expires", session.today()) if expires is not None else None
    try:
        number = parse_decimal(amount.strip(), where="--amount")
    except DecimalError as exc:
        raise BadInput(str(exc)) from None
    topup, stored = session.topup(
        customer, amount=number, on=day, expires=until, reference=reference
    )
    click.echo(
        f"{topup.key}  {topup.date}  {topup.customer:<20} {topup.amount:>14} {topup.currency}"
        f"{'' if stored else '  (recorded before; nothing changed)'}"
    )


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--importer",
    "importer_name",
    metavar="NAME",
    help="Importer to use (default: recognised by extension and first line).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, per line.")
@click.option(
    "--retry-rejected", is_flag=True, help="Run stored rejects again against the current rules."
)
@click.option(
    "--allow-rejects",
    is_flag=True,
    help="Exit 0 even when rows were rejected (they are still kept and counted).",
)
@pass_context
@holds_lock("ingest")
def ingest(
    ctx: Context,
    files: tuple[Path, ...],
    importer_name: str | None,
    as_json: bool,
    retry_rejected: bool,
    allow_rejects: bool,
) -> None:
    """Import usage files; print the accounting of every row.

    Rejected rows are kept with their reason and counted; every other row is stored. Exit 1
    when this run rejected a row (or a retried reject is still rejected), unless
    --allow-rejects: `meterbook rejects` lists them.
    """
    from ledger import ingest as engine

    if not files and not retry_rejected:
        raise BadInput("ingest: give at least one FILE (or --retry-rejected)")
    for path in files:
        if path.exists() and not path.is_file():
            raise BadInput(
                f"{path}: not a regular file (a directory, device or pipe cannot be imported)"
            )
    rules, store, importers, kinds = engine.open_for_ingest(ctx.workspace)
    first_open, today = engine.dated_by(ctx.workspace)
    progress = ProgressBar if sys.stderr.isatty() and not as_json else None
    reports = (
        list(
            engine.ingest_files(
                store,
                rules,
                files,
                importers,
                importer_name=importer_name,
                progress=progress,
                kinds=kinds,
                first_open=first_open,
                today=today,
            )
        )
        if files
        else []
    )
    for report in reports:
        click.echo(report.to_json() if as_json else report.text())
        if not as_json:
            _show_first(report)
    if retry_rejected:
        report = engine.retry_rejected(store, rules)
        click.echo(report.to_json() if as_json else report.text())
        reports.append(report)
    if not allow_rejects and any(r.rejected for r in reports):
        ctx_exit(1)


def _show_first(report: Any) -> None:
    """This import's first rejected and conflicting rows, one per line, then where the rest
    are (``meterbook rejects``; conflicts stay in the store, the first stored row standing)."""
    from ledger.ingest import FIRST_SHOWN

    file = report.file
    for line, reason, detail in report.first_rejects[:FIRST_SHOWN]:
        click.echo(for_terminal(f"  {file}:{line}  {reason}  {detail}"))
    if report.rejected > FIRST_SHOWN:
        click.echo(f"  … all of them: meterbook rejects --file {for_terminal(file)}")
    for line, key in report.first_conflicts[:FIRST_SHOWN]:
        click.echo(
            for_terminal(
                f"  {file}:{line}  conflict  {key} is already stored with other figures;"
                " the stored one stands"
            )
        )
    if report.conflicts > FIRST_SHOWN:
        click.echo(f"  … {report.conflicts} conflicts in all")


@cli.command("rejects")
@click.option(
    "--file",
    "file_name",
    metavar="FILE",
    help="Only rows of FILE (the name given to ingest, or its base name).",
)
@click.option(
    "--reason", metavar="REASON", help="Only rows rejected for REASON (e.g. unknown_customer)."
)
@click.option(
    "--since", metavar="DATE", help="Only rows ingested on or after DATE (YYYY-MM-DD, UTC)."
)
@click.option(
    "--until", metavar="DATE", help="Only rows ingested on or before DATE (YYYY-MM-DD, UTC)."
)
@click.option(
    "--all",
    "include_resolved",
    is_flag=True,
    help="Also rows that ingest --retry-rejected has since stored.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row, per line.")
@click.option("--csv", "as_csv", is_flag=True, help="A CSV table (safe to open in a spreadsheet).")
@pass_context
def rejects_command(
    ctx: Context,
    file_name: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    include_resolved: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List rejected rows of ingest: file, line, reason and detail."""
    import json
    from datetime import UTC, datetime

    from ledger.rejects import list_rejects, to_csv
    from ledger.store import open_store

    if as_json and as_csv:
        raise BadInput("rejects: give --json or --csv, not both")
    today = datetime.now(UTC).date()
    first = parse_day(since, "--since", today) if since is not None else None
    last = parse_day(until, "--until", today) if until is not None else None
    if first is not None and last is not None and last < first:
        raise BadInput(f"--until: {last} is before --since {first}")
    engine = open_store(ctx.workspace.store_url)
    try:
        rows = list_rejects(
            engine,
            file=file_name,
            reason=reason,
            since=first,
            until=last,
            include_resolved=include_resolved,
        )
    finally:
        engine.dispose()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict(), ensure_ascii=False))
    elif as_csv:
        click.echo(to_csv(rows), nl=False)
    else:
        for row in rows:
            click.echo(row.text())


class ProgressBar:
    """A rich progress bar on stderr over a file's bytes."""

    def __init__(self, path: Path):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task(path.name, total=path.stat().st_size)

    def __enter__(self) -> Any:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per plugin, per line.")
@pass_context
def plugins_command(ctx: Context, as_json: bool) -> None:
    """List loaded plugins with their pricing models, reconcilers and importers.

    Uses the workspace's plugins_dir when a workspace is found; works without one.
    """
    import dataclasses
    import json

    from ledger.errors import WorkspaceError
    from ledger.registry import load_registry

    try:
        workspace: Workspace | None = ctx.workspace
    except WorkspaceError:
        if click.get_current_context().find_root().params.get("workspace_dir") is not None:
            raise
        workspace = None
    registry = load_registry(workspace.plugins_dir if workspace else None)
    for info in registry.plugins:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(info)))
            continue
        click.echo(f"{info.name}  ({info.origin})")
        for label, names in (
            ("pricing models", info.pricing_models),
            ("reconcilers", info.reconcilers),
            ("importers", info.importers),
        ):
            if names:
                click.echo(f"  {label}: {', '.join(names)}")
    if not as_json:
        click.echo(
            f"{len(registry.plugins)} plugins: {len(registry.pricing_models)} pricing models, "
            f"{len(registry.reconcilers)} reconcilers, {len(registry.importers)} importers"
        )


@cli.command("close")
@click.argument("month")
@click.option(
    "--accept",
    "accepts",
    multiple=True,
    metavar="FINDING_ID",
    help="Accept this error finding (repeatable; each needs a --reason, in order).",
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="TEXT",
    help="Why the finding before it is accepted.",
)
@pass_context
@holds_lock("close")
def close_command(
    ctx: Context, month: str, accepts: tuple[str, ...], reasons: tuple[str, ...]
) -> None:
    """Close MONTH (YYYY-MM): invoices, postings, reconciliation gate, balance assertions, seal.

    Exit 1 (nothing sealed) while an error finding is open and not accepted.
    Months close in order; closing one out of order or not ended yet is exit 2.
    """
    from ledger.closing import close_month
    from ledger.period import is_month, month_of

    session = ctx.session
    today = session.today()
    if not (
        is_month(month) and month_of(today) < month < "9999-12"
    ):  # later months: "has not ended yet"
        parse_month_arg(month, "close", today)
    if len(accepts) != len(reasons) or any(not r.strip() for r in reasons):
        raise BadInput("each --accept FINDING_ID needs its own non-empty --reason TEXT")
    report = close_month(session, month, dict(zip(accepts, reasons, strict=True)))
    if report.already_closed and report.finished:
        click.echo(
            f"finished the close of {month}, which had stopped half-way: "
            f"{'; '.join(report.finished)}"
        )
        return
    if report.already_closed:
        click.echo(f"{month} is already closed; nothing changed ({report.close_file})")
        return
    for gap in report.also_closed:
        click.echo(f"closed {gap} on the way (no entries; the seal chain has no gaps)")
    for inv in report.invoices:
        click.echo(
            f"issued {inv.number}  {inv.date}  {inv.customer:<20} {inv.total:>14} {inv.currency}"
        )
    for finding in report.findings:
        state = " (accepted)" if finding.id in report.accepted else ""
        click.echo(
            for_terminal(
                f"{finding.severity:<7} {finding.id}{state}: {finding.explanation} "
                f"[expected {finding.expected}, actual {finding.actual}]"
            )
        )
    for line in report.errors:
        click.echo(f"  {for_terminal(line)}")
    if report.refused:
        click.echo(f"refused to close {month}: {report.refused}; nothing sealed")
        ctx_exit(1)
    click.echo(
        f"closed {month}: {report.assertions} balance assertions (and the seal plugin's guard), "
        f"{len(report.accepted)} accepted "
        f"findings, {len(report.invoices)} invoices issued"
    )
    click.echo(f"seal {report.seal_hash}  {report.close_file}")
    if report.report_file:  # the close report, as written beside the close file
        click.echo(f"close report {report.report_file}\n")
        click.echo(Path(report.report_file).read_text(encoding="utf-8"), nl=False)


@cli.command("reconcile")
@click.argument("month", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, per line.")
@pass_context
@holds_lock("reconcile", shared=True)
def reconcile_command(ctx: Context, month: str | None, as_json: bool) -> None:
    """Run every reconciler for MONTH (YYYY-MM; default: the first open month) and print the
    findings.

    Exit 1 while an error finding is not accepted (see `close --accept`); nothing is written.
    """
    import json

    from ledger.closing import reconcile_month

    session = ctx.session
    if month is not None:
        parse_month_arg(month, "reconcile", session.today())
    result = reconcile_month(session, month)
    if as_json:
        for record in result.records():
            click.echo(json.dumps(record))
    else:
        click.echo(result.render())
    if result.open_errors:
        ctx_exit(1)


#: a click command function, as a decorator takes and gives it back
F = TypeVar("F", bound=Callable[..., Any])


def listen_options(port: int, remote: str) -> Callable[[F], F]:
    """``--host`` (loopback by default), ``--port`` (default ``port``) and ``--allow-remote``
    (``remote``: what a non-loopback host needs), shared by ``serve`` and ``api``."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--host",
                    default="127.0.0.1",
                    show_default=True,
                    help="Address to bind (loopback only unless --allow-remote).",
                ),
                click.option(
                    "--port",
                    default=port,
                    show_default=True,
                    type=click.IntRange(1, 65535),
                    help="Port to listen on.",
                ),
                click.option(
                    "--allow-remote",
                    is_flag=True,
                    help=f"Allow a non-loopback --host ({remote}).",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


@cli.command("serve")
@listen_options(5000, "Fava has no authentication")
@pass_context
def serve_command(ctx: Context, host: str, port: int, allow_remote: bool) -> None:
    """Fava on books/main.beancount, read-only, with the meterbook pages."""
    from ledger import serve

    warning = serve.check_host(host, allow_remote=allow_remote)
    path = serve.main_file(ctx.workspace)
    if warning:
        click.echo(warning, err=True)
    if not serve.declares_extension(path):
        click.echo(
            f"warning: {path} does not declare the meterbook pages; run 'meterbook post'", err=True
        )
    server = serve.make_server(serve.create_app(path), serve.bind_address(host), port)
    try:
        server.prepare()  # binds the socket
    except OSError as exc:
        raise BadInput(f"cannot listen on {serve.url_host(host)}:{port}: {exc}") from None
    click.echo(f"Fava on http://{serve.url_host(host)}:{port}/ (read-only): {path}")
    try:
        server.serve()
    except KeyboardInterrupt:
        server.stop()


@cli.command("check")
@pass_context
@holds_lock("check", shared=True)
def check_command(ctx: Context) -> None:
    """Beancount errors, seals, rules and the store-to-ledger tie-out; exit 1 on any problem."""
    from ledger.audit import check_books
    from ledger.store import open_store

    workspace = ctx.workspace
    open_store(
        workspace.store_url
    ).dispose()  # a store that cannot be opened is bad input (exit 2), not a finding
    results = check_books(workspace)
    for result in results:
        click.echo(f"{'ok' if result.ok else 'FAILED':<7} {result.name}")
        for line in result.details:
            click.echo(f"          {for_terminal(line)}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        click.echo(f"check failed: {', '.join(failed)}")
        ctx_exit(1)
    click.echo("all checks passed")


@cli.command("trace")
@click.argument("ref", metavar="LINK|INVOICE")
@click.option("--json", "as_json", is_flag=True, help="The trace as one JSON object.")
@pass_context
@holds_lock("trace", shared=True)
def trace_command(ctx: Context, ref: str, as_json: bool) -> None:
    """Recompute a cycle (^customer-start) or an invoice from the store and compare it with the
    books.

    Exit 0 when verified, 1 when something differs, 2 for an unknown LINK or INVOICE.
    """
    import json

    from ledger.trace import trace

    result = trace(ctx.session, ref)
    click.echo(json.dumps(result.to_json(), sort_keys=True) if as_json else result.render())
    if not result.verified:
        ctx_exit(1)


@cli.command("statement")
@click.argument("customer")
@click.option(
    "--cycle",
    "which",
    default="current",
    show_default=True,
    metavar="current|YYYY-MM-DD",
    help="The cycle containing this date (current: today in the workspace timezone).",
)
@click.option(
    "--subscription",
    metavar="ID",
    help="The cycle of the customer's subscription with this id (an add-on; default: the main "
    "one).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory (default: statements/ in the workspace).",
)
@pass_context
@holds_lock("statement", shared=True)
def statement_command(
    ctx: Context, customer: str, which: str, subscription: str | None, out: Path | None
) -> None:
    """Write CUSTOMER's usage statement: self-contained HTML and a CSV of every event behind it."""
    from ledger.statements import write_statement

    session = ctx.session
    try:
        day: date | None = date.fromisoformat(which) if which != "current" else None
    except ValueError:
        day = None  # not a date at all: write_statement says so
    if day is not None and not session.today() < day < date(
        9999, 1, 1
    ):  # later days: "has not started yet"
        bounded(day, "--cycle", session.today())
    files = write_statement(session, customer, which=which, out=out, subscription=subscription)
    s = files.statement
    click.echo(
        f"{s.customer}  {s.cycle.key}  through {s.through}  total {s.total} {s.currency}  "
        f"projected {s.projection.total} {s.currency}"
    )
    click.echo(f"wrote {files.html}")
    click.echo(f"wrote {files.csv} ({files.evidence.rows} event rows)")


@cli.command("alerts")
@click.option(
    "--through", help="Check cycles up to this date YYYY-MM-DD, inclusive (default: today)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per crossing, per line.")
@click.option(
    "--drop-undelivered",
    "drop",
    metavar="PLUGIN",
    help="First forget every alert delivery still owed by PLUGIN (a notifier retired for good).",
)
@pass_context
@holds_lock("alerts")
def alerts_command(ctx: Context, through: str | None, as_json: bool, drop: str | None) -> None:
    """List every cap threshold crossed; raise the new ones once (stored, then the
    meterbook_alert hook).

    Each notification plugin takes each alert once; one that failed is retried alone on the
    next run. Exit 1 while any delivery is pending (listed as PENDING with its plugins).
    """
    import json

    from ledger.alerts import drop_undelivered, pending_deliveries, raise_alerts

    session = ctx.session
    day = _through(session, through)
    if drop is not None:
        owing = sorted({p.plugin for p in pending_deliveries(session.engine)})
        if drop not in owing:
            raise BadInput(
                f"alerts --drop-undelivered: plugin {drop!r} owes no alert deliveries "
                f"(pending: {', '.join(owing) or 'none'})"
            )
        click.echo(
            f"dropped {drop_undelivered(session.engine, drop)} undelivered alerts of plugin {drop}",
            err=as_json,
        )
    run = raise_alerts(session, day)
    for alert in (*run.alerts, *run.also_pending):
        waiting = run.pending_plugins(alert.id)
        if as_json:
            click.echo(
                json.dumps(
                    {**alert.payload(), "new": alert.id in run.new, "pending": list(waiting)},
                    sort_keys=True,
                )
            )
            continue
        new = "NEW " if alert.id in run.new else "    "
        click.echo(for_terminal(f"{new} {alert.date}  {alert.id}  {alert.message}"))
        if waiting:
            click.echo(
                "     PENDING "
                + ", ".join(
                    p.plugin + ("" if p.loaded else " (not loaded)")
                    for p in run.pending
                    if p.alert == alert.id
                )
            )
    if not as_json:
        click.echo(
            f"{len(run.alerts)} crossings through {run.through}, {len(run.new)} new"
            + (f", {len(run.pending)} deliveries pending" if run.pending else "")
        )
    for plugin in dict.fromkeys(p.plugin for p in run.pending):
        owed = [p for p in run.pending if p.plugin == plugin]
        if not owed[0].loaded:
            click.echo(
                f"meterbook: error: plugin {plugin} is not loaded: {len(owed)} alerts wait for it "
                f"(restore it, or drop them: meterbook alerts --drop-undelivered {plugin})",
                err=True,
            )
            continue
        latest = max((p for p in owed if p.error), key=lambda p: p.last_attempt, default=None)
        why = (
            f"last error: {' '.join(latest.error.split())}"
            if latest
            else "in delivery by another run"
        )
        click.echo(
            f"meterbook: error: plugin {plugin} has not taken {len(owed)} alerts ({why}); "
            "the next run retries them",
            err=True,
        )
    if run.pending:
        ctx_exit(1)


@cli.command("report")
@click.argument("name")
@click.option(
    "--month",
    help="YYYY-MM: the month reported (balances at its end; default per report); "
    "tax also takes a period FIRST..LAST.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object on one line.")
@click.option("--csv", "as_csv", is_flag=True, help="Each table as a CSV block.")
@pass_context
@holds_lock("report", shared=True)
def report_command(ctx: Context, name: str, month: str | None, as_json: bool, as_csv: bool) -> None:
    """Print the finance report NAME: revenue, unbilled, deferred, aging, rollforward, arpu,
    forecast, risk, tax."""
    import json

    from ledger.reports import build_report

    if as_json and as_csv:
        raise BadInput("report: give --json or --csv, not both")
    session = ctx.session
    if month is not None:
        for part in month.split("..", 1):  # FIRST..LAST: a period (report tax)
            parse_month_arg(part, "--month", session.today())
    report = build_report(session, name, month=month)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
    elif as_csv:
        click.echo(report.to_csv(), nl=False)
    else:
        click.echo(report.render(), nl=False)


@cli.command("demo")
@click.option(
    "--customers", type=int, default=40, show_default=True, help="Customers in the roster (5-400)."
)
@click.option(
    "--months",
    type=int,
    default=3,
    show_default=True,
    help="Months of usage from 2026-08 (2-12); all but the last are closed.",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Random seed: the same seed, the same books.",
)
@click.option("--quiet", is_flag=True, help="Print only the summary.")
@pass_context
@holds_lock("demo")
def demo_command(ctx: Context, customers: int, months: int, seed: int, quiet: bool) -> None:
    """Reset this workspace and run synthetic usage through ingest, invoice and close into books/.

    Refuses books, a roster (rules/customers.yaml) or a store it did not make.
    """
    from ledger.demo import DemoOptions, run_demo

    summary = run_demo(
        ctx.workspace,
        DemoOptions(customers, months, seed),
        echo=(lambda _line: None) if quiet else click.echo,
    )
    for line in summary.lines():
        click.echo(line)


@cli.command("rerate")
@click.option(
    "--from",
    "since",
    required=True,
    metavar="DATE",
    help="Re-rate issued cycles starting on or after DATE (YYYY-MM-DD).",
)
@click.option(
    "--date",
    "on",
    metavar="DATE",
    help="Date of the credit notes and debit adjustments "
    "(default: today; must be in an open month).",
)
@click.option("--dry-run", is_flag=True, help="Print the differences; store and post nothing.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per differing line, then a summary."
)
@pass_context
@holds_lock("rerate")
def rerate_command(ctx: Context, since: str, on: str | None, dry_run: bool, as_json: bool) -> None:
    """Re-rate issued cycles with the current rules; post differences as credit notes / debit
    adjustments."""
    from ledger.rerate import rerate

    session = ctx.session
    start = parse_day(since, "--from", session.today())
    day = parse_day(on, "--date", session.today()) if on is not None else None
    report = rerate(session, start, on=day, dry_run=dry_run)
    for line in report.json_lines() if as_json else [report.render()]:
        click.echo(line)


@cli.group("export")
def export_group() -> None:
    """Export the books to other systems (a general ledger)."""


@export_group.command("journal")
@click.option("--month", required=True, help="YYYY-MM: the month exported (sealed, or a warning).")
@click.option(
    "--format",
    "fmt",
    default="csv",
    show_default=True,
    metavar="csv|quickbooks|xero|netsuite",
    help="csv, or the journal-import CSV of QuickBooks Online, Xero or NetSuite.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@click.option("--currency", help="Only this currency's entry (Xero takes one: its base currency).")
@pass_context
@holds_lock("export journal", shared=True)
def export_journal(
    ctx: Context, month: str, fmt: str, out: Path | None, currency: str | None
) -> None:
    """The month's movements per general-ledger account (rules/gl_accounts.yaml), one balanced
    entry per currency, referencing the month's seal; an unsealed month is exported with a
    warning."""
    from ledger.books import load_books
    from ledger.export import FORMATS, build_journal, load_gl_mapping, render

    workspace = ctx.workspace
    if fmt not in FORMATS:
        raise BadInput(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    from datetime import datetime

    parse_month_arg(month, "--month", datetime.now(workspace.tz).date())
    mapping = load_gl_mapping(workspace.rules_dir)
    if not workspace.main_file.exists():
        raise BadInput(f"{workspace.main_file}: no books yet; run `meterbook post` first")
    entries, errors, _options = load_books(workspace.main_file)
    if errors:
        raise BadInput(
            f"{workspace.main_file}: the books do not load ({len(errors)} errors); "
            "run `meterbook check`"
        )
    journal = build_journal(entries, month, mapping)
    if currency is not None:
        from ledger.export import only_currency

        journal = only_currency(journal, currency)
    if journal.seal is None:
        click.echo(
            f"meterbook: warning: {month} is not sealed: its movements may still change "
            f"(close it first: meterbook close {month})",
            err=True,
        )
    text = render(journal, fmt, mapping)
    if out is None:
        click.echo(text, nl=False)
    else:
        from ledger.books import write_atomic

        write_atomic(out, text)
        lines = sum(len(e.lines) for e in journal.entries)
        click.echo(f"wrote {out} ({len(journal.entries)} entries, {lines} lines, {fmt})")


@cli.command("api")
@listen_options(8000, "put TLS in front of it")
@click.option(
    "--max-body",
    default=16 << 20,
    show_default=True,
    type=click.IntRange(1024, 1 << 30),
    help="Largest request body in bytes (larger: 413).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (PostgreSQL stores judge requests in parallel).",
)
@click.option(
    "--lock-wait",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Seconds a write waits for the workspace lock (post, close, ...) before 503.",
)
@pass_context
def api_command(
    ctx: Context,
    host: str,
    port: int,
    allow_remote: bool,
    max_body: int,
    workers: int,
    lock_wait: float,
) -> None:
    """HTTP event ingest and the customer portal (keys: meterbook keys create)."""
    import socket

    from ledger import api

    warning = api.check_host(host, allow_remote=allow_remote)
    workspace = ctx.workspace
    if warning:
        click.echo(warning, err=True)
    try:  # a port in use is one line, before uvicorn logs its own error
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(
        f"meterbook API on http://{host}:{port}/ (OpenAPI: /openapi.json, portal: /portal/login)"
    )
    api.serve(workspace, host, port, max_body=max_body, workers=workers, lock_wait=lock_wait)


@cli.group("keys")
def keys_group() -> None:
    """API keys: create, list, revoke (only a hash of each key is stored)."""


@keys_group.command("create")
@click.option(
    "--scope", required=True, type=click.Choice(["ingest", "portal"]), help="What the key may do."
)
@click.option("--customer", help="The customer a portal key shows (required for --scope portal).")
@click.option("--label", default="", help="A note to recognise the key by in 'keys list'.")
@pass_context
@holds_lock("keys create")
def keys_create(ctx: Context, scope: str, customer: str | None, label: str) -> None:
    """Create a key and print it once (it cannot be shown again)."""
    from ledger.api.keys import create_key

    session = ctx.session
    new = create_key(session.engine, session.rules, scope, customer, label)
    bound = f", customer {customer}" if customer else ""
    click.echo(f"created key {new.key.id} ({scope}{bound}); shown once, keep it secret:", err=True)
    click.echo(new.secret)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key, per line.")
@pass_context
def keys_list(ctx: Context, as_json: bool) -> None:
    """Every key: id, scope, customer, created, revoked (never the key itself)."""
    import dataclasses
    import json

    from ledger.api.keys import list_keys
    from ledger.store import open_store

    engine = open_store(ctx.workspace.store_url)
    for key in list_keys(engine):
        click.echo(json.dumps(dataclasses.asdict(key)) if as_json else key.describe())


@keys_group.command("revoke")
@click.argument("key_id")
@pass_context
@holds_lock("keys revoke")
def keys_revoke(ctx: Context, key_id: str) -> None:
    """Revoke KEY_ID at once: every later request with it gets 401."""
    from ledger.api.keys import revoke_key
    from ledger.store import open_store

    key, now = revoke_key(open_store(ctx.workspace.store_url), key_id)
    click.echo(
        f"{'revoked' if now else 'already revoked'} {key.id} ({key.scope}) at {key.revoked_at}"
    )


@cli.command("caps")
@click.option("--customer", help="Only this customer.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, per line.")
@pass_context
def caps_command(ctx: Context, customer: str | None, as_json: bool) -> None:
    """Self-service usage cap changes made in the portal: who, what, from when, which key."""
    import json

    from ledger.api.portal import load_changes
    from ledger.store import open_store

    for change in load_changes(open_store(ctx.workspace.store_url), customer):
        if as_json:
            click.echo(json.dumps(change.to_json()))
        else:
            click.echo(
                f"{change.effective}  {change.customer:<20} {change.meter:<16} "
                f"{change.previous if change.previous is not None else '-'} -> {change.cap}  "
                f"(at {change.changed_at}, key {change.key_id})"
            )


def ctx_exit(code: int) -> None:
    """Stop with ``code`` after the report was printed (problems found: 1)."""
    click.get_current_context().exit(code)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="meterbook")
