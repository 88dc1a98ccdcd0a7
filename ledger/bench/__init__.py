"""Benchmarks (scripts, not tests): ``python -m ledger.bench NAME [ARGS...]``.

Each benchmark is a module ``ledger.bench.NAME`` with ``main(argv) -> int``;
add a module to add a benchmark::

    $ python -m ledger.bench ingest --events 1000000
"""
