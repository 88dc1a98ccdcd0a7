"""The books writer and loader: layout, determinism, atomic files, sealed months, exact amounts."""

from __future__ import annotations

import os
import random
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import amount, data
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import books
from ledger.books import (
    HEADER,
    BooksError,
    MetadataError,
    format_entries,
    load_books,
    sealed_months,
    write_atomic,
    write_books,
)

UNBILLED = "Assets:Receivables:Unbilled:Acme"
RECEIVABLE = "Assets:Receivables:Invoiced:Acme"
USAGE = "Income:Usage:Api-Calls"
CASH = "Assets:Bank:Operating"


def posting(
    account: str, number: str, currency: str = "USD", meta: dict[str, object] | None = None
) -> data.Posting:
    return data.Posting(account, amount.Amount(Decimal(number), currency), None, None, None, meta)  # type: ignore[arg-type]


def txn(
    day: date,
    narration: str,
    *postings: data.Posting,
    links: frozenset[str] = frozenset(),
    **meta: object,
) -> data.Transaction:
    return data.Transaction(
        {"filename": "<test>", "lineno": 0, **meta},
        day,
        "*",
        "acme",
        narration,
        frozenset(),
        links,
        list(postings),
    )


def sample() -> list[data.Directive]:
    """Accruals across a month end, an invoice, a payment and a sub-cent accrual."""
    link = frozenset({"acme-2026-09-15"})
    return [
        txn(
            date(2026, 9, 30),
            "Usage accrual",
            posting(UNBILLED, "4.00"),
            posting(USAGE, "-4.00"),
            links=link,
            customer="acme",
            cycle="2026-09-15/2026-10-15",
            meter="api_calls",
            quantity=Decimal("14000"),
        ),
        txn(
            date(2026, 10, 14),
            "Usage accrual",
            posting(UNBILLED, "11.00"),
            posting(USAGE, "-11.00"),
            links=link,
            customer="acme",
            cycle="2026-09-15/2026-10-15",
            meter="api_calls",
            quantity=Decimal("25000"),
        ),
        txn(
            date(2026, 10, 14),
            "Sub-cent accrual",
            posting(UNBILLED, "0.000123"),
            posting(USAGE, "-0.000123"),
            links=link,
            customer="acme",
            quantity=Decimal("1E-7"),
            late=True,
            usage_date=date(2026, 9, 20),
        ),
        txn(
            date(2026, 10, 15),
            "Invoice INV-2026-000001",
            posting(RECEIVABLE, "15.00"),
            posting(UNBILLED, "-15.00"),
            links=link | {"INV-2026-000001"},
            customer="acme",
        ),
        txn(
            date(2026, 11, 2),
            "Payment",
            posting(CASH, "15.00"),
            posting(RECEIVABLE, "-15.00"),
            links=frozenset({"INV-2026-000001"}),
            customer="acme",
            reference="wire 42",
        ),
    ]


def write(books_dir: Path, entries: list[data.Directive], **kwargs: object) -> tuple[str, ...]:
    args: dict[str, object] = {
        "options": {"title": "meterbook: test"},
        "operating_currencies": ["USD"],
        "plugins": [],
        "extensions": ["ledger.fava_ext"],
        "entries": entries,
    }
    args.update(kwargs)
    return write_books(books_dir, **args)  # type: ignore[arg-type]


def balances(
    entries: list[data.Directive], before: date | None = None
) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        if isinstance(entry, data.Transaction) and (before is None or entry.date < before):
            for p in entry.postings:
                assert p.units is not None and p.units.number is not None
                totals[(p.account, p.units.currency)] += p.units.number
    return {k: v for k, v in totals.items() if v}


def tree(books_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(books_dir).as_posix(): p.read_bytes()
        for p in sorted(books_dir.rglob("*"))
        if p.is_file()
    }


# --- layout and loading ---------------------------------------------------------------


def test_books_load_with_zero_errors_and_expected_balances(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    months = write(books_dir, sample())
    assert months == ("2026-09", "2026-10", "2026-11")
    assert sorted(tree(books_dir)) == [
        "2026/2026-09.beancount",
        "2026/2026-10.beancount",
        "2026/2026-11.beancount",
        "accounts.beancount",
        "main.beancount",
    ]
    entries, errors, options = load_books(books_dir / "main.beancount")
    assert errors == []
    assert options["title"] == "meterbook: test"
    assert options["operating_currency"] == ["USD"]
    assert balances(entries, before=date(2026, 10, 15)) == {
        (UNBILLED, "USD"): Decimal("15.000123"),
        (USAGE, "USD"): Decimal("-15.000123"),
    }
    assert balances(entries) == {
        (UNBILLED, "USD"): Decimal("0.000123"),
        (USAGE, "USD"): Decimal("-15.000123"),
        (CASH, "USD"): Decimal("15.00"),
    }
    opens = {e.account: e.date for e in entries if isinstance(e, data.Open)}
    assert opens == {
        UNBILLED: date(2026, 9, 30),
        USAGE: date(2026, 9, 30),
        RECEIVABLE: date(2026, 10, 15),
        CASH: date(2026, 11, 2),
    }
    loaded = next(
        e for e in entries if isinstance(e, data.Transaction) and e.narration == "Sub-cent accrual"
    )
    assert loaded.meta["quantity"] == Decimal("1E-7")
    assert loaded.meta["late"] is True
    assert loaded.meta["usage_date"] == date(2026, 9, 20)
    assert loaded.links == frozenset({"acme-2026-09-15"})


def test_every_file_starts_with_the_header_and_main_is_as_documented(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample(), plugins=[("ledger.seal", None), ("some.plugin", 'cfg "x"')])
    for name, content in tree(books_dir).items():
        assert content.decode().splitlines()[0] == HEADER, name
    assert (books_dir / "main.beancount").read_text() == "\n".join(
        [
            HEADER,
            'option "title" "meterbook: test"',
            'option "operating_currency" "USD"',
            'plugin "ledger.seal"',
            'plugin "some.plugin" "cfg \\"x\\""',
            '2000-01-01 custom "fava-extension" "ledger.fava_ext"',
            'include "accounts.beancount"',
            'include "2026/2026-09.beancount"',
            'include "2026/2026-10.beancount"',
            'include "2026/2026-11.beancount"',
        ]
    ) + "\n"
    accounts = (books_dir / "accounts.beancount").read_text()
    assert accounts.splitlines()[2:] == [
        "2026-11-02 open Assets:Bank:Operating",
        "2026-10-15 open Assets:Receivables:Invoiced:Acme",
        "2026-09-30 open Assets:Receivables:Unbilled:Acme",
        "2026-09-30 open Income:Usage:Api-Calls",
    ]


def test_month_file_holds_exactly_the_month(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    october = (books_dir / "2026" / "2026-10.beancount").read_text()
    assert october.startswith(HEADER + "\n\n2026-10-14 * ")
    assert october.count(" * ") == 3
    assert "open " not in october
    assert "filename" not in october and "lineno" not in october
    assert (
        '\n\n2026-10-15 * "acme" "Invoice INV-2026-000001" ^INV-2026-000001 ^acme-2026-09-15\n'
        in october
    )
    assert october.endswith("\n") and not october.endswith("\n\n")


def test_explicit_open_goes_to_accounts_file(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    explicit = data.Open({}, date(2026, 1, 1), CASH, ["USD"], None)
    write(books_dir, [*sample(), explicit])
    assert "2026-01-01 open Assets:Bank:Operating" in (books_dir / "accounts.beancount").read_text()
    assert "Assets:Bank:Operating" not in (books_dir / "2026" / "2026-09.beancount").read_text()
    _, errors, _ = load_books(books_dir / "main.beancount")
    assert errors == []


def test_auto_accounts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BooksError, match="auto_accounts"):
        write(tmp_path / "books", sample(), plugins=[("beancount.plugins.auto_accounts", None)])
    assert not (tmp_path / "books").exists()


# --- exact amounts and metadata -------------------------------------------------------


def test_sub_cent_amounts_print_exactly() -> None:
    entry = txn(
        date(2026, 10, 14),
        "x",
        posting(UNBILLED, "0.000123"),
        posting(USAGE, "-0.000123"),
        quantity=Decimal("1E-7"),
        big=Decimal("1.2E+3"),
    )
    text = format_entries([entry])
    assert "  Assets:Receivables:Unbilled:Acme   0.000123 USD\n" in text
    assert "  Income:Usage:Api-Calls            -0.000123 USD\n" in text
    assert "  quantity: 0.0000001\n" in text
    assert "  big: 1200\n" in text


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        3,
        None,
        datetime(2026, 10, 1, 12, 0),
        Decimal("NaN"),
        amount.Amount(Decimal(1), "USD"),
        ["a"],
    ],
)
def test_metadata_of_other_types_is_refused(value: object) -> None:
    entry = txn(date(2026, 10, 14), "x", posting(UNBILLED, "1"), posting(USAGE, "-1"), bad=value)
    with pytest.raises(MetadataError, match="2026-10-14 Transaction: metadata bad"):
        format_entries([entry])


def test_posting_metadata_and_keys_are_validated(tmp_path: Path) -> None:
    entry = txn(
        date(2026, 10, 14), "x", posting(UNBILLED, "1", meta={"rate": 0.1}), posting(USAGE, "-1")
    )
    with pytest.raises(MetadataError, match="rate: float"):
        format_entries([entry])
    with pytest.raises(MetadataError, match="not a valid Beancount key"):
        bad_key = txn(date(2026, 10, 14), "x", posting(UNBILLED, "1"), posting(USAGE, "-1"))
        bad_key.meta["Bad Key"] = "v"
        format_entries([bad_key])
    # nothing is written when one entry is bad
    with pytest.raises(MetadataError):
        write(tmp_path / "books", [*sample(), entry])
    assert not (tmp_path / "books").exists()


def test_posting_metadata_round_trips(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    entry = txn(
        date(2026, 10, 14),
        "x",
        posting(UNBILLED, "1", meta={"unit_price": Decimal("0.0010")}),
        posting(USAGE, "-1"),
        note='quote " and \\ backslash',
    )
    write(books_dir, [entry])
    entries, errors, _ = load_books(books_dir / "main.beancount")
    assert errors == []
    loaded = next(e for e in entries if isinstance(e, data.Transaction))
    assert loaded.meta["note"] == 'quote " and \\ backslash'
    assert (loaded.postings[0].meta or {})["unit_price"] == Decimal("0.0010")


# --- determinism ----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.permutations(sample()))
def test_format_entries_ignores_input_order(shuffled: list[data.Directive]) -> None:
    assert format_entries(shuffled) == format_entries(sample())


def test_shuffled_entries_give_byte_identical_books(tmp_path: Path) -> None:
    entries = sample()
    write(tmp_path / "a", entries)
    for seed in range(5):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        write(tmp_path / f"b{seed}", shuffled)
        assert tree(tmp_path / f"b{seed}") == tree(tmp_path / "a")


def test_rewriting_the_same_books_touches_nothing(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    before = {p: p.stat().st_mtime_ns for p in books_dir.rglob("*.beancount")}
    for p in before:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    write(books_dir, list(reversed(sample())))
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in before)


# --- atomic writes --------------------------------------------------------------------


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.beancount"
    assert write_atomic(target, "one\n") is True
    assert write_atomic(target, "one\n") is False
    assert write_atomic(target, "two\n") is True
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["f.beancount"]
    write(tmp_path / "books", sample())
    assert not [
        p for p in (tmp_path / "books").rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"
    ]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.beancount"
    write_atomic(target, "old\n")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(books.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.beancount"]


# --- open and sealed months -----------------------------------------------------------


def seal(books_dir: Path, month: str, assertions: str = "") -> Path:
    path = books_dir / month[:4] / f"{month}.close.beancount"
    path.write_text(
        f'{HEADER}\n\n{assertions}2026-11-01 custom "meterbook-seal" "{month}" "" "abc"\n'
    )
    return path


def test_sealed_month_is_never_rewritten(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    october = books_dir / "2026" / "2026-10.beancount"
    seal(books_dir, "2026-10", f"2026-11-01 balance {UNBILLED}  0.000123 USD\n")
    assert sealed_months(books_dir) == {"2026-10"}
    os.utime(october, ns=(1_000_000_000, 1_000_000_000))
    original = october.read_bytes()

    changed = [e for e in sample() if e.date.month != 10]
    changed.append(
        txn(date(2026, 10, 20), "Late correction", posting(UNBILLED, "1"), posting(USAGE, "-1"))
    )
    months = write(books_dir, changed, sealed_months=sealed_months(books_dir))

    assert months == ("2026-09", "2026-11")
    assert october.read_bytes() == original
    assert october.stat().st_mtime_ns == 1_000_000_000
    main = (books_dir / "main.beancount").read_text()
    assert 'include "2026/2026-10.beancount"\ninclude "2026/2026-10.close.beancount"\n' in main
    entries, errors, _ = load_books(books_dir / "main.beancount")
    assert errors == []
    # accounts first used in the sealed month are still opened, on the same day
    opens = {e.account: e.date for e in entries if isinstance(e, data.Open)}
    assert opens[RECEIVABLE] == date(2026, 10, 15)
    # entries given for a sealed month are ignored: the file on disk is the record
    assert "Late correction" not in {getattr(e, "narration", "") for e in entries}


def test_accounts_only_in_sealed_months_stay_open(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    seal(books_dir, "2026-09")
    seal(books_dir, "2026-10")
    write(books_dir, [], sealed_months=sealed_months(books_dir))
    entries, errors, _ = load_books(books_dir / "main.beancount")
    assert errors == []
    assert {e.account for e in entries if isinstance(e, data.Open)} == {UNBILLED, USAGE, RECEIVABLE}


def test_open_month_without_entries_keeps_a_header_only_file(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    months = write(books_dir, [e for e in sample() if e.date.month != 11])
    assert months == ("2026-09", "2026-10", "2026-11")
    assert (books_dir / "2026" / "2026-11.beancount").read_text() == HEADER + "\n"
    entries, errors, _ = load_books(books_dir / "main.beancount")
    assert errors == []
    assert CASH not in {e.account for e in entries if isinstance(e, data.Open)}


def test_unsealed_close_file_is_not_a_seal(tmp_path: Path) -> None:
    books_dir = tmp_path / "books"
    write(books_dir, sample())
    (books_dir / "2026" / "2026-10.close.beancount").write_text(f"{HEADER}\n")
    assert sealed_months(books_dir) == set()
    assert sealed_months(tmp_path / "missing") == set()
    with pytest.raises(BooksError, match="YYYY-MM"):
        write(books_dir, sample(), sealed_months={"2026-13"})
