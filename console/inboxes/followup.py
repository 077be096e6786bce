"""Resending a bill to a corrected address: the old delivery is cancelled, a new one queued.

The delivery domain owns sending. Until it offers a "new delivery for this bill and address"
function, this module writes the rows itself following the contract in console/models/delivery.py;
the route enqueues the send after commit (see `enqueue_send`), or the delivery sweeper picks the
queued row up.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.models import Delivery


class ResendRefused(ValueError):
    pass


def correct_address_and_resend(
    session: Session, delivery: Delivery, new_address: str, actor: Actor, recipient_name: str | None = None
) -> Delivery:
    """Cancels `delivery` and inserts a queued delivery of the same bill to `new_address`.

    The new row is the promise (the transactional outbox): the caller commits, then enqueues.
    """
    existing = session.scalar(
        select(Delivery).where(
            Delivery.bill_id == delivery.bill_id, Delivery.channel == delivery.channel, Delivery.address == new_address
        )
    )
    if existing is not None and existing.id != delivery.id:
        if existing.status in ("queued", "sent", "confirmed"):
            raise ResendRefused(_l("This bill already has a delivery to that address."))
        # A cancelled or failed earlier delivery to the same address: send it again as a fresh one.
        existing.status = "queued"
        existing.confirm_due_at = None
        new = existing
    elif existing is not None:
        raise ResendRefused(_l("The new address is the same as the old one."))
    else:
        new = Delivery(
            bill_id=delivery.bill_id,
            customer_id=delivery.customer_id,
            recipient_id=delivery.recipient_id,
            channel=delivery.channel,
            address=new_address,
            recipient_name=recipient_name or delivery.recipient_name,
            copies=delivery.copies,
            status="queued",
            attempts_made=0,
        )
        session.add(new)
    before = delivery.status
    if delivery.status != "confirmed":
        delivery.status = "cancelled"
    session.flush()
    record_audit(
        session, actor, "delivery.cancel", "delivery", delivery.id,
        before={"status": before}, after={"status": delivery.status, "superseded_by": new.id},
    )
    record_audit(
        session, actor, "delivery.resend", "delivery", new.id,
        after={"bill_id": new.bill_id, "address": new.address, "replaces": delivery.id},
    )
    return new


def enqueue_send(session: Session, delivery_ids: list[int], app=None) -> bool:  # noqa: ANN001
    """After commit: hands the new deliveries to the delivery domain's sender
    (jobs.delivery.enqueue_sends). False when the queue cannot take them now: the rows stay
    queued and the delivery sweeper sends them on its next pass (the row is the promise)."""
    try:
        from jobs.delivery import enqueue_sends
    except ImportError:
        return False
    try:
        enqueue_sends(session, delivery_ids, app=app)
    except Exception:  # noqa: BLE001 - Redis down after the commit: the sweeper re-finds queued rows
        import logging

        logging.getLogger(__name__).exception("could not enqueue resend of %s; left for the sweeper", delivery_ids)
        session.rollback()
        return False
    return True
