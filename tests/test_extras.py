"""PostgreSQL is an extra: the base install has no driver, and a PostgreSQL store URL without it
is one line naming the extra (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from tests.support.workspaces import METERS_CALLS, write_workspace

ROOT = Path(__file__).resolve().parent.parent

#: Makes ``import psycopg`` fail as it does where the driver is not installed.
BLOCK_PSYCOPG = """
import sys

class _NoPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoPsycopg())
"""


def test_base_dependencies_have_no_postgresql_driver() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "psycopg" in d]
    assert any(
        d.startswith("psycopg[binary]") for d in project["optional-dependencies"]["postgresql"]
    )
    assert "meterbook[postgresql]" in project["optional-dependencies"]["test"]
    # the installed metadata says the same: psycopg only under the extra
    requires = metadata.requires("meterbook") or []
    assert (
        [r for r in requires if r.startswith("psycopg")]
        == [r for r in requires if r.startswith("psycopg") and 'extra == "postgresql"' in r]
        != []
    )


def test_postgresql_url_without_the_driver_names_the_extra(tmp_path: Path) -> None:
    ws = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans="plans: {}\n",
        customers="customers: {}\n",
        config='store = "postgresql+psycopg://postgres@127.0.0.1:5432/test"\n',
    )
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCK_PSYCOPG)
    events = tmp_path / "events.csv"
    events.write_text("id,customer,type,time\ne-1,acme,api.request,2026-10-01T12:00:00Z\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'block'}{os.pathsep}{ROOT}"}
    probe = subprocess.run(
        [sys.executable, "-c", "import psycopg"], env=env, capture_output=True, text=True
    )
    assert (
        "No module named 'psycopg'" in probe.stderr
    )  # the driver really is missing in the subprocess
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ledger.cli import main; main()",
            "--workspace",
            str(ws),
            "ingest",
            str(events),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "meterbook: error: store postgresql+psycopg://postgres@127.0.0.1:5432/test: the "
        "PostgreSQL driver "
        "psycopg is not installed; install it with: pip install 'meterbook[postgresql]'"
    ]
    assert not (ws / "var").exists()


def _requirements() -> list[str]:
    """Every requirement pyproject names for the tested install: base, postgresql and test
    extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [
        *project["dependencies"],
        *extras["postgresql"],
        *(r for r in extras["test"] if not r.startswith("meterbook[")),
    ]


def test_constraints_pin_every_dependency_within_its_range() -> None:
    """constraints.txt (``python3 tasks.py constraints``) pins each direct dependency to a version
    its range admits, and that version is the one installed: what CI tests is what it pins."""
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    assert "meterbook" not in pins
    for text in _requirements():
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in constraints.txt: run python3 tasks.py constraints"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
        assert metadata.version(requirement.name) == pins[name], name
    # the upper bounds where an API is known to move
    bounds = {Requirement(r).name: str(Requirement(r).specifier) for r in _requirements()}
    assert (
        "<1.31" in bounds["fava"] and "<4" in bounds["beancount"] and "<0.3" in bounds["beangulp"]
    )
