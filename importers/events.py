"""Usage-event importers: CSV, JSONL and CloudEvents (JSON and JSONL), streaming.

A CSV export::

    id,source,customer,type,time,tokens,region
    e-1,app,acme,llm.completion,2026-10-05T08:30:00+02:00,1200,eu

is read as one :class:`RawEvent` per row, in constant memory whatever the file
size (beangulp's own ``identify`` skips files over 8 MiB; these importers do not):

    >>> import io
    >>> text = b"id,customer,type,time,tokens,region\\ne-1,acme,llm.completion,2026-10-05T08:30:00+02:00,1200,\\n"
    >>> [row] = CsvEvents().rows(Source(io.BytesIO(text)))
    >>> row.line, row.id, row.source, row.customer, row.time, row.properties
    (2, 'e-1', 'default', 'acme', '2026-10-05T08:30:00+02:00', {'tokens': '1200'})

Extra CSV columns become properties (empty cells are left out); in JSON, numbers
keep the text they were written with (``1.50`` stays ``"1.50"``, never a float).
A row that cannot be read gets its reason here (``bad_csv``, ``bad_json``,
``bad_encoding``, ``too_long``); everything else is judged by
:mod:`ledger.ingest` against the rules. A file whose CSV header is unusable
(duplicate names, missing ``id``/``customer``/``type``/``time``, wrong
delimiter) raises :class:`HeaderError`: the whole file is refused, nothing is
written — a finance team wants the wrong file sent back, not a million rejects.
"""  # noqa: E501

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date
from typing import Any, BinaryIO, NamedTuple

from ledger.errors import BadInput
from ledger.hookspecs import hookimpl
from ledger.importers._filing import Filing

#: Longest line read into memory; longer lines are skipped (reason ``too_long``).
LINE_LIMIT = 1 << 20
#: Bytes read at a time.
BLOCK = 1 << 20
#: How much of an unreadable line is kept as its raw text.
SAMPLE = 1024
REQUIRED = ("id", "customer", "type", "time")
FIELDS = ("id", "source", "customer", "type", "time")
DEFAULT_SOURCE = "default"
_BOM = b"\xef\xbb\xbf"


class HeaderError(BadInput):
    """A file's header makes every row unreadable; the file is refused as a whole."""


class RawEvent(NamedTuple):
    """One row as read from a file, before the rules judge it.

    ``properties`` keys are in sorted order (the canonical order). ``reason``
    is empty unless the row could not be read at all; ``raw`` is the row as
    written (a line, or a CSV row's cells; see :func:`raw_text`), kept with a reject.
    """

    line: int
    raw: str | list[str]
    id: str
    source: str
    customer: str
    type: str
    time: str
    properties: dict[str, str]
    reason: str = ""
    detail: str = ""

    def record(self) -> dict[str, Any]:
        """The row as a plain event object (what ``--retry-rejected`` reads back)."""
        return {
            "id": self.id,
            "source": self.source,
            "customer": self.customer,
            "type": self.type,
            "time": self.time,
            "properties": self.properties,
        }


def unreadable(line: int, reason: str, detail: str, raw: str | list[str]) -> RawEvent:
    """A row that could not be read; it is rejected with ``reason``."""
    return RawEvent(line, raw, "", "", "", "", "", {}, reason, detail)


class Source:
    """A binary file read in blocks: its sha256 and byte count as it goes, and
    bounded lines (:meth:`lines`)."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        line_limit: int = LINE_LIMIT,
        progress: Callable[[int], None] | None = None,
    ):
        self.file = file
        self.sha = hashlib.sha256()
        self.bytes_read = 0
        self.line_limit = line_limit
        self.progress = progress
        #: unreadable lines by number: (reason, detail, raw sample); see :meth:`lines`
        self.bad: dict[int, tuple[str, str, str]] = {}
        #: the ``too_long`` lines of :attr:`bad` that hold only whitespace: blank in JSONL (not
        #: a row), a row in CSV (where a space is a cell); a too-long line of CRs is just blank
        self.whitespace: set[int] = set()
        self._lines_done = 0
        self._started = False

    def read(self, size: int = 0) -> bytes:
        # blocks no bigger than the line limit: a line inside a block is never too long
        block = self.file.read(size or min(BLOCK, self.line_limit))
        if not self._started:
            self._started = True
            if block.startswith(_BOM):
                self.sha.update(_BOM)
                self.bytes_read += len(_BOM)
                block = block[len(_BOM) :]
        self.sha.update(block)
        self.bytes_read += len(block)
        if self.progress is not None and block:
            self.progress(len(block))
        return block

    def drain(self) -> None:
        """Read to the end, so the sha256 covers the whole file."""
        while self.read():
            pass

    def lines(self) -> Iterator[str]:
        """Text lines ending in ``\\n`` (see :meth:`texts` for the line ends). An
        unreadable line (invalid UTF-8, a NUL character, longer than the limit) is
        yielded as ``"\\n"`` and described in :attr:`bad` under its 1-based line number
        (a line over the limit holding only CRs is blank: just ``"\\n"``)."""
        for text in self.texts():
            yield from io.StringIO(text, newline="\n")

    def texts(self) -> Iterator[str]:
        """The file's text as runs of whole lines (what :meth:`lines` splits).

        Lines end in LF or CRLF; a file whose first line ends in a lone CR (old
        Mac style) has CR line ends throughout (each CR is read as a line end, a CRLF
        as one, also split between two blocks). A CR anywhere else stays in the text
        (a CSV row holding one is rejected).
        """
        limit = self.line_limit
        pending = b""
        long: _LongLine | None = None  # the line over the limit being read, if any
        lone_cr: bool | None = None  # decided at the file's first line break
        last = b""
        while True:
            block = self.read()
            if not block:
                break
            if lone_cr is None:
                probe = last + block  # a CRLF may be split between two blocks
                cr, lf = probe.find(b"\r"), probe.find(b"\n")
                if lf >= 0 and (cr < 0 or lf < cr):
                    lone_cr = False
                elif 0 <= cr < len(probe) - 1:
                    lone_cr = probe[cr + 1] != 0x0A
                    if lone_cr and last == b"\r":
                        # the first line break is the CR that ended the last block: the line
                        # before it (all of pending, or a too-long line) is whole
                        if long:
                            yield self._too_long(long)
                            long = None
                        else:
                            yield from self._decode(pending[:-1] + b"\n")
                            pending = b""
            split_crlf = last == b"\r" and block[:1] == b"\n"
            last = block[-1:]
            if lone_cr:
                if split_crlf:  # a CRLF is one line end: its CR ended the last block's line
                    block = block[1:]
                block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = block.rfind(b"\n")
            if cut < 0:
                if long:
                    long.add(block)
                else:
                    pending += block
                    if len(pending) > limit:
                        long, pending = _LongLine(pending), b""
                continue
            head, tail = block[: cut + 1], block[cut + 1 :]
            if long or pending:
                nl = head.find(b"\n")
                first, head = head[: nl + 1], head[nl + 1 :]
                if long:
                    long.add(first)
                    yield self._too_long(long)
                    long = None
                else:
                    line, pending = pending + first, b""
                    if len(line) > limit:
                        yield self._too_long(_LongLine(line))
                    else:
                        yield from self._decode(line)
            if head:
                yield from self._decode(head)
            if len(tail) > limit:
                long = _LongLine(tail)
            else:
                pending = tail
        if long:
            yield self._too_long(long)
        elif pending:
            yield from self._decode(pending)

    def _too_long(self, long: _LongLine) -> str:
        self._lines_done += 1
        if long.crs:  # a blank line, however long, is not a row
            return "\n"
        sample = long.sample
        if len(sample) == long.size:  # the whole line (a line limit under SAMPLE): not its end
            sample = sample.rstrip(b"\r\n")
        self.bad[self._lines_done] = (
            "too_long",
            f"line of {long.size} bytes is over the {self.line_limit}-byte limit",
            _printable_sample(sample.decode("utf-8", "backslashreplace")) + "…",
        )
        if long.whitespace():
            self.whitespace.add(self._lines_done)
        return "\n"

    def _decode(self, data: bytes) -> Iterator[str]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield from self._decode_lines(data)
            return
        if "\x00" in text:  # no store keeps a NUL (PostgreSQL text cannot)
            yield from self._decode_lines(data)
            return
        count = text.count("\n") + (0 if text.endswith("\n") else 1)
        self._lines_done += count
        yield text

    def _decode_lines(self, data: bytes) -> Iterator[str]:
        for raw in data.splitlines(keepends=True) if b"\r" not in data else _split_nl(data):
            self._lines_done += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[self._lines_done] = (
                    "bad_encoding",
                    f"invalid UTF-8 at byte {exc.start + 1} of the line",
                    _printable_sample(
                        raw[:SAMPLE].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                    ),
                )
                yield "\n"
                continue
            if "\x00" in text:
                self.bad[self._lines_done] = (
                    "bad_encoding",
                    f"NUL character (U+0000) at character {text.index(chr(0)) + 1} of the line",
                    _printable_sample(text.rstrip("\r\n")),
                )
                yield "\n"
                continue
            yield text


class _LongLine:
    """A line over the limit, read in pieces (never held whole): its size in bytes, its first
    bytes, and whether it is blank so far: only CRs (blank in CSV and JSONL) or only whitespace
    (blank in JSONL; a line that is not UTF-8 or holds a NUL is never blank)."""

    __slots__ = ("crs", "decoder", "sample", "size", "space")

    def __init__(self, data: bytes) -> None:
        self.size = 0
        self.sample = data[:SAMPLE]
        self.crs = self.space = True
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.add(data)

    def add(self, data: bytes) -> None:
        """The next piece of the line (its line end included, if this is the last)."""
        self.size += len(data)
        if self.crs and data.strip(b"\r\n"):
            self.crs = False
        if self.space and not self.crs:  # CRs so far are ASCII: the decoder needs none of them
            try:
                self.space = not self.decoder.decode(data).strip()
            except UnicodeDecodeError:
                self.space = False

    def whitespace(self) -> bool:
        """The whole line holds only whitespace (CRs among it)."""
        if not self.space:
            return False
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
        return True


def _printable_sample(text: str) -> str:
    """The start of an unreadable line as storable text (a NUL written ``\\x00``)."""
    return text[:SAMPLE].replace("\x00", "\\x00")


#: A CSV line that cannot be read: ``(reason, detail, raw)``.
Problem = tuple[str, str, "str | list[str]"]
#: What :func:`csv_records` yields.
Records = Iterator[tuple[int, "list[str] | Problem"]]


class _OneLine:
    """The careful csv reader's input: the line it was just given, then nothing.

    A record therefore never runs into the next line: a quote left open at the
    end of its line is an error for that line (``unexpected end of data``).
    """

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        line = self.line
        if line is None:
            raise StopIteration
        self.line = None
        return line


def csv_records(source: Source) -> Records:
    """``(line, cells)`` for each non-blank line of a CSV file, or ``(line, (reason,
    detail, raw))`` for a line that cannot be read.

    One physical line is one record (RFC 4180 quoting, comma-separated): a quoted
    field may hold commas and doubled quotes ``""`` but no line break, so a
    stray ``"`` costs its own line (``bad_csv``), never the lines after it:

        >>> text = b'id,x\\na,"open\\nb,1\\nc,"2"z\\nd,x\\rz\\n'
        >>> for line, cells in csv_records(Source(io.BytesIO(text))):
        ...     print(line, cells)
        1 ['id', 'x']
        2 ('bad_csv', 'a quoted field does not end on its line', 'a,"open')
        3 ['b', '1']
        4 ('bad_csv', 'text after a closing quote (write "" for a quote inside quotes)', 'c,"2"z')
        5 ('bad_csv', 'a carriage return (CR) inside a field', 'd,x\\rz')

    Text without a quote is read by one csv reader per run of lines (fast);
    text with one, line by line.
    """
    bad = source.bad
    gate = _OneLine()
    careful = csv.reader(gate, strict=True)
    line = 0
    for text in source.texts():
        pieces: Iterable[str]
        if '"' not in text:
            reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
            try:
                for cells in reader:
                    if cells:
                        yield line + reader.line_num, cells
                    elif line + reader.line_num in bad:
                        yield line + reader.line_num, bad.pop(line + reader.line_num)
            except csv.Error as exc:  # a CR inside a field, a field over the limit: that line only
                done = reader.line_num
                rest = io.StringIO(text, newline="\n").readlines()
                yield line + done, _csv_problem(exc, rest[done - 1])
                line += done
                pieces = rest[done:]
            else:
                line += reader.line_num
                continue
        else:
            pieces = io.StringIO(text, newline="\n")
        for piece in pieces:
            line += 1
            gate.line = piece
            try:
                cells = next(careful)
            except csv.Error as exc:
                yield line, _csv_problem(exc, piece)
                continue
            if cells:
                yield line, cells
            elif line in bad:
                yield line, bad.pop(line)


def _csv_problem(exc: csv.Error, piece: str) -> Problem:
    """The reject of a line the csv reader refused."""
    message = str(exc)
    raw = piece[:-1] if piece.endswith("\n") else piece
    raw = raw[:-1] if raw.endswith("\r") else raw
    if "unexpected end of data" in message:
        return "bad_csv", "a quoted field does not end on its line", raw
    if "new-line character" in message:
        return "bad_csv", "a carriage return (CR) inside a field", raw
    if "expected after" in message:
        return "bad_csv", 'text after a closing quote (write "" for a quote inside quotes)', raw
    if "field larger than field limit" in message:
        limit = csv.field_size_limit()
        return "too_long", f"a field is over the {limit}-character limit", raw[:SAMPLE] + "…"
    return "bad_csv", message, raw


def _split_nl(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


# --- the importers ----------------------------------------------------------------------


class EventImporter(Filing):
    """Base of the usage-event importers. ``kind`` names the store table family
    :mod:`ledger.ingest` routes the rows to; ``rows`` streams :class:`RawEvent`.

    beangulp's ``archive`` files them under ``Income:Usage`` (see :mod:`ledger.importers._filing`),
    dated on the latest event's UTC date.
    """

    kind = "events"
    importer_name = ""
    #: The usual extensions (documentation only: files are identified by their content).
    extensions: tuple[str, ...] = ()
    ledger_account = "Income:Usage"

    @property
    def name(self) -> str:
        return self.importer_name

    #: The generic importer of its ``extensions`` (events CSV, events JSONL): it takes an empty
    #: file, which has no header to tell by (it has no rows), and ``meterbook ingest`` gives it a
    #: file of its extension that no importer recognises, so the header's fault is told
    #: (``missing column 'time'``, ``the delimiter looks like ';'``). beangulp leaves such a file.
    generic = False

    def identify(self, filepath: str) -> bool:
        """By the file's content (a CSV header, the first JSON record), whatever its name
        or size: another importer's CSV or JSON is not claimed."""
        head = _head(filepath)
        if not head.strip():
            return self.generic and filepath.lower().endswith(self.extensions)
        return self.sniff(head)

    def sniff(self, head: bytes) -> bool:
        return False

    def dates(self, filepath: str) -> Iterator[date]:
        """The UTC date of each readable event's ``time``."""
        from ledger.events import TimeError, parse_time

        try:
            for row in self.read(filepath):
                if not row.reason and row.time:
                    try:
                        yield parse_time(row.time).astimezone(UTC).date()
                    except TimeError:
                        continue
        except (HeaderError, OSError):
            return

    def check(self, source: Source) -> None:
        """Raise :class:`HeaderError` if the file cannot be read at all."""

    def rows(self, source: Source) -> Iterator[RawEvent]:
        raise NotImplementedError

    def read(self, path: str | os.PathLike[str]) -> Iterator[RawEvent]:
        """The streaming generator of a file's rows."""
        with open(path, "rb") as file:
            yield from self.rows(Source(file))


def _head(filepath: str, size: int = 65536) -> bytes:
    try:
        with open(filepath, "rb") as file:
            return file.read(size).removeprefix(_BOM)
    except OSError:
        return b""


_LINE_END = re.compile(rb"\r\n|\n|\r")


def _first_line(head: bytes) -> bytes:
    """The first non-blank line, its ends stripped (lines end in LF, CRLF or a lone CR, as in
    :meth:`Source.texts`)."""
    for line in _LINE_END.split(head):
        if line.strip():
            return line.strip()
    return b""


def _first_object(head: bytes) -> dict[str, Any] | None:
    """The first line as a JSON object, or None (not JSON, not an object, cut by the head)."""
    try:
        obj = json.loads(_first_line(head))
    except (ValueError, RecursionError):  # RecursionError: nested too deeply (hostile input)
        return None
    return obj if isinstance(obj, dict) else None


def csv_header(head: bytes) -> set[str]:
    """The column names of the first non-blank line of a CSV head (empty if it is not CSV text).

    >>> sorted(csv_header(b"date,amount,currency,invoice,reference\\n2026-10-20,60.00,USD,,B-1\\n"))
    ['amount', 'currency', 'date', 'invoice', 'reference']
    """
    try:
        first = _first_line(head).decode("utf-8")
        return {c.strip() for c in next(csv.reader([first]))}
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return set()


class CsvEvents(EventImporter):
    """CSV with a header: ``id, source, customer, type, time`` and property columns."""

    importer_name = "events-csv"
    extensions = (".csv",)
    generic = True

    def sniff(self, head: bytes) -> bool:
        """The first line is a CSV header naming ``id``, ``customer``, ``type`` and ``time``."""
        return set(REQUIRED) <= csv_header(head)

    def check(self, source: Source) -> None:
        self._header(source)

    def _header(self, source: Source) -> tuple[Records, list[str]] | None:
        """The records after the header (:func:`csv_records`), and the column
        names; None for an empty file."""
        records = csv_records(source)
        for line, cells in records:
            if isinstance(cells, tuple):
                raise HeaderError(f"line {line}: header: {cells[1]}")
            names = [c.strip() for c in cells]
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise HeaderError(f"line {line}: header: duplicate column {name!r}")
                seen.add(name)
            missing = [n for n in REQUIRED if n not in seen]
            if missing:
                hint = ""
                for delimiter in (";", "\t", "|"):
                    if len(names) == 1 and delimiter in names[0]:
                        hint = (
                            f" (the delimiter looks like {delimiter!r}; "
                            "meterbook reads comma-separated CSV)"
                        )
                raise HeaderError(f"line {line}: header: missing column {missing[0]!r}{hint}")
            return records, names
        return None

    def rows(self, source: Source) -> Iterator[RawEvent]:
        opened = self._header(source)
        if opened is not None:
            yield from self._rows(source, *opened)
        source.drain()

    def _rows(self, source: Source, records: Records, names: list[str]) -> Iterator[RawEvent]:
        i_id, i_customer, i_type, i_time = (names.index(n) for n in REQUIRED)
        i_source = names.index("source") if "source" in names else -1
        props = sorted((name, i) for i, name in enumerate(names) if name not in FIELDS)
        width = len(names)
        new = (
            tuple.__new__
        )  # RawEvent(...) without the Python-level __new__ of a NamedTuple (hot loop)
        for line, cells in records:
            if isinstance(cells, tuple):
                yield unreadable(line, *cells)
                continue
            if len(cells) != width:
                if len(cells) > width:
                    yield unreadable(
                        line, "bad_csv", f"{len(cells)} cells, the header has {width}", cells
                    )
                    continue
                yield _short_row(line, cells, names)
                continue
            src = cells[i_source] if i_source >= 0 else ""
            yield new(
                RawEvent,
                (
                    line,
                    cells,
                    cells[i_id],
                    src or DEFAULT_SOURCE,
                    cells[i_customer],
                    cells[i_type],
                    cells[i_time],
                    {name: v for name, i in props if (v := cells[i])},
                    "",
                    "",
                ),
            )


def _short_row(line: int, cells: list[str], names: list[str]) -> RawEvent:
    """A row with fewer cells than the header: the cells it lacks are empty. Built from its
    own cells, never padded to the header's width (which a hostile header makes huge).

    >>> row = _short_row(3, ["e-1", "acme", "t", "2026-10-05T08:30:00Z", "9"], [*REQUIRED, "n", "m"])
    >>> row.id, row.properties
    ('e-1', {'n': '9'})
    """  # noqa: E501
    values = dict(zip(names, cells, strict=False))
    props = dict(sorted((k, v) for k, v in values.items() if v and k not in FIELDS))
    get = values.get
    return RawEvent(
        line,
        cells,
        get("id", ""),
        get("source", "") or DEFAULT_SOURCE,
        get("customer", ""),
        get("type", ""),
        get("time", ""),
        props,
    )


def raw_text(raw: str | list[str]) -> str:
    """A row's raw form as text: a line as read, or CSV cells quoted back into a line."""
    if isinstance(raw, str):
        return raw
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(raw)
    return out.getvalue()


class NumberText(str):
    """A JSON number, kept as the text it was written with (never a float)."""


_DECODER = json.JSONDecoder(parse_float=NumberText, parse_int=NumberText, parse_constant=NumberText)
_SURROGATE = re.compile("[\udc80-\udcff]")
#: What no stored text may hold: NUL (PostgreSQL text cannot) and lone surrogates (not UTF-8);
#: JSON can write both as ``\\u`` escapes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: A JSON string or bracket: enough to find where a value too deeply nested to decode ends.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
#: The detail of a JSON value nested deeper than the decoder goes.
_TOO_DEEP = "nested too deeply (an event is an object whose properties are strings and numbers)"


def _text(value: Any) -> str | None:
    """A JSON value as event text: strings and numbers as written, booleans as JSON."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return None


class _JsonEvents(EventImporter):
    """Shared JSON handling: one object per event."""

    cloudevents = False

    def event(self, line: int, raw: str, obj: Any) -> RawEvent:
        if not isinstance(obj, dict):
            return unreadable(
                line, "bad_json", f"expected an object, got {type(obj).__name__}", raw
            )
        if "\\u" in raw:  # only an escape writes a NUL or a lone surrogate; first, so that no
            unstorable = _unstorable(obj, "data" if self.cloudevents else "properties")  # detail
            if unstorable:  # below quotes one (a detail is stored text too)
                return unreadable(line, "bad_json", unstorable, raw)
        if self.cloudevents:
            fields = {
                "id": obj.get("id"),
                "source": obj.get("source"),
                "customer": obj.get("subject"),
                "type": obj.get("type"),
                "time": obj.get("time"),
            }
            props = obj.get("data")
            where = "data"
        else:
            fields = {k: obj.get(k) for k in FIELDS}
            props = obj.get("properties")
            where = "properties"
        text: dict[str, str] = {}
        for key, value in fields.items():
            if value is None:
                text[key] = ""
                continue
            as_text = _text(value)
            if as_text is None:
                return unreadable(
                    line, "bad_json", f"{key}: expected a string, got {type(value).__name__}", raw
                )
            text[key] = as_text
        properties: dict[str, str] = {}
        if props is not None:
            if not isinstance(props, dict):
                return unreadable(line, "bad_json", f"{where}: expected an object", raw)
            for key in sorted(props):
                value = props[key]
                if value is None:
                    continue
                as_text = _text(value)
                if as_text is None:
                    return unreadable(
                        line,
                        "bad_json",
                        f"{where}.{key}: expected a string or number, got {type(value).__name__}",
                        raw,
                    )
                properties[key] = as_text
        return RawEvent(
            line,
            raw,
            text["id"],
            text["source"] or DEFAULT_SOURCE,
            text["customer"],
            text["type"],
            text["time"],
            properties,
        )


def _unstorable(obj: dict[str, Any], where: str) -> str:
    """Where an event object holds a NUL or a lone surrogate (in a key or a string, at the top
    or in ``where``, its properties), as a reject detail; "" if nowhere.

    >>> _unstorable({"id": "e", "properties": {"x\\ud800": "1"}}, "properties")
    "'properties.x\\\\ud800': holds \\\\ud800, which is not text (a NUL or a lone surrogate)"
    """
    inner = obj.get(where)
    named = [(k, k, v) for k, v in obj.items()]
    if isinstance(inner, dict):
        named += [(f"{where}.{k}", k, v) for k, v in inner.items()]
    for name, key, value in named:
        for text in (key, value):
            found = _UNSTORABLE.search(text) if isinstance(text, str) else None
            if found:
                return (
                    f"{name!r}: holds \\u{ord(found.group()):04x}, which is not text "
                    "(a NUL or a lone surrogate)"
                )
    return ""


class JsonlEvents(_JsonEvents):
    """JSON Lines: one event object per line, ``properties`` an object."""

    importer_name = "events-jsonl"
    extensions = (".jsonl", ".ndjson")
    generic = True

    def sniff(self, head: bytes) -> bool:
        """The first line is a JSON object with an ``id`` or ``customer`` and no ``specversion``."""
        first = _first_object(head)
        return (
            first is not None
            and "specversion" not in first
            and bool({"id", "customer"} & set(first))
        )

    def rows(self, source: Source) -> Iterator[RawEvent]:
        bad = source.bad
        decode = _DECODER.decode
        for line, text in enumerate(source.lines(), 1):
            if text == "\n" and line in bad:
                reason, detail, raw = bad.pop(line)
                if line in source.whitespace:  # a too-long blank line is still blank
                    source.whitespace.discard(line)
                else:
                    yield unreadable(line, reason, detail, raw)
                continue
            raw = text.rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                obj = decode(raw)
            except ValueError as exc:
                yield unreadable(line, "bad_json", str(exc).split(":")[0], raw)
                continue
            except RecursionError:
                yield unreadable(line, "bad_json", _TOO_DEEP, raw)
                continue
            yield self.event(line, raw, obj)


class CloudEventsJsonl(JsonlEvents):
    """CloudEvents, one structured-mode JSON event per line."""

    importer_name = "cloudevents-jsonl"
    generic = False
    cloudevents = True

    def sniff(self, head: bytes) -> bool:
        """The first line is a whole JSON object with ``specversion``."""
        first = _first_object(head)
        return first is not None and "specversion" in first


class CloudEventsJson(_JsonEvents):
    """CloudEvents JSON: one event object or a (batched) array of them, read
    element by element so an array of any size streams."""

    importer_name = "cloudevents-json"
    extensions = (".json",)
    cloudevents = True

    def sniff(self, head: bytes) -> bool:
        """A JSON array or an object spread over lines (a one-line object is CloudEvents JSONL,
        read the same way), with ``"specversion"`` in its first 64 KiB."""
        start = head.lstrip()[:1]
        if start not in (b"{", b"[") or b'"specversion"' not in head:
            return False
        return start == b"[" or _first_object(head) is None

    def rows(self, source: Source) -> Iterator[RawEvent]:
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        buf = ""
        pos = 0
        line = 1
        eof = False
        started = False
        in_array = False

        def fill() -> bool:
            nonlocal buf, pos, eof
            block = source.read()
            if not block:
                eof = True
                buf = buf[pos:] + decoder.decode(b"", final=True)
                pos = 0
                return False
            buf = buf[pos:] + decoder.decode(block)
            pos = 0
            return True

        while True:
            # skip whitespace and separators, counting lines
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or not fill():
                    break
            if pos >= len(buf):
                break
            if not started:
                started = True
                if buf[pos] == "[":
                    in_array = True
                    pos += 1
                    continue
            if in_array and buf[pos] == "]":
                break
            deep = False
            while True:
                try:
                    obj, end = _DECODER.raw_decode(buf, pos)
                    break
                except (ValueError, RecursionError) as exc:
                    # too deep to decode: skip the value if its end is found (one reject, then on)
                    found = _value_end(buf, pos) if isinstance(exc, RecursionError) else None
                    if found is not None:
                        deep, end = True, found
                        break
                    if not eof and len(buf) - pos <= source.line_limit:
                        fill()
                        continue
                    reason = "too_long" if len(buf) - pos > source.line_limit else "bad_json"
                    why = _TOO_DEEP if isinstance(exc, RecursionError) else str(exc).split(":")[0]
                    yield unreadable(
                        line,
                        reason,
                        f"{why}; the rest of the file is unreadable",
                        _sample(buf[pos : pos + SAMPLE]),
                    )
                    source.drain()
                    return
            raw = buf[pos:end]
            if deep:
                yield unreadable(line, "bad_json", _TOO_DEEP, _sample(raw[:SAMPLE]))
            elif _SURROGATE.search(raw):
                yield unreadable(
                    line, "bad_encoding", "invalid UTF-8 in this event", _sample(raw[:SAMPLE])
                )
            else:
                yield self.event(line, raw, obj)
            line += raw.count("\n")
            pos = end
            if not in_array:
                in_array = True  # a single object; anything after it is read the same way
        source.drain()


def _sample(text: str) -> str:
    """Text decoded with ``surrogateescape``, storable (bad bytes ``\\xff``, NUL ``\\x00``)."""
    data = text.encode("utf-8", "surrogateescape")
    return _printable_sample(data.decode("utf-8", "backslashreplace"))


def _value_end(text: str, pos: int) -> int | None:
    """Where the JSON array or object starting at ``text[pos]`` ends (brackets
    counted outside strings), or None if it does not end in ``text``.

    >>> _value_end('[[["a]"]]], 1', 0)
    10
    """
    depth = 0
    for token in _JSON_TOKEN.finditer(text, pos):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
            if depth <= 0:
                return token.end()
        elif depth == 0:
            return None
    return None


def importers() -> list[EventImporter]:
    """The first-party usage-event importers, most specific first."""
    return [CsvEvents(), CloudEventsJsonl(), JsonlEvents(), CloudEventsJson()]


@hookimpl
def meterbook_importers() -> list[EventImporter]:
    """First-party importers register through the same hook as third-party ones."""
    return importers()
