"""Tables of this domain (see console/models/__init__.py): print batches and the printed bills in them."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Timestamp, utcnow, values

# rendering: PDF jobs running; ready: merged PDF to download; printed: the clerk printed it.


class BatchStatus(StrEnum):
    RENDERING = "rendering"
    READY = "ready"
    PRINTED = "printed"


class PrintItemStatus(StrEnum):
    WAITING = "waiting"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    RETURNED = "returned"


BATCH_STATUSES = values(BatchStatus)
DISPATCH_METHODS = ("post", "hand")
# waiting: printed or not yet, not handed over; dispatched: out; delivered / returned: confirmed.
ITEM_STATUSES = values(PrintItemStatus)


class PrintBatch(Base):
    """Up to PAPER_BATCH_SIZE paper deliveries of one cycle, printed as one merged PDF."""

    __tablename__ = "print_batches"
    __table_args__ = (
        CheckConstraint(f"status IN {BATCH_STATUSES!r}", name="status"),
        UniqueConstraint("cycle_id", "batch_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"), index=True)
    batch_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="rendering")
    bills_count: Mapped[int] = mapped_column(Integer, default=0)
    copies_count: Mapped[int] = mapped_column(Integer, default=0)
    pages_count: Mapped[int | None] = mapped_column(Integer)
    # The merged PDF (cover sheet + every bill x copies), relative to the instance folder.
    pdf_path: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    assembled_at: Mapped[Timestamp | None]
    printed_at: Mapped[Timestamp | None]
    printed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    items: Mapped[list[PrintItem]] = relationship(back_populates="batch", order_by="PrintItem.position")


class PrintItem(Base):
    """One paper delivery in a batch (its copies printed together) and how it left and arrived.

    A delivery is in one batch only: the unique key is what makes re-running `print batch` harmless.
    """

    __tablename__ = "print_items"
    __table_args__ = (
        CheckConstraint(f"status IN {ITEM_STATUSES!r}", name="status"),
        CheckConstraint(f"dispatch_method IS NULL OR dispatch_method IN {DISPATCH_METHODS!r}", name="method"),
        UniqueConstraint("delivery_id"),
        UniqueConstraint("batch_id", "position"),
        Index("ix_print_items_deliverer", "deliverer", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("print_batches.id"), index=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # delivery route order within the batch
    postal_code: Mapped[str] = mapped_column(String(12), default="")
    copies: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default="waiting")
    dispatch_method: Mapped[str | None] = mapped_column(String(8))
    tracking_no: Mapped[str | None] = mapped_column(String(64))
    deliverer: Mapped[str | None] = mapped_column(String(100))  # meter reader's or clerk's name
    dispatched_at: Mapped[Timestamp | None]
    dispatched_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome_at: Mapped[Timestamp | None]
    outcome_note: Mapped[str | None] = mapped_column(Text)

    batch: Mapped[PrintBatch] = relationship(back_populates="items")
