"""The review of a cycle before it is published (issue 16): what will leave, and what a clerk must
look at first.

Publishing e-mails thousands of customers; nothing takes it back. The review shows the cycle's bills
by bill type and customer type (counts and totals), how many e-mails to how many addresses and how
many paper copies the publishing will make (the rules of `console.delivery.publish.email_targets` and
`console.paper.rules.paper_recipients`, counted in SQL), and the exceptions, each kind one query:

- `non_positive_amount`: the amount to pay (current balance) is zero or negative;
- `no_working_channel`: the bill reaches nobody: no e-mail address (holder or active recipient), no
  paper copy (or paper not allowed), and not on the web page;
- `paper_without_address`: paper wanted (and allowed) but the holder has no postal address, or an
  active paper recipient has none;
- `due_date`: due before it is issued, issued before its read, less than MIN_PAYMENT_DAYS to pay, or
  otherwise not the due date of console/billing/dates.py: max(read + DUE_DAYS, issue + MIN_PAYMENT_DAYS);
- `collective_split`: a collective account whose points are on more than one collective bill this
  cycle. That is how generation records points left off: a point read outside the close-read window
  (COLLECTIVE_WINDOW_DAYS) of the others goes on a collective bill of its own, and so do the points of
  a together-pin that could not hold (console/billing/collective.py drops the pin, not the bill).

Each kind is aggregated by the database (a window count beside the first `limit` rows), so the page
stays fast on 100k bills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, exists, func, not_, null, or_, select, true, union_all
from sqlalchemy.orm import Session

from console.models import Customer, Recipient
from console.models.billing import Bill, BillLine, BillStatus, Cycle
from console.money import ZERO
from console.sqltime import days_between

LIST_LIMIT = 20


class ReviewException(StrEnum):
    NON_POSITIVE_AMOUNT = "non_positive_amount"
    NO_WORKING_CHANNEL = "no_working_channel"
    PAPER_WITHOUT_ADDRESS = "paper_without_address"
    DUE_DATE = "due_date"
    COLLECTIVE_SPLIT = "collective_split"


class ReviewDetail(StrEnum):
    """Why a bill is on an exception list (shown beside it through labels.py)."""

    EMAIL_WITHOUT_ADDRESS = "email_without_address"  # e-mail wanted, no address anywhere
    PAPER_NOT_ALLOWED = "paper_not_allowed"  # paper wanted, but only key accounts get paper
    HOLDER_WITHOUT_ADDRESS = "holder_without_address"  # paper wanted, the holder has no postal address
    NO_CHANNEL_CHOSEN = "no_channel_chosen"
    RECIPIENT_WITHOUT_ADDRESS = "recipient_without_address"  # an active paper recipient without one
    DUE_BEFORE_ISSUE = "due_before_issue"
    ISSUED_BEFORE_READ = "issued_before_read"
    TOO_LITTLE_TIME = "too_little_time"  # less than MIN_PAYMENT_DAYS to pay
    NOT_THE_RULE = "not_the_rule"  # not max(read + DUE_DAYS, issue + MIN_PAYMENT_DAYS)


@dataclass(frozen=True)
class ReviewSettings:
    due_days: int
    min_payment_days: int
    paper_key_accounts_only: bool

    @classmethod
    def of(cls, config: Mapping) -> ReviewSettings:
        return cls(int(config["DUE_DAYS"]), int(config["MIN_PAYMENT_DAYS"]), bool(config["PAPER_KEY_ACCOUNTS_ONLY"]))


@dataclass
class ListedBill:
    bill_id: int
    bill_no: str
    customer_id: int
    account_no: str
    customer_name: str
    amount: Decimal
    bill_date: date
    due_date: date
    detail: str | None = None
    params: dict = field(default_factory=dict)


@dataclass
class ExceptionList:
    kind: str
    count: int
    bills: list[ListedBill]

    @property
    def more(self) -> int:
        return self.count - len(self.bills)


@dataclass
class Group:
    bill_type: str
    customer_type: str
    bills: int
    charges: Decimal
    balance: Decimal


@dataclass
class Review:
    cycle_id: int
    period: str
    groups: list[Group]
    bills: int
    charges_total: Decimal
    balance_total: Decimal
    to_publish: int  # bills not yet published (what the figures below are about)
    emails: int  # e-mails publishing will queue (one per bill and address)
    email_addresses: int  # distinct addresses among them
    paper_letters: int
    paper_copies: int
    redate_on_publish: int  # bills publishing today would re-date (console/billing/dates.py)
    exceptions: list[ExceptionList]

    @property
    def exception_bills(self) -> int:
        return sum(e.count for e in self.exceptions)

    def exception(self, kind: str) -> ExceptionList:
        return next(e for e in self.exceptions if e.kind == kind)


def review_cycle(
    session: Session, cycle: Cycle, settings: ReviewSettings, today: date, limit: int = LIST_LIMIT
) -> Review:
    groups = [
        Group(bill_type, customer_type, count, charges or ZERO, balance or ZERO)
        for bill_type, customer_type, count, charges, balance in session.execute(
            select(Bill.bill_type, Customer.customer_type, func.count(), func.sum(Bill.charges_total),
                   func.sum(Bill.current_balance))
            .join(Customer, Customer.id == Bill.customer_id)
            .where(Bill.cycle_id == cycle.id)
            .group_by(Bill.bill_type, Customer.customer_type)
            .order_by(Bill.bill_type, Customer.customer_type)
        )
    ]
    recipients, emails, letters, copies = _channels(settings)
    latest = today + timedelta(days=settings.min_payment_days)
    to_publish = (Bill.cycle_id == cycle.id, Bill.status == BillStatus.GENERATED)
    out = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(emails), 0),
            func.coalesce(func.sum(letters), 0),
            func.coalesce(func.sum(copies), 0),
            func.coalesce(func.sum(case((Bill.due_date < latest, 1), else_=0)), 0),
        )
        .select_from(Bill).join(Customer, Customer.id == Bill.customer_id)
        .outerjoin(recipients, recipients.c.customer_id == Bill.customer_id)
        .where(*to_publish)
    ).one()
    addresses = union_all(
        select(func.trim(Customer.email).label("address")).join(Bill, Bill.customer_id == Customer.id)
        .where(*to_publish, _holder_email()),
        select(func.trim(Recipient.address)).join(Bill, Bill.customer_id == Recipient.customer_id)
        .where(*to_publish, Recipient.active.is_(True), Recipient.channel == "email", not_(_blank(Recipient.address))),
    ).subquery("addresses")
    # SELECT DISTINCT hashes; count(DISTINCT …) would sort every address
    distinct_addresses = session.scalar(select(func.count()).select_from(select(addresses.c.address).distinct().subquery()))
    return Review(
        cycle_id=cycle.id, period=cycle.period, groups=groups,
        bills=sum(g.bills for g in groups),
        charges_total=sum((g.charges for g in groups), ZERO),
        balance_total=sum((g.balance for g in groups), ZERO),
        to_publish=out[0], emails=int(out[1]), email_addresses=distinct_addresses or 0, paper_letters=int(out[2]),
        paper_copies=int(out[3]), redate_on_publish=int(out[4]),
        exceptions=[
            non_positive_amounts(session, cycle.id, limit),
            no_working_channel(session, cycle.id, settings, limit),
            paper_without_address(session, cycle.id, settings, limit),
            due_date_violations(session, cycle.id, settings, limit),
            collective_splits(session, cycle.id, limit),
        ],
    )


# ---- who receives what: the publishing rules, in SQL ------------------------------------------------


def _blank(column: Any) -> Any:
    return func.coalesce(func.trim(column), "") == ""


def _holder_email() -> Any:
    """The holder gets an e-mail copy (`email_targets`): e-bills by e-mail wanted, an address on file."""
    return and_(Customer.wants_ebill.is_(True), Customer.channel_email.is_(True), not_(_blank(Customer.email)))


def _paper_allowed(settings: ReviewSettings) -> Any:
    return Customer.key_account.is_(True) if settings.paper_key_accounts_only else true()


def _channels(settings: ReviewSettings) -> tuple[Any, Any, Any, Any]:
    """What one bill of a customer makes, as column expressions over customers outer-joined to the
    returned per-customer recipient figures: (that subquery, e-mails, paper letters, paper copies).

    E-mails: the holder's (`_holder_email`) and one per active e-mail recipient with an address, but
    not a recipient at the holder's own address (the unique delivery key drops it). Paper, where it
    is allowed (`paper_recipients`): one letter per active paper recipient with an address (its
    copies), and the holder's own when paper is wanted, a postal address is on file and no paper
    recipient has that address already. Grouping the recipients (few) instead of a UNION over every
    customer keeps this one pass over the bills."""
    email, paper = Recipient.channel == "email", Recipient.channel == "paper"
    holders_own = and_(_holder_email(), func.trim(Recipient.address) == func.trim(Customer.email))
    recipients = (
        select(
            Recipient.customer_id.label("customer_id"),
            func.sum(case((and_(email, not_(holders_own)), 1), else_=0)).label("emails"),
            func.sum(case((paper, 1), else_=0)).label("letters"),
            func.sum(case((paper, Recipient.copies), else_=0)).label("copies"),
            func.sum(case((and_(paper, Recipient.address == Customer.postal_address), 1), else_=0)).label("at_holder"),
        )
        .join(Customer, Customer.id == Recipient.customer_id)
        .where(Recipient.active.is_(True), not_(_blank(Recipient.address)))
        .group_by(Recipient.customer_id)
        .subquery("recipients_of")
    )
    holder_paper = case(
        (and_(Customer.channel_paper.is_(True), not_(_blank(Customer.postal_address)),
              func.coalesce(recipients.c.at_holder, 0) == 0), 1),
        else_=0,
    )
    allowed = _paper_allowed(settings)
    emails = case((_holder_email(), 1), else_=0) + func.coalesce(recipients.c.emails, 0)
    letters = case((allowed, holder_paper + func.coalesce(recipients.c.letters, 0)), else_=0)
    copies = case((allowed, holder_paper + func.coalesce(recipients.c.copies, 0)), else_=0)
    return recipients, emails, letters, copies


# ---- the exceptions, one query each ------------------------------------------------------------------


def _listed(
    session: Session, kind: str, cycle_id: int, where: list, limit: int, *, detail: Any = None,
    params: tuple = (), joins: tuple = (), order: tuple = (),
) -> ExceptionList:
    """The first `limit` bills matching `where` (by id unless `order`), and how many match in all."""
    columns = [Bill.id, Bill.bill_no, Customer.id, Customer.account_no, Customer.name, Bill.current_balance,
               Bill.bill_date, Bill.due_date, func.count().over().label("total"),
               (detail if detail is not None else null()).label("detail"),
               *(column for _name, column in params)]
    query = select(*columns).select_from(Bill).join(Customer, Customer.id == Bill.customer_id)
    for target, on, outer in joins:
        query = query.join(target, on, isouter=outer)
    rows = session.execute(
        query.where(Bill.cycle_id == cycle_id, *where).order_by(*(order or (Bill.id,))).limit(limit)
    ).all()
    names = [name for name, _column in params]
    bills = [
        ListedBill(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[9], dict(zip(names, r[10:], strict=True)))
        for r in rows
    ]
    return ExceptionList(kind, rows[0].total if rows else 0, bills)


def non_positive_amounts(session: Session, cycle_id: int, limit: int = LIST_LIMIT) -> ExceptionList:
    return _listed(session, ReviewException.NON_POSITIVE_AMOUNT, cycle_id, [Bill.current_balance <= ZERO], limit)


def no_working_channel(
    session: Session, cycle_id: int, settings: ReviewSettings, limit: int = LIST_LIMIT
) -> ExceptionList:
    recipients, emails, letters, _copies = _channels(settings)
    allowed = _paper_allowed(settings)
    why = case(
        (and_(Customer.wants_ebill.is_(True), Customer.channel_email.is_(True)), ReviewDetail.EMAIL_WITHOUT_ADDRESS.value),
        (and_(Customer.channel_paper.is_(True), not_(allowed)), ReviewDetail.PAPER_NOT_ALLOWED.value),
        (Customer.channel_paper.is_(True), ReviewDetail.HOLDER_WITHOUT_ADDRESS.value),
        else_=ReviewDetail.NO_CHANNEL_CHOSEN.value,
    )
    return _listed(
        session, ReviewException.NO_WORKING_CHANNEL, cycle_id,
        [emails == 0, letters == 0, Customer.channel_portal.is_(False)], limit,
        detail=why, joins=((recipients, recipients.c.customer_id == Bill.customer_id, True),),
    )


def paper_without_address(
    session: Session, cycle_id: int, settings: ReviewSettings, limit: int = LIST_LIMIT
) -> ExceptionList:
    holder = and_(Customer.channel_paper.is_(True), _blank(Customer.postal_address))
    recipient = exists().where(
        Recipient.customer_id == Customer.id, Recipient.active.is_(True), Recipient.channel == "paper",
        _blank(Recipient.address),
    )
    why = case((holder, ReviewDetail.HOLDER_WITHOUT_ADDRESS.value), else_=ReviewDetail.RECIPIENT_WITHOUT_ADDRESS.value)
    return _listed(session, ReviewException.PAPER_WITHOUT_ADDRESS, cycle_id,
                   [_paper_allowed(settings), or_(holder, recipient)], limit, detail=why)


def due_date_violations(
    session: Session, cycle_id: int, settings: ReviewSettings, limit: int = LIST_LIMIT
) -> ExceptionList:
    """The due-date rule of console/billing/dates.py checked in SQL: due = max(anchor + DUE_DAYS,
    issue + MIN_PAYMENT_DAYS), anchor the read date (the issue date without a read). A bill re-dated
    on publishing still satisfies it (issued that day, due MIN_PAYMENT_DAYS later, after its read)."""
    to_pay = days_between(Bill.due_date, Bill.bill_date)
    after_anchor = days_between(Bill.due_date, func.coalesce(Bill.read_date, Bill.bill_date))
    due, least = settings.due_days, settings.min_payment_days
    why = case(
        (Bill.due_date < Bill.bill_date, ReviewDetail.DUE_BEFORE_ISSUE.value),
        (and_(Bill.read_date.is_not(None), Bill.bill_date < Bill.read_date), ReviewDetail.ISSUED_BEFORE_READ.value),
        (to_pay < least, ReviewDetail.TOO_LITTLE_TIME.value),
        (or_(after_anchor < due, and_(to_pay != least, after_anchor != due)), ReviewDetail.NOT_THE_RULE.value),
        else_=None,
    )
    return _listed(session, ReviewException.DUE_DATE, cycle_id, [why.is_not(None)], limit, detail=why,
                   params=(("days_to_pay", to_pay),))


def collective_splits(session: Session, cycle_id: int, limit: int = LIST_LIMIT) -> ExceptionList:
    """Every collective bill of an account whose points went on more than one collective bill this
    cycle, with its place among them and its points."""
    ranked = (
        select(Bill.id.label("bill_id"),
               func.count().over(partition_by=Bill.customer_id).label("of"),
               func.row_number().over(partition_by=Bill.customer_id, order_by=Bill.id).label("nth"))
        .where(Bill.cycle_id == cycle_id, Bill.bill_type == "collective")
        .subquery("ranked")
    )
    points = (
        select(func.count(func.distinct(BillLine.service_point_id))).where(BillLine.bill_id == Bill.id)
        .scalar_subquery()
    )
    return _listed(
        session, ReviewException.COLLECTIVE_SPLIT, cycle_id, [ranked.c.of > 1], limit,
        joins=((ranked, ranked.c.bill_id == Bill.id, False),), order=(Bill.customer_id, Bill.id),
        params=(("nth", ranked.c.nth), ("of", ranked.c.of), ("points", points)),
    )

