"""The admin's cycle dashboard and the clerk's cycle exceptions, read from the database.

Where the billing and delivery domains offer their own report functions (console.billing.cycles,
console.delivery.report.delivery_counts) the funnel uses them; otherwise it counts the rows itself.
Failed jobs come from RQ's failed-job registries (a retry re-enqueues the same job: chunk and batch
jobs are idempotent by construction).
"""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

from sqlalchemy import Table, and_, case, exists, func, not_, or_, select
from sqlalchemy.orm import Session

from console.db import Base
from console.models import Bill, Customer, Cycle, Delivery, Recipient, WorkItem

FAILED_JOB_QUEUES = ("billing", "delivery", "pdf", "default")
FUNNEL_STEPS = ("generated", "published", "emailed", "confirmed", "resent", "escalated", "printed", "dispatched")


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def chunk_table() -> Table | None:
    """The billing domain's chunk table (cycle progress kept in the database), if there is one."""
    for table in Base.metadata.sorted_tables:
        if "chunk" in table.name and {"cycle_id", "status"} <= set(table.c.keys()):
            return table
    return None


def cycle_progress(session: Session, cycle: Cycle) -> dict | None:
    shared = _optional("console.billing.cycles", "progress")
    if shared is not None:
        p = shared(session, cycle)
        if not p["chunks_total"]:
            return None
        return {
            "total": p["chunks_total"], "done": p["chunks_done"], "failed": p["chunks_failed"],
            "percent": int(100 * p["chunks_done"] / p["chunks_total"]),
            "errors": [f"#{f['chunk_no']} ({f['customers']}): {' '.join(f['error'])}" for f in p["failed"]][:20],
            "retryable": True,
        }
    return _progress_from_table(session, cycle.id)


def _progress_from_table(session: Session, cycle_id: int) -> dict | None:
    table = chunk_table()
    if table is None:
        return None
    by_status = Counter(
        dict(session.execute(select(table.c.status, func.count()).where(table.c.cycle_id == cycle_id).group_by(
            table.c.status)).all())
    )
    total = sum(by_status.values())
    if not total:
        return None
    done = sum(n for s, n in by_status.items() if s in ("done", "finished", "completed", "generated"))
    failed = sum(n for s, n in by_status.items() if s in ("failed", "error"))
    errors = []
    error_col = next((table.c[c] for c in ("error", "last_error", "failure") if c in table.c), None)
    if error_col is not None and failed:
        errors = [e for (e,) in session.execute(
            select(error_col).where(table.c.cycle_id == cycle_id, table.c.status.in_(("failed", "error"))).limit(20)
        ) if e]
    return {"total": total, "done": done, "failed": failed, "percent": int(100 * done / total), "errors": errors,
            "retryable": False}


def funnel(session: Session, cycle_id: int) -> dict[str, int]:
    """Bills generated → published → e-mailed → confirmed (by how) → resent → escalated → printed → dispatched."""
    bills = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Bill.status == "published", 1), else_=0)), 0)).where(
            Bill.cycle_id == cycle_id
        )
    ).one()
    in_cycle = Delivery.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id))
    result = {"generated": bills[0], "published": int(bills[1])}
    email = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Delivery.attempts_made > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.status == "confirmed", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == "delivered", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == "relayed", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == "portal_open", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.attempts_made > 1, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.status == "queued", 1), else_=0)), 0),
        ).where(in_cycle, Delivery.channel == "email", Delivery.status != "cancelled")
    ).one()
    result |= {
        "email_deliveries": email[0], "emailed": int(email[1]), "confirmed": int(email[2]),
        "confirmed_delivered": int(email[3]), "confirmed_relayed": int(email[4]),
        "confirmed_portal_open": int(email[5]), "resent": int(email[6]), "email_queued": int(email[7]),
    }
    result["escalated"] = session.scalar(
        select(func.count()).select_from(WorkItem).where(WorkItem.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id)))
    )
    result |= _paper_funnel(session, cycle_id, in_cycle)
    shared = _optional("console.delivery.report", "delivery_counts")
    if shared is not None:
        result["delivery_report"] = shared(session, cycle_id)
    return result


def _paper_tables() -> tuple[Table, Table] | None:
    tables = Base.metadata.tables
    if "print_batches" in tables and "print_items" in tables:
        return tables["print_batches"], tables["print_items"]
    return None


def _paper_funnel(session: Session, cycle_id: int, in_cycle) -> dict[str, int]:  # noqa: ANN001
    """Printed = in a batch marked printed; dispatched = handed to the post or a deliverer (paper's
    tables); without them, counted from the paper deliveries' status."""
    paper = _paper_tables()
    if paper is None:
        row = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((Delivery.status.in_(("sent", "confirmed")), 1), else_=0)), 0),
                func.coalesce(func.sum(case((Delivery.status == "confirmed", 1), else_=0)), 0),
            ).where(in_cycle, Delivery.channel == "paper", Delivery.status != "cancelled")
        ).one()
        return {"paper_deliveries": row[0], "printed": int(row[1]), "dispatched": int(row[2])}
    batches, items = paper
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((batches.c.status == "printed", 1), else_=0)), 0),
            func.coalesce(func.sum(case((items.c.status.in_(("dispatched", "delivered", "returned")), 1), else_=0)), 0),
        )
        .select_from(items.join(batches, batches.c.id == items.c.batch_id))
        .where(batches.c.cycle_id == cycle_id)
    ).one()
    queued = session.scalar(
        select(func.count()).select_from(Delivery).where(in_cycle, Delivery.channel == "paper",
                                                         Delivery.status != "cancelled")
    )
    return {"paper_deliveries": queued, "printed": int(row[1]), "dispatched": int(row[2])}


def cycles_overview(session: Session, limit: int = 12) -> list[dict]:
    cycles = session.scalars(select(Cycle).order_by(Cycle.period.desc()).limit(limit)).all()
    return [cycle_card(session, cycle) for cycle in cycles]


def cycle_card(session: Session, cycle: Cycle) -> dict:
    progress = cycle_progress(session, cycle)
    running = cycle.status == "running" or bool(
        progress and progress["done"] + progress["failed"] < progress["total"]
    )
    return {"cycle": cycle, "funnel": funnel(session, cycle.id), "progress": progress, "running": running}


def failed_jobs(redis: Any, limit: int = 50) -> list[dict]:
    """Failed RQ jobs of every queue, newest first, with the last line of their error."""
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    jobs = []
    for name in FAILED_JOB_QUEUES:
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

    if queue_name not in FAILED_JOB_QUEUES:
        raise LookupError(queue_name)
    registry = FailedJobRegistry(queue_name, connection=redis, serializer=JSONSerializer)
    if job_id not in registry.get_job_ids():
        raise LookupError(job_id)
    registry.requeue(job_id)


# ---- the clerk's exceptions -----------------------------------------------------------------------


def latest_cycle(session: Session) -> Cycle | None:
    return session.scalar(select(Cycle).order_by(Cycle.period.desc()).limit(1))


def no_usable_recipient(session: Session, cycle_id: int, limit: int = 100) -> tuple[int, list[dict]]:
    """Bills of the cycle whose customer has no way to receive them: e-mail wanted but no address
    (holder or active recipient), paper wanted but no postal address, or no channel at all."""
    email_recipient = exists().where(
        Recipient.customer_id == Customer.id, Recipient.channel == "email", Recipient.active.is_(True)
    )
    unusable = or_(
        and_(Customer.channel_email.is_(True), or_(Customer.email.is_(None), Customer.email == ""), not_(email_recipient)),
        and_(Customer.channel_paper.is_(True), or_(Customer.postal_address.is_(None), Customer.postal_address == "")),
        and_(Customer.channel_email.is_(False), Customer.channel_paper.is_(False), Customer.channel_portal.is_(False)),
    )
    base = select(Bill.id).join(Customer, Customer.id == Bill.customer_id).where(Bill.cycle_id == cycle_id, unusable)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.execute(
        select(Bill.id, Bill.bill_no, Bill.status, Customer.id.label("customer_id"), Customer.account_no,
               Customer.name, Customer.channel_email, Customer.channel_paper, Customer.channel_portal)
        .join(Customer, Customer.id == Bill.customer_id)
        .where(Bill.cycle_id == cycle_id, unusable)
        .order_by(Bill.id)
        .limit(limit)
    ).all()
    return total, [dict(r._mapping) for r in rows]


def paper_queue(session: Session) -> dict:
    """What waits for the clerk on paper: bills not yet in a print batch, batches ready to print,
    printed bills not yet handed over, and bills out with the post or a deliverer awaiting confirmation."""
    paper = _paper_tables()
    if paper is None:
        counts = dict(
            session.execute(
                select(Delivery.status, func.count()).where(Delivery.channel == "paper",
                                                            Delivery.status.in_(("queued", "sent"))).group_by(
                    Delivery.status)
            ).all()
        )
        return {"to_batch": counts.get("queued", 0), "ready": [], "to_dispatch": 0,
                "awaiting_confirmation": counts.get("sent", 0)}
    batches, items = paper
    in_batch = select(items.c.id).where(items.c.delivery_id == Delivery.id).exists()
    to_batch = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.channel == "paper", Delivery.status == "queued",
                                                         ~in_batch)
    )
    ready = [dict(r._mapping) for r in session.execute(
        select(batches.c.id, batches.c.batch_no, batches.c.bills_count, batches.c.copies_count, Cycle.period)
        .join(Cycle, Cycle.id == batches.c.cycle_id)
        .where(batches.c.status == "ready")
        .order_by(batches.c.created_at, batches.c.id)
        .limit(50)
    )]
    by_status = dict(session.execute(
        select(items.c.status, func.count())
        .select_from(items.join(batches, batches.c.id == items.c.batch_id))
        .where(or_(items.c.status == "dispatched", and_(items.c.status == "waiting", batches.c.status == "printed")))
        .group_by(items.c.status)
    ).all())
    return {"to_batch": to_batch, "ready": ready, "to_dispatch": by_status.get("waiting", 0),
            "awaiting_confirmation": by_status.get("dispatched", 0)}


def retry_failed_chunks(session: Session, cycle: Cycle, actor: Any, chunk_size: int) -> list:
    """Puts the cycle's failed chunks back to queued (billing's start_run); the caller commits and
    enqueues them (console.billing.queueing.enqueue_chunks)."""
    start_run = _optional("console.billing.cycles", "start_run")
    if start_run is None:
        raise LookupError("billing offers no retry")
    return start_run(session, cycle.period, actor, chunk_size, retry_failed=True)
