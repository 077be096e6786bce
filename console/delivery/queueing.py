"""Send jobs recorded on the session for after its commit (console.outbox): batches of e-mail deliveries,
and, for e-mails that attach a bill PDF not rendered yet, the render job that comes first.

Job ids are deterministic (`delivery-send-<first>-<last>-<count>`, `delivery-render-…` of the bill
ids): a job still waiting in Redis is not queued twice. The database is the record: `enqueued_at` says
when a job was last asked for (a send job, or the render job whose send follows), and the sweeper asks
again for any queued delivery whose job is missing or stale.

**PDFs ahead of their e-mails.** A customer who `attaches_pdf` gets the bill PDF with the e-mail.
Rendering it (xhtml2pdf; seconds, minutes for a collective bill of many points) must not happen in the
sender, which holds an SMTP connection meanwhile. So `queue_sends` sends straight away only the
deliveries whose message needs no rendering; for the others it asks for `jobs.delivery.render_then_send`
on the `pdf` queue, in chunks of bills, and that job (`render_then_queue_sends`) renders and stores the
PDFs and asks for the send jobs of those bills' queued e-mails in the same transaction, so they reach
RQ after the PDFs are committed. The sender then only reads the stored file; it still renders inline
when it finds none (`console.paper.pdf.bill_pdf`: a bill changed after its render job ran), the last
resort. A bill whose PDF cannot be rendered holds no e-mail: its send jobs are asked for all the same
(in batches of their own, so a failing build takes no other message with it), the failure is logged and
the job then fails, so RQ keeps it in the failed-jobs list, naming the bills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rq import Retry
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from console import outbox
from console.models import Bill, Customer, Delivery
from console.models.delivery import Channel, DeliveryStatus
from console.paper.pdf import bill_pdf_if_possible

SEND_JOB = "jobs.delivery.send_batch"
SEND_JOB_OPTIONS = {
    "job_timeout": 900,
    "result_ttl": 3600,
    "failure_ttl": 7 * 86400,
    "retry": Retry(max=3, interval=[30, 120, 600]),
}
RENDER_JOB = "jobs.delivery.render_then_send"
RENDER_CHUNK = 10  # bills per render job: few, since one collective bill can take a minute
# No RQ retry: a render that failed once fails again, and its e-mails were queued all the same.
RENDER_JOB_OPTIONS = {"job_timeout": 3600, "result_ttl": 3600, "failure_ttl": 7 * 86400}


def send_job_id(batch: Sequence[int]) -> str:
    return f"delivery-send-{batch[0]}-{batch[-1]}-{len(batch)}"


def render_job_id(bill_ids: Sequence[int]) -> str:
    return f"delivery-render-{bill_ids[0]}-{bill_ids[-1]}-{len(bill_ids)}"


def _chunks(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def awaiting_pdf(session: Session, ids: Sequence[int]) -> dict[int, int]:
    """Delivery id → bill id, for those of `ids` whose message attaches the bill PDF (the customer
    `attaches_pdf`) and whose bill has no stored PDF yet."""
    waiting: dict[int, int] = {}
    for part in _chunks(list(ids), 1000):
        rows = session.execute(
            select(Delivery.id, Delivery.bill_id)
            .join(Bill, Bill.id == Delivery.bill_id)
            .join(Customer, Customer.id == Delivery.customer_id)
            .where(Delivery.id.in_(part), Bill.pdf_path.is_(None), Customer.attaches_pdf)
        )
        waiting.update((delivery_id, bill_id) for delivery_id, bill_id in rows)
    return waiting


def _mark_enqueued(session: Session, ids: Sequence[int], now: datetime) -> None:
    for part in _chunks(list(ids), 1000):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(part))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )


def queue_send_jobs(session: Session, ids: Sequence[int], now: datetime, batch_size: int) -> int:
    """Mark these deliveries enqueued and record one send job per `batch_size` ids for after the
    commit, whatever their PDF; flushes. Returns the number of batches."""
    if not ids:
        return 0
    ids = sorted(set(ids))
    _mark_enqueued(session, ids, now)
    batches = _chunks(ids, batch_size)
    for batch in batches:
        outbox.after_commit(session, "delivery", SEND_JOB, list(batch), job_id=send_job_id(batch), **SEND_JOB_OPTIONS)
    return len(batches)


def queue_renders(session: Session, bill_ids: Sequence[int]) -> int:
    """Record one render-then-send job per RENDER_CHUNK of these bills for after the commit (on the
    `pdf` queue). Returns the number of jobs."""
    chunks = _chunks(sorted(set(bill_ids)), RENDER_CHUNK)
    for chunk in chunks:
        outbox.after_commit(session, "pdf", RENDER_JOB, list(chunk), job_id=render_job_id(chunk), **RENDER_JOB_OPTIONS)
    return len(chunks)


def queue_sends(session: Session, ids: Sequence[int], now: datetime, batch_size: int) -> int:
    """Ask for these deliveries to be sent after the commit (they are marked enqueued; flushes): a
    send job per `batch_size` ids, except for those whose message attaches a bill PDF not rendered
    yet, whose bills get render-then-send jobs instead (their send jobs follow the render). Returns
    the number of jobs asked for, send and render."""
    if not ids:
        return 0
    ids = sorted(set(ids))
    waiting = awaiting_pdf(session, ids)
    _mark_enqueued(session, [i for i in ids if i in waiting], now)
    jobs = queue_send_jobs(session, [i for i in ids if i not in waiting], now, batch_size)
    return jobs + queue_renders(session, list(waiting.values()))


def _sendable_query(now: datetime):  # noqa: ANN202
    """Queued e-mail deliveries nobody holds: no sender's live claim, no back-off running."""
    return select(Delivery.id).where(
        Delivery.channel == Channel.EMAIL,
        Delivery.status == DeliveryStatus.QUEUED,
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
    )


def queue_queued_sends(
    session: Session, now: datetime, batch_size: int, cycle_id: int | None = None,
    bill_ids: tuple[int, int] | None = None,
) -> int:
    """Send jobs (or the render jobs that come first) for every queued, unclaimed e-mail delivery (of
    one cycle, of its bills first..last): after publishing, or by hand."""
    query = _sendable_query(now)
    if cycle_id is not None:
        query = query.join(Bill, Bill.id == Delivery.bill_id).where(Bill.cycle_id == cycle_id)
    if bill_ids is not None:
        query = query.where(Delivery.bill_id.between(*bill_ids))
    return queue_sends(session, list(session.scalars(query)), now, batch_size)


class BillPdfFailed(RuntimeError):
    """Raised by the render job after its commit, so RQ records which bills could not be rendered."""


@dataclass
class RenderedAhead:
    rendered: list[int] = field(default_factory=list)  # bill ids whose PDF is stored
    failed: list[str] = field(default_factory=list)  # bill numbers whose PDF could not be rendered
    send_jobs: int = 0

    def check(self) -> None:
        """After the commit: fail the job if any bill could not be rendered (its e-mails went anyway)."""
        if self.failed:
            raise BillPdfFailed(f"bill PDF(s) could not be rendered: {', '.join(self.failed)}")


def render_then_queue_sends(session: Session, bill_ids: Sequence[int], now: datetime, batch_size: int) -> RenderedAhead:
    """The render job's work: render and store the PDF of each of these bills that still has a queued
    e-mail to go, then ask for the send jobs of those e-mails (after the caller's commit, so they find
    the PDFs committed). Flushes. A bill that cannot be rendered is logged and its e-mails are asked for
    all the same, in batches of their own (console.paper.pdf.bill_pdf_if_possible logs it); a database
    error is raised as it is."""
    result = RenderedAhead()
    pending = session.execute(
        _sendable_query(now).add_columns(Delivery.bill_id).where(Delivery.bill_id.in_(list(bill_ids)))
    ).all()
    by_bill: dict[int, list[int]] = {}
    for delivery_id, bill_id in pending:
        by_bill.setdefault(bill_id, []).append(delivery_id)
    ready: list[int] = []
    failed: list[int] = []
    for bill in session.scalars(select(Bill).where(Bill.id.in_(list(by_bill))).order_by(Bill.id)):
        if bill_pdf_if_possible(session, bill) is None:  # logged there; the job's failure names it
            result.failed.append(bill.bill_no)
            failed += by_bill[bill.id]
        else:
            result.rendered.append(bill.id)
            ready += by_bill[bill.id]
    result.send_jobs = queue_send_jobs(session, ready, now, batch_size) + queue_send_jobs(session, failed, now, batch_size)
    return result
