"""`console bills export`: every bill of a cycle with its lines, due date, type and totals.

Streamed in batches (never the whole cycle in memory). CSV: one row per bill line with the bill's
columns repeated, every cell through csvimport.safe_cell. No ID numbers are exported at all.
Every line names its service point (`line_point_no`), and every bill the points it covers (`points`,
";"-separated: one for a point bill, the group's for a collective bill), so a print vendor or finance
can tell which point each line is for.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import IO

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.billing.cycles import CycleError, get_cycle
from console.csvimport import safe_cell
from console.models import Customer, ServicePoint
from console.models.billing import Bill, BillLine

BATCH = 2000
BILL_COLUMNS = (
    "bill_no", "period", "account_no", "customer_name", "customer_type", "point_no", "bill_type", "template",
    "bill_date", "read_date", "due_date", "previous_balance", "payments_total", "charges_total",
    "adjustments_total", "deposit_applied", "current_balance", "deposit_held", "status", "points",
)
LINE_COLUMNS = ("line_no", "line_point_no", "line_kind", "line_description", "line_amount")


def iter_bills(session: Session, period: str) -> Iterator[dict]:
    cycle = get_cycle(session, period)
    if cycle is None:
        raise CycleError(_l("There is no cycle %(period)s.", period=period))
    last_id = 0
    while True:
        rows = session.execute(
            select(Bill, Customer.account_no, Customer.name, Customer.customer_type, ServicePoint.point_no)
            .join(Customer, Customer.id == Bill.customer_id)
            .outerjoin(ServicePoint, ServicePoint.id == Bill.service_point_id)
            .where(Bill.cycle_id == cycle.id, Bill.id > last_id)
            .order_by(Bill.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        ids = [row[0].id for row in rows]
        lines = defaultdict(list)
        points = defaultdict(list)  # bill id -> the point numbers it covers, in line order
        for line, line_point_no in session.execute(
            select(BillLine, ServicePoint.point_no).outerjoin(ServicePoint, ServicePoint.id == BillLine.service_point_id)
            .where(BillLine.bill_id.in_(ids)).order_by(BillLine.bill_id, BillLine.position)
        ):
            lines[line.bill_id].append(
                {"line_no": line.position, "point_no": line_point_no, "kind": line.kind,
                 "description": line.description, "amount": str(line.amount), "details": line.details}
            )
            if line_point_no and line_point_no not in points[line.bill_id]:
                points[line.bill_id].append(line_point_no)
        for bill, account_no, name, customer_type, point_no in rows:
            yield {
                "bill_no": bill.bill_no, "period": period, "account_no": account_no, "customer_name": name,
                "customer_type": customer_type, "point_no": point_no, "bill_type": bill.bill_type,
                "template": bill.template, "bill_date": bill.bill_date.isoformat(),
                "read_date": bill.read_date.isoformat() if bill.read_date else None,
                "due_date": bill.due_date.isoformat(), "previous_balance": str(bill.previous_balance),
                "payments_total": str(bill.payments_total), "charges_total": str(bill.charges_total),
                "adjustments_total": str(bill.adjustments_total), "deposit_applied": str(bill.deposit_applied),
                "current_balance": str(bill.current_balance), "deposit_held": str(bill.deposit_held),
                "status": bill.status, "points": points[bill.id] or ([point_no] if point_no else []),
                "lines": lines[bill.id],
            }
        last_id = ids[-1]
        session.expunge_all()


def export_json(session: Session, period: str, out: IO[str]) -> int:
    count = 0
    out.write("[")
    for bill in iter_bills(session, period):
        out.write(("," if count else "") + "\n" + json.dumps(bill, ensure_ascii=False))
        count += 1
    out.write("\n]\n")
    return count


def export_csv(session: Session, period: str, out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(BILL_COLUMNS + LINE_COLUMNS)
    count = 0
    for bill in iter_bills(session, period):
        head = [safe_cell(";".join(bill[c]) if c == "points" else bill[c]) for c in BILL_COLUMNS]
        for line in bill["lines"]:
            writer.writerow(head + [line["line_no"], safe_cell(line["point_no"] or ""), safe_cell(line["kind"]),
                                    safe_cell(line["description"]), line["amount"]])
        count += 1
    return count
