"""The shared machinery of every CSV import: honest decoding (UTF-8 with or without BOM strictly, else
GBK/GB18030 only when the text is plausibly Chinese, else refused with the line and byte),
header checks, line-numbered rows, field parsers that report `line N: column: reason`. A reason
is a code and its parameters (`Problem`, `RowError.code`/`params`), never a sentence: the admin page
and the command line render it in the reader's language (console/web/events.py).

Imports are all-or-nothing: a domain importer parses every row first, collects every error, and
writes nothing unless there is none (raise ImportFailed). See docs/import-formats.md.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, BinaryIO, TypeVar

import charset_normalizer

from console.emailaddress import InvalidAddress, parse_address
from console.money import parse_money

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_FIELD_CHARS = 1000
T = TypeVar("T")


class Problem(ValueError):
    """Why a value is refused, as a code and its parameters (`Problem("out_of_range", low=1, high=31)`);
    field parsers raise it, `Row.get` turns it into a RowError. Rendered by console/web/events.py."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code, self.params = code, params


@dataclass(frozen=True, order=True)
class RowError:
    """One problem of an import: line (1 is the header; 0 the whole file), column (a header name, or
    `file`, `header`, `row`, `import`), the problem's code and its parameters."""

    line: int
    column: str
    code: str
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:  # logs and tracebacks; people read console.web.events.import_error_text
        extra = "".join(f" {k}={v}" for k, v in sorted(self.params.items()))
        return f"line {self.line}: {self.column}: {self.code}{extra}"


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


Source = bytes | str | os.PathLike | BinaryIO
_CHUNK = 1024 * 1024
_SAMPLE = 256 * 1024
_GB_FAMILY = {"gb18030", "gbk", "gb2312", "hz"}


@contextmanager
def open_source(source: Source) -> Iterator[BinaryIO]:
    """A seekable binary stream over bytes, a path or an open binary file (left open)."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            yield handle
    else:
        source.seek(0)
        yield source


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    stream.seek(0)
    while chunk := stream.read(_CHUNK):
        yield chunk


def _size(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _first_error(stream: BinaryIO, encoding: str) -> int | None:
    """The file offset of the first byte sequence `encoding` cannot decode (strictly), else None.
    One pass in 1 MB chunks: the file is never held whole."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    for chunk in _chunks(stream):
        pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return offset - pending + exc.start
        offset += len(chunk)
    pending = len(decoder.getstate()[0])
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:  # the file ends inside a character
        return offset - pending + exc.start
    return None


def _line_and_column(stream: BinaryIO, offset: int) -> tuple[int, int]:
    """(line, byte within the line), both from 1, of a file offset; CRLF, CR and LF each end a line
    (as the csv module counts them)."""
    line, line_start, previous = 1, 0, b""
    position = 0
    stream.seek(0)
    while position < offset:
        chunk = stream.read(min(_CHUNK, offset - position))
        if not chunk:
            break
        lf, cr = chunk.count(b"\n"), chunk.count(b"\r")
        crlf = chunk.count(b"\r\n") + (1 if previous == b"\r" and chunk[:1] == b"\n" else 0)
        line += lf + cr - crlf
        last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if last >= 0:
            line_start = position + last + 1
        previous = chunk[-1:]
        position += len(chunk)
    return line, offset - line_start + 1


def _looks_utf16(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    sample = head[:4096]
    if len(sample) < 4:
        return False
    zeros_even, zeros_odd = sample[0::2].count(0), sample[1::2].count(0)
    return max(zeros_even, zeros_odd) > len(sample) // 4


def _damaged_utf8(sample: bytes) -> bool:
    """Mostly UTF-8 with a few bad sequences (a truncated character, a bad copy): not GBK text that
    happens to fail. Genuine GBK pairs almost never form valid multi-byte UTF-8 characters."""
    text = sample.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    return good > bad


def _gb2312_pair_share(sample: bytes) -> float:
    """The share of double-byte characters in the GB2312 area (the common simplified characters).
    Genuine mainland text is nearly all there; Big5 bytes read as GBK land there only about 60 %."""
    pairs = common = 0
    i, n = 0, len(sample)
    while i < n:
        byte = sample[i]
        if byte < 0x80:
            i += 1
            continue
        if i + 1 < n and 0x30 <= sample[i + 1] <= 0x39:  # a GB18030 four-byte sequence
            pairs += 1
            i += 4
            continue
        pairs += 1
        if 0xA1 <= byte <= 0xF7 and i + 1 < n and 0xA1 <= sample[i + 1] <= 0xFE:
            common += 1
        i += 2
    return common / pairs if pairs else 1.0


def _cjk_share(text: str) -> float:
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide:
        return 1.0
    cjk = sum(1 for ch in wide if "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef")
    return cjk / len(wide)


def plausible_chinese(sample: bytes) -> bool:
    """GBK/GB18030 only when the text is plausibly Chinese: charset-normalizer counts a GB encoding
    among its verdicts, nearly every non-ASCII character is a CJK ideograph or CJK punctuation, and
    the double-byte characters lie where simplified text lies (not where Big5 text read as GBK does)."""
    try:
        text = sample.decode("gb18030")
    except UnicodeDecodeError as exc:  # a sample cut inside a character
        if exc.start < len(sample) - 4:
            return False
        text = sample[: exc.start].decode("gb18030")
    verdicts = {match.encoding for match in charset_normalizer.from_bytes(sample)}
    return bool(verdicts & _GB_FAMILY) and _cjk_share(text) >= 0.8 and _gb2312_pair_share(sample) >= 0.8


def detect_encoding(stream: BinaryIO) -> str:
    """"utf-8-sig" or "gb18030" for `stream`, or ImportFailed naming the line and byte of the first
    undecodable sequence (docs/import-formats.md). Reads the file in chunks; never holds it whole."""
    head = stream.read(4096)
    stream.seek(0)
    if _looks_utf16(head):
        raise ImportFailed([RowError(1, "file", "utf16")])
    utf8_error = _first_error(stream, "utf-8")
    if utf8_error is None:
        return "utf-8-sig"
    stream.seek(0)
    sample = stream.read(_SAMPLE)
    if not _damaged_utf8(sample) and _first_error(stream, "gb18030") is None and plausible_chinese(sample):
        return "gb18030"
    line, column = _line_and_column(stream, utf8_error)
    stream.seek(utf8_error)
    byte = stream.read(1)[0]
    code = "encoding_big5" if _looks_big5(sample) else "encoding"
    raise ImportFailed([RowError(line, "file", code, {"byte": column, "value": f"0x{byte:02X}"})])


def _looks_big5(sample: bytes) -> bool:
    best = charset_normalizer.from_bytes(sample).best()
    return best is not None and best.encoding in ("big5", "big5hkscs", "cp950")


def decode(data: Source) -> tuple[str, str]:
    """(text, encoding) of a whole file: UTF-8 (BOM or not) strictly, else GBK/GB18030 when the
    text is plausibly Chinese, else ImportFailed. For small inputs; imports stream (read_rows)."""
    with open_source(data) as stream:
        _check_size(stream)
        encoding = detect_encoding(stream)
        stream.seek(0)
        return stream.read().decode(encoding), ("utf-8" if encoding == "utf-8-sig" else encoding)


def _check_size(stream: BinaryIO) -> None:
    if _size(stream) > MAX_FILE_BYTES:
        raise ImportFailed([RowError(0, "file", "file_too_large", {"mb": MAX_FILE_BYTES // (1024 * 1024)})])


@dataclass
class Row:
    """One data row; `get` parses a column and records an error instead of raising."""

    line: int
    values: dict[str, str]
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str, code: str, **params: Any) -> None:
        self.errors.append(RowError(self.line, column, code, params))

    def problem(self, column: str, exc: ValueError) -> None:
        """A parser's ValueError on this row: its code if it is a Problem."""
        if isinstance(exc, Problem):
            self.error(column, exc.code, **exc.params)
        else:
            self.error(column, "invalid", detail=str(exc))

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
            self.problem(column, exc)
            return None


def read_rows(data: Source, required: list[str], optional: list[str] = ()) -> Iterator[Row]:  # type: ignore[assignment]
    """Rows of a CSV file with a header line; raises ImportFailed for a bad header or encoding.

    `data` is bytes, a path or a seekable binary file: the file is decoded as it is read (one
    pass to check the encoding, one to parse), never held whole in memory.
    Row errors (too many fields, an over-long field) are put on the row; the caller collects them.
    """
    with open_source(data) as stream:
        _check_size(stream)
        encoding = detect_encoding(stream)
        stream.seek(0)
        text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
        try:
            yield from _parse(text, required, optional)
        finally:
            text.detach()  # the caller's file stays open (and usable) after parsing


def _parse(text: io.TextIOWrapper, required: list[str], optional: list[str]) -> Iterator[Row]:
    reader = csv.reader(text)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFailed([RowError(1, "header", "empty_file")]) from None
    except csv.Error as exc:
        raise ImportFailed([RowError(1, "header", "not_csv", {"detail": str(exc)})]) from None
    problems = [RowError(1, c, "missing_column") for c in required if c not in header]
    known = set(required) | set(optional)
    problems += [RowError(1, c or "(blank)", "unknown_column") for c in header if c not in known]
    duplicates = {c for c in header if header.count(c) > 1}
    problems += [RowError(1, c, "column_twice") for c in sorted(duplicates)]
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
                row.error("row", "too_many_fields", fields=len(fields), header=len(header))
            for column, value in row.values.items():
                if len(value) > MAX_FIELD_CHARS:
                    row.error(column, "too_long", max=MAX_FIELD_CHARS)
                elif "\x00" in value:
                    row.error(column, "nul")
            yield row
    except csv.Error as exc:
        raise ImportFailed([RowError(line + 1, "row", "not_csv", {"detail": str(exc)})]) from None


# Field parsers: each raises a Problem (a ValueError) with the reason's code.


def parse_bool(text: str) -> bool:
    if text in ("1", "0"):
        return text == "1"
    raise Problem("bool")


def parse_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def _parse(text: str) -> list[str]:
        items = [item.strip().lower() for item in text.split(";") if item.strip()]
        bad = [item for item in items if item not in choices]
        if bad:
            raise Problem("unknown_items", items=", ".join(bad), choices=", ".join(choices))
        return sorted(set(items), key=items.index)

    return _parse


def parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def _parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise Problem("choice", choices=", ".join(choices))
        return value

    return _parse


def parse_int(low: int, high: int) -> Callable[[str], int]:
    def _parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise Problem("not_whole_number") from None
        if not low <= value <= high:
            raise Problem("out_of_range", low=low, high=high)
        return value

    return _parse


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Problem("not_date") from None


def parse_amount(text: str) -> Decimal:
    try:
        return parse_money(text)
    except ValueError:
        try:
            finite = Decimal(text.strip().replace(",", "")).is_finite()
        except ArithmeticError:
            finite = False
        raise Problem("amount_decimals" if finite else "not_amount") from None


def parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise Problem("not_number") from None
    if not value.is_finite():
        raise Problem("not_number")
    return value


def parse_email(text: str) -> str:
    """The console's one address rule (console.emailaddress), no DNS lookup; the normalized address."""
    try:
        return parse_address(text)
    except InvalidAddress as exc:
        raise Problem("email", detail=str(exc)) from None


def parse_text(max_chars: int) -> Callable[[str], str]:
    def _parse(text: str) -> str:
        if len(text) > max_chars:
            raise Problem("too_long", max=max_chars)
        if any(ch in text for ch in "\r\n"):
            raise Problem("line_break")
        return text

    return _parse


def safe_cell(value: Any) -> Any:
    """For CSV exports: a cell that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
