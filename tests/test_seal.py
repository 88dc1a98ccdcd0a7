"""The period seal: canonical form, hash chain, and tampering caught by plain bean-check.

Each test builds small books by hand (October and November 2026, sealed in
order with :func:`ledger.seal.build_seal` and Beancount's printer, as
``meterbook close`` does), then edits them the way a careless or dishonest
hand would.
"""

from __future__ import annotations

import datetime
import doctest
import hashlib
import io
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest
from beancount import loader
from beancount.core import data
from beancount.core.amount import Amount
from beancount.parser import printer

from ledger import seal

BEAN_CHECK = Path(sys.executable).parent / "bean-check"

MAIN = """\
option "title" "seal test"
option "operating_currency" "USD"
plugin "ledger.seal"

2026-09-01 custom "fava-option" "invert-income-liabilities" "true"

"""

ACCOUNTS = """\
2026-10-01 open Assets:Bank:Operating USD
2026-10-01 open Assets:Receivables:Unbilled:Acme USD
2026-10-01 open Assets:Receivables:Invoiced:Acme USD
2026-10-01 open Income:Usage:Api-Calls USD
"""

OCTOBER = """\
2026-10-14 * "acme" "Usage accrual through 2026-10-14" ^acme-2026-09-15
  customer: "acme"
  quantity: 14000
  Assets:Receivables:Unbilled:Acme   4.00 USD
  Income:Usage:Api-Calls            -4.00 USD

2026-10-15 * "acme" "Invoice INV-1" ^INV-1
  Assets:Receivables:Invoiced:Acme   4.00 USD
  Assets:Receivables:Unbilled:Acme  -4.00 USD

2026-10-15 document Assets:Receivables:Invoiced:Acme "../documents/INV-1.html" ^INV-1

2026-10-31 * "acme" "Usage accrual through 2026-10-31" ^acme-2026-10-15
  customer: "acme"
  Assets:Receivables:Unbilled:Acme  11.50 USD
    meter: "api_calls"
  Income:Usage:Api-Calls
"""

OCTOBER_BALANCES = """\
2026-11-01 balance Assets:Receivables:Unbilled:Acme  11.50 USD
2026-11-01 balance Assets:Receivables:Invoiced:Acme   4.00 USD
"""

NOVEMBER = """\
2026-11-12 * "Bank" "Payment INV-1" ^INV-1
  Assets:Bank:Operating              4.00 USD
  Assets:Receivables:Invoiced:Acme  -4.00 USD

2026-11-15 * "acme" "Invoice INV-2" ^INV-2
  Assets:Receivables:Invoiced:Acme  12.75 USD
  Assets:Receivables:Unbilled:Acme -12.75 USD

2026-11-14 * "acme" "Usage accrual through 2026-11-14" ^acme-2026-10-15
  Assets:Receivables:Unbilled:Acme   1.25 USD
  Income:Usage:Api-Calls            -1.25 USD
"""

NOVEMBER_BALANCES = """\
2026-12-01 balance Assets:Receivables:Unbilled:Acme   0.00 USD
2026-12-01 balance Assets:Receivables:Invoiced:Acme  12.75 USD
"""


class Books(NamedTuple):
    root: Path
    main: Path
    hashes: dict[str, str]

    def file(self, relative: str) -> Path:
        return self.root / relative

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.file(relative)
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))


def load(main: Path) -> tuple[list[data.Directive], list[object]]:
    entries, errors, _ = loader.load_file(str(main))
    return entries, errors


def bean_check(main: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}
    return subprocess.run(
        [str(BEAN_CHECK), str(main)],
        capture_output=True,
        text=True,
        env=env,
        cwd=main.parent,
        check=False,
    )


def printed(entries: list[data.Directive]) -> str:
    out = io.StringIO()
    printer.print_entries(entries, file=out)
    return out.getvalue()


def close(root: Path, month: str, balances: str, previous: str) -> str:
    """What ``meterbook close`` does for the seal: assertions, load, manifest + seal, appended."""
    year = month[:4]
    close_file = root / year / f"{month}.close.beancount"
    close_file.write_text(balances)
    with (root / "main.beancount").open("a") as main:
        main.write(f'include "{year}/{month}.close.beancount"\n')
    entries, errors = load(root / "main.beancount")
    assert errors == []
    directives = seal.build_seal(month, entries, previous)
    with close_file.open("a") as out:
        out.write("\n" + printed(directives))
    return str(directives[-1].values[2].value)


@pytest.fixture
def books(tmp_path: Path) -> Books:
    root = tmp_path / "books"
    (root / "2026").mkdir(parents=True)
    (root / "documents").mkdir()
    (root / "documents" / "INV-1.html").write_text("<p>INV-1</p>\n")
    (root / "accounts.beancount").write_text(ACCOUNTS)
    (root / "2026" / "2026-10.beancount").write_text(OCTOBER)
    (root / "2026" / "2026-11.beancount").write_text(NOVEMBER)
    (root / "main.beancount").write_text(
        MAIN + 'include "accounts.beancount"\ninclude "2026/2026-10.beancount"\n'
        'include "2026/2026-11.beancount"\n'
    )
    october = close(root, "2026-10", OCTOBER_BALANCES, seal.GENESIS)
    november = close(root, "2026-11", NOVEMBER_BALANCES, october)
    return Books(root, root / "main.beancount", {"2026-10": october, "2026-11": november})


def seal_errors(main: Path) -> list[seal.SealError]:
    _, errors = load(main)
    return [e for e in errors if isinstance(e, seal.SealError)]


def assert_caught(books: Books, *expected: str) -> str:
    """bean-check fails and says each of ``expected``; so does a plain load, with a SealError."""
    assert seal_errors(books.main), "the plugin reported nothing"
    result = bean_check(books.main)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, f"{text!r} not in:\n{output}"
    return output


# -- clean books --------------------------------------------------------------


def test_clean_books_load_without_errors(books: Books) -> None:
    entries, errors = load(books.main)
    assert errors == []
    statuses = seal.verify_seals(entries)
    assert statuses == [
        seal.SealStatus("2026-10", books.hashes["2026-10"], True, ""),
        seal.SealStatus("2026-11", books.hashes["2026-11"], True, ""),
    ]
    assert seal.latest_seal(entries) is not None


def test_clean_books_pass_bean_check(books: Books) -> None:
    result = bean_check(books.main)
    assert result.returncode == 0, result.stdout + result.stderr


def test_close_file_reads_as_designed(books: Books) -> None:
    text = books.file("2026/2026-10.close.beancount").read_text()
    line = (
        f'2026-11-01 custom "meterbook-seal" "2026-10" "{seal.GENESIS}" "{books.hashes["2026-10"]}"'
    )
    assert line in text
    assert '2026-11-01 custom "meterbook-seal-manifest" "2026-10" 10' in text
    november = books.file("2026/2026-11.close.beancount").read_text()
    assert f'"2026-11" "{books.hashes["2026-10"]}" "{books.hashes["2026-11"]}"' in november


def test_seal_hash_is_the_documented_chain(books: Books) -> None:
    entries, _ = load(books.main)
    october = seal.sealed_entries(entries, "2026-10")
    # 4 opens, 3 transactions and a document dated in October, 2 balance assertions of 2026-11-01.
    kinds = sorted(type(e).__name__ for e in october)
    assert kinds == ["Balance"] * 2 + ["Document"] + ["Open"] * 4 + ["Transaction"] * 3
    digest = seal.month_digest(october)
    assert seal.seal_hash("2026-10", seal.GENESIS, digest) == books.hashes["2026-10"]
    assert (
        books.hashes["2026-10"]
        == hashlib.sha256(f"2026-10\n{seal.GENESIS}\n{digest}".encode()).hexdigest()
    )


# -- tampering is caught by plain bean-check ----------------------------------


def test_changed_amount(books: Books) -> None:
    books.edit("2026/2026-10.beancount", "11.50 USD", "11.05 USD")
    assert_caught(
        books,
        "2026-10.beancount:13: month 2026-10 is sealed but an entry was changed: "
        '2026-10-31 transaction "acme | Usage accrual through 2026-10-31" (1 difference)',
    )
    october, november = seal.verify_seals(load(books.main)[0])
    assert not october.ok and october.message.endswith(
        "2026-10.beancount:13: month 2026-10 is sealed but an entry was changed: "
        '2026-10-31 transaction "acme | Usage accrual through 2026-10-31" (1 difference)'
    )
    assert november.ok, "a content change in October does not break November's link"


def test_changed_metadata(books: Books) -> None:
    books.edit("2026/2026-10.beancount", "quantity: 14000", "quantity: 14001")
    assert_caught(
        books,
        "month 2026-10 is sealed but an entry was changed",
        '"acme | Usage accrual through 2026-10-14"',
    )


def test_deleted_transaction(books: Books) -> None:
    books.edit("2026/2026-10.beancount", OCTOBER.split("\n\n")[1] + "\n\n", "")
    assert_caught(
        books,
        "month 2026-10 is sealed but an entry was removed",
        '2026-10-15 transaction "acme | Invoice INV-1"',
    )


def test_added_transaction(books: Books) -> None:
    with books.file("2026/2026-10.beancount").open("a") as out:
        out.write(
            '\n2026-10-20 * "cash" "Backdated transfer"\n'
            "  Assets:Bank:Operating   100.00 USD\n  Income:Usage:Api-Calls  -100.00 USD\n"
        )
    assert_caught(
        books,
        "month 2026-10 is sealed but an entry was added",
        '2026-10-20 transaction "cash | Backdated transfer"',
        "2026-10.beancount:",
    )


def test_added_open_directive(books: Books) -> None:
    with books.file("accounts.beancount").open("a") as out:
        out.write("2026-10-20 open Expenses:Hidden USD\n")
    assert_caught(
        books,
        "month 2026-10 is sealed but an entry was added",
        '2026-10-20 open "Expenses:Hidden"',
        "accounts.beancount:",
    )


def test_edited_seal_hash(books: Books) -> None:
    good = books.hashes["2026-10"]
    bad = ("1" if good[0] != "1" else "2") + good[1:]
    books.edit("2026/2026-10.close.beancount", f'"{good}"', f'"{bad}"')
    assert_caught(books, "month 2026-10: seal line altered", "month 2026-11: seal chain broken")


def test_edited_previous_hash(books: Books) -> None:
    good = books.hashes["2026-10"]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    books.edit("2026/2026-11.close.beancount", f'"2026-11" "{good}"', f'"2026-11" "{bad}"')
    assert_caught(books, "month 2026-11: seal line altered", "month 2026-11: seal chain broken")


def test_rehashed_seal_still_breaks_the_chain(books: Books) -> None:
    """Editing October and recomputing its seal is caught by November's link."""
    books.edit("2026/2026-10.beancount", "11.50 USD", "11.05 USD")
    books.edit("2026/2026-10.close.beancount", "11.50 USD", "11.05 USD")
    entries, _ = load(books.main)
    forged = seal.build_seal("2026-10", entries, seal.GENESIS)
    close_file = books.file("2026/2026-10.close.beancount")
    text = close_file.read_text()
    close_file.write_text(text[: text.index("2026-11-01 custom")] + printed(forged))
    assert_caught(books, "month 2026-11: seal chain broken")


def test_removed_seal_breaks_the_chain(books: Books) -> None:
    line = (
        f'2026-11-01 custom "meterbook-seal" "2026-10" "{seal.GENESIS}" '
        f'"{books.hashes["2026-10"]}"\n'
    )
    books.edit("2026/2026-10.close.beancount", line, "")
    assert_caught(
        books,
        "month 2026-11: seal chain broken: the first seal's previous hash",
        "month 2026-10: seal manifest without a seal",
    )


def test_edited_balance_assertion(books: Books) -> None:
    books.edit("2026/2026-10.close.beancount", "4.00 USD", "4.10 USD")
    assert_caught(
        books,
        "month 2026-10 is sealed but an entry was changed",
        '2026-11-01 balance "Assets:Receivables:Invoiced:Acme | USD"',
        "2026-10.close.beancount:",
    )


def test_edited_manifest(books: Books) -> None:
    close_file = books.file("2026/2026-10.close.beancount")
    text = close_file.read_text()
    start = text.index("e1:")
    close_file.write_text(text[:start] + text[start:].replace(" open ", " close ", 1))
    assert_caught(books, "month 2026-10: seal manifest altered")


def test_seal_for_a_month_not_following_the_last(books: Books) -> None:
    entries, _ = load(books.main)
    forged = seal.build_seal("2027-01", entries, books.hashes["2026-11"])
    with books.file("2026/2026-11.close.beancount").open("a") as out:
        out.write("\n" + printed(forged))
    assert_caught(books, "month 2027-01: seal chain broken: no seal for 2026-12")


# -- what is not tampering ----------------------------------------------------


def test_reordered_entries_are_fine(books: Books) -> None:
    blocks = OCTOBER.rstrip("\n").split("\n\n")
    books.file("2026/2026-10.beancount").write_text("\n\n".join(reversed(blocks)) + "\n")
    close_file = books.file("2026/2026-10.close.beancount")
    close_file.write_text(
        close_file.read_text().replace(
            OCTOBER_BALANCES, "".join(reversed(OCTOBER_BALANCES.splitlines(keepends=True)))
        )
    )
    assert seal_errors(books.main) == []
    result = bean_check(books.main)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entries_in_the_open_month_are_fine(books: Books) -> None:
    december = books.file("2026/2026-12.beancount")
    december.write_text(
        '2026-12-03 * "acme" "Usage accrual, late for 2026-10" ^acme-2026-10-15\n'
        "  usage_date: 2026-10-20\n  late: TRUE\n"
        "  Assets:Receivables:Unbilled:Acme   0.75 USD\n  Income:Usage:Api-Calls  -0.75 USD\n"
    )
    with books.main.open("a") as main:
        main.write('include "2026/2026-12.beancount"\n')
    assert seal_errors(books.main) == []
    result = bean_check(books.main)
    assert result.returncode == 0, result.stdout + result.stderr


def test_moved_books_keep_their_seals(books: Books, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "books"
    shutil.copytree(books.root, moved)
    shutil.rmtree(books.root)
    _, errors = load(moved / "main.beancount")
    assert errors == []


# -- canonical form -----------------------------------------------------------


def _balance(number: str, meta: dict[str, object] | None = None) -> data.Balance:
    return data.Balance(
        meta or {"filename": "a", "lineno": 1},
        datetime.date(2026, 11, 1),
        "Assets:Bank:Operating",
        Amount(Decimal(number), "USD"),
        None,
        None,
    )


def test_canonical_numbers_keep_their_digits() -> None:
    assert seal.canonical_line(_balance("1.50")) != seal.canonical_line(_balance("1.5"))
    assert '"1.50 USD"' in seal.canonical_line(_balance("1.50"))


def test_canonical_form_ignores_source_location_and_meta_order() -> None:
    a = _balance("1.50", {"filename": "a", "lineno": 1, "x": "1", "y": Decimal("2")})
    b = _balance("1.50", {"y": Decimal("2"), "x": "1", "filename": "b", "lineno": 99, "__x__": 1})
    assert seal.canonical_line(a) == seal.canonical_line(b)


def test_canonical_form_types_metadata_values() -> None:
    text = _balance("1", {"s": "2026-10-01"})
    number = _balance("1", {"s": Decimal("1")})
    day = _balance("1", {"s": datetime.date(2026, 10, 1)})
    flag = _balance("1", {"s": True})
    lines = {seal.canonical_line(e) for e in (text, number, day, flag)}
    assert len(lines) == 4
    assert '["s","date:2026-10-01"]' in seal.canonical_line(day)


def test_period_of() -> None:
    assert seal.period_of(_balance("1")) == "2026-10"  # dated 2026-11-01: closes October
    accept = data.Custom({}, datetime.date(2026, 11, 1), "meterbook-accept", [])
    assert seal.period_of(accept) == "2026-11"
    values = [seal.ValueType("2026-10", str), seal.ValueType("F-1", str)]
    assert seal.period_of(accept._replace(values=values)) == "2026-10"
    assert seal.period_of(seal.seal_directive("2026-10", seal.GENESIS, seal.GENESIS)) is None
    assert seal.period_of(data.Custom({}, datetime.date(2026, 10, 1), "fava-option", [])) is None


def test_build_seal_from_python_balances_matches_the_printed_ones(books: Books) -> None:
    """``close`` may seal the assertions it is about to write, before reading them back."""
    entries, _ = load(books.main)
    written = [
        e
        for e in entries
        if not (isinstance(e, data.Balance) and e.date == datetime.date(2026, 11, 1))
    ]
    fresh = [
        data.Balance(
            data.new_metadata("<close>", 0),
            datetime.date(2026, 11, 1),
            account,
            Amount(Decimal(number), "USD"),
            None,
            None,
        )
        for account, number in [
            ("Assets:Receivables:Unbilled:Acme", "11.50"),
            ("Assets:Receivables:Invoiced:Acme", "4.00"),
        ]
    ]
    rebuilt = seal.build_seal("2026-10", written + fresh, seal.GENESIS)
    assert rebuilt[-1].values[2].value == books.hashes["2026-10"]


def test_docstring_examples() -> None:
    result = doctest.testmod(seal)
    assert result.attempted > 0 and result.failed == 0


def test_build_seal_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="not a month"):
        seal.build_seal("2026-13", [], seal.GENESIS)
    with pytest.raises(ValueError, match="not a seal hash"):
        seal.build_seal("2026-10", [], "abc")
