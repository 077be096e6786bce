"""The sweeper: deadlines and forgotten work, found in the database (no timers in memory).

Run periodically as the RQ job jobs.delivery.sweep (armed by every `console worker`, see
console/worker.py). Each pass:

1. deliveries `sent` whose `confirm_due_at` has passed: after the first attempt → back to `queued`
   for the one resend; after the resend → `failed` with an `email_unconfirmed` work item;
2. e-mail deliveries `queued` with no live claim whose send job is missing or stale (never enqueued,
   Redis lost, a worker killed mid-batch) → send jobs queued again after the commit; one whose bill
   PDF is still not rendered (its render job lost) → that render job asked for again, the send
   following it (console.delivery.queueing.queue_sends);
3. the other domains' unfinished queued work (cycle chunks, print batches) → their jobs queued again
   (each domain says what it has pending; RQ's unique job ids make asking again harmless).

Concurrency: rows are read with FOR UPDATE SKIP LOCKED on PostgreSQL and changed by conditional
UPDATEs (WHERE status, attempts_made and confirm_due_at still hold what was read), so two sweepers
at once resend a delivery once. SQLite has one writer: a second sweeper waits or fails and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from console.billing import cycles
from console.delivery.policy import MAX_ATTEMPTS, lock_for_write, open_work_item, transition
from console.delivery.queueing import queue_sends
from console.models import Delivery
from console.models.delivery import Channel, DeliveryStatus, WorkItemReason
from console.paper import batches

REENQUEUE_AFTER = timedelta(minutes=10)  # a queued send job older than this is presumed lost


def due_deadlines(session: Session, now: datetime, limit: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.status == DeliveryStatus.SENT, Delivery.confirm_due_at <= now)
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
            "status": DeliveryStatus.SENT,
            "attempts_made": delivery.attempts_made,
            "confirm_due_at": delivery.confirm_due_at,
        }
        if delivery.attempts_made - (delivery.attempt_base or 0) < MAX_ATTEMPTS:  # one resend per round
            if transition(
                session, delivery, expect, status=DeliveryStatus.QUEUED, confirm_due_at=None, claimed_until=None, enqueued_at=None
            ):
                resent += 1
        elif transition(
            session, delivery, expect, status=DeliveryStatus.FAILED, confirm_due_at=None, claimed_until=None
        ):
            open_work_item(session, delivery, WorkItemReason.EMAIL_UNCONFIRMED)
            escalated += 1
    session.flush()
    return {"resend_queued": resent, "escalated": escalated}


def sendable(session: Session, now: datetime, limit: int = 100_000, stale: timedelta = REENQUEUE_AFTER) -> list[int]:
    """Ids of queued e-mail deliveries with no live claim and no recent send job (or render job)."""
    return list(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.channel == Channel.EMAIL,
                Delivery.status == DeliveryStatus.QUEUED,
                or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
                or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= now - stale),
            )
            .order_by(Delivery.id)
            .limit(limit)
        )
    )


def sweep(session: Session, now: datetime, config: Mapping) -> dict:
    """One pass; flushes. The jobs it asks for go to the queue when the caller commits."""
    counts = sweep_deadlines(session, now)
    to_send = sendable(session, now, stale=timedelta(seconds=int(config["SEND_REENQUEUE_SECONDS"])))
    counts["to_send"] = to_send
    counts["send_jobs"] = queue_sends(session, to_send, now, int(config["SEND_BATCH_SIZE"]))
    counts["chunk_jobs"] = cycles.queue_unfinished_chunks(session)
    counts["pdf_jobs"] = batches.queue_unfinished_batches(session)
    return counts
