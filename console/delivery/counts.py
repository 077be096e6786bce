"""E-mail delivery figures of a cycle: `console cycle report PERIOD --json`, `console delivery counts`,
the admin's cycle dashboard (console.inboxes.dashboard asks `email_funnel`), and the live figures
while a cycle's mail goes out (`sending_progress`: the cycle page and the dashboard poll them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from console.delivery import chart
from console.models import Bill, Delivery, DeliveryAttempt, WorkItem
from console.models.delivery import Channel, ConfirmedBy, DeliveryStatus, WorkItemDelivery
from console.sqltime import epoch_minute, to_epoch_minute


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


# ---- live while the mail goes out ---------------------------------------------------------------

RATE_MINUTES = 5  # rates are per minute over this many last minutes (fewer when the sending is younger)
EMAIL_CONFIRMATIONS = tuple(how for how in ConfirmedBy if how != ConfirmedBy.POST)


@dataclass
class Sending:
    """The cycle's e-mails now: how many are where, how fast they move, and per minute since the
    first one went out (`sent_by_minute`, `confirmed_by_minute`: {epoch minute: count})."""

    now: datetime
    deliveries: int  # e-mail deliveries of the cycle (not cancelled)
    queued: int  # waiting to be sent
    awaiting: int  # sent, awaiting confirmation
    sent: int  # deliveries with at least one message out
    confirmed: int
    confirmed_by: dict[str, int]
    resent: int
    failed: int
    escalated: int  # deliveries on a work item
    sent_by_minute: dict[int, int] = field(default_factory=dict)
    confirmed_by_minute: dict[int, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Anything still queued or awaiting confirmation: the pages keep polling."""
        return self.queued + self.awaiting > 0

    @property
    def rate_minutes(self) -> int:
        first = min(self.sent_by_minute, default=None)
        if first is None:
            return RATE_MINUTES
        return max(1, min(RATE_MINUTES, to_epoch_minute(self.now) - first + 1))

    def _rate(self, by_minute: dict[int, int]) -> float:
        since = to_epoch_minute(self.now) - self.rate_minutes
        return sum(n for minute, n in by_minute.items() if minute > since) / self.rate_minutes

    @property
    def send_rate(self) -> float:
        """Messages sent per minute, lately."""
        return self._rate(self.sent_by_minute)

    @property
    def confirm_rate(self) -> float:
        return self._rate(self.confirmed_by_minute)

    @property
    def minutes_left(self) -> int | None:
        """Until nothing is left queued or awaiting confirmation at the recent rates; None when it
        cannot be told (nothing moved lately)."""
        if not self.active:
            return 0
        if self.confirm_rate <= 0 or (self.queued and self.send_rate <= 0):
            return None
        left = (self.queued + self.awaiting) / self.confirm_rate
        if self.queued:
            left = max(left, self.queued / self.send_rate)
        return math.ceil(left)

    @property
    def chart(self) -> chart.Chart | None:
        until = to_epoch_minute(self.now) if self.active else None  # while live, the time axis runs to now
        return chart.progress_chart(self.sent_by_minute, self.confirmed_by_minute, until)


def mail_pending(session: Session, cycle_id: int) -> bool:
    """Is any e-mail of the cycle queued or awaiting confirmation? (One index probe, not the figures.)"""
    return bool(session.scalar(select(
        select(Delivery.id).where(
            Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENT)), Delivery.channel == Channel.EMAIL,
            Delivery.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id)),
        ).exists()
    )))


def sending_progress(session: Session, cycle_id: int, now: datetime) -> Sending:
    """The live figures of the cycle's e-mails, in four aggregate queries (no row is fetched one by
    one, so it stays fast at 100k deliveries): statuses and how confirmed; deliveries escalated to a
    work item; messages sent per minute; confirmations per minute."""
    email = (Delivery.bill_id.in_(select(Bill.id).where(Bill.cycle_id == cycle_id)), Delivery.channel == Channel.EMAIL)

    def count_if(condition) -> object:  # noqa: ANN001
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    confirmed = Delivery.status == DeliveryStatus.CONFIRMED
    row = session.execute(
        select(
            func.count(),
            count_if(Delivery.status == DeliveryStatus.QUEUED),
            count_if(Delivery.status == DeliveryStatus.SENT),
            count_if(Delivery.attempts_made > 0),
            count_if(confirmed),
            count_if(Delivery.attempts_made > 1),
            count_if(Delivery.status == DeliveryStatus.FAILED),
            *(count_if(confirmed & (Delivery.confirmed_by == how)) for how in EMAIL_CONFIRMATIONS),
        ).where(*email, Delivery.status != DeliveryStatus.CANCELLED)
    ).one()
    escalated = session.scalar(
        select(func.count(func.distinct(WorkItemDelivery.delivery_id)))
        .join(Delivery, Delivery.id == WorkItemDelivery.delivery_id).where(*email)
    )
    sent_minute = epoch_minute(DeliveryAttempt.sent_at)
    sent_by_minute = dict(session.execute(
        select(sent_minute, func.count()).join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(*email, DeliveryAttempt.sent_at.is_not(None)).group_by(sent_minute)
    ).all())
    confirmed_minute = epoch_minute(Delivery.confirmed_at)
    confirmed_by_minute = dict(session.execute(
        select(confirmed_minute, func.count())
        .where(*email, confirmed, Delivery.confirmed_at.is_not(None)).group_by(confirmed_minute)
    ).all())
    return Sending(
        now=now, deliveries=row[0], queued=int(row[1]), awaiting=int(row[2]), sent=int(row[3]),
        confirmed=int(row[4]), resent=int(row[5]), failed=int(row[6]),
        confirmed_by={how.value: int(n) for how, n in zip(EMAIL_CONFIRMATIONS, row[7:], strict=True)},
        escalated=escalated or 0,
        sent_by_minute={int(m): int(n) for m, n in sent_by_minute.items()},
        confirmed_by_minute={int(m): int(n) for m, n in confirmed_by_minute.items()},
    )

