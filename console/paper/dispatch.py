"""Dispatch of printed bills: by post (tracking number) or by hand (a meter reader's or clerk's name),
then the confirmation of delivery or the return. Every step writes the contact history and the audit;
a returned letter opens a work item, like a failed e-mail."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit, record_contact
from console.db import utcnow
from console.delivery.policy import open_work_item, transition
from console.models import Bill, Customer, Cycle, Delivery, WorkItem
from console.models.customers import ContactEvent
from console.models.delivery import DeliveryStatus, WorkItemDelivery
from console.models.paper import BatchStatus, PrintBatch, PrintItem, PrintItemStatus
from console.paper.batches import PaperError

RETURNED_REASON = "post_returned"


def _item(session: Session, item_id: int) -> PrintItem:
    item = session.get(PrintItem, item_id)
    if item is None:
        raise PaperError(_l("No such printed bill."))
    return item


def _dispatch(session: Session, item: PrintItem, method: str, actor: Actor, tracking_no: str | None,
              deliverer: str | None) -> PrintItem:
    batch = session.get(PrintBatch, item.batch_id)
    if method not in next_steps(item, batch):
        if batch.status != BatchStatus.PRINTED:
            raise PaperError(_l("Mark the batch printed before dispatching its bills."))
        raise PaperError(_l("This bill has already been dispatched."))
    delivery = session.get(Delivery, item.delivery_id)
    bill = session.get(Bill, item.bill_id)
    item.status = PrintItemStatus.DISPATCHED
    item.dispatch_method = method
    item.tracking_no = tracking_no
    item.deliverer = deliverer
    item.dispatched_at = utcnow()
    item.dispatched_by_id = actor.user_id
    delivery.status = DeliveryStatus.SENT
    delivery.attempts_made = (delivery.attempts_made or 0) + 1
    details = {"method": method, "tracking_no": tracking_no, "deliverer": deliverer, "copies": item.copies,
               "address": delivery.address, "print_item_id": item.id}
    if method == "post":
        code, params = ContactEvent.PAPER_POSTED, {"tracking_no": tracking_no}
    else:
        code, params = ContactEvent.PAPER_HANDED, {"deliverer": deliverer}
    params |= {"bill_no": bill.bill_no, "recipient": delivery.recipient_name}
    record_contact(session, item.customer_id, "paper", code, actor, bill_id=bill.id, details=details, params=params)
    record_audit(session, actor, f"paper.dispatched_{method}", "print_item", item.id,
                 before={"status": "waiting"}, after={"status": "dispatched"} | details)
    session.flush()
    return item


def clean_tracking_no(tracking_no: str | None) -> str:
    tracking_no = (tracking_no or "").strip()
    if not tracking_no or len(tracking_no) > 64:
        raise PaperError(_l("Enter the tracking number."))
    return tracking_no


def dispatch_by_post(session: Session, item_id: int, tracking_no: str, actor: Actor) -> PrintItem:
    tracking_no = clean_tracking_no(tracking_no)
    return _dispatch(session, _item(session, item_id), "post", actor, tracking_no, None)


def dispatch_by_hand(session: Session, item_id: int, deliverer: str, actor: Actor) -> PrintItem:
    deliverer = clean_deliverer(deliverer)
    return _dispatch(session, _item(session, item_id), "hand", actor, None, deliverer)


def next_steps(item: PrintItem, batch: PrintBatch) -> tuple[str, ...]:
    """What a printed bill can go through now — by post or by hand once its batch is printed, then
    delivered or returned. The screens offer these buttons only; the steps refuse anything else."""
    if item.status == PrintItemStatus.WAITING and batch.status == BatchStatus.PRINTED:
        return ("post", "hand")
    if item.status == PrintItemStatus.DISPATCHED:
        return ("delivered", "returned")
    return ()


def _waiting(batch_id: int, postal_code: str | None):  # noqa: ANN202
    where = [PrintItem.batch_id == batch_id, PrintItem.status == PrintItemStatus.WAITING]
    if postal_code:
        where.append(PrintItem.postal_code == postal_code)
    return where


def waiting_in_batch(session: Session, batch_id: int, postal_code: str | None = None) -> dict[str, int]:
    """The bills of the batch (of one postal code, when given) still waiting to be dispatched and their
    copies: what handing the batch to a deliverer covers."""
    bills, copies = session.execute(
        select(func.count(PrintItem.id), func.coalesce(func.sum(PrintItem.copies), 0)).where(*_waiting(batch_id, postal_code))
    ).one()
    return {"bills": int(bills), "copies": int(copies)}


def can_hand_batch(session: Session, batch: PrintBatch) -> bool:
    """Is there anything to hand to a deliverer: the batch printed, and bills of it still waiting."""
    return batch.status == BatchStatus.PRINTED and waiting_in_batch(session, batch.id)["bills"] > 0


def clean_deliverer(deliverer: str | None) -> str:
    deliverer = " ".join((deliverer or "").split())
    if not deliverer or len(deliverer) > 100:
        raise PaperError(_l("Enter the name of the person delivering by hand."))
    return deliverer


def dispatch_batch_by_hand(session: Session, batch_id: int, deliverer: str, actor: Actor,
                           postal_code: str | None = None) -> int:
    """Hand every waiting bill of the batch (optionally of one postal code) to one deliverer; refused
    when there is none (see can_hand_batch)."""
    deliverer = clean_deliverer(deliverer)
    batch = session.get(PrintBatch, batch_id)
    if batch is None or batch.status != BatchStatus.PRINTED:
        raise PaperError(_l("Mark the batch printed before dispatching its bills."))
    ids = list(session.scalars(select(PrintItem.id).where(*_waiting(batch_id, postal_code)).order_by(PrintItem.position)))
    if not ids:
        raise PaperError(_l("No bill of this batch is waiting to be dispatched."))
    for item_id in ids:
        dispatch_by_hand(session, item_id, deliverer, actor)
    return len(ids)


def confirm_delivered(session: Session, item_id: int, actor: Actor, note: str = "") -> PrintItem:
    item = _item(session, item_id)
    if item.status != PrintItemStatus.DISPATCHED:
        raise PaperError(_l("Only a dispatched bill can be confirmed."))
    delivery = session.get(Delivery, item.delivery_id)
    now = utcnow()
    item.status = PrintItemStatus.DELIVERED
    item.outcome_at = now
    item.outcome_note = note.strip() or None
    delivery.status = DeliveryStatus.CONFIRMED
    delivery.confirmed_at = now
    delivery.confirmed_by = item.dispatch_method  # post / hand
    bill = session.get(Bill, item.bill_id)
    record_contact(session, item.customer_id, "paper", ContactEvent.PAPER_DELIVERED, actor, bill_id=bill.id,
                   params={"bill_no": bill.bill_no, "recipient": delivery.recipient_name}, note=item.outcome_note,
                   details={"method": item.dispatch_method, "print_item_id": item.id})
    record_audit(session, actor, "paper.delivered", "print_item", item.id, before={"status": "dispatched"},
                 after={"status": "delivered", "note": item.outcome_note})
    session.flush()
    return item


def record_returned(session: Session, item_id: int, actor: Actor, note: str = "") -> WorkItem:
    """The letter came back: the delivery failed, and a person must call and correct the address."""
    item = _item(session, item_id)
    if item.status not in ("dispatched", "returned"):
        raise PaperError(_l("Only a dispatched bill can come back."))
    delivery = session.get(Delivery, item.delivery_id)
    customer = session.get(Customer, item.customer_id)
    bill = session.get(Bill, item.bill_id)
    if item.status == PrintItemStatus.RETURNED:
        existing = session.scalar(
            select(WorkItem).join(WorkItemDelivery, WorkItemDelivery.work_item_id == WorkItem.id)
            .where(WorkItemDelivery.delivery_id == delivery.id, WorkItem.reason == RETURNED_REASON)
            .order_by(WorkItem.id.desc())
        )
        if existing is not None:
            return existing
    now = utcnow()
    item.status = PrintItemStatus.RETURNED
    item.outcome_at = now
    item.outcome_note = note.strip() or None
    transition(session, delivery, {"status": delivery.status}, status=DeliveryStatus.FAILED, updated_at=now)
    record_contact(session, customer.id, "paper", ContactEvent.PAPER_RETURNED, actor, bill_id=bill.id,
                   params={"bill_no": bill.bill_no, "address": delivery.address}, note=item.outcome_note,
                   details={"method": item.dispatch_method, "tracking_no": item.tracking_no,
                            "deliverer": item.deliverer, "print_item_id": item.id,
                            "delivery_id": delivery.id, "recipient_id": delivery.recipient_id,
                            "recipient_name": delivery.recipient_name})
    record_audit(session, actor, "paper.returned", "print_item", item.id, before={"status": "dispatched"},
                 after={"status": "returned", "note": item.outcome_note})
    # The delivery domain opens (or joins) the case of this customer and address.
    work_item = open_work_item(session, delivery, RETURNED_REASON, {
        "method": item.dispatch_method, "tracking_no": item.tracking_no, "deliverer": item.deliverer,
        "note": item.outcome_note, "copies": item.copies})
    session.flush()
    return work_item


@dataclass(frozen=True)
class RunSheetLine:
    item: PrintItem
    bill_no: str
    recipient_name: str
    address: str
    account_no: str


def run_sheet(session: Session, deliverer: str, period: str | None = None) -> list[RunSheetLine]:
    """The hand-delivery run sheet of one deliverer: bills still out with them, in route order."""
    query = (
        select(PrintItem, Bill.bill_no, Delivery.recipient_name, Delivery.address, Customer.account_no)
        .join(Bill, Bill.id == PrintItem.bill_id)
        .join(Delivery, Delivery.id == PrintItem.delivery_id)
        .join(Customer, Customer.id == PrintItem.customer_id)
        .join(PrintBatch, PrintBatch.id == PrintItem.batch_id)
        .where(PrintItem.dispatch_method == "hand", PrintItem.deliverer == deliverer,
               PrintItem.status == PrintItemStatus.DISPATCHED)
        .order_by(PrintItem.postal_code, Delivery.address, PrintItem.id)
    )
    if period:
        query = query.join(Cycle, Cycle.id == PrintBatch.cycle_id).where(Cycle.period == period)
    return [RunSheetLine(*row) for row in session.execute(query)]


def deliverers(session: Session) -> list[str]:
    return list(session.scalars(
        select(PrintItem.deliverer).where(PrintItem.dispatch_method == "hand", PrintItem.status == PrintItemStatus.DISPATCHED)
        .distinct().order_by(PrintItem.deliverer)
    ))
