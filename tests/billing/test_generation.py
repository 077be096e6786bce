"""Bill generation, golden: every bill type and customer type, amounts worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from console.billing.generation import EntryAlreadyBilled, write_bills
from console.models.billing import (
    Bill,
    BillLine,
    BillMessage,
    Campaign,
    Deposit,
    InstallmentPlan,
    LedgerEntry,
)


def kinds(bill: Bill) -> dict[str, D]:
    out: dict[str, D] = {}
    for line in bill.lines:
        out[line.kind] = out.get(line.kind, D("0.00")) + line.amount
    return out


def assert_consistent(bill: Bill) -> None:
    assert bill.current_balance == (
        bill.previous_balance - bill.payments_total + bill.charges_total + bill.adjustments_total - bill.deposit_applied
    )
    assert sum((line.amount for line in bill.lines), D("0.00")) == bill.current_balance


def test_residential_regular_with_tiers_late_fee_and_payment_oldest_first(billing, make_customer, db):
    point = billing.point(make_customer())
    for on, total in [("2026-08-10", "0"), ("2026-09-10", "100"), ("2026-10-10", "300"), ("2026-11-10", "400")]:
        billing.read(point, on, total)

    # on schedule: each cycle's bills issued two days after the read
    (sept,) = billing.run("2026-09", "2026-09-12")
    # 100 kWh x 0.5283 = 52.83, due on the read date + 15 days
    assert (sept.current_balance, sept.due_date, sept.bill_type) == (D("52.83"), date(2026, 9, 25), "regular")

    (octo,) = billing.run("2026-10", "2026-10-12")
    # unpaid 52.83 x 0.001 x 17 days (09-25 .. 10-12) = 0.89811 -> 0.90; 200 kWh x 0.5283 = 105.66
    assert kinds(octo) == {"previous_balance": D("52.83"), "electricity": D("105.66"), "late_fee": D("0.90")}
    assert octo.current_balance == D("159.39")

    billing.entry(point, "payment", "-100.00", "2026-11-05", reference="PAY-1")
    (nov,) = billing.run("2026-11", "2026-11-12")
    # 159.39 - 100 = 59.39 still owed, all of it on October's bill (payments settle the oldest first):
    # 59.39 x 0.001 x 18 days (10-25 .. 11-12) = 1.06902 -> 1.07; 100 kWh = 52.83
    assert kinds(nov) == {"previous_balance": D("159.39"), "payment": D("-100.00"), "electricity": D("52.83"),
                          "late_fee": D("1.07")}
    assert nov.current_balance == D("113.29")
    assert nov.payments_total == D("100.00") and nov.charges_total == D("53.90")
    assert (nov.due_date, nov.read_date, nov.template) == (date(2026, 11, 25), date(2026, 11, 10), "residential_regular")
    fee = next(line for line in nov.lines if line.kind == "late_fee")
    assert fee.details["fees"][0]["bill_no"] == octo.bill_no and fee.details["fees"][0]["days"] == 18
    electricity = next(line for line in nov.lines if line.kind == "electricity")
    assert electricity.details["consumption_kwh"] == "100.00"
    assert electricity.details["previous_read"]["date"] == "2026-10-10"
    assert electricity.details["breakdown"] == [
        {"band": "tier1", "quantity": "100.00", "unit": "kWh", "rate": "0.5283", "amount": "52.83"}
    ]
    for bill in (sept, octo, nov):
        assert_consistent(bill)
    assert nov.bill_no == f"202611-{point.customer_id:06d}-01"


def test_residential_time_of_use(billing, make_customer, db):
    customer = make_customer()
    point = billing.point(customer)
    point.tariff_code = "RES-TOU"
    billing.read(point, "2026-10-12", "1000", peak="600", valley="400")
    billing.read(point, "2026-11-12", "1300", peak="720", valley="500")
    (bill,) = billing.run("2026-11")
    # 300 kWh, 100 valley: 200 x 0.5583 = 111.66 + 100 x 0.3583 = 35.83
    assert bill.current_balance == D("147.49") and bill.due_date == date(2026, 12, 10)  # issued 11-30: + MIN_PAYMENT_DAYS


def test_commercial_non_metered_bill_is_due_from_the_bill_date(billing, make_customer):
    point = billing.point(make_customer(customer_type="commercial"))
    billing.entry(point, "connection", "500.00", "2026-11-03")
    billing.entry(point, "business_expansion", "1200.00", "2026-11-04")
    (bill,) = billing.run("2026-11")
    assert (bill.bill_type, bill.template) == ("non_metered", "commercial_non_metered")
    assert bill.read_date is None and bill.due_date == date(2026, 12, 15)  # 11-30 + 15
    assert kinds(bill) == {"connection": D("500.00"), "business_expansion": D("1200.00")}
    assert bill.current_balance == D("1700.00")
    assert_consistent(bill)


def test_commercial_regular_three_bands_with_inspection_fee(billing, make_customer):
    point = billing.point(make_customer(customer_type="commercial"))
    billing.read(point, "2026-10-08", "5000", peak="2000", valley="1500")
    billing.read(point, "2026-11-08", "6000", peak="2400", valley="1750")
    billing.entry(point, "inspection", "80.00", "2026-11-09")
    (bill,) = billing.run("2026-11")
    # 427.88 + 224.63 + 73.48 = 725.99; + 80.00 inspection
    assert kinds(bill) == {"electricity": D("725.99"), "inspection": D("80.00")}
    assert bill.template == "commercial_regular" and bill.due_date == date(2026, 12, 10)  # 11-30 + 10


def test_adjustment_bill_corrects_an_earlier_period(billing, make_customer):
    point = billing.point(make_customer(customer_type="commercial"))
    billing.entry(point, "adjustment", "-20.00", "2026-11-12", for_period="2026-09")
    billing.entry(point, "write_off", "-50.00", "2026-11-12", for_period="2026-09")
    (bill,) = billing.run("2026-11")
    assert (bill.bill_type, bill.template) == ("adjustment", "commercial_adjustment")
    assert bill.adjustments_total == D("-70.00") and bill.current_balance == D("-70.00")
    assert {line.details["for_period"] for line in bill.lines} == {"2026-09"}
    assert_consistent(bill)


def test_installment_bill_shows_the_plan(billing, make_customer, db):
    customer = make_customer()
    point = billing.point(customer)
    db.add(InstallmentPlan(customer_id=customer.id, service_point_id=point.id, total=D("1000.00"), installments=3,
                           first_period="2026-10"))
    billing.read(point, "2026-10-15", "100")
    billing.read(point, "2026-11-15", "300")
    (bill,) = billing.run("2026-11")
    # installment 2 of 3: 333.33, 333.34 left; 200 kWh = 105.66
    assert (bill.bill_type, bill.template) == ("installment", "residential_installment")
    assert kinds(bill) == {"electricity": D("105.66"), "installment": D("333.33")}
    line = next(line for line in bill.lines if line.kind == "installment")
    assert (line.details["number"], line.details["of"], line.details["remaining"]) == (2, 3, "333.34")
    assert bill.current_balance == D("438.99") and bill.due_date == date(2026, 12, 10)  # 11-30 + 10


@pytest.mark.parametrize(("deposit", "applied", "balance", "refund"), [
    # energy 725.99 + demand 120 kW x 40 = 4,800.00 -> 5,525.99; + inspection 200.00 = 5,725.99
    ("5000.00", "5000.00", "725.99", "0.00"),
    ("8000.00", "5725.99", "0.00", "2274.01"),
])
def test_industrial_final_bill_applies_the_deposit(billing, make_customer, db, deposit, applied, balance, refund):
    customer = make_customer(customer_type="industrial", status="closed", closed_on=date(2026, 11, 20))
    point = billing.point(customer)
    db.add(Deposit(customer_id=customer.id, amount=D(deposit), received_on=date(2020, 1, 6)))
    billing.read(point, "2026-10-10", "10000", peak="4000", valley="3000", demand="80")
    billing.read(point, "2026-11-10", "11000", peak="4400", valley="3250", demand="120")
    billing.entry(point, "inspection", "200.00", "2026-11-15")
    (bill,) = billing.run("2026-11")
    assert (bill.bill_type, bill.template) == ("final", "industrial_final")
    assert kinds(bill)["electricity"] == D("5525.99")
    assert bill.deposit_held == D(deposit) and bill.deposit_applied == D(applied)
    assert bill.current_balance == D(balance)
    line = next(line for line in bill.lines if line.kind == "deposit_applied")
    assert line.amount == -D(applied) and line.details["refund"] == refund
    assert db.scalar(select(Deposit.applied_bill_id).where(Deposit.customer_id == customer.id)) == bill.id
    assert_consistent(bill)


def test_a_point_with_nothing_to_bill_gets_no_bill_and_several_points_get_several(billing, make_customer):
    idle = make_customer()
    two = make_customer(points=2)
    billing.read(billing.point(two, 0), "2026-10-10", "0")
    billing.read(billing.point(two, 0), "2026-11-10", "10")
    billing.read(billing.point(two, 1), "2026-10-20", "0")
    billing.read(billing.point(two, 1), "2026-11-20", "10")
    bills = billing.run("2026-11", "2026-11-21")
    assert {b.customer_id for b in bills} == {two.id} and idle.id not in {b.customer_id for b in bills}
    # one bill per point, each with its own read and due date (at least MIN_PAYMENT_DAYS after the issue)
    assert sorted((b.unit_key, b.due_date) for b in bills) == sorted(
        [(f"P{billing.point(two, 0).id}", date(2026, 12, 1)), (f"P{billing.point(two, 1).id}", date(2026, 12, 5))]
    )
    assert sorted(b.bill_no[-2:] for b in bills) == ["01", "02"]


def test_marketing_messages_highest_priority_first_at_most_two(billing, make_customer, db):
    window = {"starts_on": date(2026, 11, 1), "ends_on": date(2026, 12, 31)}
    for name, types, priority, extra in [
        ("low", ["residential"], 1, {}),
        ("high", ["residential", "commercial"], 10, {}),
        ("mid", ["residential"], 5, {}),
        ("business only", ["commercial"], 50, {}),
        ("expired", ["residential"], 99, {"starts_on": date(2026, 1, 1), "ends_on": date(2026, 10, 31)}),
        ("inactive", ["residential"], 98, {"active": False}),
    ]:
        db.add(Campaign(name=name, text_zh=f"{name}中文", text_en=name, customer_types=types, priority=priority,
                        **(window | extra)))
    point = billing.point(make_customer())
    billing.entry(point, "inspection", "10.00", "2026-11-02")
    (bill,) = billing.run("2026-11")
    messages = db.scalars(select(BillMessage).where(BillMessage.bill_id == bill.id).order_by(BillMessage.position))
    assert [m.text_en for m in messages] == ["high", "mid"]


def test_rerunning_a_cycle_changes_nothing(billing, make_customer, db):
    for customer_type in ("residential", "commercial", "industrial"):
        point = billing.point(make_customer(customer_type=customer_type))
        billing.read(point, "2026-10-10", "0", peak="0", valley="0", demand="10")
        billing.read(point, "2026-11-10", "700", peak="300", valley="200", demand="30")
        billing.entry(point, "payment", "-10.00", "2026-11-11", reference=f"R{point.id}")

    def snapshot():  # noqa: ANN202
        return (
            db.execute(select(Bill.bill_no, Bill.current_balance, Bill.due_date).order_by(Bill.bill_no)).all(),
            db.scalar(select(func.count()).select_from(BillLine)),
            db.execute(select(LedgerEntry.natural_key, LedgerEntry.bill_id).order_by(LedgerEntry.natural_key)).all(),
        )

    billing.run("2026-11")
    first = snapshot()
    billing.run("2026-11")
    assert snapshot() == first
    assert len(first[0]) == 3


def test_entries_after_the_bill_date_wait_for_the_next_cycle(billing, make_customer, db):
    point = billing.point(make_customer())
    billing.entry(point, "inspection", "10.00", "2026-11-02")
    late = billing.entry(point, "connection", "99.00", "2026-12-02")
    (bill,) = billing.run("2026-11")
    assert kinds(bill) == {"inspection": D("10.00")}
    db.refresh(late)
    assert late.bill_id is None


def test_an_entry_billed_meanwhile_fails_the_chunk_instead_of_billing_it_twice(billing, make_customer, db):
    """The ledger entry's single bill_id column, set only where it is still NULL."""
    from console.audit import Actor
    from console.billing import cycles
    from console.billing.generation import Entry, PointBill

    point = billing.point(make_customer())
    entry = billing.entry(point, "inspection", "10.00", "2026-11-02")
    (bill,) = billing.run("2026-11")
    db.refresh(entry)
    assert entry.bill_id == bill.id
    # a second writer holding the same (now billed) entry in its computed bill
    cycle = cycles.open_cycle(db, "2026-12", Actor.system())
    stale = PointBill(
        point_id=point.id, customer_id=point.customer_id, bill_type="non_metered", customer_type="residential",
        template="residential_non_metered",
        bill_date=date(2026, 12, 31), due_date=date(2027, 1, 15), read_date=None, previous_balance=D("0.00"),
        payments_total=D("0.00"), charges_total=D("10.00"), adjustments_total=D("0.00"), deposit_applied=D("0.00"),
        current_balance=D("10.00"), deposit_held=D("0.00"),
        entries=[Entry("inspection", D("10.00"), date(2026, 11, 2), id=entry.id)], lines=[],
    )
    with pytest.raises(EntryAlreadyBilled):
        write_bills(db, cycle.id, [(stale, f"P{point.id}", "X-1")], [], {})
    db.rollback()
    db.refresh(entry)
    assert entry.bill_id == bill.id
