from __future__ import annotations

import pytest

from console.csvimport import ImportFailed, parse_bool, parse_email, read_rows, safe_cell

HEADER = "account_no,name\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_same_rows_from_every_supported_encoding(encoding):
    data = (HEADER + "A1,张三\nA2,李四\n").encode(encoding)
    rows = list(read_rows(data, ["account_no", "name"]))
    assert [(r.line, r.values["name"]) for r in rows] == [(2, "张三"), (3, "李四")]


def test_undecodable_bytes_are_reported_with_their_line():
    data = HEADER.encode() + b"A1,ok\nA2,\xff\xff\xff\n"
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(data, ["account_no", "name"]))
    assert str(failed.value.errors[0]) == "line 3: file: not UTF-8 or GBK/GB18030 text"


def test_missing_and_unknown_columns_are_reported_on_line_1():
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(b"account_no,nmae\n", ["account_no", "name"]))
    assert [str(e) for e in failed.value.errors] == ["line 1: name: missing column", "line 1: nmae: unknown column"]


def test_quoted_field_with_line_break_keeps_physical_line_numbers():
    data = (HEADER + 'A1,"two\nlines"\nA2,x\n').encode()
    rows = list(read_rows(data, ["account_no", "name"]))
    assert [r.line for r in rows] == [2, 4]


def test_field_parsers_give_reasons():
    assert parse_bool("1") is True
    with pytest.raises(ValueError, match="1 or 0"):
        parse_bool("yes")
    with pytest.raises(ValueError):
        parse_email("a@x.org)<b@evil>")
    assert safe_cell("=HYPERLINK()") == "'=HYPERLINK()" and safe_cell("ok") == "ok"
