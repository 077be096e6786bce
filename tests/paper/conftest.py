"""Paper fixtures: a published cycle with bills and queued paper deliveries, created directly."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from console.models import Bill, BillLine, Cycle, Delivery

_numbers = itertools.count(1)


@pytest.fixture
def cycle(db):
    row = Cycle(period="2026-11", bill_date=date(2026, 11, 30), status="published")
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def make_bill(db, cycle):
    """A bill of the customer's first point with itemized lines; amounts are yuan strings."""

    def _make(customer, lines=(("峰时段 320 千瓦时", "1234.56"), ("谷时段 180 千瓦时", "12.30")), due=date(2026, 12, 15)):  # noqa: ANN001, ANN202
        n = next(_numbers)
        point = customer.service_points[0]
        total = sum((Decimal(a) for _t, a in lines), Decimal("0.00"))
        bill = Bill(
            bill_no=f"B202611{n:06d}", cycle_id=cycle.id, customer_id=customer.id, service_point_id=point.id,
            unit_key=f"P{point.id}", bill_type="regular", template=f"{customer.customer_type}_regular",
            bill_date=date(2026, 11, 30), due_date=due, previous_balance=Decimal("0.00"),
            payments_total=Decimal("0.00"), charges_total=total, current_balance=total,
            deposit_held=Decimal("0.00"), status="published",
        )
        for position, (text, amount) in enumerate(lines, start=1):
            bill.lines.append(BillLine(position=position, kind="electricity", service_point_id=point.id,
                                       description=text, amount=Decimal(amount)))
        db.add(bill)
        db.commit()
        return bill

    return _make


@pytest.fixture
def make_paper_delivery(db):
    def _make(bill, customer, address=None, copies=1, name=None, recipient_id=None):  # noqa: ANN001, ANN202
        delivery = Delivery(
            bill_id=bill.id, customer_id=customer.id, recipient_id=recipient_id, channel="paper",
            address=address or customer.postal_address, recipient_name=name or customer.name, copies=copies,
            status="queued",
        )
        db.add(delivery)
        db.commit()
        return delivery

    return _make


@pytest.fixture
def pdf_text():
    def _text(path: Path) -> str:
        return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout

    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils not installed")
    return _text


def bills_of(db, cycle):  # noqa: ANN001, ANN201
    return list(db.scalars(select(Bill).where(Bill.cycle_id == cycle.id)))
