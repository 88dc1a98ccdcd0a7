"""Every command example in docs/ runs as written, against the workspace its page names.

A fenced block of a page (no language, ``sh`` or ``console``) is an example when a line starts
with ``$ `` (a command, and below it, up to the next ``$``, the output it prints) or with
``meterbook `` (a command whose output is not shown). Each runs in the workspace the HTML comment
just above the block names; without one, the demo:

- ``<!-- example: demo -->`` (the default): a copy of the workspace ``meterbook demo`` makes
  (made once for this module; each page gets its own copy, and its examples run in page order,
  so an example may use what an earlier one on the page did). ``$ meterbook demo`` itself is
  compared with the output of that one run.
- ``<!-- example: new -->``: a fresh workspace from ``meterbook init`` (per page).
- ``<!-- example: rerate -->``: the rerate workspace of ``tests/support/rerate.py``, two months
  closed, then a plan version dated in the past (:func:`rerate_workspace`), per page.
- ``<!-- example: planted -->``: the invoice-gate workspace of ``tests/test_invoice_gate.py``
  (a workspace reconciler planting an error finding on ``cal``), per page.
- ``<!-- example: tax -->``: the tax workspace of ``tests/support/tax.py`` (three customers
  taxed three ways, October's calls stored, nothing posted), per page.
- ``<!-- example: not run: REASON -->``: a remote address, a browser or files of the reader's
  own; each ``meterbook`` line is still checked against ``meterbook … --help``: the command
  exists and takes every option shown.

``meterbook serve`` and ``meterbook api`` (on loopback) run for real: started in a subprocess on
a free loopback port (its ``--port``, or the documented default 5000 / 8000, stands for it in
the page's later commands and in the output compared), polled until they answer, and stopped
when the page's examples are done. ``export NAME=…`` sets ``NAME`` for the page's later
commands (``export INGEST_KEY=$(meterbook keys create …)``).

A fenced block just below ``<!-- file: KIND PATH -->`` is written to ``PATH`` in the page's
workspace of that kind when it is made (the GL mapping the export example reads).

A line with placeholders (``[--month YYYY-MM]``, ``NAME``, ``a|b``) is a synopsis: checked
against ``--help`` the same way, not run.

Shown output must appear in the command's output: every shown line, in order, as a line of
the output (runs of spaces compared as one, ``…`` standing for any text, a line that is only
``…`` for any number of lines, ``<seal>`` for a seal hash), so a page may leave out the
method paragraph of a report.
A command with no output shown must exit 0, unless its comment says ``exit N``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ledger.cli import cli
from tests.support.close import CUSTOMERS as CLOSE_CUSTOMERS
from tests.support.close import PLANS as CLOSE_PLANS
from tests.support.close import PLANTED
from tests.support.rerate import make as make_rerate
from tests.support.rerate import version
from tests.support.tax import tax_workspace
from tests.support.workspaces import (
    METERS_CALLS,
    REPO,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

DOCS = REPO / "docs"
#: Pages whose examples are not commands on a workspace (mutation-testing.md: its own tests).
SKIP_PAGES = {"mutation-testing.md"}
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"<!--\s*example:\s*(.*?)\s*-->")
SHELL = re.compile(r"[|<>&;`]|\$\?|\$\(|^\s*(echo|printf|head|cat|mkdir|python|curl|bean-)")
PLACEHOLDER = re.compile(r"\[|\bYYYY|\b[A-Z]{3,}\b(?!-)|\w\|\w|…")


@dataclass
class Command:
    line: int
    text: str
    shown: list[str] = field(default_factory=list)
    has_output: bool = False


@dataclass
class Example:
    page: str
    line: int
    workspace: str
    commands: list[Command]


def examples(page: Path) -> Iterator[Example]:
    """The examples of one page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[start + 1 : j]
        i = j + 1
        if fence.group(1) not in ("", "sh", "console", "bash", "shell"):
            continue
        marker = "demo"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        while k >= 0 and lines[k].lstrip().startswith("<!--"):  # the comments just above
            found = MARKER.search(lines[k])
            if found:
                marker = found.group(1)
                break
            k -= 1
        commands = _commands(body, start + 2)
        if commands:
            yield Example(page.name, start + 1, marker, commands)


def _commands(body: list[str], first_line: int) -> list[Command]:
    prompted = any(line.startswith("$ ") for line in body)
    commands: list[Command] = []
    n = 0
    while n < len(body):
        line = body[n]
        if prompted and line.startswith("$ "):
            text = line[2:]
            # a line ending in a backslash, or inside a quoted string, goes on
            while (text.endswith("\\") or text.count("'") % 2) and n + 1 < len(body):
                n += 1
                text = text.removesuffix("\\") + " " + body[n].strip()
            commands.append(Command(first_line + n, text, has_output=True))
        elif prompted and commands:
            commands[-1].shown.append(line)
        elif not prompted and line.startswith("meterbook "):
            commands.append(Command(first_line + n, line))
        n += 1
    return commands


ALL = [e for p in sorted(DOCS.glob("*.md")) if p.name not in SKIP_PAGES for e in examples(p)]


# --- running -------------------------------------------------------------------------------------

#: The port each server command listens on unless told otherwise (as the pages say).
SERVED = {"serve": 5000, "api": 8000}
EXPORT = re.compile(r"^export (\w+)=(.*)$")


@dataclass
class Server:
    """A ``meterbook serve`` or ``meterbook api`` of a page, on ``port`` standing for the
    ``documented`` one; ``output`` collects what it prints."""

    process: subprocess.Popen[str]
    documented: int
    port: int
    output: list[str] = field(default_factory=list)


@dataclass
class Page:
    """What a page's examples share: its servers and the variables its ``export`` lines set."""

    name: str = ""
    servers: list[Server] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for server in self.servers:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        self.servers.clear()
        self.env.clear()

    def to_real(self, text: str) -> str:
        """``text`` with each documented loopback port replaced by its server's."""
        for server in self.servers:
            text = text.replace(f"127.0.0.1:{server.documented}", f"127.0.0.1:{server.port}")
        return text

    def to_documented(self, output: str) -> str:
        for server in self.servers:
            output = output.replace(f":{server.port}/", f":{server.documented}/")
        return output


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    current = Page()
    yield current
    current.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(text: str, root: Path, page: Page) -> tuple[int, str]:
    """Start ``meterbook serve|api …`` on a free loopback port, wait until it answers
    (``/`` for Fava, ``/v1/health`` for the API; at most 60 s) and return what it printed."""
    args = shlex.split(text, comments=True)[1:]
    documented = SERVED[args[0]]
    port = _free_port()
    if "--port" in args:
        at = args.index("--port") + 1
        documented, args[at] = int(args[at]), str(port)
    else:
        args += ["--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from ledger.cli import main; main()", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **page.env},
    )
    server = Server(process, documented, port)
    page.servers.append(server)
    assert process.stdout is not None
    stream = process.stdout
    threading.Thread(target=lambda: server.output.extend(stream), daemon=True).start()
    url = f"http://127.0.0.1:{port}/" + ("v1/health" if args[0] == "api" else "")
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"{text!r} stopped: {''.join(server.output)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{text!r} did not answer {url} within 60 s"
        time.sleep(0.2)
    time.sleep(0.1)  # the banner is printed before serving; let the reader thread take it
    return 0, page.to_documented("".join(server.output))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo workspace for the module (about 10 s), and what ``meterbook demo`` printed."""
    root = tmp_path_factory.mktemp("demo") / "ws"
    root.mkdir()
    shutil.copy(REPO / "meterbook.toml", root / "meterbook.toml")
    shutil.copytree(REPO / "rules", root / "rules")
    result = CliRunner().invoke(cli, ["--workspace", str(root), "demo"])
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture(scope="module")
def workspaces() -> dict[tuple[str, str], Path]:
    """(page, workspace kind) → the page's own copy, made on first use."""
    return {}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages' workspaces are made."""
    return tmp_path_factory.mktemp("pages")


def _workspace(
    kind: str, page: str, demo: Path, made: dict[tuple[str, str], Path], base: Path
) -> Path:
    key = (page, kind)
    if key not in made:
        root = base / f"{page.removesuffix('.md')}-{kind}"
        if kind == "demo":
            shutil.copytree(demo, root)
        elif kind == "tax":
            tax_workspace(root).engine.dispose()
        elif kind == "rerate":
            root = rerate_workspace(root)
        elif kind == "planted":
            planted_workspace(root)
        else:
            result = CliRunner().invoke(cli, ["init", str(root)])
            assert result.exit_code == 0, result.output
        text = (DOCS / page).read_text(encoding="utf-8")
        for path, body in re.findall(
            rf"<!-- file: {kind} (\S+) -->\n(?:<!--[^\n]*-->\n)*```\w*\n(.*?)```", text, re.S
        ):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(body, encoding="utf-8")
        made[key] = root
    return made[key]


def rerate_workspace(base: Path) -> Path:
    """The rerate workspace of ``tests/support/rerate.py`` (plan ``u`` at 1.00 a call; acme
    30 calls in September and 20 in October, beta 10 in October, paid), September and October
    closed, then a version of ``u`` at 0.80 a call from 2026-10-01 added to the rules."""
    root = make_rerate(base)
    for month in ("2026-09", "2026-10"):
        result = CliRunner().invoke(cli, ["--workspace", str(root), "close", month])
        assert result.exit_code == 0, result.output
    (root / "rules" / "plans.yaml").write_text(version("0.80"), encoding="utf-8")
    return root


def planted_workspace(root: Path) -> None:
    """The invoice-gate workspace of ``tests/test_invoice_gate.py``: ``cal`` (calendar) and
    ``ann`` (from Sep 15) on plan ``g``, September's calls stored, and the workspace reconciler
    ``planted`` raising an error finding for ``cal``."""
    write_workspace(
        root,
        meters=METERS_CALLS,
        plans=CLOSE_PLANS,
        customers=CLOSE_CUSTOMERS,
        plugins={"planted": PLANTED},
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]),
            *calls("ann", [f"2026-09-{16 + i:02d}" for i in range(14)]),
            *calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "oct"),
        ],
    )
    session.engine.dispose()
    (root / "planted").write_text("cal\n", encoding="utf-8")


def run(
    text: str, root: Path, previous_exit: int, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run one command line in ``root``: ``meterbook …`` in-process, anything else in bash
    (with ``env`` added to the environment)."""
    if text.strip() == "echo $?":
        return 0, f"{previous_exit}\n"
    if text.startswith("meterbook ") and not SHELL.search(text.split("#")[0]):
        args = shlex.split(text, comments=True)[1:]
        cwd = os.getcwd()
        os.chdir(root)
        try:
            result = CliRunner().invoke(cli, args)
        finally:
            os.chdir(cwd)
        return result.exit_code, result.output
    env = {
        **os.environ,
        **(env or {}),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-c", text], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr


def export(name: str, text: str, root: Path, page: Page) -> tuple[int, str]:
    """Run ``export NAME=…`` in bash and keep ``NAME`` for the page's later commands."""
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "value"
        code, output = run(f'{text} && printf %s "${name}" > {kept}', root, 0, page.env)
        if code == 0:
            page.env[name] = kept.read_text(encoding="utf-8")
    return code, output


def _norm(line: str) -> str:
    return " ".join(line.split())


def matches(shown: list[str], output: str) -> str | None:
    """None when every shown line is an output line, in order (``…`` as any text); else the
    first shown line not found."""
    have = [_norm(line) for line in output.splitlines()]
    at = 0
    for line in shown:
        want = _norm(line)
        if not want or want == "…":
            continue
        parts = [re.escape(part.strip()) for part in want.split("…")]
        pattern = re.compile(".*".join(parts).replace(re.escape("<seal>"), "[0-9a-f]{64}") + "$")
        while at < len(have) and not pattern.match(have[at]):
            at += 1
        if at == len(have):
            return line
        at += 1
    return None


def check_syntax(text: str) -> None:
    """The command of a synopsis or an example not run exists, and takes each option shown."""
    words = shlex.split(text.replace("[", " ").replace("]", " ").replace("|", " "), comments=True)
    group: click.Command = cli
    path = []
    for word in words[1:]:
        if isinstance(group, click.Group) and word in group.commands:
            group = group.commands[word]
            path.append(word)
        else:
            break
    assert path, f"{text!r}: no such meterbook command"
    options = {opt for param in group.params for opt in getattr(param, "opts", [])}
    options |= {opt for param in cli.params for opt in getattr(param, "opts", [])}
    for word in words:
        if word.startswith("--"):
            name = word.split("=")[0]
            assert name in options, f"{text!r}: meterbook {' '.join(path)} has no option {name}"


def _id(example: Example) -> str:
    return f"{example.page}:{example.line}"


@pytest.mark.parametrize("example", ALL, ids=_id)
def test_example(
    example: Example,
    demo: tuple[Path, str],
    workspaces: dict[tuple[str, str], Path],
    pages: Path,
    page: Page,
) -> None:
    where = f"docs/{example.page}:{{}}"
    if page.name != example.page:  # the previous page's servers are done
        page.stop()
        page.name = example.page
    if example.workspace.startswith("not run"):
        assert example.workspace.removeprefix("not run").strip(": "), "say why it is not run"
        for command in example.commands:
            if command.text.startswith("meterbook "):
                check_syntax(command.text)
        return
    known = ("demo", "new", "tax", "rerate", "planted")
    assert example.workspace in known, f"unknown workspace {example.workspace!r}"
    root = _workspace(example.workspace, example.page, demo[0], workspaces, pages)
    previous = 0
    for command in example.commands:
        text = command.text
        if text.startswith("meterbook ") and PLACEHOLDER.search(text.split("#")[0]):
            check_syntax(text)
            continue
        if example.workspace == "demo" and text.split("#")[0].split() == ["meterbook", "demo"]:
            code, output = 0, demo[1]
        else:
            serves = text.split()[:2] in (["meterbook", "serve"], ["meterbook", "api"])
            refused = any(line.startswith("meterbook: error") for line in command.shown)
            exported = EXPORT.match(text)
            if serves and not refused:
                code, output = start_server(text, root, page)
            elif exported:
                code, output = export(exported.group(1), text, root, page)
            else:
                code, output = run(page.to_real(text), root, previous, page.env)
                output = page.to_documented(output)
        previous = code
        comment = text.split("#", 1)[1] if "#" in text else ""
        expected = re.search(r"\bexit (\d)", comment)
        if expected:
            assert code == int(expected.group(1)), (where.format(command.line), output)
        elif not command.shown and not text.startswith("echo"):
            assert code == 0, (where.format(command.line), text, output)
        missing = matches(command.shown, output)
        assert missing is None, (
            f"{where.format(command.line)}: `{text}` did not print\n{missing}\n--- it printed:\n"
            + output
        )


def test_every_page_with_commands_has_examples_found() -> None:
    """The parser is not vacuous: the pages known to hold examples yield them."""
    pages = {e.page for e in ALL}
    assert {"close.md", "customers.md", "demo.md", "reports.md", "commands.md"} <= pages
    assert len(ALL) >= 20


def test_matching_rules() -> None:
    output = "Title\n\nmethod: long\ncustomer  meter   status\nacme      calls   ok\n"
    assert matches(["customer meter status", "acme      calls   ok"], output) is None
    assert matches(["Title", "…", "acme … ok"], output) is None
    assert matches(["acme calls ok", "customer meter status"], output) == "customer meter status"


# --- the formats reference ------------------------------------------------------------------------

FORMATS = DOCS / "formats.md"


def _chunks() -> dict[str, str]:
    """``<!-- keys: NAME -->`` → the page's text from that marker to the next one or heading."""
    text = FORMATS.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for match in re.finditer(r"<!-- keys: (.+?) -->", text):
        rest = text[match.end() :]
        stop = re.search(r"<!-- keys: |^#", rest, re.M)
        found[match.group(1)] = rest[: stop.start()] if stop else rest
    return found


def _documented(chunk: str) -> set[str]:
    """The keys named in the first column of the chunk's tables."""
    keys: set[str] = set()
    for line in chunk.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            keys |= set(re.findall(r"`\[?([a-z_]+)\]?`", line.split("|")[1]))
    return keys


def test_every_key_the_rules_accept_is_in_the_formats_reference() -> None:
    """Walk the rules models, the pricing models' terms, the account keys and
    ``meterbook.toml``'s keys: each key is in its table of docs/formats.md, and each table names
    only keys that exist, so the reference cannot drift from the code."""
    import dataclasses
    import typing

    from ledger import rules, workspace
    from ledger.accounts import DEFAULT_TEMPLATES
    from ledger.pricing import Tier
    from ledger.registry import load_registry

    chunks = _chunks()
    models = {
        "Meter": rules.Meter,
        "Plan": rules.Plan,
        "BaseFee": rules.BaseFee,
        "Charge": rules.Charge,
        "PlanVersion": rules.PlanVersion,
        "Tier": rules.Tier,
        "Customer": rules.Customer,
        "Subscription": rules.Subscription,
        "CreditGrant": rules.CreditGrant,
        "Discount": rules.Discount,
        "Wallet": rules.Wallet,
        "RecurringTopUp": rules.RecurringTopUp,
        "BillingDetails": rules.BillingDetails,
        "ChangePolicy": rules.ChangePolicy,
        "GapsSpikesTuning": rules.GapsSpikesTuning,
    }
    internal = {"id", "terms"}  # the mapping's key; what a pricing model parses the charge into
    wanted: dict[str, set[str]] = {
        name: set(model.model_fields) - internal for name, model in models.items()
    }
    wanted["Subscription"].add("id")  # a key of the subscription, not of a mapping
    wanted["Discount"] |= {"id"}  # a list item: its id is a key of its own, not a mapping's key
    assert set(rules.Tier.model_fields) == {f.name for f in dataclasses.fields(Tier)}
    for name, model in load_registry().pricing_models.items():
        terms = typing.get_type_hints(model.parse)["return"]
        wanted[f"model {name}"] = {f.name for f in dataclasses.fields(terms)}
    wanted["model graduated"] = wanted["model volume"] = {"tiers"}
    wanted["accounts"] = set(DEFAULT_TEMPLATES)
    wanted["meterbook.toml"] = set(workspace._KEYS)
    for name in wanted:
        assert name in chunks, f"docs/formats.md has no <!-- keys: {name} --> table"
    # graduated and volume share one table (after the volume marker)
    documented = {name: _documented(chunk) for name, chunk in chunks.items()}
    documented["model graduated"] = documented["model volume"]
    for name, keys in wanted.items():
        missing = keys - documented[name]
        assert not missing, f"docs/formats.md, {name}: {sorted(missing)} not documented"
        if name not in ("Charge",):
            extra = documented[name] - keys
            assert not extra, f"docs/formats.md, {name}: {sorted(extra)} are not keys"


def test_the_payments_columns_are_in_the_formats_reference() -> None:
    """The payments example of docs/formats.md has every column the payments importer reads
    (the optional ``kind,customer,expires`` of a wallet top-up row included), and the commands
    page lists every reason a payments row is rejected for."""
    from ledger.importers.payments import COLUMNS
    from ledger.payments import REASONS

    text = FORMATS.read_text(encoding="utf-8")
    assert ",".join(COLUMNS) in text
    commands = (DOCS / "commands.md").read_text(encoding="utf-8")
    section = commands[commands.index("payments: `bad_encoding`") :]
    section = section[: section.index("live totals:")]
    assert [r for r in REASONS if f"`{r}`" not in section] == []


def test_a_new_business_from_the_formats_page(tmp_path: Path) -> None:
    """The page's "Your own business" section, as a reader follows it: ``meterbook init``, the
    rules and events files written as shown, then every ``$`` command run with its output
    compared. September: base fee 20.00 in advance on Sep 1; on Oct 1, (1,200 + 2,300 − 1,000)
    words × 0.05 = 125.00 of usage in arrears + October's 20.00 = 145.00 EUR. October: a row
    rejected, corrected in the file and imported again; 100.00 paid on Oct 12, so at Oct 31
    20.00 and 45.00 are open; (800 + 650 − 1,000) × 0.05 = 22.50 accrued."""
    text = FORMATS.read_text(encoding="utf-8")
    section = text[text.index("## Your own business") :]
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "words")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "words"
    files = re.findall(r"<!-- tutorial: (\S+) -->\n```\w*\n(.*?)```", section, re.S)
    assert [name for name, _ in files] == [
        "rules/meters.yaml",
        "rules/plans.yaml",
        "rules/customers.yaml",
        "events.csv",
        "october.csv",
        "payments.csv",
    ]
    for name, body in files:
        (root / name).write_text(body, encoding="utf-8")
    commands = [
        c
        for b in re.findall(r"```\n(\$ .*?)```", section, re.S)
        for c in _commands(b.splitlines(), 0)
    ]
    assert commands[0].text == "meterbook ingest events.csv"
    previous = 0
    outputs = {}
    for command in commands:
        previous, output = run(command.text, root, previous)
        rejected = command.text.startswith("meterbook ingest") and re.search(
            r"rejected [1-9]", output
        )
        assert previous == (1 if rejected else 0), (command.text, output)
        assert matches(command.shown, output) is None, (command.text, output)
        outputs[command.text] = output
    assert "warning" not in outputs["meterbook close 2026-09"]
    assert "145.00 EUR" in outputs["meterbook invoice --through 2026-10-01"]
    assert "1450  22.50 EUR" in run("meterbook rate --through 2026-10-31", root, 0)[1]


def test_the_accounting_excerpt_is_what_the_init_sample_books(tmp_path: Path) -> None:
    """docs/accounting.md's "real excerpt": ``meterbook init``'s sample ingested and invoiced
    through Feb 1 (INV-2026-000002: 3.12 of January's storage, 12.5 GB × 0.25, and February's
    19.00 base fee = 22.12), 10.00 paid by tr_002 on Feb 3, 2.12 credited on its line 2 on
    Feb 5: each of its entries is in the books as shown, the rules hash included."""
    text = (DOCS / "accounting.md").read_text(encoding="utf-8")
    start = text.index("A real excerpt")
    excerpt = text[text.index("```beancount\n", start) + 13 : text.index("```\n", start + 20)]
    root = tmp_path / "ex"
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    (root / "pay.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-02-03,10.00,USD,INV-2026-000002,tr_002\n"
    )
    for command in (
        "meterbook ingest samples/events.csv",
        "meterbook invoice --through 2026-02-01",
        "meterbook ingest pay.csv",
        "meterbook credit INV-2026-000002 --amount 2.12 --line 2 --date 2026-02-05"
        " --reason 'storage double-counted on Jan 20'",
        "meterbook post --through 2026-02-05",
    ):
        code, output = run(command, root, 0)
        assert code == (1 if command.endswith("samples/events.csv") else 0), (command, output)
    books = "".join(
        (root / "books" / "2026" / f"2026-{m}.beancount").read_text(encoding="utf-8")
        for m in ("01", "02")
    )
    entries = [entry for entry in excerpt.split("\n\n") if entry.strip()]
    assert len(entries) == 4
    for entry in entries:
        assert entry.strip() + "\n" in books, entry
