"""Deterministic fault injection at named points, for the crash tests.

A test runs the real CLI in a subprocess with ``METERBOOK_FAULT`` naming a
point; when the process reaches it, it stops at once with ``os._exit(137)``
(what ``kill -9`` leaves behind: no ``finally``, no rollback, no flush)::

    METERBOOK_FAULT=close:sealed meterbook close 2026-10      # dies right after the seal is written

``METERBOOK_PAUSE=<point>:<file>`` instead makes the process write
``<file>.reached`` and wait until ``<file>`` exists: a rendezvous for the
concurrency tests (one process is known to be at a point while another
starts), without sleeping for a guessed time.

The points, in the order a command reaches them:

=====================  =======================================================================
point                  where
=====================  =======================================================================
``post:rated``         ``post`` has read the store and rated, nothing written yet
``invoice:staged``     ``invoice`` wrote its books and documents as temporary files, store unchanged
``invoice:numbered``   ``invoice`` committed the numbered invoices, the books not yet in place
``close:inner-post``   ``close`` issued the month's invoices and posted, before the outer post
``close:body``         ``close`` wrote the close file's assertions (not sealed) and loaded the books
``close:recorded``     ``close`` recorded the seal in the store, not yet written to the books
``close:sealed``       ``close`` wrote the seal into the books
=====================  =======================================================================

Neither variable is read outside these calls; unset, :func:`point` costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = (
    "post:rated",
    "invoice:staged",
    "invoice:numbered",
    "close:inner-post",
    "close:body",
    "close:recorded",
    "close:sealed",
)
#: The exit status of a process stopped at a fault point (128 + SIGKILL, as a shell shows
#: ``kill -9``).
EXIT_STATUS = 137


def point(name: str) -> None:
    """Stop here (``METERBOOK_FAULT=name``) or wait here (``METERBOOK_PAUSE=name:file``)."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    if os.environ.get("METERBOOK_FAULT") == name:
        os._exit(EXIT_STATUS)
    pause = os.environ.get("METERBOOK_PAUSE", "")
    if pause.startswith(f"{name}:"):
        release = Path(pause[len(name) + 1 :])
        Path(f"{release}.reached").write_text(str(os.getpid()))
        while not release.exists():
            time.sleep(0.01)
