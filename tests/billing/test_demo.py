"""The demo (issue 15): `console demo-data` seeds history and this month's charges so that the first cycle
an admin opens and runs shows every bill type and every charge type; every read lies in the past; the
Chinese bill names every charge once, in Chinese, with tariff names and no negative zero."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.billing import cycles
from console.billing.demo import seed_billing_demo
from console.billing.document import render_bill_html
from console.billing.generation import LINE_ORDER, generate_chunk
from console.customers.demo import seed_demo
from console.models import Customer
from console.models.billing import BILL_TYPES, Bill, BillLine, MeterRead
from tests.billing.conftest import SETTINGS

TODAY = date(2026, 12, 2)


@pytest.fixture
def demo_cycle(db):
    seed_demo(db.connection(), 300, seed=1)
    counts = seed_billing_demo(db, TODAY, SETTINGS, seed=1)
    db.commit()
    cycle = cycles.open_cycle(db, "2026-12", Actor.system(), today=TODAY)  # as the cycle screen opens it
    last = db.scalar(select(func.max(Customer.id)))
    generate_chunk(db, cycle.id, 1, last, SETTINGS)
    db.commit()
    return cycle, counts


def test_the_first_cycle_shows_every_bill_type_and_every_charge_type(db, demo_cycle):
    cycle, counts = demo_cycle
    assert counts["history_bills"] > 0 and cycle.bill_date == TODAY
    types = set(db.scalars(select(Bill.bill_type).where(Bill.cycle_id == cycle.id).distinct()))
    assert types == set(BILL_TYPES)
    kinds = set(db.scalars(select(BillLine.kind).join(Bill, Bill.id == BillLine.bill_id)
                           .where(Bill.cycle_id == cycle.id).distinct()))
    assert kinds == set(LINE_ORDER)  # previous balance, payments, electricity, every fee, ... deposit applied
    # partial and late payments in the history, adjustments for an earlier period this month
    assert db.scalar(select(func.count()).select_from(BillLine).join(Bill, Bill.id == BillLine.bill_id).where(
        Bill.cycle_id == cycle.id, BillLine.kind == "adjustment")) > 0
    assert db.scalar(select(func.max(MeterRead.read_date))) <= TODAY  # no read after today
    for bill in db.scalars(select(Bill).where(Bill.cycle_id == cycle.id)):
        assert TODAY <= bill.bill_date <= bill.due_date  # docs/billing.md "Dates"


def test_the_chinese_bill_names_each_charge_in_chinese_once(app, db, demo_cycle):
    cycle, _counts = demo_cycle
    shown = {}
    for bill_type in BILL_TYPES:
        bill = db.scalar(select(Bill).where(Bill.cycle_id == cycle.id, Bill.bill_type == bill_type).limit(1))
        with app.test_request_context("/?lang=zh"):
            shown[bill_type] = render_bill_html(db, bill, "console")
    everything = "".join(shown.values())
    for english in ("Business-expansion", "late fee", "previous balance", "deposit applied", "installment ",
                    "-0.00", "SAMPLE ", "RES ", "COM "):
        assert english not in everything, english
    assert "业扩费用" not in everything
    assert "示例" in everything  # tariff names from the tariff data
    with app.test_request_context("/?lang=en"):
        english_bill = render_bill_html(db, db.scalar(select(Bill).where(Bill.cycle_id == cycle.id).limit(1)), "console")
    assert "SAMPLE" in english_bill and "电价（示例）" not in english_bill  # the bank and payee stay as configured


def test_the_demo_is_deterministic(db):
    seed_demo(db.connection(), 120, seed=5)
    first = seed_billing_demo(db, TODAY, SETTINGS, seed=5)
    totals = db.execute(select(func.count(), func.sum(Bill.current_balance))).one()
    assert first["reads"] and first["entries"] and totals[0] == first["history_bills"]
    assert seed_billing_demo(db, TODAY, SETTINGS, seed=5)["reads"] == 0  # once only
