"""The admin's cycle dashboard and the clerk's cycle exceptions, read from the database.

Each domain counts its own rows: billing its chunks (console.billing.cycles.progress), delivery its
e-mails (console.delivery.counts.email_funnel), paper its batches (console.paper.batches). Failed
jobs come from RQ's failed-job registries (a retry re-enqueues the same job: chunk and batch jobs
are idempotent by construction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from console.billing import cycles, review
from console.db import utcnow
from console.delivery.counts import delivery_counts, email_funnel, mail_pending, sending_progress
from console.models import Bill, Cycle, WorkItem
from console.models.billing import BillStatus, CycleStatus
from console.paper import batches
from console.queues import QUEUES

FUNNEL_STEPS = ("generated", "published", "emailed", "confirmed", "resent", "escalated", "printed", "dispatched")


def cycle_progress(session: Session, cycle: Cycle) -> dict | None:
    p = cycles.progress(session, cycle)
    if not p["chunks_total"]:
        return None
    return {
        "total": p["chunks_total"], "done": p["chunks_done"], "failed": p["chunks_failed"],
        "percent": int(100 * p["chunks_done"] / p["chunks_total"]),
        "errors": [f"#{f['chunk_no']} ({f['customers']}): {' '.join(f['error'])}" for f in p["failed"]][:20],
        "retryable": True,
    }


def funnel(session: Session, cycle_id: int) -> dict[str, int]:
    """Bills generated → published → e-mailed → confirmed (by how) → resent → escalated → printed → dispatched."""
    bills = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Bill.status == BillStatus.PUBLISHED, 1), else_=0)), 0)).where(
            Bill.cycle_id == cycle_id
        )
    ).one()
    result = {"generated": bills[0], "published": int(bills[1])}
    result |= email_funnel(session, cycle_id)
    result["escalated"] = session.scalar(
        select(func.count()).select_from(WorkItem).where(WorkItem.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id)))
    )
    result |= batches.cycle_paper_counts(session, cycle_id)
    result["delivery_report"] = delivery_counts(session, cycle_id)
    return result


def cycles_overview(session: Session, limit: int = 12) -> list[dict]:
    """The recent cycles' cards; the sending figures (a few scans of the cycle's deliveries) for the
    newest published cycle and for any other whose mail is still going out."""
    recent = session.scalars(select(Cycle).order_by(Cycle.period.desc()).limit(limit)).all()
    newest = next((c.id for c in recent if c.status == CycleStatus.PUBLISHED), None)
    return [cycle_card(session, cycle, sending=cycle.id == newest or mail_pending(session, cycle.id)) for cycle in recent]


def cycle_card(session: Session, cycle: Cycle, now: datetime | None = None, sending: bool = True) -> dict:
    """The card polls itself while the cycle generates or any of its e-mails is queued or awaiting
    confirmation (console.delivery.counts.sending_progress), so the sending is followed live too."""
    progress = cycle_progress(session, cycle)
    running = cycle.status == CycleStatus.RUNNING or bool(
        progress and progress["done"] + progress["failed"] < progress["total"]
    )
    sending = (sending_progress(session, cycle.id, now or utcnow())
               if sending and cycle.status == CycleStatus.PUBLISHED else None)
    return {"cycle": cycle, "funnel": funnel(session, cycle.id), "progress": progress, "running": running,
            "sending": sending if sending and sending.deliveries else None,
            "live": running or bool(sending and sending.active)}


def failed_jobs(redis: Any, limit: int = 50) -> list[dict]:
    """Failed RQ jobs of every queue, newest first, with the last line of their error."""
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    jobs = []
    for name in QUEUES:
        registry = FailedJobRegistry(name, connection=redis, serializer=JSONSerializer)
        ids = registry.get_job_ids(0, limit - 1)
        for job in Job.fetch_many(ids, connection=redis, serializer=JSONSerializer):
            if job is None:
                continue
            error = ""
            try:
                latest = job.latest_result()
                error = (latest.exc_string if latest is not None else "") or ""
            except Exception:  # noqa: BLE001 - an unreadable result must not break the dashboard
                error = ""
            last_line = error.strip().splitlines()[-1] if error.strip() else ""
            jobs.append({
                "id": job.id, "queue": name, "func": job.func_name, "args": job.args,
                "ended_at": job.ended_at, "error": last_line, "traceback": error[-4000:],
            })
    jobs.sort(key=lambda j: j["ended_at"] or 0, reverse=True)
    return jobs[:limit]


def retry_failed_job(redis: Any, queue_name: str, job_id: str) -> None:
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    if queue_name not in QUEUES:
        raise LookupError(queue_name)
    registry = FailedJobRegistry(queue_name, connection=redis, serializer=JSONSerializer)
    if job_id not in registry.get_job_ids():
        raise LookupError(job_id)
    registry.requeue(job_id)


# ---- the clerk's exceptions -----------------------------------------------------------------------


def latest_cycle(session: Session) -> Cycle | None:
    return session.scalar(select(Cycle).order_by(Cycle.period.desc()).limit(1))


def no_usable_recipient(
    session: Session, cycle_id: int, settings: review.ReviewSettings, limit: int = 100
) -> tuple[int, list[dict]]:
    """Bills of the cycle that reach nobody: the review's `no_working_channel` (console/billing/review.py,
    the one definition: no e-mail to the holder or an active recipient, no paper copy where paper is
    allowed, not on the web page), each with the review's reason and the bill's status."""
    listed = review.no_working_channel(session, cycle_id, settings, limit)
    statuses = dict(session.execute(
        select(Bill.id, Bill.status).where(Bill.id.in_([b.bill_id for b in listed.bills]))
    ).all()) if listed.bills else {}
    return listed.count, [
        {"id": b.bill_id, "bill_no": b.bill_no, "customer_id": b.customer_id, "account_no": b.account_no,
         "name": b.customer_name, "detail": b.detail, "status": statuses[b.bill_id]}
        for b in listed.bills
    ]


def paper_queue(session: Session) -> dict:
    return batches.paper_queue(session)


def retry_failed_chunks(session: Session, cycle: Cycle, actor: Any, chunk_size: int) -> list:
    """Puts the cycle's failed chunks back to queued (billing's start_run, which asks for their jobs
    after the caller's commit)."""
    return cycles.start_run(session, cycle.period, actor, chunk_size, retry_failed=True)
