"""Mail received at the bounce domain (delivery reports, auto-replies, junk), the quarantine an admin
reads, the per-recipient blocks of each report, and the demo sandbox's mailbox."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Timestamp, utcnow

# report: a delivery report (RFC 3464, DSN fields in a broken body, or the text of a non-standard
# bounce) matched (at least one block) to an attempt; auto_reply: vacation, challenge-response and
# other automatic answers (recorded, never a report); complaint: an ARF feedback report (a bill
# marked as spam); unmatched: a report nobody sent, or about another address; malformed: anything else.
INBOUND_CLASSES = ("report", "auto_reply", "complaint", "unmatched", "malformed")
# What a message said about a delivery that is not a delivery report, or what it did to it.
DELIVERY_EVENT_KINDS = ("auto_reply", "complaint", "reopened")


class InboundMessage(Base):
    """One message received by `mailin` (SMTP or IMAP). Raw bytes kept up to a cap."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(f"classification IN {INBOUND_CLASSES!r}", name="classification"),
        # The same message delivered twice (a lost 250, an IMAP re-poll) is stored and applied once.
        UniqueConstraint("sha256"),
        Index("ix_inbound_messages_quarantine", "quarantined", "handled_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8), default="smtp")  # smtp, imap, sandbox
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list] = mapped_column(JSON)
    received_at: Mapped[Timestamp]
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # the first MAILIN_KEEP_BYTES bytes
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str | None] = mapped_column(String(300))
    from_header: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(300))
    classification: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    handled_at: Mapped[Timestamp | None]
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handled_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)

    recipients: Mapped[list[InboundReportRecipient]] = relationship(
        back_populates="message", order_by="InboundReportRecipient.position", cascade="all, delete-orphan"
    )


class InboundReportRecipient(Base):
    """One per-recipient block of a delivery report and what became of it."""

    __tablename__ = "inbound_report_recipients"
    __table_args__ = (UniqueConstraint("inbound_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    final_recipient: Mapped[str | None] = mapped_column(String(320))
    original_recipient: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    remote_mta: Mapped[str | None] = mapped_column(String(300))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_attempts.id"), index=True)
    matched_by: Mapped[str | None] = mapped_column(String(12))  # token, envid, message_id
    evidence: Mapped[str | None] = mapped_column(String(12))  # rfc3464, dsn_fields, text
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)

    message: Mapped[InboundMessage] = relationship(back_populates="recipients")


class DeliveryEvent(Base):
    """Something the bounce address heard about one delivery that is not a delivery report (an
    auto-reply, a complaint) or that a report did to it (a `relayed` confirmation reopened by a later
    failure). Kept as a code and parameters; every screen renders it in its reader's language."""

    __tablename__ = "delivery_events"
    __table_args__ = (CheckConstraint(f"kind IN {DELIVERY_EVENT_KINDS!r}", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_attempts.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(32))  # abandoned / challenge; abuse; relayed
    details: Mapped[dict | None] = mapped_column(JSON)  # subject, key sentence, feedback fields
    occurred_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class SandboxMessage(Base):
    """A message the demo mail sandbox accepted (it never relays anywhere)."""

    __tablename__ = "sandbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    envid: Mapped[str | None] = mapped_column(String(100))
    notify: Mapped[str | None] = mapped_column(String(64))
    ret: Mapped[str | None] = mapped_column(String(8))
    orcpt: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # capped copy
    outcome: Mapped[str] = mapped_column(String(12))  # delivered, failed, silent
    received_at: Mapped[Timestamp] = mapped_column(default=utcnow, index=True)
