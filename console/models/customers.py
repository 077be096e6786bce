from __future__ import annotations

from datetime import date
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
    func,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Timestamp, utcnow, values

CUSTOMER_TYPES = ("residential", "commercial", "industrial")
CHANNELS = ("portal", "email", "paper")
RELATIONSHIPS = ("holder", "tenant", "landlord", "proxy", "finance", "other")
RECIPIENT_CHANNELS = ("email", "paper")


class Customer(Base):
    """The party in the customer file. Delivery wishes: `wants_ebill` plus one flag per channel."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(f"customer_type IN {CUSTOMER_TYPES!r}", name="customer_type"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
        CheckConstraint("collective_billing = false OR key_account = true", name="collective_only_key"),
        # Search is by prefix: on PostgreSQL text_pattern_ops makes `LIKE 'x%'` use the index whatever
        # the database collation (SQLite searches by range on the plain index).
        Index("ix_customers_name", "name", postgresql_ops={"name": "text_pattern_ops"}),
        Index("ix_customers_phone", "phone", postgresql_ops={"phone": "text_pattern_ops"}),
        Index("ix_customers_email", "email", postgresql_ops={"email": "text_pattern_ops"}),
        Index("ix_customers_account_no_prefix", "account_no", postgresql_ops={"account_no": "text_pattern_ops"}),
        # Search anywhere in the name or the postal address (the inbox, the customer search): trigram
        # GIN indexes on PostgreSQL (pg_trgm serves LIKE '%x%'); on SQLite a plain index, scanned.
        Index("ix_customers_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_customers_postal_trgm", "postal_address", postgresql_using="gin",
              postgresql_ops={"postal_address": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_no: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_type: Mapped[str] = mapped_column(String(16))
    key_account: Mapped[bool] = mapped_column(Boolean, default=False)
    account_manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Stored whole (the utility needs it); shown only through console.customers.mask_id_number.
    id_number: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    postal_address: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(12))
    wants_ebill: Mapped[bool] = mapped_column(Boolean, default=False)
    channel_portal: Mapped[bool] = mapped_column(Boolean, default=False)
    channel_email: Mapped[bool] = mapped_column(Boolean, default=False)
    channel_paper: Mapped[bool] = mapped_column(Boolean, default=True)
    # The e-mail channel flagged for a person to review (console.delivery.policy): `complaint` when
    # the customer marked a bill e-mail as spam (an ARF report). None: nothing to review.
    email_review: Mapped[str | None] = mapped_column(String(16))
    email_review_at: Mapped[Timestamp | None]
    # None: the default (attach for key accounts only); True/False: the customer's own setting.
    attach_pdf: Mapped[bool | None] = mapped_column(Boolean)
    collective_billing: Mapped[bool] = mapped_column(Boolean, default=False)
    collective_billing_since: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(8), default="active")
    closed_on: Mapped[date | None]
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow, onupdate=utcnow)

    service_points: Mapped[list[ServicePoint]] = relationship(
        back_populates="customer", foreign_keys="ServicePoint.customer_id", order_by="ServicePoint.point_no"
    )
    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Recipient.id"
    )

    @property
    def channels(self) -> list[str]:
        return [c for c in CHANNELS if getattr(self, f"channel_{c}")]

    @hybrid_property
    def attaches_pdf(self) -> bool:
        return self.key_account if self.attach_pdf is None else self.attach_pdf

    @attaches_pdf.inplace.expression
    @classmethod
    def _attaches_pdf_expression(cls):  # noqa: ANN206 - the same rule in SQL (which e-mails wait for their PDF)
        return func.coalesce(cls.attach_pdf, cls.key_account)


class ServicePoint(Base):
    """A service point (用电点): the billing unit, with its meter, tariff and scheduled read day."""

    __tablename__ = "service_points"
    __table_args__ = (
        CheckConstraint("read_day BETWEEN 1 AND 31", name="read_day"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    point_no: Mapped[str] = mapped_column(String(32), unique=True)
    address: Mapped[str] = mapped_column(String(300))
    meter_no: Mapped[str] = mapped_column(String(32))
    tariff_code: Mapped[str] = mapped_column(String(16))
    read_day: Mapped[int] = mapped_column(Integer)
    # Where entries imported without a point go when the customer has several points.
    is_billing_point: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(8), default="active")
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="service_points", foreign_keys=[customer_id])


class Recipient(Base):
    """Someone who receives a copy of the customer's bills (the holder, a tenant, a proxy, ...)."""

    __tablename__ = "recipients"
    __table_args__ = (
        CheckConstraint(f"relationship IN {RELATIONSHIPS!r}", name="relationship"),
        CheckConstraint(f"channel IN {RECIPIENT_CHANNELS!r}", name="channel"),
        CheckConstraint("copies BETWEEN 1 AND 20", name="copies"),
        # The natural key of an import row: re-importing the same file changes nothing.
        UniqueConstraint("customer_id", "channel", "address"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(200))
    relation: Mapped[str] = mapped_column("relationship", String(16))
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(300))
    copies: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    customer: Mapped[Customer] = relationship(back_populates="recipients")


class ContactEvent(StrEnum):
    """What a contact record says, as a code; its parameters (`ContactRecord.params`) fill the
    sentence that console/web/events.py renders in the reader's language. The parameters each code
    takes are listed beside it."""

    EMAIL_CONFIRMED = "email_confirmed"  # confirmed_by (ConfirmedBy)
    EMAIL_REOPENED = "email_reopened"  # confirmed_by (the confirmation overturned), status
    AUTO_REPLY = "auto_reply"  # said (the reply's sentence or subject)
    AUTO_REPLY_ABANDONED = "auto_reply_abandoned"  # said
    AUTO_REPLY_CHALLENGE = "auto_reply_challenge"  # said
    COMPLAINT = "complaint"  # kind (the ARF feedback type)
    CALL = "call"  # outcome (call_outcome), phone (a corrected number); the rep's words in `note`
    DELIVERY_WISHES = "delivery_wishes"  # fields
    CONTACT_DETAILS = "contact_details"  # fields
    RECIPIENT_ADDED = "recipient_added"  # name
    RECIPIENT_CHANGED = "recipient_changed"  # name
    RECIPIENT_REACTIVATED = "recipient_reactivated"  # name
    RECIPIENT_DEACTIVATED = "recipient_deactivated"  # name
    EMAIL_CORRECTED = "email_corrected"  # before (addresses), after
    POSTAL_CORRECTED = "postal_corrected"  # before (addresses), after
    PAPER_POSTED = "paper_posted"  # bill_no, recipient, tracking_no
    PAPER_HANDED = "paper_handed"  # bill_no, recipient, deliverer
    PAPER_DELIVERED = "paper_delivered"  # bill_no, recipient; the clerk's words in `note`
    PAPER_RETURNED = "paper_returned"  # bill_no, address; the clerk's words in `note`
    PORTAL_REGISTRATION_CODE = "portal_registration_code"
    PORTAL_RESET_CODE = "portal_reset_code"
    PORTAL_ALREADY_REGISTERED = "portal_already_registered"
    PORTAL_REGISTERED = "portal_registered"
    BILL_OPENED = "bill_opened"
    LEGACY = "legacy"  # text: a record written before codes (migration 0005) that matched no pattern


CONTACT_EVENTS = values(ContactEvent)


class ContactRecord(Base):
    """The contact history: every contact with the customer, by a person (actor) or the system.
    What happened is a code and its parameters (rendered in the reader's language, never stored as
    text); what a person typed (a rep's call note) is kept as typed in `note`."""

    __tablename__ = "contact_records"
    __table_args__ = (
        Index("ix_contact_records_customer_time", "customer_id", "occurred_at"),
        CheckConstraint(f"code IN {CONTACT_EVENTS!r}", name="code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    occurred_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(16))  # email, portal, paper, phone, console
    code: Mapped[str] = mapped_column(String(32))  # ContactEvent
    params: Mapped[dict | None] = mapped_column(JSON)  # the sentence's parameters
    note: Mapped[str | None] = mapped_column(Text)  # free text a person typed, as typed
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the system
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"), index=True)
    details: Mapped[dict | None] = mapped_column(JSON)


class AuditEvent(Base):
    """Who did what to which record, with the values before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(100))  # username, "system", "cli"
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
