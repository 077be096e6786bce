"""Deliveries that follow-up asks for: the bill again to a corrected e-mail address, a switch to paper.

The inboxes decide *that* an address is corrected or a customer goes on paper; the rows those
decisions need are written here, through the delivery domain's conditional transitions, and the
send job is asked for in the same transaction (console.delivery.queueing, after the commit).
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.delivery.policy import transition
from console.delivery.queueing import queue_sends
from console.models import Customer, Delivery
from console.models.delivery import Channel, DeliveryStatus
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
    a new delivery, or the bill's earlier cancelled/failed delivery to that address queued again.
    Returns the delivery that will be sent; its send job goes to the queue when the caller commits."""
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
        # An earlier cancelled or failed delivery to the same address: queued again.
        if not transition(
            session, existing, {"status": existing.status, "attempts_made": existing.attempts_made},
            status=DeliveryStatus.QUEUED, confirm_due_at=None, claimed_until=None, claimed_by=None,
            enqueued_at=None, send_errors=0, last_error=None, updated_at=now,
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
        after={"bill_id": new.bill_id, "address": new.address, "replaces": delivery.id},
    )
    if new.channel == Channel.EMAIL:
        queue_sends(session, [new.id], now, batch_size)
    return new


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
