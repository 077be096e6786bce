"""The billing side of the demo (`console demo-data`, `console serve`): two months of history, billed and
published, and this month's reads and charges, so that the first cycle an admin opens and runs on screen
shows every bill type and every charge type. Deterministic for a seed and a day.

The story, for this month P (the cycle the admin opens today):

- reads: a baseline three months back, then one read a month at each point's read day; this month's on
  the read day or today, whichever is earlier (never after today);
- P-2 and P-1 are generated here and published as history, so P's bills carry previous balances and
  late fees on what P-2's bills left unpaid;
- payments by customer id (last digit): 0-4 pay each bill in full before it is due, 5-6 pay part of it,
  7 pays in full after the due date, 8-9 never pay (late fees);
- customer id mod 50, for ordinary customers: 7 closed this month with a deposit held (a final bill that
  applies it), 11 no read this month and a connection fee (non-metered), 13 no read this month and a
  credit for an earlier period (an adjustment bill), 17 an installment plan from P-1, 19 an old debt
  written off, 23 a correction of P-1 beside this month's read, 29 an inspection fee; every tenth
  customer has a deposit; some commercial and industrial points a business-expansion fee;
- key accounts with collective billing get collective bills (console/billing/collective.py).
"""

from __future__ import annotations

import random
from calendar import monthrange
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from console.audit import Actor
from console.billing import cycles
from console.billing.generation import generate_chunk, period_bounds
from console.billing.tariffs import seed_sample_tariffs
from console.models import Customer, ServicePoint
from console.models.billing import (
    Bill,
    BillStatus,
    Campaign,
    Cycle,
    CycleStatus,
    Deposit,
    InstallmentPlan,
    LedgerEntry,
    MeterRead,
)
from console.money import money

BATCH = 5000
CHUNK = 1000

# Typical monthly consumption (kWh) by tariff.
MONTHLY_KWH = {"RES": (120, 520), "RES-TOU": (150, 600), "COM": (800, 6000), "IND": (20000, 150000)}
# Customer id mod 50 -> what happens to an ordinary (not key) customer's account (see the module doc).
CLOSED, NON_METERED, ADJUSTMENT_ONLY, INSTALLMENT, WRITE_OFF, CORRECTION, INSPECTION = 7, 11, 13, 17, 19, 23, 29


def _shift_month(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _period(day: date) -> str:
    return f"{day:%Y-%m}"


class _Entries:
    """Ledger entries written in batches, each with a deterministic natural key."""

    def __init__(self, session: Session) -> None:
        self.session, self.rows, self.count = session, [], 0

    def add(self, customer_id: int, point_id: int, kind: str, amount: Decimal, on: date, key: str,
            for_period: str | None = None, reference: str | None = None) -> None:
        self.rows.append({"customer_id": customer_id, "service_point_id": point_id, "kind": kind, "amount": amount,
                          "entry_date": on, "description": "", "for_period": for_period, "reference": reference,
                          "natural_key": f"demo:{key}"})
        if len(self.rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.session.execute(insert(LedgerEntry), self.rows)
            self.count += len(self.rows)
            self.rows = []


def seed_billing_demo(session: Session, today: date, settings: dict, seed: int = 1) -> dict[str, int]:
    """Seed the billing demo once (nothing when the database has reads already); flushes, the caller commits."""
    seed_sample_tariffs(session)
    if session.scalar(select(func.count()).select_from(MeterRead)):
        return {"reads": 0, "entries": 0, "history_bills": 0}
    rng = random.Random(seed)
    months = [_shift_month(today.replace(day=1), -k) for k in (3, 2, 1, 0)]  # baseline, P-2, P-1, P
    this_start = months[-1]
    points = session.execute(
        select(ServicePoint.id, ServicePoint.customer_id, ServicePoint.tariff_code, ServicePoint.read_day,
               Customer.key_account, Customer.customer_type)
        .join(Customer, Customer.id == ServicePoint.customer_id)
        .where(ServicePoint.status == "active").order_by(ServicePoint.id)
    ).all()
    entries = _Entries(session)
    reads = _seed_reads(session, rng, points, months, today)
    ordinary = {p.customer_id for p in points if not p.key_account}
    first_points = {}
    for p in points:
        first_points.setdefault(p.customer_id, p)

    # charges of the history months and of this month
    for p in points:
        if p.tariff_code in ("COM", "IND") and rng.random() < 0.08:
            month = rng.choice(months[1:])
            entries.add(p.customer_id, p.id, "business_expansion",
                        Decimal(rng.randrange(500, 5000)).quantize(Decimal("0.01")),
                        min(month.replace(day=5), today), f"bx:{p.id}:{_period(month)}")
    for customer_id, p in first_points.items():
        kind = customer_id % 50 if customer_id in ordinary else None
        if kind == NON_METERED:
            entries.add(customer_id, p.id, "connection", Decimal("260.00"), this_start, f"conn:{p.id}")
        elif kind == INSPECTION:
            entries.add(customer_id, p.id, "inspection", Decimal("45.00"), this_start, f"insp:{p.id}")
        elif kind == INSTALLMENT:
            session.add(InstallmentPlan(customer_id=customer_id, service_point_id=p.id, total=Decimal("1800.00"),
                                        installments=6, first_period=_period(months[2])))
    deposits = [
        {"customer_id": c, "amount": Decimal("300.00") if c in ordinary else Decimal("5000.00"),
         "received_on": date(2024, 3, 1 + c % 28)}
        for c in first_points if c % 10 == 3 or (c in ordinary and c % 50 == CLOSED)
    ]
    if deposits:
        session.execute(insert(Deposit), deposits)
    entries.flush()
    session.flush()

    # P-2 and P-1: generated, paid (or not) and published as history
    history = 0
    for month in months[1:3]:
        history += _run_history_cycle(session, month, settings)
        entries.flush()
        _pay(session, entries, month, today)
        entries.flush()

    # this month: corrections, write-offs, closings
    for customer_id, p in first_points.items():
        kind = customer_id % 50 if customer_id in ordinary else None
        if kind in (ADJUSTMENT_ONLY, CORRECTION):
            entries.add(customer_id, p.id, "adjustment", Decimal("-12.60") if kind == ADJUSTMENT_ONLY else Decimal("8.40"),
                        this_start, f"adj:{p.id}", for_period=_period(months[2]))
    for customer_id, point_id, owed in session.execute(
        select(LedgerEntry.customer_id, LedgerEntry.service_point_id, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.bill_id.is_not(None), LedgerEntry.customer_id % 50 == WRITE_OFF)
        .group_by(LedgerEntry.customer_id, LedgerEntry.service_point_id)
    ).all():
        if customer_id in ordinary and owed and owed > 0:
            amount = min(owed, Decimal("50.00"))
            entries.add(customer_id, point_id, "write_off", -amount, this_start, f"wo:{point_id}",
                        for_period=_period(months[1]))
    entries.flush()
    closed = [c for c in ordinary if c % 50 == CLOSED]
    if closed:
        session.execute(update(Customer).where(Customer.id.in_(closed)).values(status="closed", closed_on=this_start))
    _campaigns(session, today)
    session.flush()
    return {"reads": reads, "entries": entries.count, "history_bills": history,
            "customers": session.scalar(select(func.count()).select_from(Customer))}


def _seed_reads(session: Session, rng: random.Random, points: list, months: list[date], today: date) -> int:
    rows, written = [], 0
    for p in points:
        low, high = MONTHLY_KWH.get(p.tariff_code, (100, 500))
        total = Decimal(rng.randrange(1000, 90000))
        skip_this = (not p.key_account) and p.customer_id % 50 in (NON_METERED, ADJUSTMENT_ONLY)
        for index, month in enumerate(months):
            if index == len(months) - 1:
                if skip_this:
                    break
                read_date = month.replace(day=min(p.read_day, 28, today.day))
            else:
                read_date = month.replace(day=min(p.read_day, 28))
            if index:
                total += Decimal(rng.randrange(low, high))
            row = {"service_point_id": p.id, "read_date": read_date, "total_kwh": total, "peak_kwh": None,
                   "valley_kwh": None, "max_demand_kw": None}
            if p.tariff_code != "RES":
                peak = (total * Decimal("0.6")).quantize(Decimal("1"))
                row["peak_kwh"], row["valley_kwh"] = peak, total - peak
            if p.tariff_code == "IND":
                row["max_demand_kw"] = Decimal(rng.randrange(80, 400))
            rows.append(row)
        if len(rows) >= BATCH:
            session.execute(insert(MeterRead), rows)
            written += len(rows)
            rows = []
    if rows:
        session.execute(insert(MeterRead), rows)
        written += len(rows)
    return written


def _run_history_cycle(session: Session, month: date, settings: dict) -> int:
    """Open the month's cycle on its last day, generate every chunk here, publish its bills as history
    (no deliveries: the demo starts after them)."""
    _start, end = period_bounds(_period(month))
    cycle = cycles.open_cycle(session, _period(month), Actor.system(), bill_date=end)
    last = session.scalar(select(func.max(Customer.id))) or 0
    made = 0
    for first in range(1, last + 1, CHUNK):
        made += generate_chunk(session, cycle.id, first, first + CHUNK - 1, settings)
    published = datetime.combine(end, time(2, 0), tzinfo=UTC)
    session.execute(update(Bill).where(Bill.cycle_id == cycle.id)
                    .values(status=BillStatus.PUBLISHED, published_at=published))
    cycle.status, cycle.generated_at, cycle.published_at = CycleStatus.PUBLISHED, published, published
    session.flush()
    return made


def _pay(session: Session, entries: _Entries, month: date, today: date) -> None:
    """Payments of the month's bills by the customer's last digit: in full on time, part, late, never."""
    for bill_id, customer_id, point_id, balance, due in session.execute(
        select(Bill.id, Bill.customer_id, Bill.service_point_id, Bill.current_balance, Bill.due_date)
        .join(Cycle, Cycle.id == Bill.cycle_id)
        .where(Cycle.period == _period(month), Bill.service_point_id.is_not(None))
    ).all():
        digit = customer_id % 10
        if balance <= 0 or digit >= 8:
            continue
        if digit <= 4:
            amount, on = balance, due - timedelta(days=3)
        elif digit <= 6:
            amount, on = money(balance * Decimal("0.4")), due - timedelta(days=1)
        else:
            amount, on = balance, due + timedelta(days=4)
        entries.add(customer_id, point_id, "payment", -amount, min(on, today), f"pay:{bill_id}",
                    reference=f"PAY{bill_id:08d}")


def _campaigns(session: Session, today: date) -> None:
    if session.scalar(select(func.count()).select_from(Campaign)):
        return
    window = {"starts_on": _shift_month(today, -3), "ends_on": _shift_month(today, 3)}
    session.add_all([
        Campaign(name="安全用电 / Safety", priority=10, customer_types=["residential"],
                 text_zh="冬季取暖注意用电安全，离家请关闭电暖器。",
                 text_en="Heating this winter? Switch heaters off when you leave home.", **window),
        Campaign(name="峰谷电价 / Time of use", priority=5, customer_types=["commercial", "industrial"],
                 text_zh="错峰用电更省钱：谷时电价仅为峰时的三成。",
                 text_en="Shift load to off-peak hours: the valley rate is under a third of the peak rate.",
                 **window),
    ])
