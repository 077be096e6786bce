"""Properties (Hypothesis): the balance adds up, one due date per bill, no ledger entry billed twice."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from console.audit import Actor
from console.billing import cycles, rating
from console.billing.generation import Entry, PointInputs, compute_point_bill, generate_chunk
from console.models.billing import Bill, BillLine, LedgerEntry
from tests.billing.conftest import SETTINGS
from tests.billing.test_rating import VERSIONS

KINDS = ["electricity", "business_expansion", "connection", "inspection", "adjustment", "write_off", "payment"]
amounts = st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2)


@st.composite
def entries(draw):  # noqa: ANN001, ANN201
    made = []
    for kind in draw(st.lists(st.sampled_from(KINDS), max_size=8)):
        amount = draw(amounts)
        if kind in ("payment", "write_off") or (kind == "adjustment" and draw(st.booleans())):
            amount = -amount
        made.append(Entry(kind, amount, date(2026, 11, draw(st.integers(1, 30))), id=len(made) + 1,
                          for_period="2026-09" if kind in ("adjustment", "write_off") else None))
    return made


@st.composite
def point_inputs(draw):  # noqa: ANN001, ANN201
    customer_type, tariff = draw(st.sampled_from([("residential", "RES"), ("residential", "RES-TOU"),
                                                  ("commercial", "COM"), ("industrial", "IND")]))
    reads = []
    previous = None
    if draw(st.booleans()):
        start = draw(st.integers(0, 10**6))
        previous = rating.Read(date(2026, 10, 10), D(start), D(start // 3), D(start // 4))
        used = draw(st.integers(0, 50000))
        peak, valley = used // 3, used // 4
        reads = [rating.Read(date(2026, 11, draw(st.integers(1, 30))), D(start + used), D(start // 3 + peak),
                             D(start // 4 + valley), D(draw(st.integers(0, 5000))))]
    closing = draw(st.booleans())
    past = []
    if draw(st.booleans()):
        past = [rating.PastBill("B0", date(2026, 10, 31), date(2026, 10, 25), draw(amounts))]
    return PointInputs(
        point_id=1, point_no="P1", customer_id=1, customer_type=customer_type, tariff_code=tariff, period="2026-11",
        bill_date=date(2026, 11, 30), previous_balance=draw(st.decimals(min_value=D("-5000"), max_value=D("50000"),
                                                                        places=2)),
        previous_read=previous, reads=reads, entries=draw(entries()), past_bills=past,
        late_fee_since=date(2026, 10, 31) if past else None,
        plans=[{"id": 1, "total": D("1000.00"), "installments": 3, "first_period": "2026-10"}]
        if draw(st.booleans()) else [],
        closing=closing, deposit_held=draw(st.decimals(min_value=D("0"), max_value=D("9999"), places=2)),
        apply_deposit=closing,
    )


@settings(max_examples=300, deadline=None)
@given(point_inputs())
def test_balance_adds_up_and_there_is_one_due_date(inputs):
    bill = compute_point_bill(inputs, VERSIONS, SETTINGS)
    if bill is None:
        assert not inputs.entries and not inputs.reads and not inputs.plans
        return
    assert bill.current_balance == (
        bill.previous_balance - bill.payments_total + bill.charges_total + bill.adjustments_total - bill.deposit_applied
    )
    assert sum((line["amount"] for line in bill.lines), D("0.00")) == bill.current_balance
    # one due date, shared by every charge: the read date + DUE_DAYS, or the bill date + DUE_DAYS, never
    # sooner than MIN_PAYMENT_DAYS after the issue (tests/billing/test_dates.py has the date properties)
    anchor = max(r.read_date for r in inputs.reads) if inputs.reads else inputs.bill_date
    assert bill.due_date == max(anchor + timedelta(days=SETTINGS["DUE_DAYS"]),
                                bill.bill_date + timedelta(days=SETTINGS["MIN_PAYMENT_DAYS"]))
    assert 0 <= bill.deposit_applied <= inputs.deposit_held
    carried = [e.id for e in bill.entries if e.id is not None]
    assert sorted(carried) == sorted(e.id for e in inputs.entries)  # every unbilled entry, once
    for amount in (bill.payments_total, bill.charges_total, bill.current_balance):
        assert amount == amount.quantize(D("0.01"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["inspection", "payment", "connection"]),
                                   amounts, st.integers(1, 28)), min_size=1, max_size=12))
def test_no_ledger_entry_is_billed_twice_across_cycles(db, tariffs, make_customer, schedule):
    customer = make_customer()
    point = customer.service_points[0]
    nested = db.begin_nested()
    try:
        periods = ["2026-09", "2026-10", "2026-11"]
        for n, (month, kind, amount, day) in enumerate(schedule):
            db.add(LedgerEntry(customer_id=customer.id, service_point_id=point.id, kind=kind,
                               amount=-amount if kind == "payment" else amount,
                               entry_date=date(2026, 9 + month, day), natural_key=f"prop:{n}"))
        db.flush()
        for period in periods:
            cycle = cycles.open_cycle(db, period, Actor.system())
            for _twice in range(2):
                generate_chunk(db, cycle.id, customer.id, customer.id, SETTINGS)
        imported = db.scalars(select(LedgerEntry).where(LedgerEntry.natural_key.like("prop:%"))).all()
        assert all(e.bill_id is not None for e in imported)
        # each entry appears on exactly one bill: its line count over all bills equals the entries
        lines = db.scalar(select(func.count()).select_from(BillLine).where(BillLine.kind.in_(
            ["inspection", "payment", "connection"])))
        assert lines == len(imported)
        bills = db.scalars(select(Bill).where(Bill.customer_id == customer.id).order_by(Bill.bill_date)).all()
        assert len(bills) == len({b.cycle_id for b in bills})
        # each bill's previous balance is the last one's current balance
        for before, after in zip(bills, bills[1:], strict=False):
            assert after.previous_balance == before.current_balance
    finally:
        nested.rollback()
