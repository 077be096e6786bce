"""Billing fixtures: sample tariffs, cycles, reads and ledger entries written directly."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.billing import cycles
from console.billing.generation import generate_chunk
from console.billing.settings import default_billing_settings
from console.billing.tariffs import seed_sample_tariffs
from console.models import ServicePoint
from console.models.billing import Bill, LedgerEntry, MeterRead

SETTINGS = default_billing_settings()
_keys = itertools.count(1)


@pytest.fixture
def tariffs(db):
    seed_sample_tariffs(db)
    db.commit()


class Billing:
    """Small helpers to put a customer's history in the database and bill it."""

    def __init__(self, db):
        self.db = db

    def point(self, customer, index: int = 0) -> ServicePoint:
        return self.db.scalars(
            select(ServicePoint).where(ServicePoint.customer_id == customer.id).order_by(ServicePoint.id)
        ).all()[index]

    def read(self, point, on: str, total: str, peak=None, valley=None, demand=None, change=False) -> None:  # noqa: ANN001
        self.db.add(MeterRead(
            service_point_id=point.id, read_date=date.fromisoformat(on), total_kwh=Decimal(total),
            peak_kwh=Decimal(peak) if peak else None, valley_kwh=Decimal(valley) if valley else None,
            max_demand_kw=Decimal(demand) if demand else None, meter_change=change,
        ))
        self.db.flush()

    def entry(self, point, kind: str, amount: str, on: str, for_period=None, reference=None) -> LedgerEntry:  # noqa: ANN001
        entry = LedgerEntry(
            customer_id=point.customer_id, service_point_id=point.id, kind=kind, amount=Decimal(amount),
            entry_date=date.fromisoformat(on), description=f"test {kind}", for_period=for_period,
            reference=reference, natural_key=f"test:{next(_keys)}",
        )
        self.db.add(entry)
        self.db.flush()
        return entry

    def cycle(self, period: str, bill_date: str | None = None):  # noqa: ANN201
        cycle = cycles.open_cycle(
            self.db, period, Actor.system(), date.fromisoformat(bill_date) if bill_date else None
        )
        self.db.flush()
        return cycle

    def run(self, period: str, bill_date: str | None = None, settings: dict | None = None) -> list[Bill]:
        cycle = cycles.get_cycle(self.db, period) or self.cycle(period, bill_date)
        generate_chunk(self.db, cycle.id, 1, 10**9, settings or SETTINGS)
        self.db.commit()
        self.db.expire_all()
        return list(self.db.scalars(select(Bill).where(Bill.cycle_id == cycle.id).order_by(Bill.id)))

    def bill_of(self, point, period: str) -> Bill:  # noqa: ANN001
        cycle = cycles.get_cycle(self.db, period)
        return self.db.scalar(select(Bill).where(Bill.cycle_id == cycle.id, Bill.service_point_id == point.id))


@pytest.fixture
def billing(db, tariffs):
    return Billing(db)
