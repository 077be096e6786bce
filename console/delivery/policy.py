"""The confirmation policy: what a delivery report, a web-page visit or a missed deadline does.

Written down for people in docs/delivery.md. In short:

- `delivered` confirms; `relayed` and `expanded` confirm, flagged (confirmed_by says which): the
  customer's mail system took the message and no further report will come;
- the customer opening the bill on the web page confirms its outstanding e-mail deliveries;
- `delayed` is recorded; the wait goes on;
- `failed` with a 4.x.x status (expired in a queue: a temporary failure) → resend once;
- `failed` with a 5.x.x status (or none), or `refused` at RCPT → no resend to the same address,
  a work item at once;
- no confirmation by `confirm_due_at` → resend once; after the resend fails or times out → work
  item (console/delivery/sweeper.py does the deadline part);
- only an RFC 3464 report part confirms; a failure read from DSN fields in a broken body or from
  the text of a non-standard bounce counts as a failure, and says so on the attempt and work item;
- a later failure of a delivery confirmed only by `relayed`/`expanded` reopens it as failed
  (contact record, work item); `delivered` and `portal_open` confirmations stand;
- auto-replies and complaints (ARF) change no delivery state: they are recorded as delivery events
  and in the customer's contact history; an auto-reply saying the address is abandoned opens a
  low-priority `email_address_check` item; a complaint flags the customer's e-mail channel.

Every state change of a delivery is a conditional UPDATE (WHERE status/attempts_made = what we
read), so two processes acting on the same delivery at once (the receiver and the sweeper, two
sweepers) change it once. Services here flush, never commit.

The intake's hot path is Core statements over an `AttemptRow` (the attempt and its delivery read in
one SELECT): a report costs one UPDATE of the attempt, one conditional UPDATE of the delivery and,
for a confirmation, the contact record and one UPDATE closing open work items; a work item is one
INSERT … ON CONFLICT DO NOTHING. The ORM-shaped functions (`apply_report(session, attempt, …)`,
`confirm(session, delivery, …)`, `open_work_item(session, delivery, …)`) used by the sender, the
sweeper and the portal are thin wrappers over the same code: one policy, two calling conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from console.audit import Actor, record_contact
from console.db import utcnow
from console.models import Customer, Delivery, DeliveryAttempt, WorkItem
from console.models.customers import ContactEvent, ContactRecord
from console.models.delivery import (
    Channel,
    ConfirmedBy,
    DeliveryStatus,
    WorkItemDelivery,
    WorkItemEvent,
    WorkItemNotice,
    WorkItemReason,
    WorkItemStatus,
    case_key,
)
from console.models.mailin import DeliveryEvent

# The tables of the hot path, for Core statements on the session's connection (no ORM compile or
# unit-of-work step per statement).
ATTEMPTS = DeliveryAttempt.__table__
DELIVERIES = Delivery.__table__
WORK_ITEMS = WorkItem.__table__
CONTACTS = ContactRecord.__table__
CUSTOMERS = Customer.__table__
LINKS = WorkItemDelivery.__table__

MAX_ATTEMPTS = 2  # the first sending and one resend
ACTIONS = ("delivered", "relayed", "delayed", "failed", "expanded", "refused")
CONFIRMING = {"delivered": ConfirmedBy.DELIVERED, "relayed": ConfirmedBy.RELAYED, "expanded": ConfirmedBy.EXPANDED}
FINAL_OUTCOMES = {"delivered", "relayed", "expanded", "failed", "refused"}
SETTLED = (DeliveryStatus.CONFIRMED, DeliveryStatus.CANCELLED)
REOPENABLE = (ConfirmedBy.RELAYED, ConfirmedBy.EXPANDED)  # confirmations a later failure overturns
ADDRESS_CHECK = "email_address_check"  # work item reason: an auto-reply says the address is abandoned
# A work item's code by its reason (what its sentence says; console/web/events.py renders it).
ITEM_CODES = {
    WorkItemReason.EMAIL_FAILED: WorkItemEvent.EMAIL_FAILED,
    WorkItemReason.EMAIL_UNCONFIRMED: WorkItemEvent.EMAIL_UNCONFIRMED,
    WorkItemReason.POST_RETURNED: WorkItemEvent.POST_RETURNED,
    WorkItemReason.EMAIL_ADDRESS_CHECK: WorkItemEvent.EMAIL_ADDRESS_CHECK,
}
AUTO_REPLY_CODES = {"abandoned": ContactEvent.AUTO_REPLY_ABANDONED, "challenge": ContactEvent.AUTO_REPLY_CHALLENGE}


def is_permanent(status: str | None) -> bool:
    """A failure is temporary only when its status says 4.x.x; 5.x.x or nothing known is permanent."""
    return not (status or "").strip().startswith("4")


def lock_for_write(session: Session) -> None:
    """SQLite has one writer and a reader cannot become a writer once another has committed; take
    the write lock first (BEGIN IMMEDIATE in effect) in transactions that read, then write.
    Nothing on PostgreSQL (row locks and conditional UPDATEs do the work there)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE deliveries SET id = id WHERE 1 = 0"))


def transition(session: Session, delivery: Delivery, expect: dict[str, Any], **values: Any) -> bool:
    """UPDATE the delivery only if its columns still hold `expect`; True if this caller won.

    The in-session object gets the new values too. (Not synchronize_session="evaluate": that tests
    the WHERE against every Delivery in the session, which made a 200-delivery send batch quadratic.)"""
    where = [Delivery.id == delivery.id]
    for column, value in expect.items():
        attr = getattr(Delivery, column)
        where.append(attr.in_(value) if isinstance(value, tuple | list | set) else attr == value)
    result = session.execute(
        update(Delivery).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(delivery)
        return False
    for column, value in values.items():
        set_committed_value(delivery, column, value)
    return True


@dataclass
class AttemptRow:
    """An attempt and the columns of its delivery the policy reads, from one SELECT."""

    id: int
    delivery_id: int
    attempt_no: int
    message_id: str
    outcome: str | None
    address: str
    status: str
    confirmed_by: str | None
    attempts_made: int
    customer_id: int
    bill_id: int
    recipient_id: int | None
    recipient_name: str
    last_error: str | None = None
    manager_id: int | None = None  # the account manager of a key account (who gets its work items)
    attempt_base: int = 0  # attempts of earlier rounds (a resend after a correction starts a round)
    channel: str = Channel.EMAIL
    reports: list = field(default_factory=list)


ATTEMPT_ROW_COLUMNS = (
    ATTEMPTS.c.id, ATTEMPTS.c.delivery_id, ATTEMPTS.c.attempt_no, ATTEMPTS.c.message_id, ATTEMPTS.c.outcome,
    DELIVERIES.c.address, DELIVERIES.c.status, DELIVERIES.c.confirmed_by, DELIVERIES.c.attempts_made,
    DELIVERIES.c.customer_id, DELIVERIES.c.bill_id, DELIVERIES.c.recipient_id, DELIVERIES.c.recipient_name,
    DELIVERIES.c.last_error,
    case((CUSTOMERS.c.key_account.is_(True), CUSTOMERS.c.account_manager_id), else_=None),
    DELIVERIES.c.attempt_base, DELIVERIES.c.channel, ATTEMPTS.c.reports,
)


_ATTEMPT_ROWS = (
    select(*ATTEMPT_ROW_COLUMNS)
    .join(DELIVERIES, DELIVERIES.c.id == ATTEMPTS.c.delivery_id)
    .join(CUSTOMERS, CUSTOMERS.c.id == DELIVERIES.c.customer_id)
)
# Built once: the hot path's statements are executed with parameters, not constructed per report
# (constructing and keying SQLAlchemy statements was a third of the intake's CPU).
_ATTEMPT_ROWS_BY = {
    name: _ATTEMPT_ROWS.where(ATTEMPTS.c[name].in_(bindparam("values", expanding=True)))
    for name in ("id", "token", "envid", "message_id")
}


def attempt_rows(session: Session, *where: Any) -> list[AttemptRow]:
    """Attempts (with their delivery's columns) matching `where` (on `ATTEMPTS.c`), in one statement."""
    rows = session.connection().execute(_ATTEMPT_ROWS.where(*where)).all()
    return [AttemptRow(*row[:-1], reports=list(row[-1] or [])) for row in rows]


def attempt_rows_by(session: Session, column: str, values: list) -> list[AttemptRow]:
    """Attempts by `token`, `envid`, `message_id` or `id` (a prebuilt statement)."""
    rows = session.connection().execute(_ATTEMPT_ROWS_BY[column], {"values": list(values)}).all()
    return [AttemptRow(*row[:-1], reports=list(row[-1] or [])) for row in rows]


def _row_of(session: Session, attempt: DeliveryAttempt) -> AttemptRow:
    session.flush()  # the caller's pending changes first: the Core statements below read the rows
    return attempt_rows_by(session, "id", [attempt.id])[0]


_STATEMENTS: dict[tuple, Any] = {}  # prebuilt UPDATEs by shape (which columns are tested and set)


def _update_statement(table: Any, where: tuple[tuple[str, bool], ...], values: tuple[str, ...]) -> Any:
    """`UPDATE table SET v = :v_v … WHERE id = :k_id AND c = :k_c (or c IN :k_c) …`, built once per shape."""
    key = (table.name, where, values)
    statement = _STATEMENTS.get(key)
    if statement is None:
        conditions = [table.c.id == bindparam("k_id")]
        for name, many in where:
            param = bindparam(f"k_{name}", expanding=many)
            conditions.append(table.c[name].in_(param) if many else table.c[name] == param)
        statement = update(table).where(*conditions).values(
            {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in values}
        )
        _STATEMENTS[key] = statement
    return statement


def _update_row(session: Session, table: Any, row_id: int, expect: dict[str, Any], values: dict[str, Any]) -> int:
    """A (conditional) UPDATE of one row through a prebuilt statement; the number of rows changed."""
    many = {name: isinstance(value, tuple | list | set) for name, value in expect.items()}
    statement = _update_statement(table, tuple((name, many[name]) for name in expect), tuple(values))
    params = {"k_id": row_id}
    params.update({f"k_{name}": list(value) if many[name] else value for name, value in expect.items()})
    params.update({f"v_{name}": value for name, value in values.items()})
    return session.connection().execute(statement, params).rowcount


def _set_delivery(session: Session, row: AttemptRow, expect: dict[str, Any], **values: Any) -> bool:
    """Conditional UPDATE of the row's delivery (WHERE its columns still hold `expect`)."""
    if _update_row(session, DELIVERIES, row.delivery_id, expect, values) != 1:
        return False
    for column, value in values.items():
        if hasattr(row, column):
            setattr(row, column, value)
    return True


def _record_on_attempt(
    session: Session,
    row: AttemptRow,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None,
    extra: dict | None = None,
    outcome: bool = True,
) -> None:
    """Append the report to the attempt's `reports` and, unless told not to, make it the outcome.
    One UPDATE."""
    values = _attempt_values(row, action, status, diagnostic, reported_at, remote_mta, extra, outcome)
    _update_row(session, ATTEMPTS, row.id, {}, values)


def _attempt_values(
    row: AttemptRow,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None,
    extra: dict | None = None,
    outcome: bool = True,
) -> dict[str, Any]:
    """The columns that record a report on its attempt (the row is updated in memory too)."""
    entry = {
        "action": action,
        "status": status,
        "diagnostic": diagnostic,
        "at": reported_at.isoformat(),
        "remote_mta": remote_mta,
    }
    entry.update({k: v for k, v in (extra or {}).items() if v})
    row.reports = [*row.reports, entry]
    values: dict[str, Any] = {"reports": row.reports}
    # A late `delayed` never overwrites a final outcome (reports can arrive out of order).
    if outcome and not (action == "delayed" and row.outcome in FINAL_OUTCOMES):
        values.update(
            outcome=action,
            status_code=(status or None) and status[:16],
            diagnostic=diagnostic,
            reported_at=reported_at,
            remote_mta=remote_mta and remote_mta[:200],
        )
        row.outcome = action
    return values


def _expire(session: Session, *objects: Any) -> None:
    """ORM objects the Core statements changed: read afresh on next use."""
    for obj in objects:
        if obj is not None and obj in session:
            session.expire(obj)


def apply_report(
    session: Session,
    attempt: DeliveryAttempt,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None = None,
    **kwargs: Any,
) -> None:
    """`apply_report_row` for an ORM attempt (the sender's `refused`, tests)."""
    row = _row_of(session, attempt)
    apply_report_row(session, row, action, status, diagnostic, reported_at, remote_mta, **kwargs)
    _expire(session, attempt, session.identity_map.get(session.identity_key(Delivery, row.delivery_id)))


def apply_report_row(
    session: Session,
    row: AttemptRow,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None = None,
    *,
    evidence: str = "rfc3464",
    other_address: str | None = None,
    key_sentence: str | None = None,
    inbound_id: int | None = None,
) -> None:
    """Apply one per-recipient report (RFC 3464 Action/Status/Diagnostic-Code) to its attempt.

    `action` is delivered, relayed, delayed, failed or expanded (and `refused`, used by the sender
    for a recipient refused at RCPT). Unknown actions are recorded on the attempt and change nothing.
    A report for a settled delivery (confirmed, cancelled) is recorded and changes nothing else,
    except a failure after a `relayed`/`expanded` confirmation, which reopens the delivery.

    `evidence`: rfc3464 (a report part), dsn_fields or text. Only rfc3464 confirms: a confirming
    action read any other way is recorded on the attempt and changes nothing. `other_address`: the
    report is about another address than the one we sent to (a forwarding hop): applied, flagged."""
    action = (action or "").strip().lower()
    confirming = action in CONFIRMING and evidence == "rfc3464"
    extra = {"evidence": evidence if evidence != "rfc3464" else None, "other_address": other_address,
             "key_sentence": key_sentence}
    recorded = _attempt_values(row, action, status, diagnostic, reported_at, remote_mta, extra,
                               outcome=action not in CONFIRMING or confirming)
    if confirming:
        confirm_row(session, row, CONFIRMING[action], reported_at, attempt_values=recorded)
        return
    _update_row(session, ATTEMPTS, row.id, {}, recorded)
    if action not in ("failed", "refused"):
        return  # delayed (the wait goes on), unknown actions, confirmations read from text
    latest = row.attempts_made
    if row.attempt_no != latest:
        return  # a failure of an earlier attempt while a later one is out: the later one decides
    failure = {"status": status, "key_sentence": key_sentence, "evidence": evidence, "other_address": other_address}
    if row.status == DeliveryStatus.CONFIRMED and row.confirmed_by in REOPENABLE:
        _reopen(session, row, reported_at, failure, inbound_id)
        return
    if row.status in SETTLED or row.status == DeliveryStatus.FAILED:
        return  # settled, or already escalated
    temporary = action == "failed" and not is_permanent(status)
    if temporary and latest - row.attempt_base < MAX_ATTEMPTS:
        # Resend once: back to the queue; the sender makes attempt 2 (new token and Message-ID).
        _set_delivery(
            session, row, {"status": (DeliveryStatus.SENT, DeliveryStatus.QUEUED), "attempts_made": latest},
            status=DeliveryStatus.QUEUED, confirm_due_at=None, claimed_until=None, enqueued_at=None,
        )
        return
    if _set_delivery(
        session, row, {"status": (DeliveryStatus.SENT, DeliveryStatus.QUEUED), "attempts_made": latest}, status=DeliveryStatus.FAILED,
        confirm_due_at=None, claimed_until=None,
    ):
        open_work_item_row(session, row, WorkItemReason.EMAIL_FAILED, failure)


def _reopen(session: Session, row: AttemptRow, at: datetime, failure: dict, inbound_id: int | None) -> None:
    """A delivery confirmed by `relayed`/`expanded` bounced later: failed, a contact record, a work item."""
    was = row.confirmed_by
    if not _set_delivery(
        session, row, {"status": DeliveryStatus.CONFIRMED, "confirmed_by": was, "attempts_made": row.attempts_made},
        status=DeliveryStatus.FAILED, confirmed_at=None, confirmed_by=None, confirm_due_at=None, claimed_until=None,
    ):
        return
    session.add(DeliveryEvent(delivery_id=row.delivery_id, attempt_id=row.id, inbound_id=inbound_id,
                              kind="reopened", code=was, details={"status": failure.get("status")}, occurred_at=at))
    record_contact(
        session, row.customer_id, "email", ContactEvent.EMAIL_REOPENED, Actor.system(), bill_id=row.bill_id,
        params={"confirmed_by": was, "status": failure.get("status")},
        details={"delivery_id": row.delivery_id, "address": row.address, "reopened_from": was,
                 "message_id": row.message_id, "attempt_no": row.attempt_no, "at": at.isoformat(),
                 "status": failure.get("status")},
    )
    open_work_item_row(session, row, WorkItemReason.EMAIL_FAILED, dict(failure, reopened_from=was))


def record_auto_reply(session: Session, row: AttemptRow, at: datetime, kind: str | None,
                      subject: str | None, sentence: str | None, inbound_id: int | None = None) -> None:
    """A token-matched auto-reply: no delivery state changes. Recorded on the attempt, as a delivery
    event and in the contact history; `abandoned` ("this mailbox is no longer in use") also opens a
    low-priority item to confirm the address."""
    _record_on_attempt(session, row, "auto_reply", None, sentence or subject, at, None,
                       {"kind": kind, "subject": subject}, outcome=False)
    session.add(DeliveryEvent(delivery_id=row.delivery_id, attempt_id=row.id, inbound_id=inbound_id,
                              kind="auto_reply", code=kind, details={"subject": subject, "sentence": sentence},
                              occurred_at=at))
    said = sentence or subject
    record_contact(
        session, row.customer_id, "email", AUTO_REPLY_CODES.get(kind or "", ContactEvent.AUTO_REPLY),
        Actor.system(), bill_id=row.bill_id, params={"said": said[:200]} if said else None,
        details={"delivery_id": row.delivery_id, "address": row.address, "auto_reply": kind or "auto_reply",
                 "subject": subject, "message_id": row.message_id, "at": at.isoformat()},
    )
    if kind == "abandoned":
        open_work_item_row(session, row, ADDRESS_CHECK, {"key_sentence": sentence, "priority": "low"})
    session.flush()


def record_complaint(session: Session, row: AttemptRow, at: datetime, feedback: dict[str, str],
                     inbound_id: int | None = None) -> None:
    """An ARF feedback report (the bill was marked as spam): recorded on the delivery and in the
    customer's contact history, and the customer's e-mail channel flagged for review. No state change."""
    kind = (feedback.get("feedback-type") or "abuse")[:32]
    _record_on_attempt(session, row, "complaint", None, kind, at, None,
                       {"user_agent": feedback.get("user-agent")}, outcome=False)
    session.add(DeliveryEvent(delivery_id=row.delivery_id, attempt_id=row.id, inbound_id=inbound_id,
                              kind="complaint", code=kind,
                              details={k: feedback[k] for k in ("feedback-type", "user-agent", "source-ip",
                                                                "original-rcpt-to", "arrival-date") if k in feedback},
                              occurred_at=at))
    record_contact(
        session, row.customer_id, "email", ContactEvent.COMPLAINT, Actor.system(), bill_id=row.bill_id,
        params={"kind": kind},
        details={"delivery_id": row.delivery_id, "address": row.address, "complaint": kind,
                 "message_id": row.message_id, "at": at.isoformat()},
    )
    session.execute(
        update(Customer).where(Customer.id == row.customer_id, Customer.email_review.is_(None))
        .values(email_review="complaint", email_review_at=at).execution_options(synchronize_session=False)
    )
    session.flush()


def confirm(
    session: Session, delivery: Delivery, how: str, at: datetime, attempt: DeliveryAttempt | None = None
) -> bool:
    """`confirm_row` for an ORM delivery (the portal, tests). False if it was already settled."""
    if attempt is None:
        attempt = _latest_sent_attempt(session, delivery)
    if attempt is None:
        session.flush()
        row = AttemptRow(0, delivery.id, 0, None, None, delivery.address, delivery.status, delivery.confirmed_by,
                         delivery.attempts_made, delivery.customer_id, delivery.bill_id, delivery.recipient_id,
                         delivery.recipient_name, attempt_base=delivery.attempt_base or 0, channel=delivery.channel)
    else:
        row = _row_of(session, attempt)
    done = confirm_row(session, row, how, at, with_attempt=attempt is not None)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, WorkItem):
            session.expire(obj)
    if done:
        for column in ("status", "confirmed_at", "confirmed_by", "confirm_due_at", "claimed_until"):
            set_committed_value(delivery, column, {"status": DeliveryStatus.CONFIRMED, "confirmed_at": at, "confirmed_by": how}
                                .get(column))
    else:
        session.refresh(delivery)
    return done


CONFIRMABLE = (DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.FAILED)
_OUTCOME_COLUMNS = ("reports", "outcome", "status_code", "diagnostic", "reported_at", "remote_mta")
_CONTACT_COLUMNS = ("customer_id", "occurred_at", "channel", "code", "params", "actor_id", "bill_id", "details")


def _p(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _confirm_statement_pg() -> Any:
    """One PostgreSQL statement: the report recorded on its attempt, and — only if the delivery's
    conditional UPDATE wins — the contact record and the closing of open work items (CTEs)."""
    attempt = (
        update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("a_id"))
        .values({name: _p(f"a_{name}", ATTEMPTS.c[name]) for name in _OUTCOME_COLUMNS})
        .returning(ATTEMPTS.c.delivery_id).cte("attempt_reported")
    )
    # The delivery's UPDATE reads the attempt's: the attempt's row is locked first, then the delivery's,
    # as the sender's `sent` record does. Unlinked CTEs run in no set order, and a report overtaking
    # the sender's record (a fast MX) deadlocked with it (tests/delivery/test_sending.py).
    won = (
        update(DELIVERIES)
        .where(DELIVERIES.c.id == select(attempt.c.delivery_id).scalar_subquery(), DELIVERIES.c.status.in_(CONFIRMABLE))
        .values(status=DeliveryStatus.CONFIRMED, confirmed_at=_p("d_at", DELIVERIES.c.confirmed_at),
                confirmed_by=_p("d_how", DELIVERIES.c.confirmed_by), confirm_due_at=None, claimed_until=None,
                updated_at=_p("d_at", DELIVERIES.c.updated_at))  # explicit: no onupdate under a DML CTE
        .returning(DELIVERIES.c.id).cte("delivery_confirmed")
    )
    contact = insert(CONTACTS).from_select(
        list(_CONTACT_COLUMNS), select(*(_p(f"c_{name}", CONTACTS.c[name]) for name in _CONTACT_COLUMNS)).select_from(won)
    ).returning(CONTACTS.c.id).cte("contact_written")
    confirmed = select(won.c.id)
    items = (
        update(WORK_ITEMS)
        .where(_items_of(confirmed), WORK_ITEMS.c.status == WorkItemStatus.OPEN, ~_still_failing(confirmed))
        .values(status=WorkItemStatus.CLOSED, closed_at=_p("w_at", WORK_ITEMS.c.closed_at),
                close_reason=_p("w_reason", WORK_ITEMS.c.close_reason))
        .returning(WORK_ITEMS.c.id).cte("items_closed")
    )
    noticed = (
        update(WORK_ITEMS)
        .where(_items_of(confirmed), WORK_ITEMS.c.status == WorkItemStatus.CLAIMED)
        .values(notice=WorkItemNotice.CONFIRMED_LATER, notice_at=_p("w_at", WORK_ITEMS.c.notice_at))
        .returning(WORK_ITEMS.c.id).cte("items_noticed")
    )
    return select(func.count()).select_from(won).add_cte(contact, items, noticed)


def _items_of(delivery_ids: Any) -> Any:
    """Work items (cases) that hold one of these deliveries."""
    return or_(
        WORK_ITEMS.c.delivery_id.in_(delivery_ids),
        WORK_ITEMS.c.id.in_(select(LINKS.c.work_item_id).where(LINKS.c.delivery_id.in_(delivery_ids))),
    )


def _still_failing(confirmed: Any) -> Any:
    """EXISTS another failed delivery on the item's case (besides the ones being confirmed): the case
    stays open for it."""
    return (
        select(LINKS.c.id)
        .join(DELIVERIES, DELIVERIES.c.id == LINKS.c.delivery_id)
        .where(LINKS.c.work_item_id == WORK_ITEMS.c.id, DELIVERIES.c.status == DeliveryStatus.FAILED,
               DELIVERIES.c.id.not_in(confirmed))
        .exists()
    )


_CONFIRM_PG = _confirm_statement_pg()


def confirm_row(session: Session, row: AttemptRow, how: str, at: datetime, *, with_attempt: bool = True,
                attempt_values: dict[str, Any] | None = None) -> bool:
    """Confirm a delivery once (conditional UPDATE), write the contact record and close the open
    work items; `attempt_values` (the report recorded on its attempt) go with them. On PostgreSQL
    this is one prebuilt statement (the other changes as CTEs of the conditional UPDATE, which
    decides: only the attempt's record is written when the delivery was settled meanwhile);
    elsewhere up to four. False if the delivery was already settled."""
    connection = session.connection()
    contact = {
        "customer_id": row.customer_id, "occurred_at": utcnow(), "channel": Channel.EMAIL,
        "code": ContactEvent.EMAIL_CONFIRMED, "params": {"confirmed_by": how}, "actor_id": None,
        "bill_id": row.bill_id,
        "details": {
            "delivery_id": row.delivery_id,
            "recipient_id": row.recipient_id,
            "recipient_name": row.recipient_name,
            "address": row.address,
            "confirmed_at": at.isoformat(),
            "confirmed_by": how,
            "message_id": row.message_id if with_attempt else None,
            "attempt_no": row.attempt_no if with_attempt else None,
        },
    }
    # The bill arrived after all: an escalation nobody has taken yet is closed.
    close_reason = "confirmed_later"
    if connection.dialect.name == "postgresql" and attempt_values is not None and set(attempt_values) == set(
        _OUTCOME_COLUMNS
    ):
        params = {f"a_{name}": value for name, value in attempt_values.items()}
        params.update({f"c_{name}": value for name, value in contact.items()})
        params.update(a_id=row.id, d_at=at, d_how=how, w_at=at, w_reason=close_reason)
        won = connection.execute(_CONFIRM_PG, params).scalar() == 1
    else:
        if attempt_values is not None:
            _update_row(session, ATTEMPTS, row.id, {}, attempt_values)
        won = connection.execute(
            update(DELIVERIES).where(DELIVERIES.c.id == row.delivery_id, DELIVERIES.c.status.in_(CONFIRMABLE))
            .values(status=DeliveryStatus.CONFIRMED, confirmed_at=at, confirmed_by=how, confirm_due_at=None,
                    claimed_until=None)
        ).rowcount == 1
        if won:
            connection.execute(insert(CONTACTS).values(**contact))
            confirmed = [row.delivery_id]
            connection.execute(
                update(WORK_ITEMS).where(_items_of(confirmed), WORK_ITEMS.c.status == WorkItemStatus.OPEN,
                                         ~_still_failing(confirmed))
                .values(status=WorkItemStatus.CLOSED, closed_at=at, close_reason=close_reason)
            )
            connection.execute(
                update(WORK_ITEMS).where(_items_of(confirmed), WORK_ITEMS.c.status == WorkItemStatus.CLAIMED)
                .values(notice=WorkItemNotice.CONFIRMED_LATER, notice_at=at)
            )
    if won:
        row.status, row.confirmed_by = DeliveryStatus.CONFIRMED, how
    return won


def _latest_sent_attempt(session: Session, delivery: Delivery) -> DeliveryAttempt | None:
    return session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id, DeliveryAttempt.sent_at.is_not(None))
        .order_by(DeliveryAttempt.attempt_no.desc())
        .limit(1)
    ).first()


def confirm_by_portal_open(session: Session, bill_id: int, at: datetime) -> int:
    """The customer opened bill `bill_id` on the web page: its e-mail deliveries that went out and
    wait for confirmation (or for their resend) are confirmed. Returns how many."""
    deliveries = session.scalars(
        select(Delivery).where(
            Delivery.bill_id == bill_id,
            Delivery.channel == Channel.EMAIL,
            Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.QUEUED)),
            Delivery.attempts_made > 0,
        )
    ).all()
    return sum(1 for delivery in deliveries if confirm(session, delivery, ConfirmedBy.PORTAL_OPEN, at))


_ATTEMPT_DETAILS = (
    select(ATTEMPTS.c.attempt_no, ATTEMPTS.c.message_id, ATTEMPTS.c.sent_at, ATTEMPTS.c.dsn_requested,
           ATTEMPTS.c.smtp_response, ATTEMPTS.c.outcome, ATTEMPTS.c.status_code, ATTEMPTS.c.diagnostic,
           ATTEMPTS.c.remote_mta, ATTEMPTS.c.reports)
    .where(ATTEMPTS.c.delivery_id == bindparam("delivery_id"))
    .order_by(ATTEMPTS.c.attempt_no)
)


def _attempt_details(session: Session, delivery_id: int) -> list[dict]:
    rows = session.connection().execute(_ATTEMPT_DETAILS, {"delivery_id": delivery_id}).all()
    return [
        {
            "attempt_no": a.attempt_no,
            "message_id": a.message_id,
            "sent_at": a.sent_at.isoformat() if a.sent_at else None,
            "dsn_requested": a.dsn_requested,
            "smtp_response": a.smtp_response,
            "outcome": a.outcome,
            "status": a.status_code,
            "diagnostic": a.diagnostic,
            "remote_mta": a.remote_mta,
            "reports": a.reports or [],
        }
        for a in rows
    ]


def attempt_details(session: Session, delivery: Delivery) -> list[dict]:
    return _attempt_details(session, delivery.id)


def item_params(address: str, diagnostic: str, failure: dict | None) -> dict:
    """The work item's sentence parameters: the address, the RFC 3463 status (rendered with its
    meaning in the reader's language), the server's words (the diagnostic and a key sentence not in
    it, as received), how the report was read, another address it spoke of, an overturned
    confirmation. Nothing in it is display text of ours."""
    failure = failure or {}
    params = {"address": address, "status": failure.get("status"), "diagnostic": (diagnostic or "")[:300] or None}
    key = failure.get("key_sentence")
    if key and key[:300] not in (diagnostic or ""):
        params["key_sentence"] = key[:300]
    if failure.get("evidence") in ("dsn_fields", "text"):
        params["evidence"] = failure["evidence"]
    for name in ("other_address", "reopened_from"):
        if failure.get(name):
            params[name] = failure[name]
    return {k: v for k, v in params.items() if v}


def open_work_item(session: Session, delivery: Delivery, reason: str, failure: dict | None = None) -> WorkItem | None:
    """`open_work_item_row` for an ORM delivery (the sender, the sweeper, publishing)."""
    session.flush()
    customer = session.get(Customer, delivery.customer_id)
    row = AttemptRow(0, delivery.id, 0, None, None, delivery.address, delivery.status, delivery.confirmed_by,
                     delivery.attempts_made, delivery.customer_id, delivery.bill_id, delivery.recipient_id,
                     delivery.recipient_name, delivery.last_error,
                     customer.account_manager_id if customer.key_account else None,
                     attempt_base=delivery.attempt_base or 0, channel=delivery.channel)
    item_id = open_work_item_row(session, row, reason, failure)
    return session.get(WorkItem, item_id) if item_id is not None else None


_WORK_ITEM_COLUMNS = ("delivery_id", "bill_id", "customer_id", "reason", "assigned_role", "assigned_user_id", "status",
                      "code", "params", "details", "created_at", "case_key", "priority")
OPEN_CASE = text("status IN ('open', 'claimed')")  # the predicate of uq_work_items_open_case
PRIORITY_KEY, PRIORITY_NORMAL, PRIORITY_LOW = 0, 1, 2


def _work_item_insert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (customer_id, case_key) WHERE open DO NOTHING RETURNING id, built once per
    database (the partial unique index allows one open case per customer and address)."""
    key = ("work_item_insert", dialect)
    statement = _STATEMENTS.get(key)
    if statement is None:
        make = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
        statement = make(WORK_ITEMS).values(
            {name: bindparam(f"i_{name}", type_=WORK_ITEMS.c[name].type) for name in _WORK_ITEM_COLUMNS}
        ).on_conflict_do_nothing(index_elements=["customer_id", "case_key"], index_where=OPEN_CASE).returning(
            WORK_ITEMS.c.id)
        _STATEMENTS[key] = statement
    return statement


def _link_insert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (work_item_id, delivery_id) DO NOTHING: a delivery joins a case once."""
    key = ("work_item_link", dialect)
    statement = _STATEMENTS.get(key)
    if statement is None:
        make = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
        statement = make(LINKS).values(
            {name: bindparam(f"l_{name}", type_=LINKS.c[name].type)
             for name in ("work_item_id", "delivery_id", "bill_id", "reason", "added_at")}
        ).on_conflict_do_nothing(index_elements=["work_item_id", "delivery_id"])
        _STATEMENTS[key] = statement
    return statement


_OPEN_CASE_OF = select(WORK_ITEMS.c.id).where(
    WORK_ITEMS.c.customer_id == bindparam("customer_id"), WORK_ITEMS.c.case_key == bindparam("case_key"),
    WORK_ITEMS.c.status.in_((WorkItemStatus.OPEN, WorkItemStatus.CLAIMED)),
)


def open_case_of(session: Session, customer_id: int, key: str) -> int | None:
    """The open (or claimed) work item of this customer and case key, if any."""
    return session.connection().execute(_OPEN_CASE_OF, {"customer_id": customer_id, "case_key": key}).scalar()


def link_delivery(session: Session, item_id: int, delivery_id: int, bill_id: int, reason: str,
                  at: datetime | None = None) -> None:
    """Put a delivery on a case (nothing if it is there already)."""
    connection = session.connection()
    connection.execute(_link_insert(connection.dialect.name), {
        "l_work_item_id": item_id, "l_delivery_id": delivery_id, "l_bill_id": bill_id, "l_reason": reason,
        "l_added_at": at or utcnow()})


def open_work_item_row(session: Session, row: AttemptRow, reason: str, failure: dict | None = None) -> int | None:
    """The case of this delivery's customer and address: the open (or claimed) one, which the
    delivery joins, or a new one — for a phone rep, or for the account manager of a key account.
    One open case per customer and address (INSERT … ON CONFLICT DO NOTHING on the partial unique
    index; a second process finds the first's); a delivery is on a case once. `failure`: status,
    key sentence, evidence, other address, priority of the report that caused it (kept in
    `details`). Returns the item's id."""
    connection = session.connection()
    manager = row.manager_id
    key = case_key(row.channel, row.address)
    failure = {k: v for k, v in (failure or {}).items() if v}
    priority = PRIORITY_LOW if failure.get("priority") == "low" else PRIORITY_KEY if manager else PRIORITY_NORMAL
    now = utcnow()
    item_id = open_case_of(session, row.customer_id, key)
    if item_id is not None:
        link_delivery(session, item_id, row.delivery_id, row.bill_id, reason, now)
        connection.execute(
            update(WORK_ITEMS).where(WORK_ITEMS.c.id == item_id, WORK_ITEMS.c.priority > priority)
            .values(priority=priority)
        )
        return item_id
    attempts = _attempt_details(session, row.delivery_id)
    last = attempts[-1] if attempts else {}
    diagnostic = last.get("diagnostic") or last.get("smtp_response") or row.last_error or ""
    if "status" not in failure and last.get("status"):
        failure["status"] = last["status"]
    if reason == ADDRESS_CHECK:
        diagnostic = ""
    values = {
        "delivery_id": row.delivery_id,
        "bill_id": row.bill_id,
        "customer_id": row.customer_id,
        "reason": reason,
        "assigned_role": "account_manager" if manager else "phone_rep",
        "assigned_user_id": manager,
        "status": WorkItemStatus.OPEN,
        "code": ITEM_CODES.get(reason, WorkItemEvent.EMAIL_FAILED),
        "params": item_params(row.address, diagnostic, failure),
        "details": {
            "address": row.address,
            "recipient_name": row.recipient_name,
            "recipient_id": row.recipient_id,
            "attempts": attempts,
            **failure,
        },
        "created_at": now,
        "case_key": key,
        "priority": priority,
    }
    item_id = connection.execute(
        _work_item_insert(connection.dialect.name), {f"i_{name}": value for name, value in values.items()}
    ).scalar()
    if item_id is None:  # opened meanwhile by another process: that one stands
        item_id = open_case_of(session, row.customer_id, key)
    link_delivery(session, item_id, row.delivery_id, row.bill_id, reason, now)
    return item_id
