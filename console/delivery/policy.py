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
  item (console/delivery/sweeper.py does the deadline part).

Every state change of a delivery is a conditional UPDATE (WHERE status/attempts_made = what we
read), so two processes acting on the same delivery at once (the receiver and the sweeper, two
sweepers) change it once. Services here flush, never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from console.audit import Actor, record_contact
from console.models import Customer, Delivery, DeliveryAttempt, WorkItem

MAX_ATTEMPTS = 2  # the first sending and one resend
ACTIONS = ("delivered", "relayed", "delayed", "failed", "expanded", "refused")
CONFIRMING = {"delivered": "delivered", "relayed": "relayed", "expanded": "expanded"}
FINAL_OUTCOMES = {"delivered", "relayed", "expanded", "failed", "refused"}
SETTLED = ("confirmed", "cancelled")

CONFIRM_SUMMARY = {
    "delivered": "电子账单已送达（投递报告确认） / E-mail bill delivered (delivery report)",
    "relayed": "电子账单已由客户邮件系统接收（relayed） / E-mail bill accepted by the customer's mail system",
    "expanded": "电子账单已送达邮件列表（expanded） / E-mail bill delivered to a mailing list",
    "portal_open": "客户在网上查看了账单 / Customer opened the bill on the web page",
}


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


def _record_on_attempt(
    attempt: DeliveryAttempt,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None,
) -> None:
    attempt.reports = [
        *(attempt.reports or []),
        {
            "action": action,
            "status": status,
            "diagnostic": diagnostic,
            "at": reported_at.isoformat(),
            "remote_mta": remote_mta,
        },
    ]
    # A late `delayed` never overwrites a final outcome (reports can arrive out of order).
    if action == "delayed" and attempt.outcome in FINAL_OUTCOMES:
        return
    attempt.outcome = action
    attempt.status_code = (status or None) and status[:16]
    attempt.diagnostic = diagnostic
    attempt.reported_at = reported_at
    attempt.remote_mta = remote_mta and remote_mta[:200]


def apply_report(
    session: Session,
    attempt: DeliveryAttempt,
    action: str,
    status: str | None,
    diagnostic: str | None,
    reported_at: datetime,
    remote_mta: str | None = None,
) -> None:
    """Apply one per-recipient report (RFC 3464 Action/Status/Diagnostic-Code) to its attempt.

    `action` is delivered, relayed, delayed, failed or expanded (and `refused`, used by the sender
    for a recipient refused at RCPT). Unknown actions are recorded on the attempt and change nothing.
    A report for a settled delivery (confirmed, cancelled) is recorded and changes nothing else."""
    action = (action or "").strip().lower()
    _record_on_attempt(attempt, action, status, diagnostic, reported_at, remote_mta)
    session.flush()
    delivery = session.get(Delivery, attempt.delivery_id, populate_existing=True)  # always read afresh
    if action in CONFIRMING:
        confirm(session, delivery, CONFIRMING[action], reported_at, attempt)
        return
    if action not in ("failed", "refused"):
        return  # delayed (the wait goes on), unknown actions
    if delivery.status in SETTLED:
        return
    latest = delivery.attempts_made
    if attempt.attempt_no != latest:
        return  # a failure of an earlier attempt while a later one is out: the later one decides
    if delivery.status == "failed":
        return  # already escalated
    temporary = action == "failed" and not is_permanent(status)
    if temporary and latest < MAX_ATTEMPTS:
        # Resend once: back to the queue; the sender makes attempt 2 (new token and Message-ID).
        transition(
            session,
            delivery,
            {"status": ("sent", "queued"), "attempts_made": latest},
            status="queued",
            confirm_due_at=None,
            claimed_until=None,
            enqueued_at=None,
        )
        return
    if transition(
        session, delivery, {"status": ("sent", "queued"), "attempts_made": latest}, status="failed",
        confirm_due_at=None, claimed_until=None,
    ):
        open_work_item(session, delivery, "email_failed")


def confirm(
    session: Session, delivery: Delivery, how: str, at: datetime, attempt: DeliveryAttempt | None = None
) -> bool:
    """Confirm a delivery once, and write the contact record. False if it was already settled."""
    if not transition(
        session,
        delivery,
        {"status": ("queued", "sent", "failed")},
        status="confirmed",
        confirmed_at=at,
        confirmed_by=how,
        confirm_due_at=None,
        claimed_until=None,
    ):
        return False
    if attempt is None:
        attempt = _latest_sent_attempt(session, delivery)
    record_contact(
        session,
        delivery.customer_id,
        "email",
        CONFIRM_SUMMARY.get(how, how),
        Actor.system(),
        bill_id=delivery.bill_id,
        details={
            "delivery_id": delivery.id,
            "recipient_id": delivery.recipient_id,
            "recipient_name": delivery.recipient_name,
            "address": delivery.address,
            "confirmed_at": at.isoformat(),
            "confirmed_by": how,
            "message_id": attempt.message_id if attempt else None,
            "attempt_no": attempt.attempt_no if attempt else None,
        },
    )
    # The bill arrived after all: an escalation nobody has taken yet is closed.
    for item in session.scalars(
        select(WorkItem).where(WorkItem.delivery_id == delivery.id, WorkItem.status == "open")
    ):
        item.status = "closed"
        item.closed_at = at
        item.close_reason = f"confirmed later ({how})"
    session.flush()
    return True


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
            Delivery.channel == "email",
            Delivery.status.in_(("sent", "queued")),
            Delivery.attempts_made > 0,
        )
    ).all()
    return sum(1 for delivery in deliveries if confirm(session, delivery, "portal_open", at))


def attempt_details(session: Session, delivery: Delivery) -> list[dict]:
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.attempt_no)
    ).all()
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
        for a in attempts
    ]


def open_work_item(session: Session, delivery: Delivery, reason: str) -> WorkItem | None:
    """A work item for a phone rep, or for the account manager of a key account; one per
    delivery and reason (a second call returns the existing one)."""
    existing = session.scalars(
        select(WorkItem).where(WorkItem.delivery_id == delivery.id, WorkItem.reason == reason)
    ).first()
    if existing is not None:
        return existing
    customer = session.get(Customer, delivery.customer_id)
    manager = customer.account_manager_id if customer.key_account else None
    attempts = attempt_details(session, delivery)
    last = attempts[-1] if attempts else {}
    diagnostic = last.get("diagnostic") or last.get("smtp_response") or delivery.last_error or ""
    if reason == "email_failed":
        summary = f"电子账单投递失败 / E-mail bill failed: {delivery.address}"
    else:
        summary = f"电子账单重发后仍未确认 / E-mail bill unconfirmed after resend: {delivery.address}"
    if diagnostic:
        summary += f" — {diagnostic[:300]}"
    item = WorkItem(
        delivery_id=delivery.id,
        bill_id=delivery.bill_id,
        customer_id=delivery.customer_id,
        reason=reason,
        assigned_role="account_manager" if manager else "phone_rep",
        assigned_user_id=manager,
        status="open",
        summary=summary,
        details={
            "address": delivery.address,
            "recipient_name": delivery.recipient_name,
            "recipient_id": delivery.recipient_id,
            "attempts": attempts,
        },
    )
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:  # another process opened it first
        return session.scalars(
            select(WorkItem).where(WorkItem.delivery_id == delivery.id, WorkItem.reason == reason)
        ).first()
    return item
