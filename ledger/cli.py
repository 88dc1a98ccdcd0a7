"""The ``meterbook`` command line: one click group, each command a thin function
that parses arguments and calls the engine.

Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage or
bad input. Errors are one line naming what is wrong and where.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from ledger.errors import BadInput, MeterbookError
from ledger.workspace import Workspace


class CommandError(click.ClickException):
    """A :class:`MeterbookError` shown as one line with its exit code."""

    def __init__(self, error: MeterbookError):
        super().__init__(str(error))
        self.exit_code = error.exit_code

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

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            if self._workspace_dir is not None:
                self._workspace = Workspace.load(self._workspace_dir)
            else:
                self._workspace = Workspace.find(Path.cwd())
        return self._workspace


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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="meterbook")
