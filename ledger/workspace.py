"""The workspace: a directory with ``meterbook.toml``.

A worked example::

    # meterbook.toml
    books = "books"
    rules = "rules"
    store = "sqlite:///var/events.sqlite"   # relative sqlite paths: relative to the workspace
    timezone = "UTC"
    operating_currency = "USD"
    plugins_dir = ""

``Workspace.find(Path.cwd())`` walks up to the first directory holding that file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.errors import WorkspaceError

CONFIG_NAME = "meterbook.toml"
_KEYS = {"books", "rules", "store", "timezone", "operating_currency", "plugins_dir"}


@dataclass(frozen=True)
class Workspace:
    """A loaded ``meterbook.toml`` with its paths resolved."""

    root: Path
    books_dir: Path
    rules_dir: Path
    store_url: str
    timezone: str
    operating_currency: str
    plugins_dir: Path | None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def main_file(self) -> Path:
        return self.books_dir / "main.beancount"

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @classmethod
    def find(cls, start: Path) -> Workspace:
        """Walk up from ``start`` to the first directory with ``meterbook.toml``."""
        start = start.resolve()
        for directory in (start, *start.parents):
            if (directory / CONFIG_NAME).is_file():
                return cls.load(directory)
        raise WorkspaceError(
            f"no {CONFIG_NAME} in {start} or any parent; run 'meterbook init DIR' "
            "or pass --workspace DIR"
        )

    @classmethod
    def load(cls, root: Path) -> Workspace:
        """Load ``root/meterbook.toml``; every error names the file and key."""
        root = root.resolve()
        path = root / CONFIG_NAME
        if not path.is_file():
            raise WorkspaceError(f"{path}: not found; run 'meterbook init {root}'")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"{path}: {exc}") from None
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise WorkspaceError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        for key, value in data.items():
            if not isinstance(value, str):
                raise WorkspaceError(f"{path}: {key}: expected a string, got {type(value).__name__}")
        timezone = data.get("timezone", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise WorkspaceError(f"{path}: timezone: unknown time zone {timezone!r}") from None
        currency = data.get("operating_currency", "USD")
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise WorkspaceError(f"{path}: operating_currency: {currency!r} is not an ISO 4217 code")
        plugins_dir = data.get("plugins_dir", "")
        return cls(
            root=root,
            books_dir=root / data.get("books", "books"),
            rules_dir=root / data.get("rules", "rules"),
            store_url=resolve_store_url(data.get("store", "sqlite:///var/events.sqlite"), root),
            timezone=timezone,
            operating_currency=currency,
            plugins_dir=(root / plugins_dir) if plugins_dir else None,
        )


def resolve_store_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///path`` absolute against the workspace root."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix):]
        if rest and rest != ":memory:" and not Path(rest).is_absolute():
            return prefix + str((root / rest).resolve())
    return url
