from __future__ import annotations

from datetime import date

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Money, Timestamp, utcnow

BILL_TYPES = ("regular", "collective", "non_metered", "adjustment", "installment", "final")
CYCLE_STATUSES = ("open", "running", "generated", "published", "failed")


class Cycle(Base):
    """A billing cycle (`period` like 2026-11). Progress is derived from its chunks, kept in the database."""

    __tablename__ = "cycles"
    __table_args__ = (CheckConstraint(f"status IN {CYCLE_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)
    bill_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(12), default="open")
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    published_at: Mapped[Timestamp | None]


class Bill(Base):
    """One bill: of one service point (`unit_key` = "P<point id>") or of a collective group ("G<key>").

    The unique key (cycle, customer, unit_key) is what makes re-running a cycle or a chunk harmless.
    """

    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint(f"bill_type IN {BILL_TYPES!r}", name="bill_type"),
        CheckConstraint("status IN ('generated', 'published')", name="status"),
        UniqueConstraint("cycle_id", "customer_id", "unit_key"),
        Index("ix_bills_customer_cycle", "customer_id", "cycle_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_no: Mapped[str] = mapped_column(String(32), unique=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_points.id"), index=True)
    unit_key: Mapped[str] = mapped_column(String(64))
    bill_type: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(64))  # customer type x bill type
    bill_date: Mapped[date]
    due_date: Mapped[date]
    previous_balance: Mapped[Money]
    payments_total: Mapped[Money]
    charges_total: Mapped[Money]
    current_balance: Mapped[Money]
    deposit_held: Mapped[Money]
    status: Mapped[str] = mapped_column(String(12), default="generated")
    published_at: Mapped[Timestamp | None]
    # Rendered once, reused for print, e-mail attachment and web download.
    pdf_path: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)

    lines: Mapped[list[BillLine]] = relationship(
        back_populates="bill", order_by="BillLine.position", cascade="all, delete-orphan"
    )


class BillLine(Base):
    """An itemized line of a bill. `kind` is a ledger charge type or a summary kind (previous_balance, ...)."""

    __tablename__ = "bill_lines"
    __table_args__ = (UniqueConstraint("bill_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_points.id"))
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Money]
    # Reads, consumption, tier/time-band breakdown, installment plan state... as the line needs.
    details: Mapped[dict | None] = mapped_column(JSON)

    bill: Mapped[Bill] = relationship(back_populates="lines")
