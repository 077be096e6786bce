"""Collective bills for key accounts (issue 4): the seam `combine` that generation calls per chunk.

A key account with collective billing gets, per cycle, one bill per group of its service points
instead of one bill per point. The points are grouped by their actual read dates this cycle with
`console.billing.grouping.group_points` (span of a group <= COLLECTIVE_WINDOW_DAYS, fewest groups,
the account manager's pins respected; points with nothing read join the earliest group).

Each point's bill is worked out by the same `compute_point_bill` as an ordinary point bill; the
collective bill is the sum of them (totals to the fen, since every part is already in fen), and it
carries every part's lines (with their service point) and every part's ledger entries, so each
entry is billed exactly once, on the collective bill. One issue and one due date per collective bill,
by the rule of console/billing/dates.py: issued on the latest of its parts' issue dates, due the
group's latest read date + DUE_DAYS, never sooner than MIN_PAYMENT_DAYS after the issue.

Deterministic keys make re-runs idempotent: the group's unit_key is "G" + its smallest point number
and its bill number is that point's own bill number (a point is on one bill only, so neither can
collide); points already billed on a collective bill of the cycle are skipped by `load_chunk`.

Pins that cannot all hold (points pinned together but read further apart than the window) would
fail the chunk; instead the together-pins are dropped for that account and cycle (apart-pins kept),
and then all pins if need be — the bill still goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from console.billing import dates
from console.billing.grouping import PinConflict, group_points
from console.money import ZERO

DEFAULT_WINDOW_DAYS = 7


@dataclass
class CollectiveBill:
    """The sum of its parts (the per-point bills), written by `write_bills` like a point bill."""

    customer_id: int
    group_key: str
    customer_type: str  # chooses the template and the marketing messages (step 8)
    template: str
    bill_date: date
    due_date: date
    read_date: date | None
    previous_balance: Decimal
    payments_total: Decimal
    charges_total: Decimal
    adjustments_total: Decimal
    deposit_applied: Decimal
    current_balance: Decimal
    deposit_held: Decimal
    parts: list = field(default_factory=list)  # PointBill, in point-number order
    bill_type: str = "collective"
    point_id: int | None = None

    @property
    def entries(self) -> list:
        return [e for part in self.parts for e in part.entries]


@dataclass
class CollectiveAccount:
    """What load_chunk hands over for a collective-billing customer: its pins by point number."""

    together: list[tuple[str, str]] = field(default_factory=list)
    apart: list[tuple[str, str]] = field(default_factory=list)


def window_days(settings: dict) -> int:
    return int(settings.get("COLLECTIVE_WINDOW_DAYS", DEFAULT_WINDOW_DAYS))


def _groups(reads: dict[str, date | None], window: int, account: CollectiveAccount) -> list[list[str]]:
    for together, apart in ((account.together, account.apart), ((), account.apart), ((), ())):
        try:
            return group_points(reads, window, together=together, apart=apart)
        except PinConflict:
            continue
    raise AssertionError("grouping without pins cannot conflict")  # pragma: no cover


def build(customer_id: int, parts: list[tuple], settings: dict, account: CollectiveAccount) -> list[tuple]:
    """The collective bills of one customer: `parts` are (inputs, point bill, unit_key, bill_no) of its
    points billed this cycle; returns (CollectiveBill, unit_key, bill_no) per group."""
    due_days, min_days = int(settings["DUE_DAYS"]), int(settings["MIN_PAYMENT_DAYS"])
    by_no = {inputs.point_no: (inputs, bill, bill_no) for inputs, bill, _unit, bill_no in parts}
    reads = {point_no: bill.read_date for point_no, (_i, bill, _n) in by_no.items()}
    out = []
    for group in _groups(reads, window_days(settings), account):
        members = [by_no[p] for p in group]  # group_points returns each group sorted by point number
        bills = [bill for _inputs, bill, _no in members]
        read_dates = [b.read_date for b in bills if b.read_date is not None]
        read_date = max(read_dates) if read_dates else None
        first = bills[0]
        issued = max(b.bill_date for b in bills)
        out.append((
            CollectiveBill(
                customer_id=customer_id, group_key="G" + group[0], customer_type=members[0][0].customer_type,
                template=f"{members[0][0].customer_type}_collective", bill_date=issued,
                due_date=dates.due_date(issued, read_date, due_days, min_days), read_date=read_date,
                previous_balance=_sum(b.previous_balance for b in bills),
                payments_total=_sum(b.payments_total for b in bills),
                charges_total=_sum(b.charges_total for b in bills),
                adjustments_total=_sum(b.adjustments_total for b in bills),
                deposit_applied=_sum(b.deposit_applied for b in bills),
                current_balance=_sum(b.current_balance for b in bills),
                deposit_held=first.deposit_held, parts=bills,
            ),
            "G" + group[0],
            members[0][2],
        ))
    return out


def _sum(values) -> Decimal:  # noqa: ANN001
    return sum(values, ZERO)


def combine(computed: list[tuple], accounts: dict[int, CollectiveAccount], settings: dict) -> list[tuple]:
    """The chunk's bills to write: point bills of ordinary customers as they are, the points of
    collective-billing customers replaced by their collective bills (in the customers' order)."""
    if not accounts:
        return [(bill, unit_key, bill_no) for _inputs, bill, unit_key, bill_no in computed]
    made: list[tuple] = []
    pending: dict[int, list[tuple]] = {}
    order: list = []  # a point bill, or a customer id whose collective bills go there
    for item in computed:
        customer_id = item[0].customer_id
        if customer_id in accounts:
            if customer_id not in pending:
                pending[customer_id] = []
                order.append(customer_id)
            pending[customer_id].append(item)
        else:
            order.append(item)
    for entry in order:
        if isinstance(entry, int):
            made += build(entry, pending[entry], settings, accounts[entry])
        else:
            _inputs, bill, unit_key, bill_no = entry
            made.append((bill, unit_key, bill_no))
    return made


def parts_of(bill) -> list:  # noqa: ANN001
    """The per-point bills inside a bill: its parts for a collective bill, itself for a point bill."""
    return getattr(bill, "parts", None) or [bill]
