"""Bill generation for a cycle, one chunk of customers at a time.

Per chunk: a few bulk queries load everything (points, reads, unbilled ledger entries, balances,
earlier bills, deposits, plans), `compute_point_bill` works out each point's bill in Python (pure,
no database: a collective bill calls it per point and sums), and Core bulk inserts write bills,
lines, new ledger entries and messages; the carried ledger entries are marked billed in one
executemany that only touches entries still unbilled.

Idempotent: points that already have a bill in the cycle are skipped, and the unique key
(cycle, customer, unit_key) refuses a second bill if two runs of one chunk race.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from console.billing import collective, dates, rating
from console.billing.tariffs import load_versions
from console.db import bulk_insert, reserve_ids
from console.models import Customer, ServicePoint
from console.models.billing import (
    Bill,
    BillLine,
    BillMessage,
    BillStatus,
    Campaign,
    CollectivePin,
    Cycle,
    Deposit,
    InstallmentPlan,
    LedgerEntry,
    MeterRead,
)
from console.money import ZERO, money

# Order of the itemized lines on a bill.
LINE_ORDER = (
    "previous_balance", "payment", "electricity", "business_expansion", "connection", "inspection",
    "late_fee", "installment", "adjustment", "write_off", "deposit_applied",
)
CHARGE_KINDS = ("electricity", "business_expansion", "connection", "inspection", "late_fee", "installment")
ADJUSTMENT_KINDS = ("adjustment", "write_off")
MAX_MESSAGES = 2


class EntryAlreadyBilled(RuntimeError):
    """A ledger entry this run meant to bill was billed by someone else meanwhile: the chunk is retried."""


def period_bounds(period: str) -> tuple[date, date]:
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def bill_number(period: str, customer_id: int, seq: int) -> str:
    """Readable and unique: PERIOD-CUSTOMER-SEQ, e.g. 202611-000123-01 (the customer's 1st point)."""
    return f"{period.replace('-', '')}-{customer_id:06d}-{seq:02d}"


# The pure part -------------------------------------------------------------------------------


@dataclass
class Entry:
    kind: str
    amount: Decimal
    entry_date: date
    description: str = ""
    id: int | None = None  # None: a new entry made by this generation
    natural_key: str | None = None
    for_period: str | None = None
    reference: str | None = None
    details: dict | None = None


@dataclass
class PointInputs:
    point_id: int
    point_no: str
    customer_id: int
    customer_type: str
    tariff_code: str
    period: str
    bill_date: date
    previous_balance: Decimal
    previous_read: rating.Read | None
    reads: list[rating.Read]
    entries: list[Entry]
    past_bills: list[rating.PastBill]
    late_fee_since: date | None
    plans: list[dict]  # {"id", "total", "installments", "first_period"}
    closing: bool  # the account closed in this period: a final bill
    deposit_held: Decimal
    apply_deposit: bool  # this point's bill settles the deposit (final, the customer's billing point)


@dataclass
class PointBill:
    point_id: int
    customer_id: int
    bill_type: str
    customer_type: str  # chooses the template and the marketing messages (step 8)
    template: str
    bill_date: date
    due_date: date
    read_date: date | None
    previous_balance: Decimal
    payments_total: Decimal
    charges_total: Decimal
    adjustments_total: Decimal
    deposit_applied: Decimal
    current_balance: Decimal
    deposit_held: Decimal
    entries: list[Entry] = field(default_factory=list)  # every entry this bill carries (old and new)
    lines: list[dict] = field(default_factory=list)


def compute_point_bill(
    inputs: PointInputs, tariffs: list[rating.TariffVersion], settings: dict
) -> PointBill | None:
    """One service point's bill for one period, or None when there is nothing to bill."""
    entries = list(inputs.entries)
    read_date = None
    used = rating.consumption(inputs.previous_read, inputs.reads) if inputs.reads else None
    if inputs.reads:
        read_date = max(r.read_date for r in inputs.reads)
    if used is not None:
        tariff = rating.tariff_in_force(tariffs, inputs.tariff_code, used.current.read_date)
        if tariff is None:
            raise ValueError(f"no tariff {inputs.tariff_code} in force on {used.current.read_date}")
        rated = rating.rate(tariff, used)
        entries.append(
            Entry(
                "electricity", rated.amount, used.current.read_date, f"{tariff.code} {inputs.period}",
                natural_key=f"elec:{inputs.point_id}:{inputs.period}",
                details={
                    "tariff": tariff.code,
                    "tariff_from": tariff.effective_from.isoformat(),
                    "previous_read": _read_dict(used.previous),
                    "current_read": _read_dict(used.current),
                    "consumption_kwh": str(used.total),
                    "peak_kwh": str(used.peak),
                    "valley_kwh": str(used.valley),
                    "max_demand_kw": None if used.max_demand is None else str(used.max_demand),
                    "meter_changed": used.meter_changed,
                    "breakdown": rated.breakdown,
                },
            )
        )

    outstanding = inputs.previous_balance
    for e in inputs.entries:
        if e.kind == "payment" or e.kind == "write_off":
            outstanding += e.amount
    if outstanding > 0 and inputs.past_bills:
        fees = rating.late_fees(
            inputs.customer_type, inputs.past_bills, outstanding, inputs.bill_date, inputs.late_fee_since,
            settings,
        )
        total_fee = sum((Decimal(f["amount"]) for f in fees), ZERO)
        if total_fee > 0:
            entries.append(
                Entry("late_fee", total_fee, inputs.bill_date, "late fee",
                      natural_key=f"late:{inputs.point_id}:{inputs.period}", details={"fees": fees})
            )

    plan_info = None
    for plan in inputs.plans:
        due = rating.installment_due(plan["total"], plan["installments"], plan["first_period"], inputs.period)
        if due is None:
            continue
        plan_info = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in due.items()}
        plan_info["first_period"] = plan["first_period"]
        entries.append(
            Entry("installment", due["amount"], inputs.bill_date,
                  f"installment {due['number']}/{due['of']}",
                  natural_key=f"inst:{plan['id']}:{due['number']}", details=plan_info)
        )

    if not entries and used is None and not (inputs.closing and inputs.apply_deposit and inputs.deposit_held):
        return None

    deposit_applied = ZERO
    if inputs.closing and inputs.apply_deposit and inputs.deposit_held > 0:
        before = inputs.previous_balance + sum((e.amount for e in entries), ZERO)
        deposit_applied = min(inputs.deposit_held, max(before, ZERO))
        entries.append(
            Entry("deposit_applied", -deposit_applied, inputs.bill_date, "deposit applied",
                  natural_key=f"dep:{inputs.point_id}:{inputs.period}",
                  details={"deposit_held": str(inputs.deposit_held), "applied": str(deposit_applied),
                           "refund": str(inputs.deposit_held - deposit_applied)})
        )

    payments = charges = adjustments = ZERO
    for e in entries:
        if e.kind == "payment":
            payments -= e.amount
        elif e.kind in CHARGE_KINDS:
            charges += e.amount
        elif e.kind in ADJUSTMENT_KINDS:
            adjustments += e.amount
    current = inputs.previous_balance - payments + charges + adjustments - deposit_applied

    bill_type = _bill_type(inputs, entries, used is not None)
    issued = dates.issue_date(inputs.bill_date, read_date)
    due_date = dates.due_date(issued, read_date, int(settings["DUE_DAYS"]), int(settings["MIN_PAYMENT_DAYS"]))
    lines = []
    if inputs.previous_balance:
        lines.append({"kind": "previous_balance", "description": "previous balance",
                      "amount": inputs.previous_balance, "details": None})
    order = {kind: i for i, kind in enumerate(LINE_ORDER)}
    for entry in sorted(entries, key=lambda e: (order[e.kind], e.entry_date, e.id or 0)):
        details = dict(entry.details or {})
        details["entry_date"] = entry.entry_date.isoformat()
        if entry.for_period:
            details["for_period"] = entry.for_period
        if entry.reference:
            details["reference"] = entry.reference
        lines.append({"kind": entry.kind, "description": entry.description, "amount": entry.amount,
                      "details": details})
    return PointBill(
        point_id=inputs.point_id, customer_id=inputs.customer_id, bill_type=bill_type,
        customer_type=inputs.customer_type, template=f"{inputs.customer_type}_{bill_type}", bill_date=issued, due_date=due_date,
        read_date=read_date, previous_balance=inputs.previous_balance, payments_total=payments,
        charges_total=charges, adjustments_total=adjustments, deposit_applied=deposit_applied,
        current_balance=current,
        deposit_held=inputs.deposit_held, entries=entries, lines=lines,
    )


def _bill_type(inputs: PointInputs, entries: list[Entry], metered: bool) -> str:
    """final (account closed) > installment (a plan's installment on it) > regular (reads or rated
    electricity) > adjustment (corrections to an earlier period) > non_metered (charges, no reads)."""
    if inputs.closing:
        return "final"
    kinds = {e.kind for e in entries}
    if "installment" in kinds:
        return "installment"
    if metered or inputs.reads or "electricity" in kinds:
        return "regular"
    if any(e.kind in ADJUSTMENT_KINDS and e.for_period for e in entries):
        return "adjustment"
    return "non_metered"


def _read_dict(read: rating.Read) -> dict:
    return {
        "date": read.read_date.isoformat(),
        "total_kwh": str(read.total),
        "peak_kwh": None if read.peak is None else str(read.peak),
        "valley_kwh": None if read.valley is None else str(read.valley),
        "max_demand_kw": None if read.max_demand is None else str(read.max_demand),
        "meter_change": read.meter_change,
    }


def choose_messages(campaigns: list[dict], customer_type: str, bill_date: date) -> list[dict]:
    """The applicable campaigns, highest priority first, at most two."""
    fitting = [
        c for c in campaigns
        if c["active"] and customer_type in (c["customer_types"] or []) and c["starts_on"] <= bill_date <= c["ends_on"]
    ]
    fitting.sort(key=lambda c: (-c["priority"], c["id"]))
    return fitting[:MAX_MESSAGES]


# The database part ---------------------------------------------------------------------------


@dataclass
class ChunkData:
    """Everything a chunk's bills need, loaded in a few bulk queries. `units` lists each point not yet
    billed in the cycle as (inputs, unit_key, bill_no); a collective bill (issue 4) takes a customer's
    points from here, calls compute_point_bill per point and sums."""

    cycle_id: int
    units: list[tuple[PointInputs, str, str]]
    tariffs: list[rating.TariffVersion]
    campaigns: list[dict]
    deposits: dict[int, list]
    # customers billed collectively this cycle (issue 4) and their pins: see console/billing/collective.py
    collective: dict[int, collective.CollectiveAccount] = field(default_factory=dict)


def generate_chunk(
    session: Session, cycle_id: int, first_customer_id: int, last_customer_id: int, settings: dict
) -> int:
    """Generate the bills of customers first..last (ids, inclusive) for the cycle. Returns bills made."""
    data = load_chunk(session, cycle_id, first_customer_id, last_customer_id)
    computed = []
    for inputs, unit_key, bill_no in data.units:
        bill = compute_point_bill(inputs, data.tariffs, settings)
        if bill is not None:
            computed.append((inputs, bill, unit_key, bill_no))
    made = collective.combine(computed, data.collective, settings)  # key accounts' collective bills
    if not made:
        return 0
    write_bills(session, cycle_id, made, data.campaigns, data.deposits)
    return len(made)


def load_chunk(session: Session, cycle_id: int, first_customer_id: int, last_customer_id: int) -> ChunkData:
    """Bulk-load the chunk's customers, points, reads, unbilled entries, balances, earlier bills,
    deposits, plans, tariffs and campaigns; skip points already billed in the cycle."""
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise LookupError(f"no cycle {cycle_id}")
    period, bill_date = cycle.period, cycle.bill_date
    start, end = period_bounds(period)
    in_range = ServicePoint.customer_id.between(first_customer_id, last_customer_id)
    points_q = select(ServicePoint.id).where(in_range).scalar_subquery()

    customers = {
        row.id: row
        for row in session.execute(
            select(Customer.id, Customer.customer_type, Customer.status, Customer.closed_on,
                   Customer.key_account, Customer.collective_billing, Customer.collective_billing_since).where(
                Customer.id.between(first_customer_id, last_customer_id)
            )
        )
    }
    points_by_customer: dict[int, list] = defaultdict(list)
    for row in session.execute(
        select(ServicePoint.id, ServicePoint.customer_id, ServicePoint.point_no, ServicePoint.tariff_code,
               ServicePoint.is_billing_point).where(in_range).order_by(ServicePoint.customer_id, ServicePoint.id)
    ):
        points_by_customer[row.customer_id].append(row)
    done = set(
        session.execute(
            select(Bill.customer_id, Bill.unit_key).where(
                Bill.cycle_id == cycle_id, Bill.customer_id.between(first_customer_id, last_customer_id)
            )
        ).all()
    )
    accounts = {
        c.id: collective.CollectiveAccount() for c in customers.values()
        if c.key_account and c.collective_billing
        and (c.collective_billing_since is None or c.collective_billing_since <= bill_date)
    }
    if accounts:
        _load_collective(session, cycle_id, first_customer_id, last_customer_id, accounts, done)

    mr = MeterRead.__table__.c
    read_columns = (mr.service_point_id, mr.read_date, mr.total_kwh, mr.peak_kwh, mr.valley_kwh, mr.max_demand_kw,
                    mr.meter_change)
    reads: dict[int, list[rating.Read]] = defaultdict(list)
    for row in session.execute(
        select(*read_columns).where(mr.service_point_id.in_(points_q), mr.read_date.between(start, end))
    ):
        reads[row[0]].append(rating.Read(*row[1:]))
    latest = (
        select(mr.service_point_id, func.max(mr.read_date).label("d"))
        .where(mr.service_point_id.in_(points_q), mr.read_date < start)
        .group_by(mr.service_point_id)
        .subquery()
    )
    previous_reads = {
        row[0]: rating.Read(*row[1:])
        for row in session.execute(
            select(*read_columns).join(
                latest, (mr.service_point_id == latest.c.service_point_id) & (mr.read_date == latest.c.d)
            )
        )
    }

    entries: dict[int, list[Entry]] = defaultdict(list)
    le = LedgerEntry.__table__.c
    for row in session.execute(
        select(le.id, le.service_point_id, le.kind, le.amount, le.entry_date, le.description, le.for_period,
               le.reference, le.details).where(
            le.customer_id.between(first_customer_id, last_customer_id), le.bill_id.is_(None),
            le.entry_date <= bill_date
        )
    ):
        entries[row.service_point_id].append(
            Entry(row.kind, row.amount, row.entry_date, row.description or "", row.id, None, row.for_period,
                  row.reference, row.details)
        )
    balances = dict(
        session.execute(
            select(le.service_point_id, func.sum(le.amount))
            .where(le.customer_id.between(first_customer_id, last_customer_id), le.bill_id.is_not(None))
            .group_by(le.service_point_id)
        ).all()
    )
    past: dict[int, list[rating.PastBill]] = defaultdict(list)
    bc = Bill.__table__.c
    for row in session.execute(
        select(bc.service_point_id, bc.bill_no, bc.bill_date, bc.due_date, bc.charges_total, bc.adjustments_total)
        .where(bc.customer_id.between(first_customer_id, last_customer_id), bc.service_point_id.is_not(None),
               bc.cycle_id != cycle_id, bc.bill_date < bill_date)
    ):
        past[row.service_point_id].append(
            rating.PastBill(row.bill_no, row.bill_date, row.due_date, row.charges_total + row.adjustments_total)
        )
    # a point's part of an earlier collective bill counts like a bill of its own: late fees run from the
    # collective bill's due date, the one the customer was given (docs/billing.md "Dates")
    bl = BillLine.__table__.c
    for row in session.execute(
        select(bl.service_point_id, bc.bill_no, bc.bill_date, bc.due_date, func.sum(bl.amount).label("charged"))
        .join(Bill.__table__, bc.id == bl.bill_id)
        .where(bc.customer_id.between(first_customer_id, last_customer_id), bc.bill_type == "collective",
               bc.cycle_id != cycle_id, bc.bill_date < bill_date, bl.service_point_id.is_not(None),
               bl.kind.in_(CHARGE_KINDS + ADJUSTMENT_KINDS))
        .group_by(bl.service_point_id, bc.bill_no, bc.bill_date, bc.due_date)
    ):
        past[row.service_point_id].append(rating.PastBill(row.bill_no, row.bill_date, row.due_date, row.charged))

    deposits: dict[int, list] = defaultdict(list)
    for row in session.execute(
        select(Deposit.id, Deposit.customer_id, Deposit.amount).where(
            Deposit.customer_id.between(first_customer_id, last_customer_id), Deposit.applied_bill_id.is_(None)
        )
    ):
        deposits[row.customer_id].append(row)
    plans: dict[int, list[dict]] = defaultdict(list)
    for plan in session.execute(
        select(InstallmentPlan).where(InstallmentPlan.customer_id.between(first_customer_id, last_customer_id))
    ).scalars():
        plans[plan.service_point_id].append(
            {"id": plan.id, "total": plan.total, "installments": plan.installments, "first_period": plan.first_period}
        )
    tariffs = load_versions(session)
    campaigns = [
        {"id": c.id, "active": c.active, "customer_types": c.customer_types, "starts_on": c.starts_on,
         "ends_on": c.ends_on, "priority": c.priority, "text_zh": c.text_zh, "text_en": c.text_en}
        for c in session.execute(
            select(Campaign).where(Campaign.active.is_(True), Campaign.starts_on <= bill_date,
                                   Campaign.ends_on >= bill_date)
        ).scalars()
    ]

    units: list[tuple[PointInputs, str, str]] = []
    for customer_id, points in points_by_customer.items():
        customer = customers[customer_id]
        closing = customer.status == "closed" and customer.closed_on is not None and start <= customer.closed_on <= bill_date
        billing_point = next((p.id for p in points if p.is_billing_point), points[0].id)
        held = sum((d.amount for d in deposits.get(customer_id, ())), ZERO)
        for seq, point in enumerate(points, start=1):
            unit_key = f"P{point.id}"
            if (customer_id, unit_key) in done:
                continue
            point_bills = past.get(point.id, [])
            inputs = PointInputs(
                point_id=point.id, point_no=point.point_no, customer_id=customer_id,
                customer_type=customer.customer_type, tariff_code=point.tariff_code, period=period,
                bill_date=bill_date, previous_balance=balances.get(point.id) or ZERO,
                previous_read=previous_reads.get(point.id), reads=reads.get(point.id, []),
                entries=entries.get(point.id, []), past_bills=point_bills,
                late_fee_since=max((b.bill_date for b in point_bills), default=None),
                plans=plans.get(point.id, []), closing=closing, deposit_held=held,
                apply_deposit=closing and point.id == billing_point,
            )
            units.append((inputs, unit_key, bill_number(period, customer_id, seq)))
    return ChunkData(cycle_id, units, tariffs, campaigns, deposits, accounts)


def _load_collective(
    session: Session, cycle_id: int, first: int, last: int, accounts: dict[int, collective.CollectiveAccount],
    done: set,
) -> None:
    """Points already on a collective bill of the cycle count as done; the accounts' pins by point number."""
    for customer_id, point_id in session.execute(
        select(Bill.customer_id, BillLine.service_point_id).distinct().join(BillLine, BillLine.bill_id == Bill.id)
        .where(Bill.cycle_id == cycle_id, Bill.customer_id.between(first, last), Bill.bill_type == "collective")
    ):
        done.add((customer_id, f"P{point_id}"))
    a, b = ServicePoint.__table__.alias("a"), ServicePoint.__table__.alias("b")
    pins = CollectivePin.__table__.c
    for customer_id, kind, a_no, b_no in session.execute(
        select(pins.customer_id, pins.kind, a.c.point_no, b.c.point_no)
        .join(a, a.c.id == pins.point_a_id).join(b, b.c.id == pins.point_b_id)
        .where(pins.customer_id.between(first, last)).order_by(pins.id)
    ):
        if customer_id in accounts:
            getattr(accounts[customer_id], kind).append((a_no, b_no))


def mark_billed(session: Session, billed: list[dict]) -> None:
    """Set bill_id on the carried entries, only where it is still NULL (on PostgreSQL one UPDATE ... FROM
    unnest(ids)); if any was billed meanwhile, fail: the chunk is retried and skips it."""
    le = LedgerEntry.__table__
    if session.get_bind().dialect.name != "postgresql":  # SQLite has no arrays: an executemany
        result = session.execute(
            update(le).where(le.c.id == bindparam("eid"), le.c.bill_id.is_(None)).values(bill_id=bindparam("bid")),
            billed,
        )
        if result.rowcount != len(billed):
            raise EntryAlreadyBilled(f"{len(billed) - result.rowcount} ledger entries were billed meanwhile")
        return
    # one statement for the whole chunk: two arrays, so it compiles once and is cached
    pairs = select(
        func.unnest(bindparam("eids", type_=ARRAY(Integer))).label("eid"),
        func.unnest(bindparam("bids", type_=ARRAY(Integer))).label("bid"),
    ).subquery("billed")
    result = session.execute(
        update(le).where(le.c.id == pairs.c.eid, le.c.bill_id.is_(None)).values(bill_id=pairs.c.bid),
        {"eids": [row["eid"] for row in billed], "bids": [row["bid"] for row in billed]},
    )
    if result.rowcount != len(billed):
        raise EntryAlreadyBilled(f"{len(billed) - result.rowcount} ledger entries were billed meanwhile")


def write_bills(
    session: Session,
    cycle_id: int,
    made: list[tuple[PointBill, str, str]],
    campaigns: list[dict],
    deposits: dict[int, list],
) -> list[int]:
    """Core bulk writes of computed bills: bills (ids back in order), lines, new ledger entries,
    marketing messages, carried entries marked billed. Returns the new bill ids."""
    bill_rows = [
        {
            "bill_no": bill_no, "cycle_id": cycle_id, "customer_id": b.customer_id, "service_point_id": b.point_id,
            "unit_key": unit_key, "bill_type": b.bill_type, "template": b.template, "bill_date": b.bill_date,
            "due_date": b.due_date, "read_date": b.read_date, "previous_balance": b.previous_balance,
            "payments_total": b.payments_total, "charges_total": b.charges_total,
            "adjustments_total": b.adjustments_total, "deposit_applied": b.deposit_applied,
            "current_balance": b.current_balance, "deposit_held": b.deposit_held, "status": BillStatus.GENERATED,
        }
        for b, unit_key, bill_no in made
    ]
    table = Bill.__table__
    connection = session.connection()
    ids = reserve_ids(connection, table, len(bill_rows))
    if ids is not None:  # PostgreSQL: the ids come first, the rows go in by COPY
        for row, bill_id in zip(bill_rows, ids, strict=True):
            row["id"] = bill_id
        bulk_insert(connection, table, bill_rows)
    else:  # an executemany, then the ids by bill number (RETURNING runs row by row on SQLite)
        bulk_insert(connection, table, bill_rows)
        numbers = [row["bill_no"] for row in bill_rows]
        by_no = {}
        for part in range(0, len(numbers), 2000):
            by_no.update(session.execute(
                select(table.c.bill_no, table.c.id).where(table.c.bill_no.in_(numbers[part : part + 2000]))
            ).all())
        ids = [by_no[number] for number in numbers]
    line_rows, new_entries, billed, message_rows, deposit_rows = [], [], [], [], []
    messages_for: dict[tuple[str, date], list[dict]] = {}  # a chunk's bills share a few customer types and dates
    for bill_id, (b, _unit, _no) in zip(ids, made, strict=True):
        position = 0
        for part in collective.parts_of(b):  # a collective bill: each point's lines and entries in turn
            for line in part.lines:
                position += 1
                line_rows.append({"bill_id": bill_id, "position": position, "kind": line["kind"],
                                  "service_point_id": part.point_id, "description": line["description"],
                                  "amount": line["amount"], "details": line["details"]})
            for entry in part.entries:
                if entry.id is None:
                    new_entries.append({
                        "customer_id": b.customer_id, "service_point_id": part.point_id, "kind": entry.kind,
                        "amount": entry.amount, "entry_date": entry.entry_date, "description": entry.description,
                        "natural_key": entry.natural_key,
                        # the rated breakdown lives on the bill line; other new entries keep theirs
                        "details": None if entry.kind == "electricity" else entry.details, "bill_id": bill_id,
                        "for_period": None, "reference": None,
                    })
                else:
                    billed.append({"eid": entry.id, "bid": bill_id})
        chosen = messages_for.get((b.customer_type, b.bill_date))
        if chosen is None:
            chosen = messages_for[b.customer_type, b.bill_date] = choose_messages(campaigns, b.customer_type, b.bill_date)
        for position, campaign in enumerate(chosen, 1):
            message_rows.append({"bill_id": bill_id, "campaign_id": campaign["id"], "position": position,
                                 "text_zh": campaign["text_zh"], "text_en": campaign["text_en"]})
        if b.deposit_applied or any(
            p.bill_type == "final" and any(e.kind == "deposit_applied" for e in p.entries) for p in collective.parts_of(b)
        ):
            deposit_rows += [{"did": d.id, "bid": bill_id} for d in deposits.get(b.customer_id, ())]
    bulk_insert(session.connection(), BillLine.__table__, line_rows)
    bulk_insert(session.connection(), LedgerEntry.__table__, new_entries)
    bulk_insert(session.connection(), BillMessage.__table__, message_rows)
    if billed:
        mark_billed(session, billed)
    if deposit_rows:
        dt = Deposit.__table__
        session.execute(
            update(dt).where(dt.c.id == bindparam("did"), dt.c.applied_bill_id.is_(None))
            .values(applied_bill_id=bindparam("bid")),
            deposit_rows,
        )
    session.flush()
    return ids


__all__ = ["ChunkData", "PointBill", "PointInputs", "compute_point_bill", "generate_chunk", "load_chunk", "money",
           "write_bills"]
