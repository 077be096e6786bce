"""Send jobs recorded on the session for after its commit (console.outbox): batches of e-mail deliveries.

Job ids are deterministic (`delivery-send-<first>-<last>-<count>`): a batch still waiting in Redis is
not queued twice. The database is the record: `enqueued_at` says when a job was last asked for, and
the sweeper asks again for any queued delivery whose job is missing or stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rq import Retry
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from console import outbox
from console.models import Bill, Delivery
from console.models.delivery import Channel, DeliveryStatus

SEND_JOB = "jobs.delivery.send_batch"
SEND_JOB_OPTIONS = {
    "job_timeout": 900,
    "result_ttl": 3600,
    "failure_ttl": 7 * 86400,
    "retry": Retry(max=3, interval=[30, 120, 600]),
}


def send_job_id(batch: Sequence[int]) -> str:
    return f"delivery-send-{batch[0]}-{batch[-1]}-{len(batch)}"


def queue_sends(session: Session, ids: Sequence[int], now: datetime, batch_size: int) -> int:
    """Mark these deliveries enqueued and record one send job per `batch_size` ids for after the
    commit; flushes. Returns the number of batches."""
    if not ids:
        return 0
    ids = sorted(ids)
    for start in range(0, len(ids), 1000):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[start : start + 1000]))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    for batch in batches:
        outbox.after_commit(session, "delivery", SEND_JOB, list(batch), job_id=send_job_id(batch), **SEND_JOB_OPTIONS)
    return len(batches)


def queue_queued_sends(
    session: Session, now: datetime, batch_size: int, cycle_id: int | None = None,
    bill_ids: tuple[int, int] | None = None,
) -> int:
    """Send jobs for every queued, unclaimed e-mail delivery (of one cycle, of its bills first..last):
    after publishing, or by hand."""
    query = select(Delivery.id).where(
        Delivery.channel == Channel.EMAIL,
        Delivery.status == DeliveryStatus.QUEUED,
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
    )
    if cycle_id is not None:
        query = query.join(Bill, Bill.id == Delivery.bill_id).where(Bill.cycle_id == cycle_id)
    if bill_ids is not None:
        query = query.where(Delivery.bill_id.between(*bill_ids))
    return queue_sends(session, list(session.scalars(query)), now, batch_size)
