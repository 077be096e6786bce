"""The sweeper: deadlines and forgotten sends, found in the database (no timers in memory).

Run periodically by RQ (jobs.delivery.sweep, scheduled by `console worker`). Each pass:

1. deliveries `sent` whose `confirm_due_at` has passed: after the first attempt → back to `queued`
   for the one resend; after the resend → `failed` with an `email_unconfirmed` work item;
2. e-mail deliveries `queued` with no live claim whose send job is missing or stale (never enqueued,
   Redis lost, a worker killed mid-batch) → returned for re-enqueueing.

Concurrency: rows are read with FOR UPDATE SKIP LOCKED on PostgreSQL and changed by conditional
UPDATEs (WHERE status, attempts_made and confirm_due_at still hold what was read), so two sweepers
at once resend a delivery once. SQLite has one writer: a second sweeper waits or fails and retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from console.delivery.policy import MAX_ATTEMPTS, lock_for_write, open_work_item, transition
from console.models import Delivery

REENQUEUE_AFTER = timedelta(minutes=10)  # a queued send job older than this is presumed lost


def due_deadlines(session: Session, now: datetime, limit: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.status == "sent", Delivery.confirm_due_at <= now)
            .order_by(Delivery.confirm_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def sweep_deadlines(session: Session, now: datetime, limit: int = 1000) -> dict:
    lock_for_write(session)
    resent = escalated = 0
    for delivery in due_deadlines(session, now, limit):
        expect = {
            "status": "sent",
            "attempts_made": delivery.attempts_made,
            "confirm_due_at": delivery.confirm_due_at,
        }
        if delivery.attempts_made < MAX_ATTEMPTS:
            if transition(
                session, delivery, expect, status="queued", confirm_due_at=None, claimed_until=None, enqueued_at=None
            ):
                resent += 1
        elif transition(session, delivery, expect, status="failed", confirm_due_at=None, claimed_until=None):
            open_work_item(session, delivery, "email_unconfirmed")
            escalated += 1
    session.flush()
    return {"resend_queued": resent, "escalated": escalated}


def sendable(session: Session, now: datetime, limit: int = 100_000, stale: timedelta = REENQUEUE_AFTER) -> list[int]:
    """Ids of queued e-mail deliveries with no live claim and no recent send job."""
    return list(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.channel == "email",
                Delivery.status == "queued",
                or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
                or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= now - stale),
            )
            .order_by(Delivery.id)
            .limit(limit)
        )
    )


def sweep(session: Session, now: datetime, stale: timedelta = REENQUEUE_AFTER) -> dict:
    """One pass; flushes. Returns the counts and `to_send`: the ids the caller enqueues after commit."""
    counts = sweep_deadlines(session, now)
    counts["to_send"] = sendable(session, now, stale=stale)
    return counts
