from __future__ import annotations

import pytest

from console.csvimport import ImportFailed, parse_bool, parse_email, read_rows, safe_cell
from console.web.events import import_error_text, import_reason

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
    assert import_error_text(failed.value.errors[0]).startswith(
        "line 3: file: not UTF-8 or GBK/GB18030 text: byte 4 of the line is 0xFF")


def test_missing_and_unknown_columns_are_reported_on_line_1():
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(b"account_no,nmae\n", ["account_no", "name"]))
    assert [import_error_text(e) for e in failed.value.errors] == [
        "line 1: name: missing column", "line 1: nmae: unknown column"]


def test_quoted_field_with_line_break_keeps_physical_line_numbers():
    data = (HEADER + 'A1,"two\nlines"\nA2,x\n').encode()
    rows = list(read_rows(data, ["account_no", "name"]))
    assert [r.line for r in rows] == [2, 4]


def test_field_parsers_give_reasons():
    assert parse_bool("1") is True
    with pytest.raises(ValueError) as refused:
        parse_bool("yes")
    assert refused.value.code == "bool" and import_reason(refused.value.code) == "must be 1 or 0"
    with pytest.raises(ValueError):
        parse_email("a@x.org)<b@evil>")
    assert safe_cell("=HYPERLINK()") == "'=HYPERLINK()" and safe_cell("ok") == "ok"


# --- honest decoding: files made the way Excel and other programs make them --------------------

EXCEL_HEADER = "account_no,name,postal_address"
SIMPLIFIED = [("3200000001", "张伟", "江苏省苏州市姑苏区人民路1号"), ("3200000002", "王芳", "苏州市工业园区星海街9号"),
              ("3200000003", "李娜", "南京市鼓楼区中山北路2号"), ("3200000004", "刘洋", "无锡市梁溪区解放东路8号")]
TRADITIONAL = [("3200000001", "張偉", "臺北市中正區重慶南路一段122號"), ("3200000002", "王芳", "新北市板橋區中山路一段161號"),
               ("3200000003", "李娜", "臺中市西屯區臺灣大道三段99號"), ("3200000004", "劉洋", "高雄市苓雅區四維三路2號")]
COLUMNS = ["account_no", "name", "postal_address"]


def _excel_csv(rows, encoding: str, bom: bool = False) -> bytes:
    """As Excel saves "CSV" on a Chinese Windows (the ANSI code page: GBK) or "CSV UTF-8" (with a
    BOM): CRLF line ends, fields quoted only when needed."""
    import csv
    import io

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXCEL_HEADER.split(","))
    writer.writerows(rows)
    data = out.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" if bom else b"") + data


def _names(data) -> list[tuple[int, str, str]]:
    return [(r.line, r.values["name"], r.values["postal_address"]) for r in read_rows(data, COLUMNS)]


def test_excel_gbk_and_utf8_bom_files_give_identical_rows(tmp_path):
    gbk = _excel_csv(SIMPLIFIED, "gbk")
    bom = _excel_csv(SIMPLIFIED, "utf-8", bom=True)
    plain = _excel_csv(SIMPLIFIED, "utf-8")
    path = tmp_path / "客户.csv"
    path.write_bytes(gbk)
    expected = [(i + 2, name, address) for i, (_no, name, address) in enumerate(SIMPLIFIED)]
    assert _names(gbk) == _names(bom) == _names(plain) == _names(path) == expected


def test_a_big5_file_is_refused_not_imported_as_garbled_gbk():
    big5 = _excel_csv(TRADITIONAL, "big5")
    big5.decode("gb18030")  # the old decoder's trap: GB18030 decodes these bytes without an error
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(big5, COLUMNS))
    (error,) = failed.value.errors
    first_bad = big5.index("張".encode("big5"))
    assert error.line == 2 and error.column == "file"
    reason = import_reason(error.code, error.params)
    assert f"byte {first_bad - big5.index(b'3200000001') + 1} of the line is 0x{big5[first_bad]:02X}" in reason
    assert error.code == "encoding_big5" and "Big5" in reason


def test_utf8_with_one_truncated_character_is_refused_at_that_line_and_byte():
    good = _excel_csv(SIMPLIFIED, "utf-8")
    lines = good.split(b"\r\n")
    broken = "李".encode()[:2]  # the third byte lost, as a cut at a byte limit or a bad copy leaves it
    lines[3] = lines[3].replace("李".encode(), broken)
    data = b"\r\n".join(lines)
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(data, COLUMNS))
    (error,) = failed.value.errors
    assert error.line == 4, str(error)  # the header is line 1; 李娜 is on the fourth line
    assert f"byte {lines[3].index(broken) + 1} of the line is 0x{broken[0]:02X}" in import_reason(error.code, error.params)


def test_decode_error_line_numbers_count_crlf_cr_and_quoted_line_breaks():
    """Reproduced before the fix: CR-only files (old Mac Excel) put every error on line 1."""
    for newline in ("\r\n", "\r", "\n"):
        data = f"account_no,name{newline}A1,\"two{newline}lines\"{newline}A2,ok{newline}".encode() + b"A3,\xff" + newline.encode()
        with pytest.raises(ImportFailed) as failed:
            list(read_rows(data, ["account_no", "name"]))
        assert failed.value.errors[0].line == 5, (repr(newline), str(failed.value.errors[0]))
        assert failed.value.errors[0].params == {"byte": 4, "value": "0xFF"}


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_refused_on_line_1(codec):
    data = _excel_csv(SIMPLIFIED, codec)  # Excel's "Unicode text"
    with pytest.raises(ImportFailed) as failed:
        list(read_rows(data, COLUMNS))
    assert import_error_text(failed.value.errors[0]).startswith(
        "line 1: file: not UTF-8 or GBK/GB18030 text: UTF-16 is not accepted")


def test_a_large_gbk_file_is_parsed_from_disk_in_chunks(tmp_path, monkeypatch):
    import console.csvimport as csvimport

    monkeypatch.setattr(csvimport, "_CHUNK", 4096)  # many chunk boundaries, some inside characters
    rows = [(f"32{i:08d}", SIMPLIFIED[i % 4][1], SIMPLIFIED[i % 4][2]) for i in range(5000)]
    path = tmp_path / "big.csv"
    path.write_bytes(_excel_csv(rows, "gb18030"))
    parsed = list(read_rows(path, COLUMNS))
    assert len(parsed) == 5000 and parsed[-1].values["name"] == rows[-1][1] and parsed[-1].line == 5001
