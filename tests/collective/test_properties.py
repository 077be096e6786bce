"""Properties (Hypothesis) of the collective seam, pure (no database): every billed point on exactly one
collective bill, each bill's read span <= W, fewest bills, totals = sum of the point bills to the fen,
one due date = the group's latest read + DUE_DAYS, every ledger entry carried exactly once."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from console.billing import collective, rating
from console.billing.generation import Entry, PointInputs, compute_point_bill
from tests.billing.test_rating import VERSIONS
from tests.collective.conftest import SETTINGS

WINDOW = 7


def inputs_for(n: int, read_day: int | None, fee: D) -> PointInputs:
    reads = [rating.Read(date(2026, 11, read_day), D(1000 + 100 * n), D(400), D(300))] if read_day else []
    return PointInputs(
        point_id=100 + n, point_no=f"K{n:03d}", customer_id=7, customer_type="commercial", tariff_code="COM",
        period="2026-11", bill_date=date(2026, 11, 30), previous_balance=D("0.00"),
        previous_read=rating.Read(date(2026, 10, 5), D(1000), D(300), D(250)) if read_day else None, reads=reads,
        entries=[Entry("inspection", fee, date(2026, 11, 2), id=1000 + n)], past_bills=[], late_fee_since=None,
        plans=[], closing=False, deposit_held=D("0.00"), apply_deposit=False,
    )


def fewest_possible(days: list[int]) -> int:
    """Brute force: the least k such that the read points can be split into k groups of span <= W."""
    read = [d for d in days if d is not None]
    if not read:
        return 1
    for k in range(1, len(read) + 1):
        for labels in product(range(k), repeat=len(read)):
            groups = [[d for d, g in zip(read, labels, strict=True) if g == i] for i in range(k)]
            if all(not g or max(g) - min(g) <= WINDOW for g in groups):
                return k
    return len(read)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 30)),
                          st.decimals(min_value=D("0.01"), max_value=D("9999.99"), places=2)),
                min_size=1, max_size=7))
def test_every_point_on_exactly_one_bill_spans_fewest_bills_and_totals(points):
    computed = []
    for n, (day, fee) in enumerate(points):
        inputs = inputs_for(n, day, fee)
        bill = compute_point_bill(inputs, VERSIONS, SETTINGS)
        computed.append((inputs, bill, f"P{inputs.point_id}", f"202611-000007-{n + 1:02d}"))
    made = collective.combine(computed, {7: collective.CollectiveAccount()}, SETTINGS)
    bills = [b for b, _unit, _no in made]
    on_bills = sorted(p.point_id for b in bills for p in b.parts)
    assert on_bills == sorted(i.point_id for i, *_ in computed)  # each point exactly once
    assert len({unit for _b, unit, _no in made}) == len(made) and len({no for *_x, no in made}) == len(made)
    assert len(bills) == fewest_possible([day for day, _fee in points])
    carried = sorted(e.id for b in bills for e in b.entries if e.id is not None)
    assert carried == sorted(1000 + n for n in range(len(points)))  # every ledger entry once
    for b in bills:
        read_dates = [p.read_date for p in b.parts if p.read_date]
        if read_dates:
            assert (max(read_dates) - min(read_dates)).days <= WINDOW
        anchor = max(read_dates) if read_dates else b.bill_date
        assert b.bill_date == max(p.bill_date for p in b.parts)  # console/billing/dates.py
        assert b.due_date == max(anchor + timedelta(days=SETTINGS["DUE_DAYS"]),
                                 b.bill_date + timedelta(days=SETTINGS["MIN_PAYMENT_DAYS"]))
        for field in ("charges_total", "payments_total", "current_balance"):
            assert getattr(b, field) == sum((getattr(p, field) for p in b.parts), D("0.00"))
        assert b.current_balance == sum((line["amount"] for p in b.parts for line in p.lines), D("0.00"))
    # points without a read sit with the earliest read
    unread = {i.point_id for i, bill, *_ in computed if bill.read_date is None}
    if unread and len(bills) > 1:
        first = min(bills, key=lambda b: min((p.read_date for p in b.parts if p.read_date), default=date.max))
        assert unread <= {p.point_id for p in first.parts}
