"""When a bill is issued and when it is due (docs/billing.md, "Dates"): the one place that decides.

- The cycle's bill date is the day the cycle is opened when that day lies in the period (the month's
  last day for a period already over or not yet begun, or the date the clerk gives).
- A bill is issued on the cycle's bill date, never before its own meter read: issue = max(bill date,
  read date).
- It is due DUE_DAYS after its read (on schedule: generated soon after the read, as a utility runs its
  reading routes), but never sooner than MIN_PAYMENT_DAYS after it is issued:
  due = max(read date + DUE_DAYS, issue + MIN_PAYMENT_DAYS); a bill without a read counts from its
  issue date.
- A bill published later than its due date allows (a catch-up, a chunk re-run days later) is issued
  again on the publishing day and due MIN_PAYMENT_DAYS after it (`redate_for_publish`): nobody is
  sent a bill that is already overdue, and late fees follow the due date the customer was given,
  because they are counted from the stored due date of the published bill.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from console.models.billing import Bill, BillStatus


def local_today(timezone: str, now: datetime | None = None) -> date:
    """The day it is where the utility is (DISPLAY_TIMEZONE): the day a bill is dated, opened or published."""
    return (now or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo(timezone)).date()


def default_bill_date(start: date, end: date, today: date) -> date:
    """The cycle's bill date when none is given: today inside the period, else the period's last day."""
    return today if start <= today <= end else end


def issue_date(bill_date: date, read_date: date | None) -> date:
    return max(bill_date, read_date) if read_date else bill_date


def due_date(issue: date, read_date: date | None, due_days: int, min_days: int) -> date:
    anchor = read_date or issue
    return max(anchor + timedelta(days=due_days), issue + timedelta(days=min_days))


def redated(issue: date, due: date, today: date, min_days: int) -> tuple[date, date]:
    """(issue, due) of a bill published on `today`: unchanged while it leaves MIN_PAYMENT_DAYS to pay."""
    latest = today + timedelta(days=min_days)
    if due >= latest:
        return issue, due
    return max(issue, today), latest


def redate_for_publish(
    session: Session, cycle_id: int, today: date, min_days: int, bill_ids: tuple[int, int] | None = None
) -> int:
    """Before a cycle's bills (first..last, when given) are published on `today`: every bill not yet
    published that would leave the customer less than MIN_PAYMENT_DAYS is issued today and due
    MIN_PAYMENT_DAYS later (one conditional UPDATE; `redated` is the same rule for one bill). A PDF
    rendered before (a clerk's preview, a render job) shows the old dates: its file is removed, so the
    next bill_pdf renders the bill again instead of finding it on disk. Returns the bills re-dated."""
    latest = today + timedelta(days=min_days)
    late = [Bill.cycle_id == cycle_id, Bill.status == BillStatus.GENERATED, Bill.due_date < latest]
    if bill_ids is not None:
        late.append(Bill.id.between(*bill_ids))
    rendered = session.scalars(select(Bill.pdf_path).where(*late, Bill.pdf_path.is_not(None))).all()
    result = session.execute(
        update(Bill)
        .where(*late)
        .values(bill_date=case((Bill.bill_date < today, today), else_=Bill.bill_date), due_date=latest,
                pdf_path=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    for relpath in rendered:  # removed before the commit: a rollback leaves a path bill_pdf renders again
        (Path(current_app.config["INSTANCE_PATH"]) / relpath).unlink(missing_ok=True)
    return result.rowcount
