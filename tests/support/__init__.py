"""What the test modules share, one module per theme; no test module imports another
(tests/test_hygiene.py checks it). Import by name from the module that holds it::

    from tests.support.workspaces import METERS_CALLS, calls, write_workspace

- ``workspaces``: the building blocks: a workspace from YAML text, events put straight into
  the store, the CLI in-process, balances of loaded entries, the repository's root;
- ``alerts``, ``api``, ``close``, ``fava``, ``payments``, ``posting``, ``rating``, ``reports``,
  ``rerate``, ``statements``, ``tax``: the workspaces (rules, events, builders) that several
  test modules compute their numbers from, named after the test module that works them;
- ``faults``: the close workspace through November and the real CLI in subprocesses;
- ``ingest``: the ingest tests' rules and an import run at a fixed time;
- ``pricing``: usage split into bands, as the metering does;
- ``readme``: the documentation's code blocks, run as written.

Fixtures several modules use are in tests/conftest.py.
"""
