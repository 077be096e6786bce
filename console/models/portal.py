"""The customer web page: web accounts, one-time codes, bill registration codes, first opens of bills."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Timestamp, utcnow

if TYPE_CHECKING:
    from console.models.customers import Customer

CODE_PURPOSES = ("register", "reset")


class WebAccount(Base):
    """A customer's sign-in to the web page; one per customer (unique customer_id).

    `session_token` is part of the Flask-Login id ("c:<id>:<token>") and changes at password change
    and sign-out, so every session cookie issued before stops working.
    """

    __tablename__ = "portal_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    # The account number at registration: the user name.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    # Keyed digest of the ID-card number, so customers may also sign in with it; never the number.
    id_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    session_token: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    password_changed_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    last_login_at: Mapped[Timestamp | None]
    # Read-only: loaded with the account on each request (console.portal.services.load_account).
    customer: Mapped[Customer] = relationship(viewonly=True)

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"c:{self.id}:{self.session_token}"


class PortalCode(Base):
    """A short-lived, single-use code sent to the e-mail on file (registration or password reset).

    Only a keyed digest is stored; `attempts` counts wrong guesses, the code dies at the limit.
    """

    __tablename__ = "portal_codes"
    __table_args__ = (
        CheckConstraint(f"purpose IN {CODE_PURPOSES!r}", name="purpose"),
        Index("ix_portal_codes_customer_purpose", "customer_id", "purpose"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    purpose: Mapped[str] = mapped_column(String(12))
    code_digest: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[Timestamp]
    used_at: Mapped[Timestamp | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class BillRegistrationCode(Base):
    """The registration code printed on a bill (derived from the secret key; only its digest is kept).

    Single use (`used_at`), valid until `expires_at`.
    """

    __tablename__ = "portal_bill_codes"
    __table_args__ = (Index("ix_portal_bill_codes_customer_digest", "customer_id", "code_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    code_digest: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[Timestamp]
    used_at: Mapped[Timestamp | None]
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class BillOpen(Base):
    """The first time the customer opened a published bill on the web page (the receipt)."""

    __tablename__ = "portal_bill_opens"

    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_accounts.id"))
    opened_at: Mapped[Timestamp] = mapped_column(default=utcnow)
