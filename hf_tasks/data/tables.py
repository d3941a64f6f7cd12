"""The one table reader: CSV, TSV and JSON records from local files, with errors naming line and byte.

Delimiters: `.tsv`/`.tab` files are tab-separated; a `.csv` (or `.txt`) file is tab-separated when
its header holds a tab and no comma (FarsTail ships TSV files named .csv), else comma-separated.
Fields use real CSV quoting, so quoted fields may hold tabs, commas, quotes and line breaks.
`.json` files hold a list of objects (or {"data": [...]}) and `.jsonl` one object per line.
Encoding: UTF-8 (a byte-order mark is fine); anything else stops with the line and byte offset of
the first byte that is not UTF-8, and the `iconv` command that fixes it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from hf_tasks.errors import BadInputError

TAB_SUFFIXES = (".tsv", ".tab")
JSON_SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class TableRow:
    """One record: `line` is the file line it starts on (what an editor shows), `row` its number among
    the data rows (1 = the first record after the header)."""

    line: int
    row: int
    values: dict[str, str]


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[TableRow]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[TableRow]:
        return iter(self.rows)


def read_text(path: Path) -> str:
    """A file's text as UTF-8; a `BadInputError` with line and byte offset when it is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise BadInputError(
            f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}, byte {column} of the line, "
            f"byte offset {error.start} of the file). Re-save it as UTF-8, e.g. "
            f"`iconv -f cp1252 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`."
        ) from None


def delimiter_of(path: Path, header_line: str) -> str:
    if path.suffix.lower() in TAB_SUFFIXES:
        return "\t"
    return "\t" if "\t" in header_line and "," not in header_line else ","


def read_table(path: str | Path, required_columns: Sequence[str] = (), column_flags: str = "") -> Table:
    """Header and records of a local CSV/TSV/JSON table, as strings (JSON values are kept as they are).

    A missing file, an empty file, missing `required_columns` (`column_flags` names the flags that
    rename them) and records with the wrong number of fields stop with a `BadInputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file; check the path.")
    text = read_text(path)
    if path.suffix.lower() in JSON_SUFFIXES:
        table = _json_table(path, text)
    else:
        table = _delimited_table(path, text)
    missing = [column for column in required_columns if column not in table.columns]
    if missing:
        rename = f", or name the right one with {column_flags}" if column_flags else ""
        raise BadInputError(
            f"{path}: no column {', '.join(repr(column) for column in missing)} (the header has {table.columns}). "
            f"Rename the column in the file{rename}."
        )
    return table


def _delimited_table(path: Path, text: str) -> Table:
    first_line = text.split("\n", 1)[0]
    delimiter = delimiter_of(path, first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise BadInputError(f"{path}: empty file; expected a header row and data rows.") from None
    except csv.Error as error:
        raise BadInputError(f"{path}: line 1: unreadable header ({error}).") from None
    rows: list[TableRow] = []
    start = reader.line_num + 1
    try:
        for fields in reader:
            if fields and any(value.strip() for value in fields):
                if len(fields) != len(header):
                    shown = "tab" if delimiter == "\t" else repr(delimiter)
                    raise BadInputError(
                        f"{path}: line {start} (row {len(rows) + 1}) has {len(fields)} fields but the header has "
                        f"{len(header)}. Quote fields that contain a {shown} or a line break (\"...\")."
                    )
                rows.append(TableRow(start, len(rows) + 1, dict(zip(header, fields))))
            start = reader.line_num + 1
    except csv.Error as error:
        raise BadInputError(f"{path}: line {start}: unreadable record ({error}); check the quoting.") from None
    return Table(path, header, rows)


def _json_table(path: Path, text: str) -> Table:
    records: list[tuple[int, object]] = []
    if path.suffix.lower() == ".jsonl":
        for line, content in enumerate(text.splitlines(), start=1):
            if content.strip():
                try:
                    records.append((line, json.loads(content)))
                except json.JSONDecodeError as error:
                    raise BadInputError(f"{path}: line {line}: not JSON ({error.msg}); one object per line.") from None
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}: line {error.lineno}: not JSON ({error.msg}).") from None
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            document = document["data"]
        if not isinstance(document, list):
            raise BadInputError(f"{path}: expected a list of records (or {{\"data\": [...]}}), found "
                                f"{type(document).__name__}.")
        records = list(enumerate(document, start=1))
    columns: list[str] = []
    rows = []
    for number, (line, record) in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise BadInputError(f"{path}: record {number} is {type(record).__name__}, not an object of columns.")
        columns += [name for name in record if name not in columns]
        rows.append(TableRow(line, number, record))
    if not rows:
        raise BadInputError(f"{path}: no records.")
    return Table(path, columns, rows)
