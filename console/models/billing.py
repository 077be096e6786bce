"""Billing: cycles, bills and their lines, the ledger per service point, reads, tariffs, deposits,
installment plans, marketing campaigns and the chunks a cycle run is split into.

Money columns are `Money` (Decimal yuan, integer fen in the database). Quantities (kWh, kW) use
the same exact two-decimal type (`Quantity`, integer hundredths) for the same reason: SQLite has
no decimal type.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base, Money, MoneyType, Timestamp, utcnow, values

if TYPE_CHECKING:
    from console.models.customers import Customer, ServicePoint

BILL_TYPES = ("regular", "collective", "non_metered", "adjustment", "installment", "final")


class CycleStatus(StrEnum):
    OPEN = "open"
    RUNNING = "running"
    GENERATED = "generated"
    PUBLISHED = "published"
    FAILED = "failed"


class ChunkStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BillStatus(StrEnum):
    GENERATED = "generated"
    PUBLISHED = "published"


CYCLE_STATUSES = values(CycleStatus)
CHUNK_STATUSES = values(ChunkStatus)
BILL_STATUSES = values(BillStatus)
# Signed: the amount is the entry's effect on the balance (charges +, payments and write-offs -).
LEDGER_KINDS = (
    "electricity",
    "late_fee",
    "business_expansion",
    "connection",
    "inspection",
    "installment",
    "adjustment",
    "write_off",
    "payment",
    "deposit_applied",
)
PIN_KINDS = ("together", "apart")
TARIFF_KINDS = ("tiered", "time_of_use")


def Quantity() -> MoneyType:  # noqa: N802 - reads like a type in the column declarations
    """kWh / kW with two decimals, exact on both databases (stored as integer hundredths)."""
    return MoneyType()


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
    run_started_at: Mapped[Timestamp | None]
    generated_at: Mapped[Timestamp | None]
    published_at: Mapped[Timestamp | None]


class Bill(Base):
    """One bill: of one service point (`unit_key` = "P<point id>") or of a collective group ("G<key>").

    The unique key (cycle, customer, unit_key) is what makes re-running a cycle or a chunk harmless.
    current_balance = previous_balance - payments_total + charges_total + adjustments_total - deposit_applied
    """

    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint(f"bill_type IN {BILL_TYPES!r}", name="bill_type"),
        CheckConstraint(f"status IN {BILL_STATUSES!r}", name="status"),
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
    read_date: Mapped[date | None]  # the meter read the due date is counted from (None: no read)
    previous_balance: Mapped[Money]
    payments_total: Mapped[Money]  # received, a positive number
    charges_total: Mapped[Money]  # electricity, fees, late fees, installments
    adjustments_total: Mapped[Money] = mapped_column(default=Decimal("0.00"))  # adjustments, write-offs
    deposit_applied: Mapped[Money] = mapped_column(default=Decimal("0.00"))  # final bills
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
    messages: Mapped[list[BillMessage]] = relationship(order_by="BillMessage.position", viewonly=True)
    # Read-only, for loading a bill with its parts in one query (the customer's bill page:
    # console.portal.services.bill_for); the ids above are what code writes.
    customer: Mapped[Customer] = relationship(viewonly=True)
    cycle: Mapped[Cycle] = relationship(viewonly=True)
    service_point: Mapped[ServicePoint | None] = relationship(viewonly=True)


class BillLine(Base):
    """An itemized line of a bill. `kind` is a ledger kind or `previous_balance`; the lines add up to
    the bill's current balance."""

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


class MeterRead(Base):
    """A cumulative register reading. The first read of a point is its baseline; a read marked
    `meter_change` starts a new meter (a new baseline)."""

    __tablename__ = "meter_reads"
    __table_args__ = (UniqueConstraint("service_point_id", "read_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_points.id"))
    read_date: Mapped[date]
    total_kwh: Mapped[Decimal] = mapped_column(Quantity())
    peak_kwh: Mapped[Decimal | None] = mapped_column(Quantity())
    valley_kwh: Mapped[Decimal | None] = mapped_column(Quantity())
    max_demand_kw: Mapped[Decimal | None] = mapped_column(Quantity())
    meter_change: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """One charge or credit of a service point. `bill_id` is set when a bill carries it: a single
    column, so an entry is on at most one bill; `natural_key` makes imports and re-runs idempotent."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN {LEDGER_KINDS!r}", name="kind"),
        Index("ix_ledger_entries_point_unbilled", "service_point_id", "bill_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_points.id"))
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[Money]
    entry_date: Mapped[date]
    description: Mapped[str] = mapped_column(String(300), default="")
    for_period: Mapped[str | None] = mapped_column(String(7))  # the earlier period an adjustment corrects
    reference: Mapped[str | None] = mapped_column(String(64))  # payments: the payment reference
    natural_key: Mapped[str] = mapped_column(String(80), unique=True)
    details: Mapped[dict | None] = mapped_column(JSON)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"), index=True)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class Tariff(Base):
    """A tariff version: `rates` maps a tier/band to yuan per kWh (strings, exact). The version in force
    for a read is the one with the latest `effective_from` on or before the read date."""

    __tablename__ = "tariffs"
    __table_args__ = (
        UniqueConstraint("code", "effective_from"),
        CheckConstraint(f"kind IN {TARIFF_KINDS!r}", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))  # Chinese, as printed on the Chinese bill
    name_en: Mapped[str | None] = mapped_column(String(100))  # the English bill's (else `name`)
    effective_from: Mapped[date]
    kind: Mapped[str] = mapped_column(String(16))
    # tiered: {"tiers": [[limit_kwh or null, rate], ...]}; time_of_use: {"peak": r, "flat": r, "valley": r}
    rates: Mapped[dict] = mapped_column(JSON)
    demand_rate: Mapped[Decimal | None] = mapped_column(MoneyType())  # yuan per kW of maximum demand
    sample: Mapped[bool] = mapped_column(Boolean, default=False)


class Deposit(Base):
    """Electricity deposit held (电费押金): shown on bills, not part of the balance; applied on the final bill."""

    __tablename__ = "deposits"
    __table_args__ = (UniqueConstraint("customer_id", "received_on", "amount"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount: Mapped[Money]
    received_on: Mapped[date]
    applied_bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class InstallmentPlan(Base):
    """An amount billed in equal monthly installments from `first_period` (the last takes the remainder)."""

    __tablename__ = "installment_plans"
    __table_args__ = (
        UniqueConstraint("customer_id", "first_period"),
        CheckConstraint("installments BETWEEN 1 AND 120", name="installments"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_points.id"))
    total: Mapped[Money]
    installments: Mapped[int] = mapped_column(Integer)
    first_period: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class Campaign(Base):
    """A marketing message printed on bills of the target customer types within the date window."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    customer_types: Mapped[list] = mapped_column(JSON)  # e.g. ["residential", "commercial"]
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    priority: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class BillMessage(Base):
    """A marketing message on a bill (at most two, highest priority first), its text copied at generation."""

    __tablename__ = "bill_messages"
    __table_args__ = (UniqueConstraint("bill_id", "campaign_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    position: Mapped[int] = mapped_column(Integer)
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)


class CycleChunk(Base):
    """A slice of a cycle's customers (ids first..last): one RQ job. Progress and failures live here."""

    __tablename__ = "cycle_chunks"
    __table_args__ = (
        UniqueConstraint("cycle_id", "chunk_no"),
        CheckConstraint(f"status IN {CHUNK_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"), index=True)
    chunk_no: Mapped[int] = mapped_column(Integer)
    first_customer_id: Mapped[int] = mapped_column(Integer)
    last_customer_id: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    bills_created: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(80))
    started_at: Mapped[Timestamp | None]
    finished_at: Mapped[Timestamp | None]


class CollectivePin(Base):
    """An account manager's override of the collective grouping (issue 4): two service points of one key
    account billed together or apart. One pin per pair (point_a_id < point_b_id)."""

    __tablename__ = "collective_pins"
    __table_args__ = (
        UniqueConstraint("customer_id", "point_a_id", "point_b_id"),
        CheckConstraint(f"kind IN {PIN_KINDS!r}", name="kind"),
        CheckConstraint("point_a_id < point_b_id", name="ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    point_a_id: Mapped[int] = mapped_column(ForeignKey("service_points.id"))
    point_b_id: Mapped[int] = mapped_column(ForeignKey("service_points.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
