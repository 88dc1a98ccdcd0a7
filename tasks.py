#!/usr/bin/env python3
"""The two quickstart commands, with nothing installed beforehand but Python 3.11+.

    python3 tasks.py demo      # make .venv, install meterbook, run `meterbook demo` (the books/ of this repo)
    python3 tasks.py test      # make .venv, install meterbook[test], run the whole suite

`test` runs ruff and mypy on ledger/ and then pytest; extra arguments go to pytest
(`python3 tasks.py test -k ingest`). CI (.ci/run) runs exactly `python3 tasks.py test`.
Both install with ``-c constraints.txt``: the versions CI last tested (the manual "Dependencies").

    python3 tasks.py constraints   # rewrite constraints.txt from .venv (after a dependency change)

    python3 tasks.py mutation rating [--max-minutes 20] [--children 2] [--from-git HEAD]

runs mutmut on one money-critical module (the manual "Mutation testing"; the modules and the tests
each is checked with are in MUTATION_MODULES) and prints its score and surviving mutants.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def _install(extra: str, *, pinned: bool = True) -> None:
    if sys.version_info < (3, 11):
        sys.exit("meterbook needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    target = f".[{extra}]" if extra else "."
    pin = ["-c", CONSTRAINTS] if pinned and CONSTRAINTS.is_file() else []
    _run(
        BIN / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        *pin,
        "-e",
        target,
    )


#: The versions of every package the test install pulls, as CI tested them (pip constraints:
#: they pin what is installed, they install nothing themselves).
CONSTRAINTS = ROOT / "constraints.txt"


def constraints(args: list[str]) -> None:
    """Rewrite constraints.txt from .venv: ``pip freeze`` less meterbook itself and anything not
    from the package index (editable or local installs). Run after changing a dependency, then
    ``python3 tasks.py test`` and commit both."""
    if args:
        sys.exit("usage: python3 tasks.py constraints")
    _install("test", pinned=False)  # a new dependency resolves; what is installed already stays
    frozen = subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "freeze",
            "--exclude-editable",
            "--disable-pip-version-check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    pins = sorted(
        {
            line.strip()
            for line in frozen.stdout.splitlines()
            if "==" in line and " @ " not in line and not line.lower().startswith("meterbook==")
        },
        key=str.lower,
    )
    CONSTRAINTS.write_text(
        "# The versions CI tested: `pip install -c constraints.txt -e .[test]` (tasks.py does).\n"
        "# Regenerate after changing a dependency: python3 tasks.py constraints\n"
        + "\n".join(pins)
        + "\n"
    )
    print(f"{CONSTRAINTS.name}: {len(pins)} pinned packages")


def demo(args: list[str]) -> None:
    """`meterbook demo` on the repository's workspace: regenerates books/ (extra arguments go to it)."""
    _install("")
    _run(BIN / "meterbook", "--workspace", ROOT, "demo", *args)


def test(args: list[str]) -> None:
    _install("test")
    os.environ.setdefault("BEANCOUNT_DISABLE_LOAD_CACHE", "1")
    _run(BIN / "ruff", "format", "--check", "ledger", "plugins", "importers", "tests")
    _run(BIN / "ruff", "check", "ledger", "plugins", "importers", "tests")
    _run(BIN / "mypy", "ledger", "plugins", "importers")
    _run(BIN / "python", "-m", "pytest", *args)


#: module → (files mutated, tests run against their mutants). mutmut runs in a staging copy
#: (var/mutation/<module>/) laid out as installed: plugins/ and importers/ become
#: src/ledger/plugins and src/ledger/importers, as pyproject's package-dir maps them, so a
#: mutant of plugins/unit.py is the ``ledger.plugins.unit`` the engine imports.
_DOCTEST = "test_doctests.py::test_docstring_examples[ledger."
#: Left out of every selection: each costs seconds per mutant, and what they check is also
#: checked by the fast worked examples of the same modules.
_SLOW = (
    "--deselect",
    "tests/test_rating.py::test_cumulative_rating_at_any_cut_offs_adds_up_to_rating_once",
    "--deselect",
    "tests/test_flat.py::test_accruals_of_a_cycle_sum_to_its_invoice",
    "--deselect",
    "tests/test_posting_properties.py::test_books_balance_and_do_not_depend_on_ingest_order_or_chunking",
)
MUTATION_MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "money": (
        ("ledger/money.py",),
        (
            "test_jpy.py",
            "test_currencies.py",
            _DOCTEST + "money]",
            "test_pricing_models.py",
            "test_mutation_kills.py",
        ),
    ),
    "cycles": (
        ("ledger/cycles.py", "ledger/period.py"),
        (
            "test_cycles.py",
            _DOCTEST + "cycles]",
            _DOCTEST + "period]",
            "test_rating.py",
            "test_mutation_kills.py",
            *_SLOW,
        ),
    ),
    "metering": (("ledger/metering.py",), ("test_metering.py", "test_rating.py", *_SLOW)),
    "rating": (
        ("ledger/rating.py", "ledger/discounts.py", "ledger/topups.py"),
        (
            "test_rating.py",
            "test_credit_draws.py",
            "test_rating_edges.py",
            "test_flat.py",
            "test_plugin_failures.py",
            "test_discounts.py",
            "test_topups.py",
            _DOCTEST + "rating]",
            _DOCTEST + "discounts]",
            _DOCTEST + "topups]",
            "test_mutation_kills.py",
            *_SLOW,
        ),
    ),
    "pricing": (
        (
            "ledger/pricing.py",
            "plugins/unit.py",
            "plugins/graduated.py",
            "plugins/volume.py",
            "plugins/package.py",
            "plugins/percentage.py",
            "plugins/flat.py",
        ),
        (
            "test_pricing_models.py",
            "test_flat.py",
            "test_plugin_failures.py",
            *_SLOW,
            "test_mutation_kills.py",
            _DOCTEST + "pricing]",
            *(
                _DOCTEST + f"plugins.{name}]"
                for name in ("unit", "graduated", "volume", "package", "percentage", "flat")
            ),
        ),
    ),
    "journal": (
        (
            "ledger/journal/__init__.py",
            "ledger/journal/meta.py",
            "ledger/journal/accruals.py",
            "ledger/journal/invoices.py",
            "ledger/journal/sealed.py",
            "ledger/accruals.py",
        ),
        (
            "test_posting.py",
            "test_posting_properties.py",
            "test_credit_draws.py",
            "test_flat.py",
            "test_jpy.py",
            _DOCTEST + "journal.meta]",
            _DOCTEST + "accruals]",
            "test_mutation_kills.py",
            "test_journal.py",
            "test_tax_inclusive.py",
            "test_metadata.py",
            "test_close.py",
            "test_supplementary.py",
            # threshold invoicing: the one caller of fee_as_accrued and _same outside `trace`
            "test_threshold.py",
            *_SLOW,
        ),
    ),
    "invoicing": (
        ("ledger/invoicing.py",),
        ("test_invoice_gate.py", "test_supplementary.py", "test_posting.py", "test_metadata.py"),
    ),
    # each with its journal builders (ledger/journal/payments.py, credit_notes.py and the rerate's
    # adjustments.py), whose ledger-text examples are in test_journal.py
    "payments": (
        ("ledger/payments.py", "ledger/journal/payments.py"),
        (
            "test_payments.py",
            "test_journal.py",
            # cash applied and refunded through `meterbook apply` and `meterbook refund`
            "test_operations.py::test_unapplied_cash_and_credit_balances_are_applied_and_refunded",
            _DOCTEST + "payments]",
        ),
    ),
    "credit_notes": (
        (
            "ledger/credit_notes.py",
            "ledger/journal/credit_notes.py",
            "ledger/journal/adjustments.py",
        ),
        ("test_credit_notes.py", "test_journal.py", "test_rerate.py", _DOCTEST + "credit_notes]"),
    ),
    # with the close, which seals a month and writes the seal's coverage of the documents
    "seal": (("ledger/seal.py",), ("test_seal.py", "test_close.py")),
    # with the record path of importer plugins (ingest_records), which test_registry runs
    "ingest": (("ledger/ingest.py",), ("test_ingest.py", "test_registry.py")),
}


def _toml(value: object) -> str:
    import json

    return json.dumps(value)  # strings, lists of strings, numbers and booleans are the same in TOML


def mutation(args: list[str]) -> None:
    """mutmut on one module, niced, in bounded time; prints the score and the survivors."""
    import argparse

    parser = argparse.ArgumentParser(prog="tasks.py mutation")
    parser.add_argument("module", choices=sorted(MUTATION_MODULES))
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="stop mutating after this long; the score counts what was tried",
    )
    parser.add_argument("--children", type=int, default=2, help="parallel mutant runs (default 2)")
    parser.add_argument(
        "--from-git",
        metavar="REV",
        help="mutate the files as committed at REV instead of the working tree",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the mutants the last run of MODULE did not try (same copy)",
    )
    parser.add_argument(
        "--retest",
        action="store_true",
        help="run the last run's survivors again, on a fresh copy of code and tests",
    )
    parser.add_argument(
        "mutants",
        nargs="*",
        metavar="MUTANT",
        help="only these mutants (names as printed), on a fresh copy",
    )
    opts = parser.parse_intermixed_args(args)
    if not (BIN / "mutmut").exists():
        _install("test,mutation")
    files, tests = MUTATION_MODULES[opts.module]
    stage = ROOT / "var" / "mutation" / opts.module
    names: list[str] = list(opts.mutants)
    if opts.retest:
        names += _survivors(stage) if (stage / "mutants").is_dir() else []
        if not names:
            sys.exit(f"{opts.module}: the last run left no survivor to retest")
    if names or not (opts.resume and (stage / "mutants").is_dir()):
        _stage(stage, files, tests, opts.from_git)
    _run_mutmut(stage, opts.module, opts.max_minutes, opts.children, names)


def _copy_tree(name: str, target: Path, rev: str | None) -> None:
    """``name`` (a directory of the repository) copied over ``target``, from the working tree or
    as committed at ``rev``."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        source = ROOT
        if rev:
            archive = subprocess.run(
                ["git", "archive", rev, name], cwd=ROOT, check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            source = Path(tmp)
        shutil.copytree(
            source / name,
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )


def _survivors(stage: Path) -> list[str]:
    listing = subprocess.run(
        [str(BIN / "mutmut"), "results"], cwd=stage, capture_output=True, text=True
    ).stdout
    return sorted(
        line.split(":")[0].strip()
        for line in listing.splitlines()
        if line.rstrip().endswith(": survived")
    )


def _stage(stage: Path, files: tuple[str, ...], tests: tuple[str, ...], rev: str | None) -> None:
    """A fresh copy of the code and tests in ``stage`` with the module's mutmut settings."""
    import shutil

    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    layout = {
        "ledger": "src/ledger",
        "plugins": "src/ledger/plugins",
        "importers": "src/ledger/importers",
        "tests": "tests",
        "rules": "rules",
    }
    for name, target in layout.items():
        _copy_tree(name, stage / target, rev)
    _settings(stage, files, tests)


def _settings(stage: Path, files: tuple[str, ...], tests: tuple[str, ...]) -> None:
    """``stage``'s pyproject.toml: the repository's, with the module's mutmut settings."""
    import re
    import tomllib

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    common = tomllib.loads(pyproject).get("tool", {}).get("mutmut", {})
    settings = {
        **common,
        "source_paths": ["src/ledger"],
        "only_mutate": ["src/" + f.replace("plugins/", "ledger/plugins/") for f in files],
        "pytest_add_cli_args_test_selection": [
            t if t.startswith(("-", "tests/")) else f"tests/{t}"
            for t in tests
            if t.startswith(("-", "tests/")) or (stage / "tests" / t.split("::")[0]).exists()
        ],
    }
    own = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", pyproject)
    table = "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    (stage / "pyproject.toml").write_text(own + "\n[tool.mutmut]\n" + table, encoding="utf-8")


def _run_mutmut(
    stage: Path, module: str, max_minutes: float, children: int, names: list[str]
) -> None:
    """mutmut run in ``stage`` (only the mutants ``names`` when given), stopped after
    ``max_minutes``; then the score and the survivors."""
    import json
    import signal

    env = {**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}
    command = [
        "nice",
        "-n",
        "15",
        str(BIN / "mutmut"),
        "run",
        "--max-children",
        str(children),
        *names,
    ]
    print(
        "+",
        " ".join(command),
        f"(in {stage.relative_to(ROOT)}, at most {max_minutes:g} min)",
        flush=True,
    )
    run = subprocess.Popen(command, cwd=stage, env=env, start_new_session=True)
    try:
        run.wait(timeout=max_minutes * 60)
    except subprocess.TimeoutExpired:
        print(
            f"\n{max_minutes:g} minutes are up: stopping mutmut (untried mutants are not counted; "
            f"--resume goes on with them)"
        )
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    subprocess.run(
        [str(BIN / "mutmut"), "export-cicd-stats"], cwd=stage, env=env, stdout=subprocess.DEVNULL
    )
    stats_file = stage / "mutants" / "mutmut-cicd-stats.json"
    if not stats_file.exists():
        sys.exit("mutmut produced no results (see its output above)")
    stats = json.loads(stats_file.read_text())
    survivors = _survivors(stage)
    caught = stats["killed"] + stats["timeout"] + stats["suspicious"] + stats["segfault"]
    tried = caught + stats["survived"] + stats["no_tests"]
    score = 100 * caught / tried if tried else 0.0
    print(
        f"\n{module}: {stats['total']} mutants, killed {caught} (timeouts {stats['timeout']}), "
        f"survived {stats['survived']}, no tests {stats['no_tests']}, "
        f"not tried {stats['total'] - tried}: score {score:.1f}% of those tried"
    )
    shown = []
    for name in survivors:
        print("  survived:", name)
        if len(shown) < 60:  # `mutmut show` takes a second or two each
            shown.append(
                subprocess.run(
                    [str(BIN / "mutmut"), "show", name],
                    cwd=stage,
                    env=env,
                    capture_output=True,
                    text=True,
                ).stdout
            )
    (stage / "survivors.txt").write_text("\n".join(shown), encoding="utf-8")
    if survivors:
        print(f"their diffs: {(stage / 'survivors.txt').relative_to(ROOT)}")
    sys.exit(1 if survivors or stats.get("no_tests", 0) else 0)


if __name__ == "__main__":
    commands = {"demo": demo, "test": test, "mutation": mutation, "constraints": constraints}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(commands)}}} [ARGS...]")
    commands[sys.argv[1]](sys.argv[2:])
