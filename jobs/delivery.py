"""Delivery jobs (thin): send batches of e-mail deliveries, and the periodic sweeper.

Deterministic job ids (`delivery-send-<first>-<last>-<count>`): a batch already waiting in Redis is
not queued twice. The database is the record; a lost job is found again by the sweeper.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from flask import Flask
from rq import Queue, Repeat, Retry
from rq.job import Job, JobStatus
from sqlalchemy import update
from sqlalchemy.orm import Session

from console.db import utcnow
from console.models import Delivery
from jobs.context import job_app, job_session

SWEEP_JOB_ID = "delivery-sweep"
LIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


def send_batch(delivery_ids: list[int]) -> dict:
    from console.delivery.sender import send_batch as send

    with job_session() as session:
        return send(session, delivery_ids, job_app().config)


def sweep() -> dict:
    from console.delivery.sweeper import sweep as sweep_once

    app = job_app()
    with job_session() as session:
        stale = timedelta(seconds=int(app.config.get("SEND_REENQUEUE_SECONDS", 600)))
        counts = sweep_once(session, utcnow(), stale=stale)
        session.commit()
        ids = counts.pop("to_send")
        counts["enqueued"] = enqueue_sends(session, ids, app=app)
    return counts


def _queue(app: Flask | None) -> Queue:
    from console.queues import get_queue

    return get_queue("delivery", app or job_app())


def enqueue_sends(session: Session, ids: Sequence[int], app: Flask | None = None, now: datetime | None = None) -> int:
    """Mark these deliveries enqueued (commit), then queue send jobs of SEND_BATCH_SIZE ids each.
    Returns how many jobs were queued (batches already waiting in Redis are not queued again)."""
    if not ids:
        return 0
    app = app or job_app()
    now = now or utcnow()
    size = int(app.config.get("SEND_BATCH_SIZE", 200))
    ids = sorted(ids)
    for start in range(0, len(ids), 1000):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[start : start + 1000]))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    queue = _queue(app)
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    job_ids = [f"delivery-send-{b[0]}-{b[-1]}-{len(b)}" for b in batches]
    existing = Job.fetch_many(job_ids, connection=queue.connection, serializer=queue.serializer)
    data = []
    for batch, job_id, job in zip(batches, job_ids, existing, strict=True):
        if job is not None and job.get_status(refresh=False) in LIVE:
            continue
        data.append(
            Queue.prepare_data(
                send_batch,
                args=(batch,),
                job_id=job_id,
                timeout=900,
                result_ttl=3600,
                failure_ttl=7 * 86400,
                retry=Retry(max=3, interval=[30, 120, 600]),
            )
        )
    if data:
        queue.enqueue_many(data)
    return len(data)


def enqueue_queued_sends(session: Session, app: Flask | None = None, cycle_id: int | None = None) -> int:
    """After publishing: queue send jobs for every queued, unclaimed e-mail delivery (of one cycle)."""
    from sqlalchemy import or_, select

    from console.models import Bill

    now = utcnow()
    query = select(Delivery.id).where(
        Delivery.channel == "email",
        Delivery.status == "queued",
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
    )
    if cycle_id is not None:
        query = query.join(Bill, Bill.id == Delivery.bill_id).where(Bill.cycle_id == cycle_id)
    return enqueue_sends(session, list(session.scalars(query)), app=app, now=now)


def ensure_sweeper_scheduled(app: Flask | None = None, interval: int | None = None) -> bool:
    """Schedule the sweeper (one repeating job with a fixed id) unless it is already waiting or
    running. Called by `console worker` at start; safe to call from any number of processes."""
    app = app or job_app()
    queue = _queue(app)
    interval = int(interval or app.config.get("SWEEP_SECONDS", 60))
    job = Job.fetch_many([SWEEP_JOB_ID], connection=queue.connection, serializer=queue.serializer)[0]
    if job is not None and job.get_status(refresh=False) in LIVE:
        return False
    lock = queue.connection.set(f"billpost:{SWEEP_JOB_ID}:lock", "1", nx=True, ex=10)
    if not lock:
        return False
    queue.enqueue_in(
        timedelta(seconds=interval),
        sweep,
        job_id=SWEEP_JOB_ID,
        repeat=Repeat(times=10**9, interval=interval),
        result_ttl=600,
        failure_ttl=7 * 86400,
        job_timeout=600,
    )
    return True
