"""The manual: docs/ builds with MkDocs in strict mode, every page is in the navigation,
and the README stays a short front page that points into it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.workspaces import REPO


def _nav_files() -> list[str]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    return [next(iter(item.values())) for item in config["nav"]]


def test_the_manual_builds_in_strict_mode(tmp_path: Path) -> None:
    """A broken link or anchor, a page left out of the navigation, or a missing page fails
    the build (``strict: true`` turns MkDocs' warnings into errors; ``-q`` would hide the
    warnings and with them the failure, so the build runs without it)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in _nav_files():
        assert (tmp_path / "site" / page.replace(".md", "") / "index.html").exists() or (
            page == "index.md" and (tmp_path / "site" / "index.html").exists()
        )


def test_every_page_is_in_the_navigation_and_has_a_title() -> None:
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(_nav_files()) == pages
    for page in pages:
        first = (REPO / "docs" / page).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), page


def test_the_readme_is_a_short_front_page_into_the_manual() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    for page in _nav_files():
        assert f"docs/{page}" in readme, f"README does not point to docs/{page}"


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    """The strict build is not vacuous: a copy of the manual with one broken anchor fails."""
    copy = tmp_path / "copy"
    (copy / "docs").mkdir(parents=True)
    for page in (REPO / "docs").glob("*.md"):
        (copy / "docs" / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    (copy / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[nowhere](accounting.md#no-such-heading)\n")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "no-such-heading" in result.stdout + result.stderr


def test_the_manual_stands_alone() -> None:
    """Users have the repository, not the design document: no page and not the README sends
    them to it."""
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        assert "DESIGN" not in text and "design document" not in text.lower(), page.name
