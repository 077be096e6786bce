"""Collective-bill fixtures: a key account with several points, reads and entries, and a cycle runner."""

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


class Collective:
    def __init__(self, db, make_customer):  # noqa: ANN001
        self.db = db
        self.make_customer = make_customer

    def account(self, points: int = 3, customer_type: str = "commercial", **fields):  # noqa: ANN003, ANN201
        values = {"key_account": True, "collective_billing": True, "customer_type": customer_type} | fields
        return self.make_customer(points=points, **values)

    def points(self, customer) -> list[ServicePoint]:  # noqa: ANN001
        return list(self.db.scalars(
            select(ServicePoint).where(ServicePoint.customer_id == customer.id).order_by(ServicePoint.point_no)
        ))

    def read(self, point, on: str, total: str, peak=None, valley=None) -> None:  # noqa: ANN001
        self.db.add(MeterRead(
            service_point_id=point.id, read_date=date.fromisoformat(on), total_kwh=Decimal(total),
            peak_kwh=Decimal(peak) if peak else None, valley_kwh=Decimal(valley) if valley else None,
            meter_change=False,
        ))
        self.db.flush()

    def month(self, point, on: str, used: int = 100) -> None:  # noqa: ANN001
        """A baseline read in October and a read on `on` in November, `used` kWh apart (commercial bands)."""
        self.read(point, "2026-10-01", "1000", peak="400", valley="300")
        self.read(point, on, str(1000 + used), peak=str(400 + used * 4 // 10), valley=str(300 + used * 3 // 10))

    def entry(self, point, kind: str, amount: str, on: str, reference=None) -> LedgerEntry:  # noqa: ANN001
        entry = LedgerEntry(
            customer_id=point.customer_id, service_point_id=point.id, kind=kind, amount=Decimal(amount),
            entry_date=date.fromisoformat(on), description=f"test {kind}", reference=reference,
            natural_key=f"coll:{next(_keys)}",
        )
        self.db.add(entry)
        self.db.flush()
        return entry

    def run(self, period: str = "2026-11", settings: dict | None = None) -> list[Bill]:
        cycle = cycles.get_cycle(self.db, period) or cycles.open_cycle(self.db, period, Actor.system())
        generate_chunk(self.db, cycle.id, 1, 10**9, settings or SETTINGS)
        self.db.commit()
        self.db.expire_all()
        return list(self.db.scalars(select(Bill).where(Bill.cycle_id == cycle.id).order_by(Bill.id)))


@pytest.fixture
def coll(db, make_customer):
    seed_sample_tariffs(db)
    db.commit()
    return Collective(db, make_customer)
