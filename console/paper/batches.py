"""Print batches: a cycle's queued paper deliveries gathered in delivery-route order (postal code, then
address), rendered by parallel jobs on the `pdf` queue, merged into one PDF per batch with a cover sheet.

Re-running is harmless: a delivery belongs to one batch only (unique key on print_items.delivery_id).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from console import outbox
from console.audit import Actor, record_audit
from console.db import utcnow
from console.models import Bill, Customer, Cycle, Delivery
from console.models.delivery import DeliveryStatus
from console.models.paper import BatchStatus, PrintBatch, PrintItem, PrintItemStatus
from console.paper.pdf import address_overlay_pdf, bill_pdf, render_pdf_bytes, write_atomically
from console.paper.rules import paper_allowed, postal_code_of

DEFAULT_BATCH_SIZE = 500


def default_batch_size() -> int:
    return int(current_app.config["PAPER_BATCH_SIZE"])


class PaperError(Exception):
    """A request the paper rules refuse; the message is for the clerk (translated)."""


@dataclass
class GatherResult:
    period: str
    batch_ids: list[int] = field(default_factory=list)
    deliveries: int = 0
    copies: int = 0
    refused: int = 0  # paper deliveries of customers who may not have paper (PAPER_KEY_ACCOUNTS_ONLY)


def cycle_by_period(session: Session, period: str) -> Cycle:
    cycle = session.scalar(select(Cycle).where(Cycle.period == period))
    if cycle is None:
        raise PaperError(_l("No billing cycle for period %(period)s.", period=period))
    return cycle


def gather_batches(
    session: Session,
    period: str,
    actor: Actor,
    size: int = DEFAULT_BATCH_SIZE,
    key_accounts_only: bool = True,
) -> GatherResult:
    """Put the cycle's queued paper deliveries not yet in a batch into new batches of at most `size`."""
    if size < 1:
        raise PaperError(_l("The batch size must be at least 1."))
    cycle = cycle_by_period(session, period)
    already = select(PrintItem.id).where(PrintItem.delivery_id == Delivery.id).exists()
    rows = session.execute(
        select(Delivery, Customer, Bill.bill_no)
        .join(Bill, Bill.id == Delivery.bill_id)
        .join(Customer, Customer.id == Delivery.customer_id)
        .where(Bill.cycle_id == cycle.id, Delivery.channel == "paper", Delivery.status == DeliveryStatus.QUEUED, ~already)
    ).all()
    result = GatherResult(period=period)
    wanted = []
    for delivery, customer, bill_no in rows:
        if not paper_allowed(customer, key_accounts_only):
            result.refused += 1
            continue
        code = postal_code_of(delivery.address, customer.postal_code)
        wanted.append((code, delivery.address, bill_no, delivery.id, delivery))
    wanted.sort(key=lambda row: row[:4])
    next_no = (session.scalar(select(func.max(PrintBatch.batch_no)).where(PrintBatch.cycle_id == cycle.id)) or 0) + 1
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        batch = PrintBatch(
            cycle_id=cycle.id,
            batch_no=next_no,
            status=BatchStatus.RENDERING,
            bills_count=len(chunk),
            copies_count=sum(row[4].copies for row in chunk),
            created_by_id=actor.user_id,
        )
        session.add(batch)
        session.flush()
        session.add_all(
            PrintItem(
                batch_id=batch.id,
                delivery_id=delivery.id,
                bill_id=delivery.bill_id,
                customer_id=delivery.customer_id,
                position=position,
                postal_code=code,
                copies=delivery.copies,
                status=PrintItemStatus.WAITING,
            )
            for position, (code, _address, _no, _id, delivery) in enumerate(chunk, start=1)
        )
        record_audit(
            session, actor, "paper.batch_created", "print_batch", batch.id,
            after={"period": period, "batch_no": next_no, "bills": batch.bills_count, "copies": batch.copies_count},
        )
        result.batch_ids.append(batch.id)
        result.deliveries += batch.bills_count
        result.copies += batch.copies_count
        next_no += 1
    session.flush()
    return result


def unfinished_batch_ids(session: Session, period: str) -> list[int]:
    cycle = cycle_by_period(session, period)
    return list(
        session.scalars(
            select(PrintBatch.id).where(PrintBatch.cycle_id == cycle.id, PrintBatch.status == BatchStatus.RENDERING)
        )
    )


def item_ids(session: Session, batch_id: int) -> list[int]:
    return list(session.scalars(select(PrintItem.id).where(PrintItem.batch_id == batch_id).order_by(PrintItem.position)))


def render_items(session: Session, batch_id: int, ids: list[int]) -> int:
    """Render (once) the bills of these items; returns how many bills were looked at. Flushes."""
    bill_ids = sorted(
        set(session.scalars(select(PrintItem.bill_id).where(PrintItem.batch_id == batch_id, PrintItem.id.in_(ids))))
    )
    for bill in session.scalars(select(Bill).where(Bill.id.in_(bill_ids))):
        bill_pdf(session, bill)
    return len(bill_ids)


@dataclass(frozen=True)
class Progress:
    rendered: int
    total: int

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.rendered / self.total)


def batch_progress(session: Session, batch_id: int) -> Progress:
    """Bills of the batch whose PDF exists, out of all: durable, derived from the database."""
    total, rendered = session.execute(
        select(func.count(PrintItem.id), func.count(Bill.pdf_path))
        .join(Bill, Bill.id == PrintItem.bill_id)
        .where(PrintItem.batch_id == batch_id)
    ).one()
    return Progress(rendered, total)


def cycle_progress(session: Session, period: str) -> dict[int, Progress]:
    cycle = cycle_by_period(session, period)
    rows = session.execute(
        select(PrintItem.batch_id, func.count(PrintItem.id), func.count(Bill.pdf_path))
        .join(Bill, Bill.id == PrintItem.bill_id)
        .join(PrintBatch, PrintBatch.id == PrintItem.batch_id)
        .where(PrintBatch.cycle_id == cycle.id)
        .group_by(PrintItem.batch_id)
    ).all()
    return {batch_id: Progress(rendered, total) for batch_id, total, rendered in rows}


def batch_pdf_relpath(period: str, batch_no: int) -> str:
    return f"pdf/{period}/batch-{batch_no:04d}.pdf"


def default_duplex() -> bool:
    return bool(current_app.config["PAPER_DUPLEX"])


def assemble_batch(session: Session, batch_id: int, actor: Actor, duplex: bool | None = None) -> PrintBatch:
    """Cover sheet + each bill's stored PDF x its copies, in route order, as one file. Flushes.

    Duplex printing (PAPER_DUPLEX): the cover and every copy are padded to an even number of pages,
    so no copy starts on the back of another. Already assembled: nothing to do. Bills not rendered
    yet (a lost job) are rendered here.
    """
    duplex = default_duplex() if duplex is None else duplex
    from pypdf import PdfReader, PdfWriter

    batch = session.get(PrintBatch, batch_id)
    if batch is None:
        raise PaperError(_l("No such print batch."))
    if batch.status != BatchStatus.RENDERING:
        return batch
    cycle = session.get(Cycle, batch.cycle_id)
    items = list(batch.items)
    bills = {b.id: b for b in session.scalars(select(Bill).where(Bill.id.in_({i.bill_id for i in items})))}
    files = {bill_id: bill_pdf(session, bill) for bill_id, bill in bills.items()}
    data = {bill_id: Path(path).read_bytes() for bill_id, path in files.items()}
    readers = {bill_id: PdfReader(io.BytesIO(raw)) for bill_id, raw in data.items()}
    bill_pages = sum(len(readers[i.bill_id].pages) * i.copies for i in items)
    codes = [i.postal_code for i in items if i.postal_code]
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        from console.paper.pdf import FONT_FAMILY, cjk_font_path

        cover_html = render_template(
            "paper/cover.html",
            batch=batch,
            period=cycle.period,
            bills=len(items),
            copies=sum(i.copies for i in items),
            pages=bill_pages,
            first_code=min(codes) if codes else "",
            last_code=max(codes) if codes else "",
            generated_at=utcnow(),
            font_path=str(cjk_font_path()),
            font_family=FONT_FAMILY,
        )
    cover = PdfReader(io.BytesIO(render_pdf_bytes(cover_html)))
    writer = PdfWriter()

    def add(reader: PdfReader) -> None:
        writer.append(reader)
        if duplex and len(reader.pages) % 2:
            writer.add_blank_page()

    add(cover)
    overlays = _window_overlays(session, items)
    for item in items:
        for _copy in range(item.copies):
            if item.id not in overlays:
                add(readers[item.bill_id])
                continue
            # another recipient: their address in the envelope's window, on a copy of its own (the
            # pages of one reader are shared by every copy appended from it)
            first = len(writer.pages)
            add(PdfReader(io.BytesIO(data[item.bill_id])))
            writer.pages[first].merge_page(overlays[item.id].pages[0])
    out = io.BytesIO()
    writer.write(out)
    relpath = batch_pdf_relpath(cycle.period, batch.batch_no)
    write_atomically(Path(current_app.config["INSTANCE_PATH"]) / relpath, out.getvalue())
    batch.pdf_path = relpath
    batch.pages_count = len(writer.pages)
    batch.status = BatchStatus.READY
    batch.assembled_at = utcnow()
    record_audit(
        session, actor, "paper.batch_assembled", "print_batch", batch.id, after={"pages": batch.pages_count}
    )
    session.flush()
    return batch


def _window_overlays(session: Session, items: list) -> dict[int, object]:
    """Print item id -> a one-page PDF with its recipient's addressee block, for every item that goes
    to someone other than the account holder at the postal address printed on the bill."""
    from pypdf import PdfReader

    deliveries = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_({i.delivery_id for i in items})))}
    customers = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_({i.customer_id for i in items})))}
    overlays = {}
    for item in items:
        delivery, customer = deliveries[item.delivery_id], customers[item.customer_id]
        holder_address = (customer.postal_address or "").strip()
        if delivery.recipient_name == customer.name and delivery.address.strip().startswith(holder_address):
            continue
        overlays[item.id] = PdfReader(io.BytesIO(address_overlay_pdf(delivery.recipient_name, delivery.address,
                                                                     item.postal_code)))
    return overlays


def batch_file(batch: PrintBatch) -> Path:
    if not batch.pdf_path:
        raise PaperError(_l("The batch is still being rendered."))
    return Path(current_app.config["INSTANCE_PATH"]) / batch.pdf_path


def mark_printed(session: Session, batch_id: int, actor: Actor) -> PrintBatch:
    batch = session.get(PrintBatch, batch_id)
    if batch is None:
        raise PaperError(_l("No such print batch."))
    if batch.status == BatchStatus.PRINTED:
        return batch
    if batch.status != BatchStatus.READY:
        raise PaperError(_l("The batch is still being rendered."))
    batch.status = BatchStatus.PRINTED
    batch.printed_at = utcnow()
    batch.printed_by_id = actor.user_id
    record_audit(session, actor, "paper.batch_printed", "print_batch", batch.id, before={"status": "ready"},
                 after={"status": "printed"})
    session.flush()
    return batch


def render_batch_now(session: Session, batch_id: int, actor: Actor, duplex: bool | None = None) -> PrintBatch:
    """Without a worker (the command's --now): render every bill here, then assemble."""
    render_items(session, batch_id, item_ids(session, batch_id))
    return assemble_batch(session, batch_id, actor, duplex=duplex)


# Rendering on the `pdf` queue, asked for after the commit (console.outbox), deterministic job ids.
RENDER_CHUNK = 25
PDF_JOB_OPTIONS = {"job_timeout": 900, "failure_ttl": 7 * 86400}


def queue_rendering(session: Session, batch_ids: list[int], chunk_size: int = RENDER_CHUNK) -> int:
    """One render job per chunk of each batch's items (in route order); the last chunk to finish asks
    for the assembly. Returns the number of jobs asked for."""
    jobs = 0
    for batch_id in batch_ids:
        ids = item_ids(session, batch_id)
        for start in range(0, len(ids), chunk_size):
            part = ids[start : start + chunk_size]
            outbox.after_commit(session, "pdf", "jobs.paper.render_chunk", batch_id, part,
                                job_id=f"paper-render-{batch_id}-{part[0]}", **PDF_JOB_OPTIONS)
            jobs += 1
    return jobs


def queue_assembly(session: Session, batch_id: int) -> None:
    outbox.after_commit(session, "pdf", "jobs.paper.assemble", batch_id, job_id=f"paper-assemble-{batch_id}",
                        **PDF_JOB_OPTIONS)


def queue_assembly_when_rendered(session: Session, batch_id: int) -> bool:
    """After a chunk's commit, in a transaction of its own (so the last chunk to commit sees them all)."""
    progress = batch_progress(session, batch_id)
    if progress.rendered < progress.total:
        return False
    queue_assembly(session, batch_id)
    return True


def queue_bill_pdfs(session: Session, bill_ids: list[int], chunk_size: int = RENDER_CHUNK) -> int:
    """Render jobs for these bills' PDFs (e.g. ahead of e-mails with attachments); returns the job count."""
    ids = sorted(set(bill_ids))
    for i in range(0, len(ids), chunk_size):
        part = ids[i : i + chunk_size]
        outbox.after_commit(session, "pdf", "jobs.paper.render_bills", part,
                            job_id=f"paper-bills-{part[0]}-{part[-1]}", **PDF_JOB_OPTIONS)
    return -(-len(ids) // chunk_size)


def queue_unfinished_batches(session: Session) -> int:
    """The sweeper's question: every batch still `rendering` gets its render jobs (or, when all its
    bills are rendered, its assembly) asked for again; live jobs are not duplicated."""
    jobs = 0
    for batch_id in session.scalars(select(PrintBatch.id).where(PrintBatch.status == BatchStatus.RENDERING)):
        if queue_assembly_when_rendered(session, batch_id):
            jobs += 1
        else:
            jobs += queue_rendering(session, [batch_id])
    return jobs


def render_bills(session: Session, bill_ids: list[int]) -> int:
    """Render (once) these bills' PDFs. Flushes."""
    bills = list(session.scalars(select(Bill).where(Bill.id.in_(bill_ids))))
    for bill in bills:
        bill_pdf(session, bill)
    session.flush()
    return len(bills)


# Figures the admin's dashboard and the clerk's page ask of the paper domain.
def cycle_paper_counts(session: Session, cycle_id: int) -> dict[str, int]:
    """Paper deliveries of the cycle; printed = in a batch marked printed; dispatched = handed to the
    post or a deliverer (and perhaps delivered or returned since)."""
    row = session.execute(
        select(
            func.coalesce(func.sum(case((PrintBatch.status == BatchStatus.PRINTED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((PrintItem.status.in_((PrintItemStatus.DISPATCHED, PrintItemStatus.DELIVERED, PrintItemStatus.RETURNED)), 1), else_=0)), 0),
        )
        .select_from(PrintItem)
        .join(PrintBatch, PrintBatch.id == PrintItem.batch_id)
        .where(PrintBatch.cycle_id == cycle_id)
    ).one()
    deliveries = session.scalar(
        select(func.count()).select_from(Delivery).join(Bill, Bill.id == Delivery.bill_id)
        .where(Bill.cycle_id == cycle_id, Delivery.channel == "paper", Delivery.status != DeliveryStatus.CANCELLED)
    )
    return {"paper_deliveries": deliveries, "printed": int(row[0]), "dispatched": int(row[1])}


def paper_queue(session: Session) -> dict:
    """What waits for the clerk on paper: bills not yet in a print batch, batches ready to print,
    printed bills not yet handed over, and bills out with the post or a deliverer awaiting confirmation."""
    in_batch = select(PrintItem.id).where(PrintItem.delivery_id == Delivery.id).exists()
    to_batch = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.channel == "paper", Delivery.status == DeliveryStatus.QUEUED,
                                                         ~in_batch)
    )
    ready = [dict(r._mapping) for r in session.execute(
        select(PrintBatch.id, PrintBatch.batch_no, PrintBatch.bills_count, PrintBatch.copies_count, Cycle.period)
        .join(Cycle, Cycle.id == PrintBatch.cycle_id)
        .where(PrintBatch.status == BatchStatus.READY)
        .order_by(PrintBatch.created_at, PrintBatch.id)
        .limit(50)
    )]
    by_status = dict(session.execute(
        select(PrintItem.status, func.count())
        .join(PrintBatch, PrintBatch.id == PrintItem.batch_id)
        .where(or_(PrintItem.status == PrintItemStatus.DISPATCHED, and_(PrintItem.status == PrintItemStatus.WAITING, PrintBatch.status == BatchStatus.PRINTED)))
        .group_by(PrintItem.status)
    ).all())
    return {"to_batch": to_batch, "ready": ready, "to_dispatch": by_status.get("waiting", 0),
            "awaiting_confirmation": by_status.get("dispatched", 0)}
