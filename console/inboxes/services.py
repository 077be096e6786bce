"""Work items: who sees which, the inbox queries (keyset pages), and the follow-up actions.

Services take a Session, plain values and an Actor; they flush, never commit. Visibility:
- phone reps: items assigned to the phone_rep role;
- account managers: items assigned to the account_manager role whose customer they manage;
- admins: every item.
Anything else is "not found" (404), so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, false, func, or_, select, true, update
from sqlalchemy.orm import Session, aliased, selectinload

from console.audit import Actor, record_audit, record_contact
from console.customers.services import mask_id_number
from console.db import utcnow
from console.delivery import corrections
from console.emailaddress import InvalidAddress, parse_address
from console.models import (
    AuditEvent,
    Bill,
    ContactRecord,
    Customer,
    Cycle,
    Delivery,
    Recipient,
    User,
    UserRole,
    WorkItem,
)
from console.models.customers import ContactEvent
from console.models.delivery import DeliveryStatus, WorkItemStatus
from console.paper.rules import paper_allowed

CALL_OUTCOMES = ("reached", "no_answer", "wrong_number")
STATUS_FILTERS = ("open", "mine", "claimed", "closed")
ORDERS = ("oldest", "newest")
PAGE_SIZE = 50


class InboxError(ValueError):
    """A refused action; the message is shown to the user (translated in the route)."""


class NotFound(LookupError):
    pass


class ItemTaken(InboxError):
    pass


@dataclass(frozen=True)
class Viewer:
    user_id: int
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, user: Any) -> Viewer:
        return cls(user.id, frozenset(user.roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# ---- visibility ---------------------------------------------------------------------------------


def _managed_customers(user_id: int):  # noqa: ANN202
    return select(Customer.id).where(Customer.account_manager_id == user_id)


def visible_clause(viewer: Viewer, queue: str | None = None):  # noqa: ANN201
    """The work items `viewer` may see; `queue` narrows to one role's queue."""
    parts = []
    if queue in (None, "phone_rep") and ("phone_rep" in viewer.roles or viewer.is_admin):
        parts.append(WorkItem.assigned_role == "phone_rep")
    if queue in (None, "account_manager"):
        if viewer.is_admin and queue is None:
            parts.append(WorkItem.assigned_role == "account_manager")
        elif "account_manager" in viewer.roles:
            parts.append(
                and_(
                    WorkItem.assigned_role == "account_manager",
                    WorkItem.customer_id.in_(_managed_customers(viewer.user_id)),
                )
            )
    if viewer.is_admin and queue is None:
        return true()
    return or_(*parts) if parts else false()


def get_item(session: Session, viewer: Viewer, item_id: int, for_update: bool = False) -> WorkItem:
    query = select(WorkItem).where(WorkItem.id == item_id, visible_clause(viewer))
    if for_update:
        query = query.execution_options(populate_existing=True)
    item = session.scalar(query)
    if item is None:
        raise NotFound(item_id)
    return item


# ---- inbox lists ---------------------------------------------------------------------------------


@dataclass
class InboxQuery:
    queue: str  # phone_rep | account_manager
    status: str = "open"
    reason: str | None = None
    account_no: str | None = None
    search: str | None = None  # account number, a fragment of the name or address, a phone number
    cycle: str | None = None  # a period, e.g. 2026-10
    older_than_hours: int | None = None
    order: str = "oldest"
    after: str | None = None  # keyset cursor "<iso time>|<id>"
    before: str | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def from_args(cls, queue: str, args: Any) -> InboxQuery:
        status = args.get("status", "open")
        order = args.get("order", "oldest")
        return cls(
            queue=queue,
            status=status if status in STATUS_FILTERS else "open",
            reason=(args.get("reason") or None),
            account_no=(args.get("account_no") or "").strip() or None,
            search=(args.get("q") or "").strip()[:100] or None,
            cycle=(args.get("cycle") or "").strip()[:7] or None,
            older_than_hours=int(args["age"]) if (args.get("age") or "").isdigit() else None,
            order=order if order in ORDERS else "oldest",
            after=args.get("after") or None,
            before=args.get("before") or None,
        )

    def args(self, **overrides: Any) -> dict:
        values = {"status": self.status, "reason": self.reason, "account_no": self.account_no, "order": self.order,
                  "q": self.search, "cycle": self.cycle, "age": self.older_than_hours}
        values.update(overrides)
        return {k: v for k, v in values.items() if v}


@dataclass
class InboxPage:
    rows: list[dict]
    next_cursor: str | None
    prev_cursor: str | None
    query: InboxQuery


def encode_cursor(created_at: datetime, item_id: int) -> str:
    return f"{created_at.isoformat()}|{item_id}"


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    stamp, _, ident = cursor.rpartition("|")
    try:
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            return None
        return moment, int(ident)
    except ValueError:
        return None


def _status_clause(query: InboxQuery, viewer: Viewer):  # noqa: ANN202
    if query.status == "mine":
        return and_(WorkItem.status == WorkItemStatus.CLAIMED, WorkItem.claimed_by_id == viewer.user_id)
    return WorkItem.status == query.status


def list_items(session: Session, viewer: Viewer, query: InboxQuery) -> InboxPage:
    """One keyset page on (created_at, id): the same cost on page 1 and page 2,000."""
    claimer = aliased(User)
    stmt = (
        select(
            WorkItem.id, WorkItem.created_at, WorkItem.reason, WorkItem.status, WorkItem.code, WorkItem.params,
            WorkItem.claimed_by_id, claimer.display_name.label("claimed_by"), WorkItem.notice, WorkItem.priority,
            Customer.id.label("customer_id"), Customer.account_no, Customer.name, Customer.phone,
            Customer.key_account, Bill.bill_no,
        )
        .join(Customer, Customer.id == WorkItem.customer_id)
        .join(Bill, Bill.id == WorkItem.bill_id)
        .outerjoin(claimer, claimer.id == WorkItem.claimed_by_id)
        .where(visible_clause(viewer, query.queue), WorkItem.assigned_role == query.queue, _status_clause(query, viewer))
    )
    if query.reason:
        stmt = stmt.where(WorkItem.reason == query.reason)
    if query.account_no:
        stmt = stmt.where(Customer.account_no == query.account_no)
    if query.search:
        stmt = stmt.where(customer_match(query.search))
    if query.cycle:
        stmt = stmt.where(Bill.cycle_id.in_(select(Cycle.id).where(Cycle.period == query.cycle)))
    if query.older_than_hours:
        stmt = stmt.where(WorkItem.created_at <= utcnow() - timedelta(hours=query.older_than_hours))
    ascending = query.order == "oldest"
    backwards = False
    cursor = decode_cursor(query.after)
    if cursor is None and query.before:
        cursor = decode_cursor(query.before)
        backwards = cursor is not None
    forward = ascending != backwards  # direction we scan the index in
    if cursor is not None:
        moment, ident = cursor
        if forward:
            stmt = stmt.where(
                WorkItem.created_at >= moment, or_(WorkItem.created_at > moment, WorkItem.id > ident)
            )
        else:
            stmt = stmt.where(
                WorkItem.created_at <= moment, or_(WorkItem.created_at < moment, WorkItem.id < ident)
            )
    if forward:
        stmt = stmt.order_by(WorkItem.created_at.asc(), WorkItem.id.asc())
    else:
        stmt = stmt.order_by(WorkItem.created_at.desc(), WorkItem.id.desc())
    rows = [dict(r._mapping) for r in session.execute(stmt.limit(query.limit + 1))]
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    if backwards:
        rows.reverse()
    next_cursor = prev_cursor = None
    if rows:
        first, last = rows[0], rows[-1]
        if more or backwards:
            next_cursor = encode_cursor(last["created_at"], last["id"])
        if cursor is not None and (more or not backwards):
            prev_cursor = encode_cursor(first["created_at"], first["id"])
    return InboxPage(rows, next_cursor, prev_cursor, query)


COUNT_CAP = 10_000


def _capped_count(session: Session, *where) -> int:  # noqa: ANN002
    """Counts up to COUNT_CAP (shown as "10000+"): constant cost however long the queue grows."""
    limited = select(WorkItem.id).where(*where).limit(COUNT_CAP).subquery()
    return session.scalar(select(func.count()).select_from(limited))


def counts(session: Session, viewer: Viewer, queue: str) -> dict[str, int]:
    """Open and claimed items of the queue, and those claimed by the viewer (each capped at COUNT_CAP)."""
    base = (visible_clause(viewer, queue), WorkItem.assigned_role == queue)
    return {
        "open": _capped_count(session, *base, WorkItem.status == WorkItemStatus.OPEN),
        "claimed": _capped_count(session, *base, WorkItem.status == WorkItemStatus.CLAIMED),
        "mine": _capped_count(session, *base, WorkItem.status == WorkItemStatus.CLAIMED, WorkItem.claimed_by_id == viewer.user_id),
        "cap": COUNT_CAP,
    }


REASONS = ("email_failed", "email_unconfirmed", "post_returned")


def managed_accounts(session: Session, user_id: int) -> list[dict]:
    """The account manager's key accounts with their collective settings and open item counts."""
    open_items = (
        select(WorkItem.customer_id, func.count().label("n"))
        .where(WorkItem.status.in_((WorkItemStatus.OPEN, WorkItemStatus.CLAIMED)), WorkItem.assigned_role == "account_manager")
        .group_by(WorkItem.customer_id)
        .subquery()
    )
    stmt = (
        select(Customer, func.coalesce(open_items.c.n, 0))
        .outerjoin(open_items, open_items.c.customer_id == Customer.id)
        .where(Customer.account_manager_id == user_id)
        .order_by(Customer.name)
    )
    return [
        {
            "id": c.id, "account_no": c.account_no, "name": c.name, "key_account": c.key_account,
            "collective_billing": c.collective_billing, "collective_billing_since": c.collective_billing_since,
            "channels": c.channels, "attaches_pdf": c.attaches_pdf, "phone": c.phone, "email": c.email,
            "open_items": n,
        }
        for c, n in session.execute(stmt)
    ]


# ---- one item -------------------------------------------------------------------------------------


def item_view(session: Session, viewer: Viewer, item_id: int, paper_key_accounts_only: bool = True) -> dict:
    item = get_item(session, viewer, item_id)
    customer = session.get(Customer, item.customer_id)
    bill = session.get(Bill, item.bill_id)
    cycle = session.get(Cycle, bill.cycle_id) if bill else None
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.bill_id == item.bill_id)
        .options(selectinload(Delivery.attempts))
        .order_by(Delivery.created_at, Delivery.id)
    ).all()
    recipients = session.scalars(
        select(Recipient).where(Recipient.customer_id == customer.id).order_by(Recipient.id)
    ).all()
    contacts = session.execute(
        select(ContactRecord, User.display_name)
        .outerjoin(User, User.id == ContactRecord.actor_id)
        .where(ContactRecord.customer_id == customer.id)
        .order_by(ContactRecord.occurred_at.desc(), ContactRecord.id.desc())
        .limit(30)
    ).all()
    history = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == "work_item", AuditEvent.entity_id == str(item.id))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    names = dict(
        session.execute(
            select(User.id, User.display_name).where(
                User.id.in_([i for i in (item.claimed_by_id, item.assigned_user_id, customer.account_manager_id) if i])
            )
        ).all()
    )
    case = corrections.case_deliveries(session, item)
    case_bills = dict(session.execute(
        select(Bill.id, Bill.bill_no).where(Bill.id.in_({d.bill_id for d in case} | {item.bill_id}))
    ).all())
    return {
        "item": item,
        "case_deliveries": case,
        "case_bills": case_bills,
        "customer": customer,
        "id_number_masked": mask_id_number(customer.id_number),
        "bill": bill,
        "cycle": cycle,
        "deliveries": deliveries,
        "failed_delivery": session.get(Delivery, item.delivery_id),
        "recipients": recipients,
        "contacts": contacts,
        "history": history,
        "names": names,
        "reassign_targets": reassign_targets(session, item, customer),
        "claimed_by_me": item.status == WorkItemStatus.CLAIMED and item.claimed_by_id == viewer.user_id,
        # Which actions the page offers: the rules the actions themselves refuse by (no button can only fail).
        "may": {
            "work": work_refusal(viewer, item) is None,
            "reassign": can_reassign(viewer, item),
            "switch_to_paper": work_refusal(viewer, item) is None
            and paper_switch_refusal(customer, paper_key_accounts_only) is None,
        },
    }


def reassign_targets(session: Session, item: WorkItem, customer: Customer) -> list[dict]:
    """Any phone rep (or the phone-rep queue), or the customer's own account manager."""
    targets = [{"value": "phone_rep", "kind": "queue", "name": None}]
    reps = session.execute(
        select(User.id, User.display_name)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "phone_rep", User.active.is_(True))
        .order_by(User.display_name)
        .limit(200)
    ).all()
    targets += [{"value": f"user:{uid}", "kind": "phone_rep", "name": name} for uid, name in reps]
    if customer.account_manager_id:
        manager = session.get(User, customer.account_manager_id)
        if manager is not None and manager.active:
            targets.append({"value": f"user:{manager.id}", "kind": "account_manager", "name": manager.display_name})
    return targets


# ---- actions ------------------------------------------------------------------------------------


def claim(session: Session, viewer: Viewer, item_id: int, actor: Actor) -> WorkItem:
    """Conditional UPDATE: of two people claiming one item at once, exactly one wins."""
    result = session.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id, WorkItem.status == WorkItemStatus.OPEN, visible_clause(viewer))
        .values(status=WorkItemStatus.CLAIMED, claimed_by_id=viewer.user_id)
        .execution_options(synchronize_session=False)
    )
    item = get_item(session, viewer, item_id, for_update=True)
    if result.rowcount != 1:
        if item.status == WorkItemStatus.CLAIMED and item.claimed_by_id == viewer.user_id:
            return item
        if item.status == WorkItemStatus.CLOSED:
            raise InboxError(_l("This work item is already closed."))
        raise ItemTaken(_l("Someone else is already working on this item."))
    record_audit(session, actor, "work_item.claim", "work_item", item.id, before={"status": "open"},
                 after={"status": "claimed", "claimed_by_id": viewer.user_id})
    return item


def release(session: Session, viewer: Viewer, item_id: int, actor: Actor) -> WorkItem:
    get_item(session, viewer, item_id)
    result = session.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id, WorkItem.status == WorkItemStatus.CLAIMED, WorkItem.claimed_by_id == viewer.user_id)
        .values(status=WorkItemStatus.OPEN, claimed_by_id=None)
        .execution_options(synchronize_session=False)
    )
    item = get_item(session, viewer, item_id, for_update=True)
    if result.rowcount == 1:
        record_audit(session, actor, "work_item.release", "work_item", item.id, before={"status": "claimed"},
                     after={"status": "open"})
    return item


def work_refusal(viewer: Viewer, item: WorkItem) -> InboxError | None:
    """Why the viewer cannot act on the item (call, correct, switch to paper, close); None: they can."""
    if item.status == WorkItemStatus.CLOSED:
        return InboxError(_l("This work item is already closed."))
    if item.status == WorkItemStatus.CLAIMED and item.claimed_by_id != viewer.user_id:
        return ItemTaken(_l("Someone else is already working on this item."))
    return None


def can_reassign(viewer: Viewer, item: WorkItem) -> bool:
    """An open item, or one the viewer works on; an admin may also take one from another person."""
    return item.status != WorkItemStatus.CLOSED and (
        item.status != WorkItemStatus.CLAIMED or item.claimed_by_id == viewer.user_id or viewer.is_admin
    )


def paper_switch_refusal(customer: Customer, key_accounts_only: bool = True) -> str | None:
    """Why the customer cannot be switched to paper bills (None: they can): paper is for key accounts
    only for now (PAPER_KEY_ACCOUNTS_ONLY), and it needs a postal address."""
    from console.paper.rules import PAPER_REFUSED

    if not paper_allowed(customer, key_accounts_only):
        return str(PAPER_REFUSED)
    if not (customer.postal_address or "").strip():
        return str(_l("The customer has no postal address; correct the customer file first."))
    return None


def _take(session: Session, viewer: Viewer, item_id: int, actor: Actor) -> WorkItem:
    """The item, claimed by the viewer (claiming it now if it is open); refused if another has it."""
    item = get_item(session, viewer, item_id, for_update=True)
    refusal = work_refusal(viewer, item)
    if refusal is not None:
        raise refusal
    if item.status == WorkItemStatus.OPEN:
        item = claim(session, viewer, item_id, actor)
    return item


def _close(session: Session, item: WorkItem, reason: str, actor: Actor, extra: dict | None = None) -> None:
    before = {"status": item.status}
    item.status = WorkItemStatus.CLOSED
    item.closed_at = utcnow()
    item.close_reason = reason
    session.flush()
    record_audit(session, actor, "work_item.close", "work_item", item.id, before=before,
                 after={"status": "closed", "close_reason": reason} | (extra or {}))


def record_call(session: Session, viewer: Viewer, item_id: int, outcome: str, note: str, actor: Actor,
                new_phone: str = "") -> ContactRecord:
    """A call and its outcome in the contact history; "wrong number" takes the right one (validated
    as the import validates) and puts it on the customer file."""
    from console.customers.services import FormInvalid, clean_phone

    if outcome not in CALL_OUTCOMES:
        raise InboxError(_l("Choose the outcome of the call."))
    note = (note or "").strip()
    if len(note) > 2000:
        raise InboxError(_l("The note is too long (2,000 characters at most)."))
    phone = None
    if outcome == "wrong_number" and (new_phone or "").strip():
        try:
            phone = clean_phone(new_phone)
        except FormInvalid as exc:
            raise InboxError(next(iter(exc.errors.values()))) from None
    item = _take(session, viewer, item_id, actor)
    details = {"outcome": outcome, "work_item_id": item.id}
    if phone is not None:
        customer = session.get(Customer, item.customer_id)
        details |= {"phone_before": customer.phone, "phone": phone}
        record_audit(session, actor, "customer.phone", "customer", customer.id, before={"phone": customer.phone},
                     after={"phone": phone, "work_item_id": item.id})
        customer.phone = phone
    record = record_contact(
        session, item.customer_id, "phone", ContactEvent.CALL, actor, bill_id=item.bill_id, details=details,
        params={"outcome": outcome, "phone": phone}, note=note,
    )
    session.flush()
    record_audit(session, actor, "work_item.call", "work_item", item.id, after={"outcome": outcome, "note": note,
                                                                                 "contact_record_id": record.id})
    return record


def _case_address(item: WorkItem, first: Delivery | None) -> str:
    return (item.details or {}).get("address") or (first.address if first is not None else "")


def correct_email(
    session: Session, viewer: Viewer, item_id: int, new_email: str, actor: Actor, send_batch_size: int
) -> Delivery:
    """Corrects the address of the case once — the holder's e-mail and every recipient row of this
    customer at that address — closes the item and has the delivery domain send every bill of the
    case again to the new address (after the commit). Returns the first delivery that will be sent."""
    try:
        address = parse_address((new_email or "").strip())
    except InvalidAddress:
        raise InboxError(_l("That is not a valid e-mail address.")) from None
    item = _take(session, viewer, item_id, actor)
    deliveries = corrections.case_deliveries(session, item)
    emails = [d for d in deliveries if d.channel == "email"]
    if not emails:
        raise InboxError(_l("Only an e-mail delivery can be sent to a corrected address."))
    customer = session.get(Customer, item.customer_id)
    old = {d.address for d in emails}
    old_folded = {a.casefold() for a in old}
    names: dict[int | None, str] = {}
    recipients = session.scalars(
        select(Recipient).where(Recipient.customer_id == customer.id, Recipient.channel == "email")
    ).all()
    for recipient in recipients:
        if (recipient.address or "").casefold() in old_folded or recipient.id in {d.recipient_id for d in emails}:
            clash = any(r.address == address and r.id != recipient.id for r in recipients)
            if clash:
                raise InboxError(_l("Another recipient of this customer already has that address."))
            before = {"address": recipient.address}
            recipient.address = address
            names[recipient.id] = recipient.name
            record_audit(session, actor, "recipient.address", "recipient", recipient.id, before=before,
                         after={"address": address, "work_item_id": item.id})
    if (customer.email or "").casefold() in old_folded or any(d.recipient_id is None for d in emails):
        before = {"email": customer.email}
        customer.email = address
        record_audit(session, actor, "customer.email", "customer", customer.id, before=before,
                     after={"email": address, "work_item_id": item.id})
    record_contact(session, customer.id, "console", ContactEvent.EMAIL_CORRECTED, actor, bill_id=item.bill_id,
                   params={"before": sorted(old), "after": address}, details={"work_item_id": item.id})
    try:
        resent = corrections.resend_case(session, item, address, actor, utcnow(), send_batch_size, names)
    except corrections.ResendRefused as exc:
        raise InboxError(str(exc)) from None
    _close(session, item, "address_corrected", actor,
           {"new_delivery_ids": [d.id for d in resent], "address": address})
    return resent[0] if resent else emails[0]


def correct_postal(
    session: Session, viewer: Viewer, item_id: int, postal_address: str, postal_code: str, actor: Actor,
) -> list[Delivery]:
    """A returned letter's case: the postal address (and code) corrected once — the holder's or the
    paper recipient rows at that address — and every bill of the case reprinted: a new paper
    delivery each, which the next print batch picks up (console.delivery.corrections)."""
    from console.customers.services import FormInvalid, clean_postal

    try:
        postal_address, postal_code = clean_postal(postal_address, postal_code)
    except FormInvalid as exc:
        raise InboxError(next(iter(exc.errors.values()))) from None
    item = _take(session, viewer, item_id, actor)
    papers = [d for d in corrections.case_deliveries(session, item) if d.channel == "paper"]
    if not papers:
        raise InboxError(_l("Only a paper delivery can be reprinted to a corrected postal address."))
    customer = session.get(Customer, item.customer_id)
    holder = any(d.recipient_id is None for d in papers)
    if holder:
        before = {"postal_address": customer.postal_address, "postal_code": customer.postal_code}
        customer.postal_address, customer.postal_code = postal_address, postal_code
        record_audit(session, actor, "customer.postal_address", "customer", customer.id, before=before,
                     after={"postal_address": postal_address, "postal_code": postal_code, "work_item_id": item.id})
        new_address = postal_address if postal_code in postal_address else f"{postal_address} {postal_code}"
    else:
        new_address = postal_address
    for recipient_id in {d.recipient_id for d in papers if d.recipient_id is not None}:
        recipient = session.get(Recipient, recipient_id)
        before = {"address": recipient.address}
        recipient.address = new_address
        record_audit(session, actor, "recipient.address", "recipient", recipient.id, before=before,
                     after={"address": new_address, "work_item_id": item.id})
    record_contact(session, customer.id, "console", ContactEvent.POSTAL_CORRECTED, actor, bill_id=item.bill_id,
                   params={"before": sorted({d.address for d in papers}), "after": new_address},
                   details={"work_item_id": item.id})
    try:
        resent = corrections.resend_case(session, item, new_address[:300], actor, utcnow(), 0)
    except corrections.ResendRefused as exc:
        raise InboxError(str(exc)) from None
    _close(session, item, "address_corrected", actor,
           {"new_delivery_ids": [d.id for d in resent], "address": new_address})
    return resent


def switch_to_paper(
    session: Session, viewer: Viewer, item_id: int, actor: Actor, key_accounts_only: bool = True
) -> WorkItem:
    item = _take(session, viewer, item_id, actor)
    customer = session.get(Customer, item.customer_id)
    refusal = paper_switch_refusal(customer, key_accounts_only)
    if refusal is not None:
        raise InboxError(refusal)
    before = {"channels": customer.channels}
    customer.channel_paper = True
    customer.channel_email = False
    customer.wants_ebill = customer.channel_portal
    record_audit(session, actor, "customer.channels", "customer", customer.id, before=before,
                 after={"channels": customer.channels, "work_item_id": item.id})
    # This bill goes on paper too: a queued paper delivery is what the print batches pick up.
    session.flush()
    session.refresh(customer, ["recipients"])
    corrections.add_paper_copies(session, item.bill_id, customer, key_accounts_only, utcnow())
    _close(session, item, "switched_to_paper", actor)
    return item


def reassign(session: Session, viewer: Viewer, item_id: int, target: str, actor: Actor) -> WorkItem:
    item = get_item(session, viewer, item_id, for_update=True)
    if not can_reassign(viewer, item):
        if item.status == WorkItemStatus.CLOSED:
            raise InboxError(_l("This work item is already closed."))
        raise ItemTaken(_l("Someone else is already working on this item."))
    customer = session.get(Customer, item.customer_id)
    allowed = {t["value"]: t for t in reassign_targets(session, item, customer)}
    chosen = allowed.get(target)
    if chosen is None:
        raise InboxError(_l("Choose a phone rep or the customer's account manager."))
    before = {"assigned_role": item.assigned_role, "assigned_user_id": item.assigned_user_id,
              "status": item.status, "claimed_by_id": item.claimed_by_id}
    if chosen["kind"] == "queue":
        item.assigned_role, item.assigned_user_id = "phone_rep", None
    else:
        item.assigned_role = chosen["kind"]
        item.assigned_user_id = int(target.split(":", 1)[1])
    item.status = WorkItemStatus.OPEN
    item.claimed_by_id = None
    session.flush()
    record_audit(session, actor, "work_item.reassign", "work_item", item.id, before=before,
                 after={"assigned_role": item.assigned_role, "assigned_user_id": item.assigned_user_id,
                        "status": "open"})
    return item


def close(session: Session, viewer: Viewer, item_id: int, reason: str, actor: Actor) -> WorkItem:
    reason = (reason or "").strip()
    if not reason:
        raise InboxError(_l("Say why the item is closed."))
    if len(reason) > 2000:
        raise InboxError(_l("The note is too long (2,000 characters at most)."))
    item = _take(session, viewer, item_id, actor)
    _close(session, item, reason, actor)
    return item


# ---- what an action would do (the in-page confirmation's figures, console/web/confirm.py) --------


@dataclass
class CasePreview:
    item: WorkItem
    customer: Customer
    bill_no: str
    failed: list[Delivery]  # the case's failed deliveries: what a correction sends or prints again

    @property
    def bills(self) -> int:
        return len({d.bill_id for d in self.failed})

    @property
    def addresses(self) -> list[str]:
        return sorted({d.address for d in self.failed})


def case_preview(session: Session, viewer: Viewer, item_id: int) -> CasePreview:
    """The case as an action on it would find it; refused (InboxError) as the action would be."""
    item = get_item(session, viewer, item_id)
    refusal = work_refusal(viewer, item)
    if refusal is not None:
        raise refusal
    failed = [d for d in corrections.case_deliveries(session, item) if d.status == DeliveryStatus.FAILED]
    bill_no = session.scalar(select(Bill.bill_no).where(Bill.id == item.bill_id)) or ""
    return CasePreview(item, session.get(Customer, item.customer_id), bill_no, failed)


def paper_switch_preview(session: Session, viewer: Viewer, item_id: int, key_accounts_only: bool = True) -> dict:
    """What switching the item's customer to paper does: e-mail off, paper on, and this bill printed for
    the holder and every paper recipient that has no paper copy of it yet (letters, copies, addresses)."""
    from console.paper.rules import PaperRecipient, paper_recipients

    case = case_preview(session, viewer, item_id)
    customer = case.customer
    refusal = paper_switch_refusal(customer, key_accounts_only)
    if refusal is not None:
        raise InboxError(refusal)
    targets = paper_recipients(customer, key_accounts_only)
    if not customer.channel_paper:  # switching adds the holder at the postal address
        holder = PaperRecipient(customer.name, customer.postal_address, customer.postal_code or "", 1, None)
        targets = [holder] + [t for t in targets if t.address != customer.postal_address]
    printed = set(session.scalars(select(Delivery.address).where(Delivery.bill_id == case.item.bill_id,
                                                                 Delivery.channel == "paper")))
    new = [t for t in targets if t.delivery_address not in printed]
    return {"customer": customer, "bill_no": case.bill_no, "letters": len(new), "copies": sum(t.copies for t in new),
            "addresses": [t.delivery_address for t in new], "email_stops": bool(customer.channel_email)}


def bulk_close_preview(session: Session, viewer: Viewer, item_ids: list[int]) -> dict:
    """What closing these items at once does: the ones it closes (as `bulk` would: open, or the viewer's)
    and how many of the selection it refuses."""
    wanted = item_ids[:200]
    items = session.scalars(select(WorkItem).where(WorkItem.id.in_(wanted), visible_clause(viewer))).all() if wanted else []
    closes = [i.id for i in items if work_refusal(viewer, i) is None]
    return {"closes": closes, "refused": len(set(wanted)) - len(closes)}


# ---- help desk: search, age and due-by, take next, bulk actions, the JSON view -------------------


def _contains(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def customer_match(text: str):  # noqa: ANN201
    """Customers by account number (exact), name or postal address containing `text` anywhere
    (PostgreSQL: served by the pg_trgm GIN indexes), or phone starting with it."""
    like = _contains(text)
    return or_(
        Customer.account_no == text,
        Customer.name.like(like, escape="\\"),
        Customer.postal_address.like(like, escape="\\"),
        Customer.phone.like(text.replace("%", "") + "%"),
    )


WORKDAY_START, WORKDAY_END = time(9, 0), time(17, 0)  # Monday to Friday, in the display time zone


def due_by(created_at: datetime, hours: float, zone: tzinfo) -> datetime:
    """`created_at` plus `hours` working hours (09:00–17:00, Monday to Friday, in `zone`)."""
    moment = created_at.astimezone(zone)
    left = timedelta(hours=hours)
    for _ in range(3660):  # at most ten years of days
        start = moment.replace(hour=WORKDAY_START.hour, minute=0, second=0, microsecond=0)
        end = moment.replace(hour=WORKDAY_END.hour, minute=0, second=0, microsecond=0)
        if moment.weekday() < 5 and moment < end:
            moment = max(moment, start)
            if moment + left <= end:
                return moment + left
            left -= end - moment
        moment = (moment + timedelta(days=1)).replace(hour=WORKDAY_START.hour, minute=0, second=0, microsecond=0)
    return moment


def timing(created_at: datetime, key_account: bool, targets: dict, zone: tzinfo, now: datetime | None = None) -> dict:
    """Age in hours, due-by time and whether the item is overdue, for the inbox and the JSON view.
    `targets`: {"key_account": hours, "default": hours} (CASE_TARGET_HOURS_KEY_ACCOUNT, CASE_TARGET_HOURS)."""
    now = now or utcnow()
    due = due_by(created_at, targets["key_account" if key_account else "default"], zone)
    return {"age_hours": round((now - created_at).total_seconds() / 3600, 1), "due_by": due, "overdue": now > due}


def take_next(session: Session, viewer: Viewer, queue: str, actor: Actor) -> WorkItem | None:
    """Claims the most urgent open item of the queue for the viewer (priority, then age): a
    conditional UPDATE, so two people pressing at once get two different items. None: nothing left."""
    for _ in range(10):
        candidate = session.scalar(
            select(WorkItem.id)
            .where(visible_clause(viewer, queue), WorkItem.assigned_role == queue,
                   WorkItem.status == WorkItemStatus.OPEN,
                   or_(WorkItem.assigned_user_id.is_(None), WorkItem.assigned_user_id == viewer.user_id))
            .order_by(WorkItem.priority, WorkItem.created_at, WorkItem.id)
            .limit(1)
        )
        if candidate is None:
            return None
        won = session.execute(
            update(WorkItem).where(WorkItem.id == candidate, WorkItem.status == WorkItemStatus.OPEN)
            .values(status=WorkItemStatus.CLAIMED, claimed_by_id=viewer.user_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            record_audit(session, actor, "work_item.claim", "work_item", candidate, before={"status": "open"},
                         after={"status": "claimed", "claimed_by_id": viewer.user_id, "take_next": True})
            return get_item(session, viewer, candidate, for_update=True)
    return None


BULK_ACTIONS = ("claim", "reassign", "close")


def bulk(session: Session, viewer: Viewer, item_ids: list[int], action: str, actor: Actor, *,
         target: str = "", reason: str = "") -> dict[str, int]:
    """Claim, reassign or close several items; each item goes through the one-item action (its checks
    and audit). Returns how many were done and how many refused."""
    if action not in BULK_ACTIONS:
        raise InboxError(_l("Choose an action."))
    if action == "close" and not (reason or "").strip():
        raise InboxError(_l("Say why the item is closed."))
    done = refused = 0
    for item_id in item_ids[:200]:
        try:
            with session.begin_nested():
                if action == "claim":
                    claim(session, viewer, item_id, actor)
                elif action == "reassign":
                    reassign(session, viewer, item_id, target, actor)
                else:
                    close(session, viewer, item_id, reason, actor)
            done += 1
        except (InboxError, NotFound):
            refused += 1
    return {"done": done, "refused": refused}


def items_json(session: Session, role: str | None, status: str | None, targets: dict, zone: tzinfo,
               limit: int = 1000) -> list[dict]:
    """Items as plain objects for scripts (`console inbox list --json`)."""
    from console.models.delivery import WorkItemDelivery

    stmt = (
        select(WorkItem, Customer.account_no, Customer.key_account, User.username)
        .join(Customer, Customer.id == WorkItem.customer_id)
        .outerjoin(User, User.id == func.coalesce(WorkItem.claimed_by_id, WorkItem.assigned_user_id))
        .order_by(WorkItem.priority, WorkItem.created_at, WorkItem.id).limit(limit)
    )
    if role:
        stmt = stmt.where(WorkItem.assigned_role == role)
    if status:
        stmt = stmt.where(WorkItem.status == status)
    rows = session.execute(stmt).all()
    ids = [item.id for item, *_ in rows]
    links: dict[int, list[dict]] = {}
    if ids:
        for item_id, delivery_id, bill_no, channel, delivery_status in session.execute(
            select(WorkItemDelivery.work_item_id, Delivery.id, Bill.bill_no, Delivery.channel, Delivery.status)
            .join(Delivery, Delivery.id == WorkItemDelivery.delivery_id).join(Bill, Bill.id == Delivery.bill_id)
            .where(WorkItemDelivery.work_item_id.in_(ids)).order_by(Delivery.id)
        ):
            links.setdefault(item_id, []).append(
                {"id": delivery_id, "bill_no": bill_no, "channel": channel, "status": delivery_status})
    out = []
    for item, account_no, key_account, username in rows:
        times = timing(item.created_at, key_account, targets, zone)
        out.append({
            "id": item.id, "account_no": account_no, "address": (item.details or {}).get("address"),
            "reason": item.reason, "status": item.status, "assigned_role": item.assigned_role,
            "assigned_user": username, "age_hours": times["age_hours"], "due_by": times["due_by"].isoformat(),
            "overdue": times["overdue"], "deliveries": links.get(item.id, []),
        })
    return out
