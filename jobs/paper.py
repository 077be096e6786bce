"""PDF jobs on the `pdf` queue: one job per chunk of 20-50 bills of a print batch, then one to assemble."""

from __future__ import annotations

from rq import Queue

from console.audit import Actor
from jobs.context import job_app, job_session

RENDER_CHUNK = 25


def render_chunk(batch_id: int, item_ids: list[int]) -> int:
    """Render the bills of these items (each once); the last chunk to finish enqueues the assembly."""
    from console.paper import batches

    with job_session() as session:
        count = batches.render_items(session, batch_id, item_ids)
        session.commit()
        progress = batches.batch_progress(session, batch_id)
    if progress.rendered >= progress.total:
        with job_app().app_context():
            from console.queues import get_queue

            enqueue_assembly(get_queue("pdf"), batch_id)
    return count


def render_bills(bill_ids: list[int]) -> int:
    """Render (once) these bills' PDFs, e.g. ahead of sending e-mails with attachments."""
    from sqlalchemy import select

    from console.models import Bill
    from console.paper.pdf import bill_pdf

    with job_session() as session:
        bills = list(session.scalars(select(Bill).where(Bill.id.in_(bill_ids))))
        for bill in bills:
            bill_pdf(session, bill)
        session.commit()
    return len(bills)


def enqueue_bill_pdfs(queue: Queue, bill_ids: list[int], chunk_size: int = RENDER_CHUNK) -> int:
    """One render job per chunk of bills on the pdf queue, deterministic ids; returns the job count."""
    ids = sorted(set(bill_ids))
    data = [
        Queue.prepare_data("jobs.paper.render_bills", args=(ids[i : i + chunk_size],),
                           job_id=f"paper-bills-{ids[i]}-{ids[min(i + chunk_size, len(ids)) - 1]}", timeout=900)
        for i in range(0, len(ids), chunk_size)
    ]
    if data:
        queue.enqueue_many(data)
    return len(data)


def assemble(batch_id: int) -> int | None:
    from console.paper import batches

    with job_session() as session:
        batch = batches.assemble_batch(session, batch_id, Actor.system())
        session.commit()
        return batch.pages_count


def enqueue_assembly(queue: Queue, batch_id: int) -> None:
    queue.enqueue("jobs.paper.assemble", batch_id, job_id=f"paper-assemble-{batch_id}")


def enqueue_rendering(queue: Queue, chunks: dict[int, list[int]], chunk_size: int = RENDER_CHUNK) -> int:
    """`chunks`: batch id -> its item ids in order. Deterministic job ids; one enqueue_many pipeline."""
    data = []
    for batch_id, ids in chunks.items():
        for start in range(0, len(ids), chunk_size):
            part = ids[start : start + chunk_size]
            data.append(
                Queue.prepare_data(
                    "jobs.paper.render_chunk", args=(batch_id, part), job_id=f"paper-render-{batch_id}-{part[0]}",
                    timeout=900,
                )
            )
    if data:
        queue.enqueue_many(data)
    return len(data)
