"""Demo meter reads, a few fees and two campaigns for the demo customers, so that a demo admin can
open and run the current month's cycle and watch the whole delivery loop. Deterministic per seed."""

from __future__ import annotations

import random
from calendar import monthrange
from datetime import date
from decimal import Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from console.billing.tariffs import seed_sample_tariffs
from console.models import Customer, ServicePoint
from console.models.billing import Campaign, LedgerEntry, MeterRead

BATCH = 5000

# Typical monthly consumption (kWh) by tariff, and the share of it at peak.
MONTHLY_KWH = {"RES": (120, 520), "RES-TOU": (150, 600), "COM": (800, 6000), "IND": (20000, 150000)}


def _shift_month(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def seed_billing_demo(session: Session, period: date, seed: int = 1) -> dict[str, int]:
    """Baseline reads last month and this month's reads for every active point (when the database
    has no reads yet), some business-expansion fees, and two marketing campaigns."""
    seed_sample_tariffs(session)
    if session.scalar(select(func.count()).select_from(MeterRead)):
        return {"reads": 0, "fees": 0}
    rng = random.Random(seed)
    reads = fees = 0
    rows = session.execute(
        select(ServicePoint.id, ServicePoint.customer_id, ServicePoint.tariff_code, ServicePoint.read_day)
        .where(ServicePoint.status == "active")
        .order_by(ServicePoint.id)
    )
    read_rows: list[dict] = []
    for point_id, customer_id, tariff, read_day in rows:
        low, high = MONTHLY_KWH.get(tariff, (100, 500))
        start = Decimal(rng.randrange(1000, 90000))
        used = Decimal(rng.randrange(low, high))
        this_read = date(period.year, period.month, min(read_day, 28))
        previous = _shift_month(this_read, -1)
        for read_date, total in ((previous, start), (this_read, start + used)):
            row = {"service_point_id": point_id, "read_date": read_date, "total_kwh": total,
                   "peak_kwh": None, "valley_kwh": None, "max_demand_kw": None}
            if tariff != "RES":
                peak = (total * Decimal("0.6")).quantize(Decimal("1"))
                row["peak_kwh"], row["valley_kwh"] = peak, total - peak
            if tariff == "IND":
                row["max_demand_kw"] = Decimal(rng.randrange(80, 400))
            read_rows.append(row)
        if tariff in ("COM", "IND") and rng.random() < 0.05:
            session.execute(insert(LedgerEntry), [{
                "customer_id": customer_id, "service_point_id": point_id, "kind": "business_expansion",
                "amount": Decimal(rng.randrange(500, 5000)).quantize(Decimal("0.01")),
                "entry_date": date(period.year, period.month, 5),
                "description": "业扩工程费 / Business-expansion fee",
                "natural_key": f"demo-fee-{point_id}-{period:%Y%m}",
            }])
            fees += 1
        if len(read_rows) >= BATCH:
            session.execute(insert(MeterRead), read_rows)
            reads += len(read_rows)
            read_rows = []
    if read_rows:
        session.execute(insert(MeterRead), read_rows)
        reads += len(read_rows)
    if not session.scalar(select(func.count()).select_from(Campaign)):
        window = {"starts_on": _shift_month(period, -1), "ends_on": _shift_month(period, 3)}
        session.add_all([
            Campaign(name="安全用电 / Safety", priority=10, customer_types=["residential"],
                     text_zh="冬季取暖注意用电安全，离家请关闭电暖器。",
                     text_en="Heating this winter? Switch heaters off when you leave home.", **window),
            Campaign(name="峰谷电价 / Time of use", priority=5, customer_types=["commercial", "industrial"],
                     text_zh="错峰用电更省钱：谷时电价仅为峰时的三成。",
                     text_en="Shift load to off-peak hours: the valley rate is under a third of the peak rate.",
                     **window),
        ])
    session.flush()
    return {"reads": reads, "fees": fees, "customers": session.scalar(select(func.count()).select_from(Customer))}
