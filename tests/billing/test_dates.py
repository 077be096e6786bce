"""Issue and due dates (console/billing/dates.py, docs/billing.md "Dates"), as properties on generated
bills of every type: never due before issued; at least MIN_PAYMENT_DAYS between issue and due; on
schedule due = read + DUE_DAYS; a catch-up or re-run never sends an overdue bill; late fees count from
the due date the customer was given."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from console.audit import Actor
from console.billing import collective, cycles, dates, rating
from console.billing.generation import Entry, PointInputs, compute_point_bill
from console.models.billing import CycleStatus
from tests.billing.conftest import SETTINGS
from tests.billing.test_rating import VERSIONS

POINT_TYPES = ("regular", "final", "installment", "adjustment", "non_metered")
amounts = st.decimals(min_value=D("0.01"), max_value=D("9999.99"), places=2)
days_in_nov = st.integers(1, 30)


@st.composite
def typed_inputs(draw, bill_type: str | None = None, point_id: int = 1, bill_date: date | None = None):  # noqa: ANN001, ANN201
    """PointInputs that make a bill of `bill_type` (drawn when None), with the cycle's bill date, the read
    date and the entries' dates drawn across the period."""
    bill_type = bill_type or draw(st.sampled_from(POINT_TYPES))
    customer_type, tariff = draw(st.sampled_from([("residential", "RES"), ("commercial", "COM"),
                                                  ("industrial", "IND")]))
    bill_date = bill_date or date(2026, 11, draw(days_in_nov))
    reads, previous, entries, plans = [], None, [], []
    if bill_type == "regular" or (bill_type == "final" and draw(st.booleans())):
        start = draw(st.integers(0, 10**5))
        previous = rating.Read(date(2026, 10, draw(st.integers(1, 31))), D(start), D(0), D(0))
        reads = [rating.Read(date(2026, 11, draw(days_in_nov)), D(start + draw(st.integers(0, 5000))), D(0), D(0),
                             D(draw(st.integers(0, 500))))]
    if bill_type == "installment":
        plans = [{"id": point_id, "total": D("900.00"), "installments": 3, "first_period": "2026-10"}]
    if bill_type == "adjustment":
        entries.append(Entry("adjustment", -draw(amounts), bill_date, id=10 * point_id, for_period="2026-08"))
    if bill_type in ("non_metered", "final") or draw(st.booleans()):
        kind = draw(st.sampled_from(["connection", "inspection", "business_expansion"]))
        entries.append(Entry(kind, draw(amounts), min(bill_date, date(2026, 11, draw(days_in_nov))),
                             id=10 * point_id + 1))
    past = []
    if draw(st.booleans()):  # an earlier bill still unpaid: a late fee
        past = [rating.PastBill("B0", date(2026, 10, 20), date(2026, 10, draw(st.integers(20, 31))), draw(amounts))]
    closing = bill_type == "final"
    return PointInputs(
        point_id=point_id, point_no=f"P{point_id:03d}", customer_id=1, customer_type=customer_type,
        tariff_code=tariff, period="2026-11", bill_date=bill_date,
        previous_balance=past[0].charged if past else D("0.00"), previous_read=previous, reads=reads,
        entries=entries, past_bills=past, late_fee_since=past[0].bill_date if past else None, plans=plans,
        closing=closing, deposit_held=D("500.00") if closing else D("0.00"), apply_deposit=closing,
    )


day_settings = st.fixed_dictionaries({"DUE_DAYS": st.integers(0, 30), "MIN_PAYMENT_DAYS": st.integers(0, 20)})


def assert_dates_hold(bill, cycle_bill_date: date, read_date: date | None, s: dict) -> None:  # noqa: ANN001
    due_days, min_days = s["DUE_DAYS"], s["MIN_PAYMENT_DAYS"]
    assert bill.due_date >= bill.bill_date  # never due before issued
    assert (bill.due_date - bill.bill_date).days >= min_days  # time to pay
    assert bill.bill_date >= cycle_bill_date and (read_date is None or bill.bill_date >= read_date)
    if read_date is not None and bill.bill_date <= read_date + timedelta(days=due_days - min_days):
        assert bill.due_date == read_date + timedelta(days=due_days)  # on schedule
    if read_date is None:
        assert bill.due_date == bill.bill_date + timedelta(days=max(due_days, min_days))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(POINT_TYPES).flatmap(lambda t: st.tuples(st.just(t), typed_inputs(t))), day_settings)
def test_every_point_bill_type_is_due_after_its_issue_and_on_schedule_read_plus_due_days(typed, days):
    bill_type, inputs = typed
    s = SETTINGS | days
    bill = compute_point_bill(inputs, VERSIONS, s)
    assert bill is not None and bill.bill_type == bill_type
    assert_dates_hold(bill, inputs.bill_date, bill.read_date, s)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(POINT_TYPES[:1] + POINT_TYPES[2:]), min_size=1, max_size=6), st.data(), day_settings)
def test_collective_bills_are_due_after_their_issue(types, data, days):
    s = SETTINGS | days
    parts = []
    cycle_bill_date = date(2026, 11, data.draw(days_in_nov))
    for n, bill_type in enumerate(types, start=1):
        inputs = data.draw(typed_inputs(bill_type, point_id=n, bill_date=cycle_bill_date))
        point_bill = compute_point_bill(inputs, VERSIONS, s)
        parts.append((inputs, point_bill, f"P{n}", f"202611-000001-{n:02d}"))
    for bill, _unit, _no in collective.build(1, parts, s, collective.CollectiveAccount()):
        assert bill.bill_type == "collective"
        assert_dates_hold(bill, cycle_bill_date, bill.read_date, s)
        assert bill.bill_date == max(p.bill_date for p in bill.parts)


@settings(max_examples=500, deadline=None)
@given(issue=st.dates(date(2026, 1, 1), date(2026, 12, 31)), gap=st.integers(0, 40),
       late=st.integers(-40, 120), min_days=st.integers(0, 20))
def test_a_bill_published_late_is_issued_again_never_overdue_and_late_fees_count_from_that_due_date(
    issue, gap, late, min_days
):
    due = issue + timedelta(days=max(gap, min_days))
    today = issue + timedelta(days=late)
    new_issue, new_due = dates.redated(issue, due, today, min_days)
    assert new_due >= today + timedelta(days=min_days) or (new_issue, new_due) == (issue, due)
    assert new_due >= today + timedelta(days=min_days)  # never sent overdue, always time to pay
    assert (new_due - new_issue).days >= min_days and new_issue >= issue
    if due >= today + timedelta(days=min_days):
        assert (new_issue, new_due) == (issue, due)  # on time: left alone
    # the next bill's late fee counts from the due date the customer was given
    next_bill = new_due + timedelta(days=30)
    (fee,) = rating.late_fees("commercial", [rating.PastBill("B1", new_issue, new_due, D("100.00"))], D("100.00"),
                              next_bill, new_issue, SETTINGS)
    assert fee["from"] == new_due.isoformat() and fee["days"] == 30


def test_the_reported_failure_a_month_end_bill_date_no_longer_makes_bills_due_before_issue(billing, make_customer):
    """Issue 15: a cycle opened on screen got the month's last day as its bill date while each point
    was due its read + 15: dated 12-31, due 12-17. Now the bill is due 10 days after it is issued."""
    point = billing.point(make_customer())
    billing.read(point, "2026-11-02", "0")
    billing.read(point, "2026-12-02", "120")
    (bill,) = billing.run("2026-12", "2026-12-31")
    assert (bill.bill_date, bill.read_date) == (date(2026, 12, 31), date(2026, 12, 2))
    assert bill.due_date == date(2027, 1, 10)  # not 12-17


def test_local_today_is_the_day_in_the_display_timezone():
    late_evening_utc = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 01:00 on 12-01 in Shanghai
    assert dates.local_today("Asia/Shanghai", late_evening_utc) == date(2026, 12, 1)


def test_a_cycle_opened_without_a_date_is_billed_today_when_today_is_in_the_period(db):
    actor = Actor.system()
    assert cycles.open_cycle(db, "2026-12", actor, today=date(2026, 12, 2)).bill_date == date(2026, 12, 2)
    assert cycles.open_cycle(db, "2026-10", actor, today=date(2026, 12, 2)).bill_date == date(2026, 10, 31)
    assert cycles.open_cycle(db, "2027-01", actor, today=date(2026, 12, 2)).bill_date == date(2027, 1, 31)


def test_the_cycle_screen_opens_the_current_month_on_todays_date(app, client, login_as, db):
    login_as("admin")
    today = dates.local_today(app.config["BABEL_DEFAULT_TIMEZONE"])  # the day where the utility is
    period = f"{today:%Y-%m}"
    assert client.post("/billing/cycles", data={"period": period}).status_code in (200, 302, 303)
    assert cycles.get_cycle(db, period).bill_date == today


def test_a_catch_up_cycle_published_weeks_later_sends_no_overdue_bill(app, db, billing, make_customer, redis_conn):
    point = billing.point(make_customer())
    billing.read(point, "2026-09-05", "0")
    billing.read(point, "2026-10-05", "200")
    (bill,) = billing.run("2026-10")  # bill date 10-31, due 11-10
    assert (bill.bill_date, bill.due_date) == (date(2026, 10, 31), date(2026, 11, 10))
    cycles.get_cycle(db, "2026-10").status = CycleStatus.GENERATED  # generated by chunk, as a run does
    cycles.publish(db, "2026-10", Actor.system(), app.config, now=datetime(2026, 12, 2, 3, 0, tzinfo=UTC))
    db.commit()
    db.refresh(bill)
    assert (bill.bill_date, bill.due_date, bill.status) == (date(2026, 12, 2), date(2026, 12, 12), "published")
    # unpaid: the next bill's late fee counts from the due date the customer was given (12-12)
    billing.read(point, "2026-12-05", "300")
    (december,) = billing.run("2026-12", "2026-12-31")
    fee = next(line for line in december.lines if line.kind == "late_fee")
    assert fee.details["fees"][0]["due_date"] == "2026-12-12" and fee.details["fees"][0]["days"] == 19


def test_a_pdf_rendered_before_a_late_publish_is_rendered_again_with_the_new_dates(
    app, db, billing, make_customer, redis_conn
):
    """Found in review: the re-dating cleared pdf_path but left the file, and bill_pdf, finding a file
    at the bill's path ("another process rendered it"), handed out the PDF with the old due date."""
    from console.paper.pdf import bill_pdf

    def pdf_text(path) -> str:  # noqa: ANN001
        return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout

    point = billing.point(make_customer(key_account=True, customer_type="commercial"))
    billing.read(point, "2026-09-05", "0")
    billing.read(point, "2026-10-05", "200")
    (bill,) = billing.run("2026-10")  # due 11-10
    with app.app_context():
        before = pdf_text(bill_pdf(db, bill))  # a clerk's preview before publishing
    assert "2026-11-10" in before
    cycles.get_cycle(db, "2026-10").status = CycleStatus.GENERATED
    with app.app_context():
        cycles.publish(db, "2026-10", Actor.system(), app.config, now=datetime(2026, 12, 2, 3, 0, tzinfo=UTC))
    db.commit()
    db.refresh(bill)
    assert bill.due_date == date(2026, 12, 12)
    with app.app_context():
        after = pdf_text(bill_pdf(db, bill))
    assert "2026-12-12" in after and "2026-11-10" not in after
