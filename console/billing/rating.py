"""Rating: pure functions from reads and a tariff version to an electricity charge with its breakdown.

Rounding (the one rule): each tier or band amount is rounded to the fen (half up, console.money.money)
and the charge is the sum of the rounded parts, so the printed breakdown always adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from console.money import ZERO, money

KWH_ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Read:
    read_date: date
    total: Decimal
    peak: Decimal | None = None
    valley: Decimal | None = None
    max_demand: Decimal | None = None
    meter_change: bool = False


@dataclass(frozen=True)
class TariffVersion:
    code: str
    effective_from: date
    kind: str  # tiered | time_of_use
    rates: dict
    demand_rate: Decimal | None = None
    name: str = ""


@dataclass
class Consumption:
    previous: Read | None
    current: Read
    total: Decimal
    peak: Decimal
    valley: Decimal
    max_demand: Decimal | None
    meter_changed: bool = False


@dataclass
class Rated:
    amount: Decimal
    breakdown: list[dict] = field(default_factory=list)


def consumption(previous: Read | None, reads: list[Read]) -> Consumption | None:
    """Consumption over consecutive reads: `previous` (the last read before the period, or None) and
    the period's reads in date order. Without a previous read the first read is the baseline; a read
    marked meter_change is a new baseline (nothing is counted across a meter change)."""
    sequence = ([previous] if previous else []) + sorted(reads, key=lambda r: r.read_date)
    if len(sequence) < 2:
        return None
    total = peak = valley = KWH_ZERO
    changed = False
    for before, after in zip(sequence, sequence[1:], strict=False):
        if after.meter_change:
            changed = True
            continue
        total += after.total - before.total
        if after.peak is not None and before.peak is not None:
            peak += after.peak - before.peak
        if after.valley is not None and before.valley is not None:
            valley += after.valley - before.valley
    demands = [r.max_demand for r in reads if r.max_demand is not None]
    return Consumption(
        previous=sequence[0],
        current=sequence[-1],
        total=total,
        peak=peak,
        valley=valley,
        max_demand=max(demands) if demands else None,
        meter_changed=changed,
    )


def rate(tariff: TariffVersion, used: Consumption) -> Rated:
    """The electricity charge of one point for one period."""
    if tariff.kind == "tiered":
        rated = _tiered(tariff.rates["tiers"], used.total)
    else:
        rated = _time_of_use(tariff.rates, used)
    if tariff.demand_rate is not None:
        demand = used.max_demand or KWH_ZERO
        amount = money(demand * tariff.demand_rate)
        rated.breakdown.append(
            {"band": "demand", "quantity": str(demand.quantize(KWH_ZERO)), "unit": "kW", "rate": str(tariff.demand_rate),
             "amount": str(amount)}
        )
        rated.amount += amount
    return rated


def _tiered(tiers: list, total: Decimal) -> Rated:
    remaining = total
    rated = Rated(ZERO)
    for number, (limit, price) in enumerate(tiers, start=1):
        if remaining <= 0:
            break
        block = remaining if limit is None else min(remaining, Decimal(limit))
        amount = money(block * Decimal(price))
        rated.breakdown.append(
            {"band": f"tier{number}", "quantity": str(block.quantize(KWH_ZERO)), "unit": "kWh", "rate": price,
             "amount": str(amount)}
        )
        rated.amount += amount
        remaining -= block
    return rated


def _time_of_use(rates: dict, used: Consumption) -> Rated:
    """Bands present in the tariff: peak/flat/valley. Where the tariff has no separate flat price
    (RES-TOU) flat counts as peak; reads without registers count as flat."""
    valley = used.valley
    peak = used.peak
    flat = used.total - peak - valley
    if rates.get("flat") == rates.get("peak"):
        peak, flat = peak + flat, KWH_ZERO
    rated = Rated(ZERO)
    for band, quantity in (("peak", peak), ("flat", flat), ("valley", valley)):
        if quantity == 0:
            continue
        price = rates[band]
        amount = money(quantity * Decimal(price))
        rated.breakdown.append(
            {"band": band, "quantity": str(quantity.quantize(KWH_ZERO)), "unit": "kWh", "rate": price, "amount": str(amount)}
        )
        rated.amount += amount
    return rated


def tariff_in_force(versions: list[TariffVersion], code: str, on: date) -> TariffVersion | None:
    best = None
    for version in versions:
        if version.code == code and version.effective_from <= on:
            if best is None or version.effective_from > best.effective_from:
                best = version
    return best


# Late fees ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PastBill:
    bill_no: str
    bill_date: date
    due_date: date
    charged: Decimal  # what the bill added: charges + adjustments (the part payments settle)


def unpaid_by_bill(past: list[PastBill], outstanding: Decimal) -> list[tuple[PastBill, Decimal]]:
    """Payments settle the oldest bill first, so what is still owed sits on the newest bills:
    allocate the outstanding balance backwards from the newest bill."""
    result = []
    remaining = outstanding
    for bill in sorted(past, key=lambda b: (b.bill_date, b.bill_no), reverse=True):
        if remaining <= 0:
            break
        if bill.charged <= 0:
            continue
        owed = min(bill.charged, remaining)
        result.append((bill, owed))
        remaining -= owed
    result.reverse()
    return result


def late_fee_rate(customer_type: str, due_date: date, bill_date: date, rates: dict) -> Decimal:
    if customer_type == "residential":
        return Decimal(rates["LATE_FEE_RESIDENTIAL"])
    if due_date.year == bill_date.year:
        return Decimal(rates["LATE_FEE_CURRENT_YEAR"])
    return Decimal(rates["LATE_FEE_EARLIER_YEARS"])


def late_fees(
    customer_type: str,
    past: list[PastBill],
    outstanding: Decimal,
    bill_date: date,
    since: date | None,
    rates: dict,
) -> list[dict]:
    """Late fees for amounts unpaid after their due date: amount x daily rate x days overdue up to
    the bill date. Days already charged are not charged again: a bill older than the point's latest
    bill (dated `since`) had its fee counted up to `since` already. Amounts are those still unpaid at
    the bill date (payments settle the oldest bill first)."""
    fees = []
    for bill, owed in unpaid_by_bill(past, outstanding):
        start = max(bill.due_date, since) if since and bill.bill_date < since else bill.due_date
        days = (bill_date - start).days
        if days <= 0:
            continue
        daily = late_fee_rate(customer_type, bill.due_date, bill_date, rates)
        amount = money(owed * daily * days)
        if amount <= 0:
            continue
        fees.append(
            {"bill_no": bill.bill_no, "due_date": bill.due_date.isoformat(), "unpaid": str(owed),
             "from": start.isoformat(), "to": bill_date.isoformat(), "days": days, "daily_rate": str(daily),
             "amount": str(amount)}
        )
    return fees


# Installments ---------------------------------------------------------------------------------


def period_index(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month) - 1


def installment_due(total: Decimal, installments: int, first_period: str, period: str) -> dict | None:
    """The installment billed in `period` (None outside the plan): equal parts, the last takes the
    remainder, so the parts always add up to the total."""
    number = period_index(period) - period_index(first_period) + 1
    if not 1 <= number <= installments:
        return None
    part = money(total / installments)
    amount = total - part * (installments - 1) if number == installments else part
    billed = part * (number - 1) + amount
    return {"number": number, "of": installments, "amount": amount, "total": total,
            "billed_so_far": billed, "remaining": total - billed}
