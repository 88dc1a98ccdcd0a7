"""``python -m ledger.bench NAME [ARGS...]`` runs ``ledger.bench.NAME.main(ARGS)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import ledger.bench


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(ledger.bench.__path__) if not m.name.startswith("_")
    )
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(
            f"usage: python -m ledger.bench NAME [ARGS...]   (NAME: {', '.join(names)})",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"ledger.bench.{argv[0]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
