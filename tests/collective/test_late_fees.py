"""Late fees on what an earlier collective bill left unpaid (issue 15): each point's part counts from the
collective bill's due date, the one the customer was given."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D


def test_an_unpaid_collective_bill_gets_late_fees_from_its_due_date(coll):
    account = coll.account(points=2)
    p0, p1 = coll.points(account)
    for point in (p0, p1):
        coll.read(point, "2026-09-10", "1000", peak="400", valley="300")
        coll.read(point, "2026-10-10", "1100", peak="440", valley="330")
        coll.read(point, "2026-11-10", "1200", peak="480", valley="360")
    (october,) = coll.run("2026-10")
    assert october.bill_type == "collective" and october.due_date == date(2026, 11, 10)  # 10-31 + 10
    (november,) = coll.run("2026-11")
    fees = [line for line in november.lines if line.kind == "late_fee"]
    assert sorted(line.service_point_id for line in fees) == sorted([p0.id, p1.id])
    parts = {line.service_point_id: line.amount for line in october.lines if line.kind == "electricity"}
    for line in fees:
        (fee,) = line.details["fees"]
        assert fee["bill_no"] == october.bill_no and fee["due_date"] == "2026-11-10" and fee["days"] == 20
        # commercial, arrears of the current year: 0.2 % a day on the point's unpaid part
        assert line.amount == (parts[line.service_point_id] * D("0.002") * 20).quantize(D("0.01"))
