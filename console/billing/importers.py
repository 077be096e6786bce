"""Billing imports: meter reads, charges, payments, deposits, installment plans (docs/import-formats.md).

All or nothing: every row is parsed and checked first (line-numbered errors), existing rows are
loaded in bulk, and only then is anything written, with Core bulk inserts. Idempotent: each row
has a natural key (a read: point + date; a charge: its content; a payment: its reference; a
deposit: account + date + amount; a plan: account + first period); importing the same file again
changes nothing. Registered with console.imports at import of this module.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import date
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from console.audit import Actor
from console.billing import cycles, rating
from console.csvimport import (
    ImportFailed,
    ImportSummary,
    Problem,
    Row,
    RowError,
    parse_amount,
    parse_bool,
    parse_choice,
    parse_date,
    parse_decimal,
    parse_int,
    parse_text,
    read_rows,
)
from console.models import Customer, ServicePoint
from console.models.billing import Bill, Deposit, InstallmentPlan, LedgerEntry, MeterRead
from console.money import ZERO

CHUNK = 500
CHARGE_TYPES = (
    "electricity", "late_fee", "business_expansion", "connection", "inspection", "installment", "adjustment",
    "write_off",
)
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,59}$")


def parse_period(text: str) -> str:
    """A column's period: the cycles' rule (console.billing.cycles.parse_period), the import's reason."""
    try:
        return cycles.parse_period(text)
    except cycles.CycleError:
        raise Problem("not_period") from None


def parse_kwh(text: str) -> Decimal:
    value = parse_decimal(text)
    if value < 0:
        raise Problem("negative")
    if value != value.quantize(Decimal("0.01")):
        raise Problem("decimals")
    if value >= Decimal("10000000000"):
        raise Problem("too_large")
    return value.quantize(Decimal("0.01"))


def parse_positive_amount(text: str) -> Decimal:
    value = parse_amount(text)
    if value <= 0:
        raise Problem("not_positive")
    return value


def _chunks(items: list, size: int = CHUNK):  # noqa: ANN202
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _fail_if(errors: list[RowError]) -> None:
    if errors:
        raise ImportFailed(errors)


class Directory:
    """Customers and points named in a file, loaded in bulk; resolves a row's service point."""

    def __init__(self, session: Session, account_nos: set[str], point_nos: set[str]):
        self.customers: dict[str, tuple[int, str]] = {}
        for part in _chunks(sorted(account_nos)):
            for row in session.execute(
                select(Customer.account_no, Customer.id, Customer.customer_type).where(Customer.account_no.in_(part))
            ):
                self.customers[row.account_no] = (row.id, row.customer_type)
        self.points: dict[str, tuple[int, int]] = {}  # point_no -> (point id, customer id)
        for part in _chunks(sorted(point_nos)):
            for row in session.execute(
                select(ServicePoint.point_no, ServicePoint.id, ServicePoint.customer_id).where(
                    ServicePoint.point_no.in_(part)
                )
            ):
                self.points[row.point_no] = (row.id, row.customer_id)
        self.points_of: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        ids = sorted(c[0] for c in self.customers.values())
        for part in _chunks(ids):
            for row in session.execute(
                select(ServicePoint.customer_id, ServicePoint.id, ServicePoint.is_billing_point)
                .where(ServicePoint.customer_id.in_(part)).order_by(ServicePoint.id)
            ):
                self.points_of[row.customer_id].append((row.id, row.is_billing_point))

    def customer(self, row: Row, account_no: str | None) -> int | None:
        if account_no is None:
            return None
        found = self.customers.get(account_no)
        if found is None:
            row.error("account_no", "no_customer", account_no=account_no)
            return None
        return found[0]

    def point(self, row: Row, customer_id: int | None, point_no: str | None) -> int | None:
        """The row's point: the one named (it must be the customer's), else the customer's only
        point, else the point the customer file names as billing point."""
        if customer_id is None:
            return None
        if point_no:
            found = self.points.get(point_no)
            if found is None:
                row.error("point_no", "no_point", point_no=point_no)
                return None
            if found[1] != customer_id:
                row.error("point_no", "point_not_customers", point_no=point_no)
                return None
            return found[0]
        return self.default_point(row, customer_id)

    def default_point(self, row: Row | None, customer_id: int) -> int | None:
        points = self.points_of.get(customer_id, [])
        if len(points) == 1:
            return points[0][0]
        billing = [p for p, is_billing in points if is_billing]
        if len(billing) == 1:
            return billing[0]
        if row is not None:
            if not points:
                row.error("point_no", "customer_no_point")
            else:
                row.error("point_no", "no_billing_point", points=len(points))
        return None


# Meter reads ---------------------------------------------------------------------------------

READ_COLUMNS = ["point_no", "read_date", "total_kwh"]
READ_OPTIONAL = ["peak_kwh", "valley_kwh", "max_demand_kw", "meter_change"]


def import_reads(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    rows: list[tuple[Row, dict]] = []
    errors: list[RowError] = []
    for row in read_rows(data, READ_COLUMNS, READ_OPTIONAL):
        values = {
            "point_no": row.get("point_no", parse_text(32)),
            "read_date": row.get("read_date", parse_date),
            "total_kwh": row.get("total_kwh", parse_kwh),
            "peak_kwh": row.get("peak_kwh", parse_kwh, required=False),
            "valley_kwh": row.get("valley_kwh", parse_kwh, required=False),
            "max_demand_kw": row.get("max_demand_kw", parse_kwh, required=False),
            "meter_change": bool(row.get("meter_change", parse_bool, required=False)),
        }
        total, peak, valley = values["total_kwh"], values["peak_kwh"], values["valley_kwh"]
        if total is not None and (peak or ZERO) + (valley or ZERO) > total:
            row.error("peak_kwh", "peak_valley")
        rows.append((row, values))
    directory = Directory(session, set(), {v["point_no"] for _r, v in rows if v["point_no"]})
    seen: dict[tuple[int, date], int] = {}
    for row, values in rows:
        if values["point_no"] and values["point_no"] not in directory.points:
            row.error("point_no", "no_point", point_no=values["point_no"])
        elif values["point_no"] and values["read_date"]:
            point_id = directory.points[values["point_no"]][0]
            values["point_id"] = point_id
            key = (point_id, values["read_date"])
            if key in seen:
                row.error("read_date", "second_read", first=seen[key])
            seen[key] = row.line
    errors = [e for row, _v in rows for e in row.errors]
    _fail_if(errors)

    # Existing reads of the file's points: from the file's earliest date on, plus the one before.
    point_ids = sorted({v["point_id"] for _r, v in rows})
    first = min(v["read_date"] for _r, v in rows) if rows else date.today()
    existing: dict[int, dict[date, MeterRead]] = defaultdict(dict)
    for part in _chunks(point_ids):
        for read in session.scalars(
            select(MeterRead).where(MeterRead.service_point_id.in_(part), MeterRead.read_date >= first)
        ):
            existing[read.service_point_id][read.read_date] = read
        latest = (
            select(MeterRead.service_point_id, func.max(MeterRead.read_date).label("d"))
            .where(MeterRead.service_point_id.in_(part), MeterRead.read_date < first)
            .group_by(MeterRead.service_point_id).subquery()
        )
        for read in session.scalars(
            select(MeterRead).join(latest, (MeterRead.service_point_id == latest.c.service_point_id)
                                   & (MeterRead.read_date == latest.c.d))
        ):
            existing[read.service_point_id][read.read_date] = read

    summary = ImportSummary(dry_run=dry_run)
    new_rows, changed = [], []
    by_point: dict[int, dict[date, tuple[Decimal, bool, int | None]]] = defaultdict(dict)
    for point_id, reads in existing.items():
        for d, read in reads.items():
            by_point[point_id][d] = (read.total_kwh, read.meter_change, None)
    for row, values in rows:
        by_point[values["point_id"]][values["read_date"]] = (values["total_kwh"], values["meter_change"], row.line)
    rows_by_line = {row.line: row for row, _v in rows}
    for reads in by_point.values():
        ordered = sorted(reads.items())
        for (_d0, (before, _c0, _l0)), (d1, (after, change, line)) in zip(ordered, ordered[1:], strict=False):
            if after < before and not change:
                target = line if line is not None else next((l0 for _d, (_t, _c, l0) in ordered if l0), None)
                if target is not None:
                    rows_by_line[target].error("total_kwh", "reading_below", after=str(after), date=d1.isoformat(),
                                               before=str(before))
    errors = [e for row, _v in rows for e in row.errors]
    _fail_if(errors)

    fields = ("total_kwh", "peak_kwh", "valley_kwh", "max_demand_kw", "meter_change")
    for _row, values in rows:
        old = existing.get(values["point_id"], {}).get(values["read_date"])
        record = {k: values[k] for k in fields}
        if old is None:
            new_rows.append({"service_point_id": values["point_id"], "read_date": values["read_date"], **record})
            summary.created += 1
        elif all(getattr(old, k) == record[k] for k in fields):
            summary.unchanged += 1
        else:
            changed.append({"rid": old.id, **record})
            summary.updated += 1
    if not dry_run:
        for part in _chunks(new_rows, 5000):
            session.execute(insert(MeterRead.__table__), part)
        if changed:
            t = MeterRead.__table__
            session.execute(
                update(t).where(t.c.id == bindparam("rid")).values({k: bindparam(k) for k in fields}), changed
            )
        session.flush()
    return summary


# Charges -------------------------------------------------------------------------------------

CHARGE_COLUMNS = ["account_no", "charge_type", "amount", "date"]
CHARGE_OPTIONAL = ["point_no", "description", "for_period"]


def import_charges(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    parsed = []
    for row in read_rows(data, CHARGE_COLUMNS, CHARGE_OPTIONAL):
        kind = row.get("charge_type", parse_choice(CHARGE_TYPES))
        amount = row.get("amount", parse_amount)
        values = {
            "account_no": row.get("account_no", parse_text(32)),
            "point_no": row.get("point_no", parse_text(32), required=False),
            "kind": kind,
            "amount": amount,
            "date": row.get("date", parse_date),
            "description": row.get("description", parse_text(300), required=False) or "",
            "for_period": row.get("for_period", parse_period, required=False),
        }
        if kind and amount is not None:
            if kind == "adjustment":
                if amount == 0:
                    row.error("amount", "zero_adjustment")
            elif amount <= 0:
                row.error("amount", "charge_not_positive")
        parsed.append((row, values))
    directory = Directory(
        session, {v["account_no"] for _r, v in parsed if v["account_no"]},
        {v["point_no"] for _r, v in parsed if v["point_no"]},
    )
    seen: dict[str, int] = {}
    for row, values in parsed:
        customer_id = directory.customer(row, values["account_no"])
        point_id = directory.point(row, customer_id, values["point_no"])
        values["customer_id"], values["point_id"] = customer_id, point_id
        if row.errors:
            continue
        key = "chg:" + hashlib.sha1(
            "|".join(str(values[k]) for k in ("point_id", "kind", "amount", "date", "description", "for_period")).encode()
        ).hexdigest()
        if key in seen:
            row.error("row", "same_charge", first=seen[key])
        seen[key] = row.line
        values["natural_key"] = key
    _fail_if([e for row, _v in parsed for e in row.errors])
    existing = set()
    keys = [v["natural_key"] for _r, v in parsed]
    for part in _chunks(keys):
        existing.update(session.scalars(select(LedgerEntry.natural_key).where(LedgerEntry.natural_key.in_(part))))
    summary = ImportSummary(dry_run=dry_run)
    new = []
    for _row, v in parsed:
        if v["natural_key"] in existing:
            summary.unchanged += 1
            continue
        amount = -v["amount"] if v["kind"] == "write_off" else v["amount"]
        new.append({
            "customer_id": v["customer_id"], "service_point_id": v["point_id"], "kind": v["kind"], "amount": amount,
            "entry_date": v["date"], "description": v["description"], "for_period": v["for_period"],
            "reference": None, "natural_key": v["natural_key"], "details": None, "bill_id": None,
        })
        summary.created += 1
    if not dry_run:
        for part in _chunks(new, 5000):
            session.execute(insert(LedgerEntry.__table__), part)
        session.flush()
    return summary


# Payments ------------------------------------------------------------------------------------

PAYMENT_COLUMNS = ["account_no", "amount", "paid_on", "reference"]
PAYMENT_OPTIONAL = ["point_no"]


def import_payments(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    parsed = []
    for row in read_rows(data, PAYMENT_COLUMNS, PAYMENT_OPTIONAL):
        reference = row.get("reference", parse_text(60))
        if reference and not _REFERENCE.match(reference):
            row.error("reference", "bad_reference")
        parsed.append((row, {
            "account_no": row.get("account_no", parse_text(32)),
            "point_no": row.get("point_no", parse_text(32), required=False),
            "amount": row.get("amount", parse_positive_amount),
            "paid_on": row.get("paid_on", parse_date),
            "reference": reference,
        }))
    directory = Directory(
        session, {v["account_no"] for _r, v in parsed if v["account_no"]},
        {v["point_no"] for _r, v in parsed if v["point_no"]},
    )
    seen: dict[str, int] = {}
    for row, values in parsed:
        values["customer_id"] = directory.customer(row, values["account_no"])
        if values["point_no"]:
            values["point_id"] = directory.point(row, values["customer_id"], values["point_no"])
        else:
            values["point_id"] = None
            if values["customer_id"] is not None and not directory.points_of.get(values["customer_id"]):
                row.error("account_no", "customer_no_point")
        ref = values["reference"]
        if ref:
            if ref in seen:
                row.error("reference", "reference_twice", first=seen[ref])
            seen[ref] = row.line
    _fail_if([e for row, _v in parsed for e in row.errors])

    # Payments already imported (by reference): the same payment again is unchanged; another is an error.
    existing: dict[str, tuple[int, Decimal]] = {}
    refs = [v["reference"] for _r, v in parsed]
    for part in _chunks(refs):
        for ref, customer_id, total in session.execute(
            select(LedgerEntry.reference, LedgerEntry.customer_id, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.kind == "payment", LedgerEntry.reference.in_(part))
            .group_by(LedgerEntry.reference, LedgerEntry.customer_id)
        ):
            existing[ref] = (customer_id, -total)
    for row, v in parsed:
        old = existing.get(v["reference"])
        if old is not None and old != (v["customer_id"], v["amount"]):
            row.error("reference", "reference_used", reference=v["reference"])
    _fail_if([e for row, _v in parsed for e in row.errors])

    summary = ImportSummary(dry_run=dry_run)
    todo = [(row, v) for row, v in parsed if v["reference"] not in existing]
    summary.unchanged = len(parsed) - len(todo)
    allocator = PaymentAllocator(session, {v["customer_id"] for _r, v in todo if v["point_id"] is None}, directory)
    new = []
    for _row, v in todo:
        if v["point_id"] is not None:
            parts = [(v["point_id"], v["amount"])]
        else:
            parts = allocator.allocate(v["customer_id"], v["amount"])
        for number, (point_id, amount) in enumerate(parts, start=1):
            key = f"pay:{v['reference']}" + (f":{number}" if number > 1 else "")
            new.append({
                "customer_id": v["customer_id"], "service_point_id": point_id, "kind": "payment", "amount": -amount,
                "entry_date": v["paid_on"], "description": "", "for_period": None, "reference": v["reference"],
                "natural_key": key, "details": {"split": len(parts)} if len(parts) > 1 else None, "bill_id": None,
            })
        summary.created += 1
    if not dry_run:
        for part in _chunks(new, 5000):
            session.execute(insert(LedgerEntry.__table__), part)
        session.flush()
    return summary


class PaymentAllocator:
    """A payment without a point settles the customer's oldest unpaid bills first, across points;
    what is left goes to the customer's only or billing point (or the first point)."""

    def __init__(self, session: Session, customer_ids: set[int], directory: Directory):
        self.directory = directory
        self.unpaid: dict[int, list[list]] = {}  # customer -> [[bill_date, bill_no, point, owed], ...] oldest first
        ids = sorted(customer_ids)
        outstanding: dict[int, Decimal] = defaultdict(lambda: ZERO)
        past: dict[int, list[rating.PastBill]] = defaultdict(list)
        point_customer: dict[int, int] = {}
        for part in _chunks(ids):
            for point_id, customer_id, total in session.execute(
                select(LedgerEntry.service_point_id, LedgerEntry.customer_id, func.sum(LedgerEntry.amount))
                .where(LedgerEntry.customer_id.in_(part))
                .where((LedgerEntry.bill_id.is_not(None)) | (LedgerEntry.kind.in_(("payment", "write_off"))))
                .group_by(LedgerEntry.service_point_id, LedgerEntry.customer_id)
            ):
                outstanding[point_id] += total
                point_customer[point_id] = customer_id
            for row in session.execute(
                select(Bill.service_point_id, Bill.customer_id, Bill.bill_no, Bill.bill_date, Bill.due_date,
                       Bill.charges_total, Bill.adjustments_total)
                .where(Bill.customer_id.in_(part), Bill.service_point_id.is_not(None))
            ):
                past[row.service_point_id].append(
                    rating.PastBill(row.bill_no, row.bill_date, row.due_date, row.charges_total + row.adjustments_total)
                )
                point_customer[row.service_point_id] = row.customer_id
        for customer_id in ids:
            items = []
            for point_id, _billing in directory.points_of.get(customer_id, []):
                for bill, owed in rating.unpaid_by_bill(past.get(point_id, []), outstanding.get(point_id, ZERO)):
                    items.append([bill.bill_date, bill.bill_no, point_id, owed])
            items.sort()
            self.unpaid[customer_id] = items

    def allocate(self, customer_id: int, amount: Decimal) -> list[tuple[int, Decimal]]:
        parts: dict[int, Decimal] = {}
        remaining = amount
        for item in self.unpaid.get(customer_id, []):
            if remaining <= 0:
                break
            take = min(item[3], remaining)
            if take <= 0:
                continue
            item[3] -= take
            remaining -= take
            parts[item[2]] = parts.get(item[2], ZERO) + take
        if remaining > 0:
            point = self.directory.default_point(None, customer_id) or self.directory.points_of[customer_id][0][0]
            parts[point] = parts.get(point, ZERO) + remaining
        return list(parts.items())


# Deposits ------------------------------------------------------------------------------------


def import_deposits(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    parsed = []
    for row in read_rows(data, ["account_no", "amount", "received_on"]):
        parsed.append((row, {
            "account_no": row.get("account_no", parse_text(32)),
            "amount": row.get("amount", parse_positive_amount),
            "received_on": row.get("received_on", parse_date),
        }))
    directory = Directory(session, {v["account_no"] for _r, v in parsed if v["account_no"]}, set())
    seen: dict[tuple, int] = {}
    for row, v in parsed:
        v["customer_id"] = directory.customer(row, v["account_no"])
        key = (v["customer_id"], v["received_on"], v["amount"])
        if not row.errors:
            if key in seen:
                row.error("row", "same_deposit", first=seen[key])
            seen[key] = row.line
    _fail_if([e for row, _v in parsed for e in row.errors])
    existing = set()
    ids = sorted({v["customer_id"] for _r, v in parsed})
    for part in _chunks(ids):
        existing.update(session.execute(
            select(Deposit.customer_id, Deposit.received_on, Deposit.amount).where(Deposit.customer_id.in_(part))
        ).all())
    summary = ImportSummary(dry_run=dry_run)
    new = []
    for _row, v in parsed:
        if (v["customer_id"], v["received_on"], v["amount"]) in existing:
            summary.unchanged += 1
        else:
            new.append({"customer_id": v["customer_id"], "amount": v["amount"], "received_on": v["received_on"]})
            summary.created += 1
    if not dry_run and new:
        session.execute(insert(Deposit.__table__), new)
        session.flush()
    return summary


# Installment plans ---------------------------------------------------------------------------


def import_installments(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    parsed = []
    for row in read_rows(data, ["account_no", "total", "installments", "first_period"]):
        parsed.append((row, {
            "account_no": row.get("account_no", parse_text(32)),
            "total": row.get("total", parse_positive_amount),
            "installments": row.get("installments", parse_int(1, 120)),
            "first_period": row.get("first_period", parse_period),
        }))
    directory = Directory(session, {v["account_no"] for _r, v in parsed if v["account_no"]}, set())
    seen: dict[tuple, int] = {}
    for row, v in parsed:
        v["customer_id"] = directory.customer(row, v["account_no"])
        if v["customer_id"] is not None:
            v["point_id"] = directory.default_point(row, v["customer_id"])
        key = (v["customer_id"], v["first_period"])
        if not row.errors:
            if key in seen:
                row.error("first_period", "second_plan", first=seen[key])
            seen[key] = row.line
    _fail_if([e for row, _v in parsed for e in row.errors])
    existing = {}
    ids = sorted({v["customer_id"] for _r, v in parsed})
    for part in _chunks(ids):
        for plan in session.scalars(select(InstallmentPlan).where(InstallmentPlan.customer_id.in_(part))):
            existing[(plan.customer_id, plan.first_period)] = plan
    billed_plans = set()
    if existing:
        plan_keys = [f"inst:{p.id}:1" for p in existing.values()]
        for part in _chunks(plan_keys):
            billed_plans.update(
                int(k.split(":")[1])
                for k in session.scalars(select(LedgerEntry.natural_key).where(LedgerEntry.natural_key.in_(part)))
            )
    summary = ImportSummary(dry_run=dry_run)
    new, changed = [], []
    for row, v in parsed:
        old = existing.get((v["customer_id"], v["first_period"]))
        if old is None:
            new.append({"customer_id": v["customer_id"], "service_point_id": v["point_id"], "total": v["total"],
                        "installments": v["installments"], "first_period": v["first_period"]})
            summary.created += 1
        elif (old.total, old.installments) == (v["total"], v["installments"]):
            summary.unchanged += 1
        elif old.id in billed_plans:
            row.error("total", "plan_billed")
        else:
            changed.append({"pid": old.id, "total": v["total"], "installments": v["installments"]})
            summary.updated += 1
    _fail_if([e for row, _v in parsed for e in row.errors])
    if not dry_run:
        if new:
            session.execute(insert(InstallmentPlan.__table__), new)
        if changed:
            t = InstallmentPlan.__table__
            session.execute(update(t).where(t.c.id == bindparam("pid"))
                            .values(total=bindparam("total"), installments=bindparam("installments")), changed)
        session.flush()
    return summary


# Registered with the import registry by create_app (console.imports.register_importers).
IMPORTERS = {
    "reads": (_l("Meter reads"), import_reads),
    "charges": (_l("Charges"), import_charges),
    "payments": (_l("Payments"), import_payments),
    "deposits": (_l("Deposits"), import_deposits),
    "installments": (_l("Installment plans"), import_installments),
}
