"""PDF jobs on the `pdf` queue: render a chunk of a print batch's bills, assemble the batch, render bills."""

from __future__ import annotations

from console.audit import Actor
from console.paper import batches
from jobs.context import job_session


def render_chunk(batch_id: int, item_ids: list[int]) -> int:
    """Render the bills of these items (each once); the last chunk to commit asks for the assembly."""
    with job_session() as session:
        count = batches.render_items(session, batch_id, item_ids)
        session.commit()
        batches.queue_assembly_when_rendered(session, batch_id)
        session.commit()
    return count


def render_bills(bill_ids: list[int]) -> int:
    with job_session() as session:
        count = batches.render_bills(session, bill_ids)
        session.commit()
    return count


def assemble(batch_id: int) -> int | None:
    with job_session() as session:
        batch = batches.assemble_batch(session, batch_id, Actor.system())
        session.commit()
        return batch.pages_count
