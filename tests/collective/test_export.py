"""`console bills export` names the service point of every line and the points a collective bill covers."""

from __future__ import annotations

import csv
import io
import json


def _collective(coll):  # noqa: ANN001, ANN202
    account = coll.account(points=3, name="苏州导出测试有限公司")
    p0, p1, p2 = coll.points(account)
    coll.read(p0, "2026-10-08", "5000", peak="2000", valley="1500")
    coll.read(p0, "2026-11-08", "6000", peak="2400", valley="1750")
    coll.read(p1, "2026-10-10", "1000", peak="400", valley="300")
    coll.read(p1, "2026-11-10", "1500", peak="600", valley="400")
    coll.entry(p2, "connection", "500.00", "2026-11-03")
    (bill,) = coll.run()
    return bill, (p0, p1, p2)


def test_json_export_names_each_lines_point_and_the_points_covered(runner, coll):
    bill, points = _collective(coll)
    result = runner.invoke(args=["bills", "export", "2026-11", "--format", "json"])
    assert result.exit_code == 0, result.output
    (exported,) = json.loads(result.output)
    assert exported["bill_no"] == bill.bill_no and exported["bill_type"] == "collective"
    assert exported["points"] == [p.point_no for p in points]
    assert [line["point_no"] for line in exported["lines"]] == [
        points[0].point_no, points[1].point_no, points[2].point_no]
    assert [line["kind"] for line in exported["lines"]] == ["electricity", "electricity", "connection"]


def test_csv_export_has_the_point_columns(runner, coll, tmp_path):
    bill, points = _collective(coll)
    out = tmp_path / "bills.csv"
    assert runner.invoke(args=["bills", "export", "2026-11", "--format", "csv", "--output", str(out)]).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["points"] for r in rows} == {";".join(p.point_no for p in points)}
    assert [r["line_point_no"] for r in rows] == [p.point_no for p in points]
    assert all(r["bill_no"] == bill.bill_no for r in rows)
