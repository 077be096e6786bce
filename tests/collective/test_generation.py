"""Collective bills in the cycle: grouping by read date, one bill per group, totals, due dates, pins,
idempotent re-runs, every entry billed once; a golden collective bill worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from sqlalchemy import func, select

from console.models.billing import Bill, BillLine, CollectivePin, LedgerEntry


def consistent(bill: Bill) -> None:
    assert bill.current_balance == (
        bill.previous_balance - bill.payments_total + bill.charges_total + bill.adjustments_total - bill.deposit_applied
    )
    assert sum((line.amount for line in bill.lines), D("0.00")) == bill.current_balance


def test_golden_collective_bill_line_by_line(coll, db):
    account = coll.account(points=3)
    p0, p1, p2 = coll.points(account)
    coll.read(p0, "2026-10-08", "5000", peak="2000", valley="1500")
    coll.read(p0, "2026-11-08", "6000", peak="2400", valley="1750")
    coll.entry(p0, "inspection", "80.00", "2026-11-09")
    coll.read(p1, "2026-10-10", "1000", peak="400", valley="300")
    coll.read(p1, "2026-11-10", "1500", peak="600", valley="400")
    coll.entry(p1, "payment", "-100.00", "2026-11-05", reference="PAY-9")
    coll.entry(p2, "connection", "500.00", "2026-11-03")  # no read: joins the earliest group

    (bill,) = coll.run()
    assert (bill.bill_type, bill.template, bill.unit_key) == ("collective", "commercial_collective", f"G{p0.point_no}")
    assert bill.service_point_id is None and bill.bill_no == f"202611-{account.id:06d}-01"
    # one due date: the latest read (11-10) + 15 days, but issued 11-30: 11-30 + MIN_PAYMENT_DAYS
    assert (bill.read_date, bill.due_date) == (date(2026, 11, 10), date(2026, 12, 10))
    got = [(line.position, line.service_point_id, line.kind, line.amount) for line in bill.lines]
    assert got == [
        # p0: 1000 kWh, 400 peak x 1.0697 = 427.88, 350 flat x 0.6418 = 224.63, 250 valley x 0.2939 = 73.48
        (1, p0.id, "electricity", D("725.99")),
        (2, p0.id, "inspection", D("80.00")),
        # p1: 500 kWh, 200 peak = 213.94, 200 flat = 128.36, 100 valley = 29.39
        (3, p1.id, "payment", D("-100.00")),
        (4, p1.id, "electricity", D("371.69")),
        (5, p2.id, "connection", D("500.00")),
    ]
    assert bill.charges_total == D("1677.68")  # 725.99 + 80 + 371.69 + 500
    assert bill.payments_total == D("100.00")
    assert bill.current_balance == D("1577.68")
    consistent(bill)
    # every ledger entry of the three points is on this bill, and only this one
    entries = db.scalars(select(LedgerEntry).where(LedgerEntry.customer_id == account.id)).all()
    assert len(entries) == 5 and {e.bill_id for e in entries} == {bill.id}
    assert {e.service_point_id for e in entries if e.kind == "electricity"} == {p0.id, p1.id}


def test_all_points_read_on_one_day_give_one_bill(coll):
    account = coll.account(points=5)
    for point in coll.points(account):
        coll.month(point, "2026-11-12")
    bills = coll.run()
    assert len(bills) == 1 and bills[0].due_date == date(2026, 12, 10)
    assert {line.service_point_id for line in bills[0].lines} == {p.id for p in coll.points(account)}


def test_reads_spread_over_the_month_give_several_bills_each_with_its_own_due_date(coll):
    account = coll.account(points=4)
    points = coll.points(account)
    for point, on in zip(points, ["2026-11-02", "2026-11-06", "2026-11-20", "2026-11-27"], strict=True):
        coll.month(point, on)
    bills = sorted(coll.run(), key=lambda b: b.due_date)
    assert [b.unit_key for b in bills] == [f"G{points[0].point_no}", f"G{points[2].point_no}"]
    assert [b.due_date for b in bills] == [date(2026, 12, 10), date(2026, 12, 12)]  # 11-30 + 10 (issue + MIN_PAYMENT_DAYS), 11-27 + 15
    assert [{line.service_point_id for line in b.lines} for b in bills] == [
        {points[0].id, points[1].id}, {points[2].id, points[3].id}
    ]
    for bill in bills:
        consistent(bill)


def test_window_is_configurable(coll):
    account = coll.account(points=2)
    a, b = coll.points(account)
    coll.month(a, "2026-11-02")
    coll.month(b, "2026-11-20")
    from tests.collective.conftest import SETTINGS

    assert len(coll.run(settings=SETTINGS | {"COLLECTIVE_WINDOW_DAYS": 30})) == 1


def test_totals_equal_the_sum_of_point_bills_to_the_fen(coll, make_customer, db):
    """The same history billed collectively and point by point gives the same amounts."""
    bills = {}
    for flag in (True, False):
        account = coll.account(points=3, key_account=True, collective_billing=flag)
        for i, point in enumerate(coll.points(account)):
            coll.month(point, f"2026-11-{10 + i:02d}", used=123 + 77 * i)
            coll.entry(point, "inspection", f"{11 + i}.37", "2026-11-04")
        bills[flag] = account.id
    made = coll.run()
    collective = [b for b in made if b.customer_id == bills[True]]
    ordinary = [b for b in made if b.customer_id == bills[False]]
    assert len(collective) == 1 and len(ordinary) == 3
    for field in ("charges_total", "payments_total", "current_balance", "previous_balance"):
        assert getattr(collective[0], field) == sum((getattr(b, field) for b in ordinary), D("0.00"))
    per_point = sorted(line.amount for b in ordinary for line in b.lines)
    assert sorted(line.amount for line in collective[0].lines) == per_point


def test_rerun_is_idempotent_and_each_point_is_billed_once(coll, db):
    account = coll.account(points=4)
    points = coll.points(account)
    for point, on in zip(points, ["2026-11-02", "2026-11-03", "2026-11-20", "2026-11-21"], strict=True):
        coll.month(point, on)
    first = coll.run()
    again = coll.run()
    assert [(b.id, b.bill_no, b.current_balance) for b in first] == [(b.id, b.bill_no, b.current_balance)
                                                                      for b in again]
    # each point on exactly one bill of the cycle, none of them with a point bill of its own
    on_bills = db.execute(
        select(BillLine.service_point_id, func.count(func.distinct(BillLine.bill_id)))
        .join(Bill).where(Bill.customer_id == account.id).group_by(BillLine.service_point_id)
    ).all()
    assert sorted(on_bills) == sorted((p.id, 1) for p in points)
    assert all(b.unit_key.startswith("G") for b in again)
    electricity = db.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.customer_id == account.id, LedgerEntry.kind == "electricity"))
    assert electricity == 4


def test_a_late_point_after_a_run_gets_its_own_collective_bill_and_nothing_is_billed_twice(coll):
    account = coll.account(points=3)
    p0, p1, p2 = coll.points(account)
    coll.month(p0, "2026-11-05")
    coll.month(p1, "2026-11-06")
    (first,) = coll.run()
    coll.month(p2, "2026-11-07")  # read imported after the run
    bills = coll.run()
    assert len(bills) == 2
    late = next(b for b in bills if b.id != first.id)
    assert late.unit_key == f"G{p2.point_no}" and {line.service_point_id for line in late.lines} == {p2.id}


def test_pins_are_respected(coll, db):
    account = coll.account(points=3)
    p0, p1, p2 = coll.points(account)
    for point, on in zip((p0, p1, p2), ["2026-11-01", "2026-11-05", "2026-11-09"], strict=True):
        coll.month(point, on)
    # without pins: {p0, p1} (11-01..11-05) and {p2}; pinned: p1 with p2, so p0 alone
    db.add(CollectivePin(customer_id=account.id, kind="together", point_a_id=p1.id, point_b_id=p2.id))
    db.commit()
    bills = sorted(coll.run(), key=lambda b: b.due_date)
    assert [{line.service_point_id for line in b.lines} for b in bills] == [{p0.id}, {p1.id, p2.id}]


def test_apart_pin_splits_points_read_on_one_day(coll, db):
    account = coll.account(points=2)
    p0, p1 = coll.points(account)
    coll.month(p0, "2026-11-10")
    coll.month(p1, "2026-11-10")
    db.add(CollectivePin(customer_id=account.id, kind="apart", point_a_id=p0.id, point_b_id=p1.id))
    db.commit()
    assert len(coll.run()) == 2


def test_impossible_together_pin_is_dropped_not_a_failed_chunk(coll, db):
    account = coll.account(points=2)
    p0, p1 = coll.points(account)
    coll.month(p0, "2026-11-01")
    coll.month(p1, "2026-11-25")
    db.add(CollectivePin(customer_id=account.id, kind="together", point_a_id=p0.id, point_b_id=p1.id))
    db.commit()
    assert len(coll.run()) == 2


def test_ordinary_key_account_and_not_yet_collective_get_point_bills(coll):
    plain = coll.account(points=2, collective_billing=False)
    later = coll.account(points=2, collective_billing_since=date(2026, 12, 5))
    for customer in (plain, later):
        for point in coll.points(customer):
            coll.month(point, "2026-11-10")
    bills = coll.run()
    assert len(bills) == 4 and all(b.unit_key.startswith("P") for b in bills)
