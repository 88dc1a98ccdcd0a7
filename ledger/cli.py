"""The ``meterbook`` command line: one click group, each command a thin function
that parses arguments and calls the engine.

Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage or
bad input. Errors are one line naming what is wrong and where.
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.errors import BadInput, MeterbookError
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


class MeterbookGroup(click.Group):
    """Turns engine errors into one-line messages with DESIGN's exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MeterbookError as exc:
            raise CommandError(exc) from None
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


@click.group(cls=MeterbookGroup)
@click.option("--workspace", "workspace_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Workspace directory (default: walk up from here to meterbook.toml).")
@click.version_option(package_name="meterbook")
@click.pass_context
def cli(ctx: click.Context, workspace_dir: Path | None) -> None:
    """meterbook: usage events in, double-entry Beancount books out."""
    ctx.obj = Context(workspace_dir)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing meterbook.toml and rules.")
def init(directory: Path, force: bool) -> None:
    """Create a new, working example workspace in DIRECTORY."""
    template = resources.files("ledger") / "templates" / "init"
    if (directory / "meterbook.toml").exists() and not force:
        raise BadInput(f"{directory / 'meterbook.toml'} exists; use --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    with resources.as_file(template) as source:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    (directory / "books").mkdir(exist_ok=True)
    workspace = Workspace.load(directory)
    from ledger.rules import load_rules

    load_rules(workspace.rules_dir)
    click.echo(f"created workspace {workspace.root}")
    click.echo(f"next: meterbook --workspace {directory} ingest {directory / 'samples' / 'events.csv'}")


def _through(session: Session, value: str | None) -> date:
    if value is None:
        return session.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"--through: {value!r} is not a date (YYYY-MM-DD)") from None


@cli.command()
@click.option("--through", help="Cut-off date YYYY-MM-DD, inclusive (default: today).")
@click.option("--customer", "customers", multiple=True, help="Only this customer (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per cycle and charge, per line.")
@pass_context
def rate(ctx: Context, through: str | None, customers: tuple[str, ...], as_json: bool) -> None:
    """Print rated lines (cycle-to-date) without writing books."""
    from ledger.reports import rated_lines

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
def post(ctx: Context, through: str | None) -> None:
    """Rate and (re)write the open months' postings up to DATE."""
    session = ctx.session
    report = session.post(_through(session, through))
    click.echo(f"posted {report.entries} entries through {report.through} "
               f"({report.invoices} invoices); wrote {len(report.months)} month files")


@cli.command()
@click.option("--through", help="Issue invoices dated up to this date YYYY-MM-DD (default: today).")
@pass_context
def invoice(ctx: Context, through: str | None) -> None:
    """Issue every invoice whose invoice date is on or before DATE."""
    session = ctx.session
    issued = session.invoice(_through(session, through))
    for inv in issued:
        click.echo(f"{inv.number}  {inv.date}  {inv.customer:<20} {inv.total:>14} {inv.currency}")
    click.echo(f"issued {len(issued)} invoices")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="meterbook")
