"""The operations simulator (``python -m ledger.bench simulate``) in CI: a bounded number of
random operational histories through the CLI, every invariant checked (see
:mod:`ledger.bench.simulate`). Four histories of 30 operations take about a minute here;
the long runs and their report are in README "Simulator"."""

from __future__ import annotations

import random

import pytest

from ledger.bench import simulate


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23, 37, 41])
def test_random_histories_keep_every_invariant(seed: int) -> None:
    ops = simulate.generate(random.Random(seed), 30)
    message = simulate.failure_of(ops, check_every=15)
    assert message is None, f"seed {seed}:\n{simulate.describe(ops)}\n\n{message}"


def test_a_broken_invariant_is_reported_and_shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: with the rebuild made to differ, a history fails, and shrinking
    keeps only what the failure needs (a post, so there are books to rebuild)."""

    def broken(world: simulate.World) -> None:
        raise simulate.Failure("a rebuild from the store changed ['2026/2026-09.beancount']")

    monkeypatch.setattr(simulate, "_rebuild", broken)
    ops = [
        ("advance", (0.9, 0, 0, 0)),
        ("usage", (0.0, 0.5, 0.0, 0.0)),
        ("post", (0, 0, 0, 0)),
        ("advance", (0.5, 0, 0, 0)),
    ]
    assert (
        simulate.failure_of(ops, check_every=0)
        == "a rebuild from the store changed ['2026/2026-09.beancount']"
    )
    small, message = simulate.shrink(list(ops), 0, deadline=float("inf"))
    assert small == [] and message.startswith("a rebuild")
