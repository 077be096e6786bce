"""Deliveries that follow-up asks for: the bills of a case again to a corrected e-mail or postal
address (paper: reprinted in the next print batch), a switch to paper.

The inboxes decide *that* an address is corrected or a customer goes on paper; the rows those
decisions need are written here, through the delivery domain's conditional transitions, and the
send job is asked for in the same transaction (console.delivery.queueing, after the commit).
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.delivery.policy import transition
from console.delivery.queueing import queue_sends
from console.models import Customer, Delivery, WorkItem
from console.models.delivery import Channel, DeliveryStatus, WorkItemDelivery
from console.paper.rules import paper_recipients


class ResendRefused(ValueError):
    pass


def resend_to_address(
    session: Session,
    delivery: Delivery,
    new_address: str,
    actor: Actor,
    now: datetime,
    batch_size: int,
    recipient_name: str | None = None,
) -> Delivery:
    """Cancel `delivery` (unless it was confirmed meanwhile) and queue the bill to `new_address`:
    a new delivery, or the bill's earlier cancelled/failed delivery to that address queued again in a
    new round (`attempt_base = attempts_made`: the next attempt is numbered on, and the one resend
    the policy allows counts from it — no counter is left over from before). Paper goes to the next
    print batch; e-mail's send job goes to the queue when the caller commits."""
    existing = session.scalar(
        select(Delivery).where(
            Delivery.bill_id == delivery.bill_id, Delivery.channel == delivery.channel, Delivery.address == new_address
        )
    )
    if existing is not None and existing.id == delivery.id:
        raise ResendRefused(_l("The new address is the same as the old one."))
    if existing is not None:
        if existing.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.CONFIRMED):
            raise ResendRefused(_l("This bill already has a delivery to that address."))
        # An earlier cancelled or failed delivery to the same address: queued again, a new round.
        if not transition(
            session, existing, {"status": existing.status, "attempts_made": existing.attempts_made},
            status=DeliveryStatus.QUEUED, attempt_base=existing.attempts_made, confirm_due_at=None,
            confirmed_at=None, confirmed_by=None, claimed_until=None, claimed_by=None, enqueued_at=None,
            send_errors=0, last_error=None, updated_at=now,
        ):
            raise ResendRefused(_l("This bill already has a delivery to that address."))
        new = existing
    else:
        new = Delivery(
            bill_id=delivery.bill_id,
            customer_id=delivery.customer_id,
            recipient_id=delivery.recipient_id,
            channel=delivery.channel,
            address=new_address,
            recipient_name=recipient_name or delivery.recipient_name,
            copies=delivery.copies,
            status=DeliveryStatus.QUEUED,
            attempts_made=0,
            attempt_base=0,
            send_errors=0,
            created_at=now,
        )
        session.add(new)
    before = delivery.status
    if delivery.status != DeliveryStatus.CONFIRMED:
        transition(session, delivery, {"status": delivery.status}, status=DeliveryStatus.CANCELLED, claimed_until=None,
                   updated_at=now)
    session.flush()
    record_audit(
        session, actor, "delivery.cancel", "delivery", delivery.id,
        before={"status": before}, after={"status": delivery.status, "superseded_by": new.id},
    )
    record_audit(
        session, actor, "delivery.resend", "delivery", new.id,
        after={"bill_id": new.bill_id, "address": new.address, "replaces": delivery.id,
               "round_from_attempt": new.attempt_base},
    )
    if new.channel == Channel.EMAIL:
        queue_sends(session, [new.id], now, batch_size)
    return new


def case_deliveries(session: Session, item: WorkItem) -> list[Delivery]:
    """Every delivery on a case (work item), oldest first (the item's first delivery included)."""
    linked = select(WorkItemDelivery.delivery_id).where(WorkItemDelivery.work_item_id == item.id)
    return list(session.scalars(
        select(Delivery).where(or_(Delivery.id == item.delivery_id, Delivery.id.in_(linked)))
        .order_by(Delivery.created_at, Delivery.id)
    ))


def resend_case(
    session: Session,
    item: WorkItem,
    new_address: str,
    actor: Actor,
    now: datetime,
    batch_size: int,
    recipient_names: dict[int | None, str] | None = None,
) -> list[Delivery]:
    """The address of a case is corrected: every failed delivery on it (any bill, any recipient row
    at that address, e-mail or paper) is resent to `new_address`, a fresh round each. A bill that
    already has a live delivery to the new address is not sent twice (its failed one is cancelled).
    Returns the deliveries that will be sent; refused when there is nothing to resend."""
    names = recipient_names or {}
    resent: list[Delivery] = []
    failed = [d for d in case_deliveries(session, item) if d.status == DeliveryStatus.FAILED]
    if any(d.address == new_address for d in failed):
        raise ResendRefused(_l("The new address is the same as the old one."))
    for delivery in failed:
        try:
            resent.append(resend_to_address(session, delivery, new_address, actor, now, batch_size,
                                            recipient_name=names.get(delivery.recipient_id)))
        except ResendRefused:
            # This bill is on its way to (or arrived at) the new address already.
            transition(session, delivery, {"status": DeliveryStatus.FAILED}, status=DeliveryStatus.CANCELLED,
                       claimed_until=None, updated_at=now)
    if not resent and not failed:
        raise ResendRefused(_l("Nothing on this item is waiting to be sent again."))
    return resent


def add_paper_copies(session: Session, bill_id: int, customer: Customer, key_accounts_only: bool,
                     now: datetime) -> list[Delivery]:
    """Queued paper deliveries of this bill for every paper target of the customer (the holder and
    paper recipients) that has none yet: the print batches pick them up."""
    added = []
    for target in paper_recipients(customer, key_accounts_only):
        exists = session.scalar(
            select(Delivery.id).where(
                Delivery.bill_id == bill_id, Delivery.channel == Channel.PAPER,
                Delivery.address == target.delivery_address,
            )
        )
        if exists is None:
            delivery = Delivery(
                bill_id=bill_id, customer_id=customer.id, recipient_id=target.recipient_id, channel=Channel.PAPER,
                address=target.delivery_address, recipient_name=target.name[:200], copies=target.copies,
                status=DeliveryStatus.QUEUED, attempts_made=0, send_errors=0, created_at=now,
            )
            session.add(delivery)
            added.append(delivery)
    session.flush()
    return added
