"""E-mail delivery figures of a cycle: `console cycle report PERIOD --json`, `console delivery counts`,
and the admin's cycle dashboard (console.inboxes.dashboard asks `email_funnel`)."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from console.models import Bill, Delivery, DeliveryAttempt, WorkItem
from console.models.delivery import Channel, ConfirmedBy, DeliveryStatus


def delivery_counts(session: Session, cycle_id: int) -> dict:
    """Counts of the cycle's e-mail deliveries: sent, confirmed (by how), resent, failed, escalated."""
    in_cycle = select(Bill.id).where(Bill.cycle_id == cycle_id).scalar_subquery()
    by_status = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.bill_id.in_(in_cycle), Delivery.channel == "email")
            .group_by(Delivery.status)
        ).all()
    )
    by_how = dict(
        session.execute(
            select(Delivery.confirmed_by, func.count())
            .where(Delivery.bill_id.in_(in_cycle), Delivery.channel == "email", Delivery.status == DeliveryStatus.CONFIRMED)
            .group_by(Delivery.confirmed_by)
        ).all()
    )
    attempts = session.execute(
        select(
            func.count(DeliveryAttempt.id),
            func.count(func.distinct(DeliveryAttempt.delivery_id)),
            func.sum(case((DeliveryAttempt.attempt_no > 1, 1), else_=0)),
            func.sum(case((DeliveryAttempt.dsn_requested.is_(False), 1), else_=0)),
        )
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.bill_id.in_(in_cycle), Delivery.channel == "email", DeliveryAttempt.sent_at.is_not(None))
    ).one()
    refused = session.scalar(
        select(func.count(DeliveryAttempt.id))
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.bill_id.in_(in_cycle), DeliveryAttempt.outcome == "refused")
    )
    escalated = dict(
        session.execute(
            select(WorkItem.reason, func.count())
            .join(Delivery, Delivery.id == WorkItem.delivery_id)
            .where(Delivery.bill_id.in_(in_cycle), Delivery.channel == "email")
            .group_by(WorkItem.reason)
        ).all()
    )
    paper = session.scalar(
        select(func.count(Delivery.id)).where(Delivery.bill_id.in_(in_cycle), Delivery.channel == "paper")
    )
    return {
        "deliveries": sum(by_status.values()),
        "queued": by_status.get("queued", 0),
        "sent": attempts[1] or 0,  # deliveries with at least one message out
        "messages_sent": attempts[0] or 0,
        "awaiting_confirmation": by_status.get("sent", 0),
        "confirmed": by_status.get("confirmed", 0),
        "confirmed_by": {how: by_how.get(how, 0) for how in ("delivered", "relayed", "expanded", "portal_open")},
        "resent": attempts[2] or 0,
        "failed": by_status.get("failed", 0),
        "refused_at_send": refused or 0,
        "escalated": sum(escalated.values()),
        "escalated_by_reason": escalated,
        "sent_without_dsn": attempts[3] or 0,
        "cancelled": by_status.get("cancelled", 0),
        "paper_deliveries": paper or 0,
    }


def email_funnel(session: Session, cycle_id: int) -> dict[str, int]:
    """The dashboard's e-mail steps: deliveries, e-mailed, confirmed (by how), resent, still queued."""
    in_cycle = Delivery.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id))
    email = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Delivery.attempts_made > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.status == DeliveryStatus.CONFIRMED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == ConfirmedBy.DELIVERED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == ConfirmedBy.RELAYED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.confirmed_by == ConfirmedBy.PORTAL_OPEN, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.attempts_made > 1, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.status == DeliveryStatus.QUEUED, 1), else_=0)), 0),
        ).where(in_cycle, Delivery.channel == Channel.EMAIL, Delivery.status != DeliveryStatus.CANCELLED)
    ).one()
    return {
        "email_deliveries": email[0], "emailed": int(email[1]), "confirmed": int(email[2]),
        "confirmed_delivered": int(email[3]), "confirmed_relayed": int(email[4]),
        "confirmed_portal_open": int(email[5]), "resent": int(email[6]), "email_queued": int(email[7]),
    }
