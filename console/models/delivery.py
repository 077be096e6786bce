"""Deliveries (one per bill x recipient x channel), their attempts, and the work items for people.

Contract shared by the delivery, mail-in, portal, paper and inbox code. Add columns freely; keep
the names below stable.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Timestamp, utcnow, values


class Channel(StrEnum):
    EMAIL = "email"
    PAPER = "paper"


class DeliveryStatus(StrEnum):
    """queued: waiting to be sent or printed; sent: out, waiting for confirmation until confirm_due_at;
    confirmed: delivered / relayed / opened on the web / post confirmed; failed: no more attempts (a
    work item is open or was closed); cancelled: superseded (e.g. address corrected, new delivery)."""

    QUEUED = "queued"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ConfirmedBy(StrEnum):
    """How a delivery was confirmed (Delivery.confirmed_by). relayed/expanded are confirmations
    "flagged": the customer's mail system took the message and no further report may come."""

    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"
    PORTAL_OPEN = "portal_open"
    POST = "post"


class AttemptOutcome(StrEnum):
    """The outcome of an attempt (the latest report, or `refused` when the server refused it at RCPT)."""

    DELIVERED = "delivered"
    RELAYED = "relayed"
    DELAYED = "delayed"
    FAILED = "failed"
    EXPANDED = "expanded"
    REFUSED = "refused"


class WorkItemReason(StrEnum):
    EMAIL_FAILED = "email_failed"
    EMAIL_UNCONFIRMED = "email_unconfirmed"
    POST_RETURNED = "post_returned"
    EMAIL_ADDRESS_CHECK = "email_address_check"  # an auto-reply says the address is abandoned


class WorkItemStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    CLOSED = "closed"


DELIVERY_CHANNELS = values(Channel)
DELIVERY_STATUSES = values(DeliveryStatus)
CONFIRMED_BY = values(ConfirmedBy)
ATTEMPT_OUTCOMES = values(AttemptOutcome)
WORK_ITEM_REASONS = values(WorkItemReason)
WORK_ITEM_STATUSES = values(WorkItemStatus)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(f"channel IN {DELIVERY_CHANNELS!r}", name="channel"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        # Publishing twice writes nothing new.
        UniqueConstraint("bill_id", "channel", "address"),
        # The sweeper's query: what is due now.
        Index("ix_deliveries_status_due", "status", "confirm_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id"))  # None: the holder
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(300))  # e-mail address or postal address
    recipient_name: Mapped[str] = mapped_column(String(200))
    copies: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.QUEUED.value)
    attempts_made: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the current round: a resend after a correction starts a new round
    # (attempt_base = attempts_made) so the policy's "one resend" counts from there, while attempt
    # numbers keep counting up (unique per delivery: tokens and Message-IDs of old rounds still match).
    attempt_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    confirm_due_at: Mapped[Timestamp | None]
    confirmed_at: Mapped[Timestamp | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(16))  # delivered, relayed, portal_open, post
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    # Sending machinery (console/delivery/sender.py, sweeper.py): a sender claims a queued delivery
    # until `claimed_until` (a lease: a killed worker's claim runs out and the sweeper takes over);
    # a temporary SMTP error pushes `claimed_until` into the future as the retry back-off.
    claimed_until: Mapped[Timestamp | None]
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # the sender (one batch run) holding it
    enqueued_at: Mapped[Timestamp | None]  # last time a send job was queued for it
    send_errors: Mapped[int] = mapped_column(Integer, default=0)  # temporary errors while sending
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow, onupdate=utcnow)

    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.attempt_no"
    )


class DeliveryAttempt(Base):
    """One sending of a delivery. Its token, ENVID and Message-ID are how reports find their way back."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # VERP: bounces+TOKEN@BOUNCE_DOMAIN
    envid: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    dsn_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[Timestamp | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    # The latest report on this attempt: delivered, relayed, delayed, failed, expanded, refused.
    outcome: Mapped[str | None] = mapped_column(String(16))
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[Timestamp | None]
    remote_mta: Mapped[str | None] = mapped_column(String(200))
    # Every report applied to this attempt, oldest first: [{action, status, diagnostic, at, remote_mta}].
    reports: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


class WorkItemNotice(StrEnum):
    """News for the person who claimed an item (WorkItem.notice)."""

    CONFIRMED_LATER = "confirmed_later"  # a delivery of the case was confirmed after all


WORK_ITEM_NOTICES = values(WorkItemNotice)


class WorkItemEvent(StrEnum):
    """What a work item says, as a code (WorkItem.code); `WorkItem.params` fill the sentence that
    console/web/events.py renders in the reader's language: address, and as known status (RFC 3463),
    diagnostic (the server's words, as received), key_sentence, evidence, other_address,
    reopened_from (ConfirmedBy)."""

    EMAIL_FAILED = "email_failed"
    EMAIL_UNCONFIRMED = "email_unconfirmed"
    POST_RETURNED = "post_returned"
    EMAIL_ADDRESS_CHECK = "email_address_check"
    LEGACY = "legacy"  # text: an item written before codes (migration 0005) that matched no pattern


WORK_ITEM_EVENTS = values(WorkItemEvent)


def case_key(channel: str, address: str) -> str:
    """The key of a case: one open work item per customer and address (any bill, any recipient row)."""
    text = " ".join((address or "").split())
    return f"{channel}:{text.casefold() if channel == Channel.EMAIL else text}"[:330]


class WorkItem(Base):
    """A case for a person: bills that did not arrive at one address of one customer. At most one
    open (or claimed) item per customer and case key; its deliveries are in work_item_deliveries
    (`delivery_id`/`bill_id` here are the first of them)."""

    __tablename__ = "work_items"
    __table_args__ = (
        CheckConstraint(f"status IN {WORK_ITEM_STATUSES!r}", name="status"),
        CheckConstraint(f"code IN {WORK_ITEM_EVENTS!r}", name="code"),
        Index("ix_work_items_queue", "status", "assigned_role", "created_at"),
        Index("ix_work_items_urgent", "status", "assigned_role", "priority", "created_at"),
        Index(
            "uq_work_items_open_case", "customer_id", "case_key", unique=True,
            postgresql_where=text("status IN ('open', 'claimed')"), sqlite_where=text("status IN ('open', 'claimed')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(String(24))  # email_failed, email_unconfirmed, post_returned, ...
    assigned_role: Mapped[str] = mapped_column(String(20))  # phone_rep or account_manager
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(8), default=WorkItemStatus.OPEN.value)
    code: Mapped[str] = mapped_column(String(24))  # WorkItemEvent
    params: Mapped[dict | None] = mapped_column(JSON)  # the sentence's parameters
    details: Mapped[dict | None] = mapped_column(JSON)  # attempts and the servers' diagnostics
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    closed_at: Mapped[Timestamp | None]
    close_reason: Mapped[str | None] = mapped_column(Text)  # a close_reason code, or the words of who closed it
    case_key: Mapped[str | None] = mapped_column(String(330))  # console.models.delivery.case_key
    # 0: key account, 1: ordinary, 2: low (an address check); the inbox and "take next" order by it.
    priority: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    notice: Mapped[str | None] = mapped_column(String(24))  # WorkItemNotice, for the claimer
    notice_at: Mapped[Timestamp | None]


class WorkItemDelivery(Base):
    """A delivery on a case (work item): every failed bill and recipient at the case's address."""

    __tablename__ = "work_item_deliveries"
    __table_args__ = (UniqueConstraint("work_item_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    reason: Mapped[str] = mapped_column(String(24))
    added_at: Mapped[Timestamp] = mapped_column(default=utcnow)
