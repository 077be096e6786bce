"""Cycles: open, split into chunks of customers, run (one RQ job per chunk), progress, report.

The database is the source of truth: each chunk row says queued/running/done/failed with its
attempts and last error; RQ job ids are deterministic pointers (`billing-<period>-<chunk_no>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from rq import Retry
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from console import outbox
from console.audit import Actor, record_audit
from console.billing import dates
from console.billing.generation import generate_chunk, period_bounds
from console.db import utcnow
from console.delivery.counts import delivery_counts
from console.delivery.publish import publish_and_queue, unpublished_ranges
from console.models import Customer, ServicePoint
from console.models.billing import Bill, ChunkStatus, Cycle, CycleChunk, CycleStatus

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CHUNK_JOB = "jobs.billing.generate_chunk"
CHUNK_JOB_OPTIONS = {"job_timeout": 1800, "retry": Retry(max=2), "result_ttl": 86400, "failure_ttl": 7 * 86400}


class CycleError(ValueError):
    pass


def parse_period(period: str) -> str:
    if not PERIOD_RE.match(period or ""):
        raise CycleError(_l("Not a period (YYYY-MM): %(period)s", period=str(period)))
    return period


def get_cycle(session: Session, period: str) -> Cycle | None:
    return session.scalar(select(Cycle).where(Cycle.period == period))


def open_cycle(
    session: Session, period: str, actor: Actor, bill_date: date | None = None, today: date | None = None
) -> Cycle:
    """Open the cycle of `period`. Bill date unless given: `today` (default: the system date) when it
    lies in the period, else the period's last day (console/billing/dates.py). Opening twice is harmless."""
    parse_period(period)
    cycle = get_cycle(session, period)
    if cycle is not None:
        return cycle
    start, end = period_bounds(period)
    bill_date = bill_date or dates.default_bill_date(start, end, today or date.today())
    if bill_date < start:
        raise CycleError(_l("The bill date %(date)s is before the period %(period)s.", date=str(bill_date), period=period))
    cycle = Cycle(period=period, bill_date=bill_date, status=CycleStatus.OPEN, opened_by_id=actor.user_id)
    session.add(cycle)
    session.flush()
    record_audit(session, actor, "cycle.open", "cycle", cycle.id, after={"period": period,
                                                                        "bill_date": bill_date.isoformat()})
    return cycle


def plan_chunks(session: Session, cycle: Cycle, chunk_size: int) -> list[CycleChunk]:
    """Split the customers that have service points into chunks of consecutive ids. Planned once per
    cycle; customers added later (ids above the last chunk) get chunks of their own on the next run."""
    existing = list(session.scalars(
        select(CycleChunk).where(CycleChunk.cycle_id == cycle.id).order_by(CycleChunk.chunk_no)
    ))
    after = existing[-1].last_customer_id if existing else 0
    ids = session.scalars(
        select(Customer.id).where(Customer.id.in_(select(ServicePoint.customer_id)), Customer.id > after)
        .order_by(Customer.id)
    ).all()
    rows = []
    for number, offset in enumerate(range(0, len(ids), chunk_size), start=len(existing) + 1):
        part = ids[offset : offset + chunk_size]
        rows.append(CycleChunk(cycle_id=cycle.id, chunk_no=number, first_customer_id=part[0],
                               last_customer_id=part[-1], customers=len(part), status=ChunkStatus.QUEUED,
                               job_id=job_id(cycle.period, number)))
    session.add_all(rows)
    session.flush()
    return existing + rows


def run_preview(session: Session, cycle: Cycle, chunk_size: int) -> dict[str, int]:
    """What `start_run` would do now, without doing it: the customers of the chunks not done yet and
    those added since the last chunk (chunks of their own), and the generation jobs that makes. No
    job: nothing to run (the cycle page offers no "run" then)."""
    if cycle.status == CycleStatus.PUBLISHED:
        return {"customers": 0, "jobs": 0}
    jobs, customers = session.execute(
        select(func.count(CycleChunk.id), func.coalesce(func.sum(CycleChunk.customers), 0))
        .where(CycleChunk.cycle_id == cycle.id, CycleChunk.status != ChunkStatus.DONE)
    ).one()
    after = session.scalar(select(func.max(CycleChunk.last_customer_id)).where(CycleChunk.cycle_id == cycle.id)) or 0
    new = session.scalar(select(func.count(Customer.id)).where(
        Customer.id.in_(select(ServicePoint.customer_id)), Customer.id > after)) or 0
    return {"customers": int(customers) + new, "jobs": int(jobs) + -(-new // max(chunk_size, 1))}


def job_id(period: str, chunk_no: int) -> str:
    return f"billing-{period}-{chunk_no}"


def start_run(
    session: Session, period: str, actor: Actor, chunk_size: int, retry_failed: bool = True, only_retries: bool = False
) -> list[CycleChunk]:
    """Mark the cycle running and ask for a job per chunk not done yet (after the caller's commit:
    the rows are the promise). `only_retries`: just the chunks that ran before and failed."""
    cycle = get_cycle(session, parse_period(period))
    if cycle is None:
        raise CycleError(_l("There is no cycle %(period)s: open it first.", period=period))
    if cycle.status == CycleStatus.PUBLISHED:
        raise CycleError(_l("The cycle %(period)s is already published.", period=period))
    chunks = plan_chunks(session, cycle, chunk_size)
    todo = [c for c in chunks if c.status != ChunkStatus.DONE and (retry_failed or c.status != ChunkStatus.FAILED)]
    for chunk in todo:
        if chunk.status == ChunkStatus.FAILED:
            chunk.status = ChunkStatus.QUEUED
    if todo or cycle.status in (CycleStatus.OPEN, CycleStatus.FAILED):
        cycle.status = CycleStatus.RUNNING if todo else CycleStatus.GENERATED
        cycle.run_started_at = cycle.run_started_at or utcnow()
    record_audit(session, actor, "cycle.run", "cycle", cycle.id, after={"chunks": len(todo)})
    session.flush()
    if only_retries:
        todo = [c for c in todo if c.attempts > 0]
    queue_chunks(session, cycle.id, todo)
    return todo


def queue_chunks(session: Session, cycle_id: int, chunks: list[CycleChunk]) -> int:
    """One generation job per chunk, handed to the queue after the commit (deterministic ids)."""
    for chunk in chunks:
        outbox.after_commit(
            session, "billing", CHUNK_JOB, cycle_id, chunk.chunk_no, job_id=chunk.job_id, **CHUNK_JOB_OPTIONS
        )
    return len(chunks)


def queue_unfinished_chunks(session: Session) -> int:
    """The sweeper's question: every chunk of a running cycle not yet done or failed gets its job asked
    for again (a job still waiting or running is not duplicated; one lost with Redis or a killed
    worker is queued anew)."""
    rows = session.execute(
        select(CycleChunk.cycle_id, CycleChunk.chunk_no, CycleChunk.job_id)
        .join(Cycle, Cycle.id == CycleChunk.cycle_id)
        .where(Cycle.status == CycleStatus.RUNNING, CycleChunk.status.in_((ChunkStatus.QUEUED, ChunkStatus.RUNNING)))
        .order_by(CycleChunk.cycle_id, CycleChunk.chunk_no)
    ).all()
    for cycle_id, chunk_no, chunk_job_id in rows:
        outbox.after_commit(
            session, "billing", CHUNK_JOB, cycle_id, chunk_no, job_id=chunk_job_id, **CHUNK_JOB_OPTIONS
        )
    return len(rows)


def run_chunk(session: Session, cycle_id: int, chunk_no: int, settings: dict) -> int:
    """The body of one cycle job: generate the chunk's bills, mark the chunk done (flushes only)."""
    chunk = session.scalar(
        select(CycleChunk).where(CycleChunk.cycle_id == cycle_id, CycleChunk.chunk_no == chunk_no)
    )
    if chunk is None:
        raise LookupError(f"no chunk {chunk_no} in cycle {cycle_id}")
    if chunk.status == ChunkStatus.DONE:
        return 0  # already done: a duplicate delivery of the job
    chunk.started_at = utcnow()
    chunk.attempts += 1
    made = generate_chunk(session, cycle_id, chunk.first_customer_id, chunk.last_customer_id, settings)
    chunk.status = ChunkStatus.DONE
    chunk.bills_created += made
    chunk.error = None
    chunk.finished_at = utcnow()
    session.flush()
    _maybe_finish(session, cycle_id)
    return made


def record_chunk_failure(session: Session, cycle_id: int, chunk_no: int, error: str) -> None:
    session.execute(
        update(CycleChunk)
        .where(CycleChunk.cycle_id == cycle_id, CycleChunk.chunk_no == chunk_no, CycleChunk.status != ChunkStatus.DONE)
        .values(status=ChunkStatus.FAILED, error=error[:4000], attempts=CycleChunk.attempts + 1, finished_at=utcnow())
    )
    session.execute(update(Cycle).where(Cycle.id == cycle_id, Cycle.status == CycleStatus.RUNNING).values(status=CycleStatus.FAILED))
    session.flush()


def _maybe_finish(session: Session, cycle_id: int) -> None:
    left = session.scalar(
        select(func.count()).select_from(CycleChunk).where(CycleChunk.cycle_id == cycle_id, CycleChunk.status != ChunkStatus.DONE)
    )
    if left == 0:
        session.execute(
            update(Cycle).where(Cycle.id == cycle_id, Cycle.status.in_((CycleStatus.RUNNING, CycleStatus.FAILED, CycleStatus.OPEN)))
            .values(status=CycleStatus.GENERATED, generated_at=utcnow())
        )


def progress(session: Session, cycle: Cycle) -> dict:
    counts = dict(
        session.execute(
            select(CycleChunk.status, func.count()).where(CycleChunk.cycle_id == cycle.id).group_by(CycleChunk.status)
        ).all()
    )
    total = sum(counts.values())
    failed = session.scalars(
        select(CycleChunk).where(CycleChunk.cycle_id == cycle.id, CycleChunk.status == ChunkStatus.FAILED)
        .order_by(CycleChunk.chunk_no)
    ).all()
    return {
        "chunks_total": total,
        "chunks_done": counts.get("done", 0),
        "chunks_failed": counts.get("failed", 0),
        "chunks_waiting": counts.get("queued", 0) + counts.get("running", 0),
        "failed": [{"chunk_no": c.chunk_no, "customers": f"{c.first_customer_id}-{c.last_customer_id}",
                    "attempts": c.attempts, "error": (c.error or "").strip().splitlines()[-1:] or [""]}
                   for c in failed],
        "running": cycle.status == CycleStatus.RUNNING and counts.get("done", 0) + counts.get("failed", 0) < total,
    }


def cycle_report(session: Session, period: str) -> dict:
    """The cycle's counts as a dict, with the delivery domain's e-mail counts."""
    cycle = get_cycle(session, parse_period(period))
    if cycle is None:
        raise CycleError(_l("There is no cycle %(period)s.", period=period))
    by_type = dict(
        session.execute(select(Bill.bill_type, func.count()).where(Bill.cycle_id == cycle.id).group_by(Bill.bill_type)).all()
    )
    totals = session.execute(
        select(func.count(), func.sum(Bill.current_balance), func.sum(Bill.charges_total)).where(Bill.cycle_id == cycle.id)
    ).one()
    prog = progress(session, cycle)
    report = {
        "period": cycle.period,
        "bill_date": cycle.bill_date.isoformat(),
        "status": cycle.status,
        "bills": totals[0],
        "bills_by_type": by_type,
        "charges_total": str(totals[2] or "0.00"),
        "current_balance_total": str(totals[1] or "0.00"),
        "chunks": {k: prog[k] for k in ("chunks_total", "chunks_done", "chunks_failed", "chunks_waiting")},
        "failed_chunks": prog["failed"],
    }
    report["email"] = delivery_counts(session, cycle.id)
    return report


def publish(
    session: Session, period: str, actor: Actor, config: Mapping, now: datetime | None = None,
    bill_ids: tuple[int, int] | None = None,
) -> dict:
    """Hand the generated cycle (its bills first..last, when given: a large cycle in parts) to the
    delivery domain (bills published, deliveries written, send jobs asked for after the caller's
    commit), re-dating first any bill that would leave the customer too little time to pay."""
    cycle = get_cycle(session, parse_period(period))
    if cycle is None:
        raise CycleError(_l("There is no cycle %(period)s.", period=period))
    if cycle.status not in (CycleStatus.GENERATED, CycleStatus.PUBLISHED):
        raise CycleError(_l("The cycle %(period)s is not completely generated: generate it first.", period=period))
    now = now or utcnow()
    today = dates.local_today(config["BABEL_DEFAULT_TIMEZONE"], now)
    redated = dates.redate_for_publish(session, cycle.id, today, int(config["MIN_PAYMENT_DAYS"]), bill_ids)
    if redated:
        record_audit(session, actor, "cycle.redate", "cycle", cycle.id, after={"bills": redated,
                                                                             "issued": today.isoformat()})
    return publish_and_queue(session, cycle.id, actor, now, config, bill_ids)


def publish_in_parts(
    session: Session, period: str, actor: Actor, config: Mapping, part_size: int, now: datetime | None = None
) -> Iterator[dict]:
    """Publish a large cycle `part_size` bills at a time: yields each part's result (with `part`,
    `parts` and the part's `bill_ids`) and the caller commits before asking for the next, so no
    transaction holds a million rows' locks, and a run stopped halfway goes on with the bills still
    unpublished (nothing twice: the bills published, their deliveries and jobs are keyed)."""
    cycle = get_cycle(session, parse_period(period))
    if cycle is None:
        raise CycleError(_l("There is no cycle %(period)s.", period=period))
    ranges = unpublished_ranges(session, cycle.id, part_size)
    for number, bill_ids in enumerate(ranges, start=1):
        result = publish(session, period, actor, config, now, bill_ids)
        yield result | {"part": number, "parts": len(ranges), "bill_ids": bill_ids}
