"""The shared machinery of every CSV import: decoding (UTF-8 with or without BOM, else GBK/GB18030),
header checks, line-numbered rows, field parsers that report `line N: column: reason`.

Imports are all-or-nothing: a domain importer parses every row first, collects every error, and
writes nothing unless there is none (raise ImportFailed). See docs/import-formats.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from email_validator import EmailNotValidError, validate_email

from console.money import parse_money

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_FIELD_CHARS = 1000
T = TypeVar("T")


@dataclass(frozen=True, order=True)
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.reason}"


class ImportFailed(Exception):
    def __init__(self, errors: list[RowError]):
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors[:50]))


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False

    def __str__(self) -> str:
        prefix = "dry run, nothing written: " if self.dry_run else ""
        return f"{prefix}created {self.created}, updated {self.updated}, unchanged {self.unchanged}"


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding). UTF-8 (BOM or not) first; GB18030, a superset of GBK, second."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportFailed([RowError(0, "file", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")])
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFailed([RowError(line, "file", "not UTF-8 or GBK/GB18030 text")]) from None


@dataclass
class Row:
    """One data row; `get` parses a column and records an error instead of raising."""

    line: int
    values: dict[str, str]
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.line, column, reason))

    def raw(self, column: str) -> str:
        return (self.values.get(column) or "").strip()

    def get(self, column: str, parser: Callable[[str], T] = str, required: bool = True) -> T | None:
        text = self.raw(column)
        if not text:
            if required:
                self.error(column, "required")
            return None
        try:
            return parser(text)
        except ValueError as exc:
            self.error(column, str(exc) or "invalid")
            return None


def read_rows(data: bytes, required: list[str], optional: list[str] = ()) -> Iterator[Row]:  # type: ignore[assignment]
    """Rows of a CSV file with a header line; raises ImportFailed for a bad header or encoding.

    Row errors (too many fields, an over-long field) are put on the row; the caller collects them.
    """
    text, _encoding = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFailed([RowError(1, "header", "empty file")]) from None
    except csv.Error as exc:
        raise ImportFailed([RowError(1, "header", f"not CSV: {exc}")]) from None
    problems = [RowError(1, c, "missing column") for c in required if c not in header]
    known = set(required) | set(optional)
    problems += [RowError(1, c or "(blank)", "unknown column") for c in header if c not in known]
    duplicates = {c for c in header if header.count(c) > 1}
    problems += [RowError(1, c, "column appears twice") for c in sorted(duplicates)]
    if problems:
        raise ImportFailed(problems)
    line = reader.line_num
    try:
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            row = Row(start, dict(zip(header, fields, strict=False)))
            if len(fields) > len(header):
                row.error("row", f"{len(fields)} fields, header has {len(header)}")
            for column, value in row.values.items():
                if len(value) > MAX_FIELD_CHARS:
                    row.error(column, f"longer than {MAX_FIELD_CHARS} characters")
                elif "\x00" in value:
                    row.error(column, "contains a NUL character")
            yield row
    except csv.Error as exc:
        raise ImportFailed([RowError(line + 1, "row", f"not CSV: {exc}")]) from None


# Field parsers: each raises ValueError with a short reason.


def parse_bool(text: str) -> bool:
    if text in ("1", "0"):
        return text == "1"
    raise ValueError("must be 1 or 0")


def parse_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def _parse(text: str) -> list[str]:
        items = [item.strip().lower() for item in text.split(";") if item.strip()]
        bad = [item for item in items if item not in choices]
        if bad:
            raise ValueError(f"unknown {', '.join(bad)} (one of {', '.join(choices)}, ;-separated)")
        return sorted(set(items), key=items.index)

    return _parse


def parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def _parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return _parse


def parse_int(low: int, high: int) -> Callable[[str], int]:
    def _parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return _parse


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD)") from None


def parse_amount(text: str) -> Decimal:
    return parse_money(text)


def parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValueError("not a number") from None
    if not value.is_finite():
        raise ValueError("not a number")
    return value


def parse_email(text: str) -> str:
    """Strict syntax check, no DNS lookup; returns the normalized address."""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address ({exc})") from None


def parse_text(max_chars: int) -> Callable[[str], str]:
    def _parse(text: str) -> str:
        if len(text) > max_chars:
            raise ValueError(f"longer than {max_chars} characters")
        if any(ch in text for ch in "\r\n"):
            raise ValueError("contains a line break")
        return text

    return _parse


def safe_cell(value: Any) -> Any:
    """For CSV exports: a cell that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
