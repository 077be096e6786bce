"""Publishing a cycle: its bills go on the web page and the outbox gets one delivery per recipient.

The transactional outbox: the bills' status, their delivery rows and the send jobs asked for
(console.delivery.queueing) are written in one transaction; the jobs reach RQ after the commit
(console.outbox), and the sweeper re-enqueues anything a lost Redis forgot. Publishing again writes nothing new (the unique
key bill/channel/address).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from console.audit import Actor, record_audit
from console.delivery.policy import open_work_item
from console.delivery.queueing import queue_queued_sends
from console.emailaddress import InvalidAddress, parse_address
from console.models import Bill, Customer, Cycle, Delivery
from console.models.billing import BillStatus, CycleStatus
from console.models.delivery import DeliveryStatus
from console.paper.rules import paper_recipients
from console.portal.services import issue_bill_codes

PUBLISHABLE = ("generated", "published")


class PublishError(ValueError):
    pass


def email_targets(customer: Customer) -> list[tuple[int | None, str, str]]:
    """(recipient id or None for the holder, raw address, name) of every e-mail copy of a bill."""
    targets: list[tuple[int | None, str, str]] = []
    if customer.wants_ebill and customer.channel_email and (customer.email or "").strip():
        targets.append((None, customer.email.strip(), customer.name))
    for rec in customer.recipients:
        if rec.active and rec.channel == "email":
            targets.append((rec.id, rec.address.strip(), rec.name))
    return targets


def publish_cycle(
    session: Session,
    cycle_id: int,
    actor: Actor,
    now: datetime,
    paper_key_accounts_only: bool = True,
    bill_ids: tuple[int, int] | None = None,
) -> dict:
    """Publish the cycle's generated bills (those with ids in `bill_ids`, first..last, when given) and
    write their deliveries; flush, never commit. The cycle is published once none of its bills is
    left unpublished, so a large cycle can be published range by range, one transaction each, and a
    run stopped halfway resumes where it stopped (published bills and the unique delivery key).

    An e-mail address that does not parse gets its delivery marked failed with a work item at once
    (someone must correct it), never a send."""
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise PublishError(_l("There is no cycle %(period)s.", period=str(cycle_id)))
    if cycle.status not in PUBLISHABLE:
        raise PublishError(_l("The cycle %(period)s is not completely generated: only a generated cycle can be published.",
                              period=cycle.period))
    before = {"status": cycle.status}

    in_range = (Bill.id.between(*bill_ids),) if bill_ids else ()
    bills = session.scalars(
        select(Bill).where(Bill.cycle_id == cycle_id, *in_range).order_by(Bill.id)
    ).all()
    customer_ids = {b.customer_id for b in bills}
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(Customer.id.in_(customer_ids)).options(selectinload(Customer.recipients))
        )
    } if customer_ids else {}
    existing = set(
        session.execute(
            select(Delivery.bill_id, Delivery.channel, Delivery.address)
            .join(Bill, Bill.id == Delivery.bill_id)
            .where(Bill.cycle_id == cycle_id, *in_range)
        ).all()
    )

    counts = {"bills_published": 0, "email": 0, "paper": 0, "invalid_addresses": 0}
    invalid: list[Delivery] = []
    for bill in bills:
        if bill.status != BillStatus.PUBLISHED:
            bill.status = BillStatus.PUBLISHED
            bill.published_at = now
            counts["bills_published"] += 1
        customer = customers[bill.customer_id]
        for recipient_id, raw, name in email_targets(customer):
            try:
                address, error = parse_address(raw), None
            except InvalidAddress as exc:
                address, error = raw[:300], str(exc)
            key = (bill.id, "email", address)
            if key in existing:
                continue
            existing.add(key)
            delivery = Delivery(
                bill_id=bill.id,
                customer_id=customer.id,
                recipient_id=recipient_id,
                channel="email",
                address=address,
                recipient_name=name[:200],
                copies=1,
                status=DeliveryStatus.QUEUED if error is None else DeliveryStatus.FAILED,
                attempts_made=0,
                send_errors=0,
                last_error=error,
                created_at=now,
            )
            session.add(delivery)
            counts["email"] += 1
            if error is not None:
                invalid.append(delivery)
        for target in paper_recipients(customer, paper_key_accounts_only):
            key = (bill.id, "paper", target.delivery_address)
            if key in existing:
                continue
            existing.add(key)
            session.add(
                Delivery(
                    bill_id=bill.id,
                    customer_id=customer.id,
                    recipient_id=target.recipient_id,
                    channel="paper",
                    address=target.delivery_address,
                    recipient_name=target.name[:200],
                    copies=target.copies,
                    status=DeliveryStatus.QUEUED,
                    attempts_made=0,
                    send_errors=0,
                    created_at=now,
                )
            )
            counts["paper"] += 1
    session.flush()
    for delivery in invalid:
        open_work_item(session, delivery, "email_failed")
    counts["invalid_addresses"] = len(invalid)

    left = session.scalar(select(func.count(Bill.id)).where(
        Bill.cycle_id == cycle_id, Bill.status != BillStatus.PUBLISHED))
    if left == 0 and cycle.status != CycleStatus.PUBLISHED:
        cycle.status = CycleStatus.PUBLISHED
        cycle.published_at = now
    action = "cycle.publish" if left == 0 else "cycle.publish_part"
    record_audit(session, actor, action, "cycle", cycle.id, before=before,
                 after={"status": cycle.status, "bills": list(bill_ids) if bill_ids else None} | counts)
    session.flush()
    return {"cycle_id": cycle.id, "period": cycle.period, "bills_left": left} | counts


def unpublished_ranges(session: Session, cycle_id: int, size: int) -> list[tuple[int, int]]:
    """The cycle's bills not yet published, as id ranges of at most `size` bills each."""
    ids = session.scalars(
        select(Bill.id).where(Bill.cycle_id == cycle_id, Bill.status != BillStatus.PUBLISHED).order_by(Bill.id)
    ).all()
    return [(ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]


def publish_and_queue(
    session: Session, cycle_id: int, actor: Actor, now: datetime, config: Mapping,
    bill_ids: tuple[int, int] | None = None,
) -> dict:
    """Publish (as above), issue the registration code printed on each bill of a customer not yet
    registered, and ask for the send jobs of every queued e-mail of those bills (for an e-mail that
    attaches a PDF not rendered yet, its bill's render job, which asks for the send after it), which
    go to the queue when the caller commits. `config`: the app's settings."""
    result = publish_cycle(session, cycle_id, actor, now, paper_key_accounts_only=config["PAPER_KEY_ACCOUNTS_ONLY"],
                           bill_ids=bill_ids)
    result["registration_codes"] = issue_bill_codes(
        session, cycle_id, config["SECRET_KEY"], int(config["PORTAL_BILL_CODE_DAYS"]), now, bill_ids=bill_ids
    )
    result["send_jobs"] = queue_queued_sends(session, now, int(config["SEND_BATCH_SIZE"]), cycle_id=cycle_id,
                                             bill_ids=bill_ids)
    return result
