#!/usr/bin/env python3
"""The two quickstart commands, with nothing installed beforehand but Python 3.11+.

    python3 tasks.py demo      # make .venv, install meterbook, run `meterbook demo` (the books/ of this repo)
    python3 tasks.py test      # make .venv, install meterbook[test], run the whole suite

`test` runs ruff and mypy on ledger/ and then pytest; extra arguments go to pytest
(`python3 tasks.py test -k ingest`). CI (.ci/run) runs exactly `python3 tasks.py test`.
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


def _install(extra: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("meterbook needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    target = f".[{extra}]" if extra else "."
    _run(BIN / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target)


def demo(args: list[str]) -> None:
    """`meterbook demo` on the repository's workspace: regenerates books/ (extra arguments go to it)."""
    _install("")
    _run(BIN / "meterbook", "--workspace", ROOT, "demo", *args)


def test(args: list[str]) -> None:
    _install("test")
    os.environ.setdefault("BEANCOUNT_DISABLE_LOAD_CACHE", "1")
    _run(BIN / "ruff", "check", "ledger", "plugins", "importers", "tests")
    _run(BIN / "mypy", "ledger", "plugins", "importers")
    _run(BIN / "python", "-m", "pytest", *args)


if __name__ == "__main__":
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(commands)}}} [ARGS...]")
    commands[sys.argv[1]](sys.argv[2:])
