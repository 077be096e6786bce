"""The customer file: ID numbers (validated, always shown masked), search, the customer page, and the
edits of delivery wishes and recipients (each audited and written to the contact history)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

from console.audit import Actor, record_audit, record_contact
from console.csvimport import Problem, parse_email
from console.models import AuditEvent, ContactRecord, Customer, Recipient, ServicePoint, User
from console.models.customers import RECIPIENT_CHANNELS, RELATIONSHIPS, ContactEvent

# ---------------------------------------------------------------------------------------------
# ID-card numbers (居民身份证号码)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    total = 0
    for digit, weight in zip(first17.encode("ascii"), _WEIGHTS, strict=True):
        total += (digit - 48) * weight
    return _CHECK[total % 11]


def _valid_birth(text: str) -> bool:
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return date(1880, 1, 1) <= born <= date.today()


def parse_id_number(text: str) -> str:
    """An 18-character PRC ID number with a correct check character (X upper-cased), or 15 digits."""
    value = text.strip().upper()
    if len(value) == 18:
        if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
            raise Problem("id_digits_18")
        if not _valid_birth(value[6:14]):
            raise Problem("id_birth_date")
        if id_check_char(value[:17]) != value[17]:
            raise Problem("id_check_digit")
        return value
    if len(value) == 15:
        if not value.isdigit():
            raise Problem("id_digits_15")
        if not _valid_birth("19" + value[6:12]):
            raise Problem("id_birth_date")
        return value
    raise Problem("id_length")


def mask_id_number(value: str | None) -> str:
    """`320502********1234`: the region and the last four only. Use it everywhere an ID is shown,
    exported or logged."""
    if not value:
        return ""
    value = str(value)
    if len(value) <= 10:
        return "*" * (len(value) - 2) + value[-2:] if len(value) > 2 else "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


# ---------------------------------------------------------------------------------------------
# Search: indexed prefix or equality look-ups, keyset pagination by account number, no COUNT(*).

SEARCH_KINDS = ("account", "name", "name_part", "phone", "email")
SEARCH_LABELS = {
    "auto": _l("Anything"),
    "account": _l("Account number"),
    "name": _l("Name"),
    "name_part": _l("Name (anywhere in it)"),
    "phone": _l("Phone"),
    "email": _l("E-mail"),
}
PAGE_SIZE = 20
_PHONE = re.compile(r"^[0-9+][0-9 \-]*$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9-]+$")


def guess_kinds(query: str) -> list[str]:
    """The kinds a query probably means, best first (auto mode tries them in order)."""
    if "@" in query:
        return ["email"]
    if _PHONE.match(query):
        return ["phone", "account"] if query[:1] in "01+" else ["account", "phone"]
    if _ACCOUNT.match(query) and any(ch.isdigit() for ch in query):
        return ["account", "name", "email"]
    if _ACCOUNT.match(query):
        return ["name", "email", "account"]
    return ["name"]


_COLUMNS = {
    "account": Customer.account_no,
    "name": Customer.name,
    "phone": Customer.phone,
    "email": Customer.email,
}


BROAD = 2000  # SQLite: a prefix matching at least this many rows is searched along the account numbers


def _prefix(session: Session, column: Any, text: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%", escape="\\")  # served by the text_pattern_ops index
    condition = (column >= text) & (column < text + "\U0010ffff")  # a range on the plain index
    if column is Customer.account_no:
        return condition
    # SQLite's planner has no row estimates for a range: a broad prefix ("王") would sort thousands of
    # rows. Probe (index only, at most BROAD rows); when broad, walk the account-number index instead
    # and filter (`name || ''` keeps SQLite off the name index), which finds a page in a few thousand rows.
    probe = select(func.count()).select_from(select(Customer.id).where(condition).limit(BROAD).subquery())
    if (session.scalar(probe) or 0) < BROAD:
        return condition
    walked = column.concat("")
    return (walked >= text) & (walked < text + "\U0010ffff")


@dataclass
class SearchPage:
    query: str
    kind: str
    rows: list[Customer] = field(default_factory=list)
    next_after: str | None = None
    after: str | None = None


def search_customers(
    session: Session, query: str, kind: str = "auto", after: str | None = None, page_size: int = PAGE_SIZE
) -> SearchPage:
    """Customers whose account number / name / phone / e-mail starts with `query`, by account number.

    `after` is the last account number of the previous page (keyset pagination).
    """
    query = query.strip()[:100]
    if not query:
        return SearchPage(query, kind)
    if kind == "email":
        query = query.lower()
    kinds = [kind] if kind in SEARCH_KINDS else guess_kinds(query)
    if "name" in kinds and not after:
        # "金桥" for "苏州金桥电子": when nothing else matched, names containing it (a scan along the
        # account numbers on SQLite, the pg_trgm index on PostgreSQL) — only then, so prefixes stay fast.
        kinds.append("name_part")
    page = SearchPage(query, kinds[0], after=after)
    for candidate in kinds:
        text = query.lower() if candidate == "email" else query
        if candidate == "name_part":
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            condition = Customer.name.like(f"%{escaped}%", escape="\\")
        else:
            condition = _prefix(session, _COLUMNS[candidate], text)
        stmt = select(Customer).where(condition)
        if after:
            stmt = stmt.where(Customer.account_no > after)
        rows = list(session.scalars(stmt.order_by(Customer.account_no).limit(page_size + 1)))
        if rows or after:
            page.kind = candidate
            page.rows = rows[:page_size]
            page.next_after = rows[page_size - 1].account_no if len(rows) > page_size else None
            break
    return page


# ---------------------------------------------------------------------------------------------
# The customer page

HISTORY_PAGE = 20
MAX_HISTORY_PAGES = 500  # offset pagination, limited


class CustomerNotFound(LookupError):
    pass


def load_customer(session: Session, customer_id: int) -> Customer:
    customer = session.scalar(
        select(Customer)
        .where(Customer.id == customer_id)
        .options(selectinload(Customer.service_points), selectinload(Customer.recipients))
    )
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


def account_manager_name(session: Session, customer: Customer) -> str:
    if customer.account_manager_id is None:
        return ""
    user = session.get(User, customer.account_manager_id)
    return user.display_name if user else ""


@dataclass
class HistoryPage:
    rows: list[Any]
    page: int
    has_next: bool
    bills: dict[int, str] = field(default_factory=dict)  # contact history: bill id → bill number
    recipients: dict[int, str] = field(default_factory=dict)  # contact record id → who received it


def _page_number(page: int) -> int:
    return min(max(page, 1), MAX_HISTORY_PAGES)


def contact_history(session: Session, customer_id: int, page: int = 1) -> HistoryPage:
    page = _page_number(page)
    stmt = (
        select(ContactRecord, User.display_name)
        .outerjoin(User, User.id == ContactRecord.actor_id)
        .where(ContactRecord.customer_id == customer_id)
        .order_by(ContactRecord.occurred_at.desc(), ContactRecord.id.desc())
        .offset((page - 1) * HISTORY_PAGE)
        .limit(HISTORY_PAGE + 1)
    )
    rows = list(session.execute(stmt))
    shown = [record for record, _who in rows[:HISTORY_PAGE]]
    return HistoryPage(rows[:HISTORY_PAGE], page, len(rows) > HISTORY_PAGE,
                       bills=bill_numbers(session, {r.bill_id for r in shown if r.bill_id is not None}),
                       recipients=contact_recipients(session, shown))


def contact_recipients(session: Session, records: list[ContactRecord]) -> dict[int, str]:
    """Who each contact record concerns, by the codes its details keep: a recipient row (its name),
    a delivery or a printed letter (its recipient's name and address) or a bare address; at most three
    queries a page."""
    from console.models import Delivery

    def detail(record: ContactRecord, key: str) -> Any:
        return (record.details or {}).get(key) if isinstance(record.details, dict) else None

    from console.models.paper import PrintItem

    recipient_ids = {v for r in records if isinstance(v := detail(r, "recipient_id"), int)}
    delivery_ids = {v for r in records if isinstance(v := detail(r, "delivery_id"), int)}
    print_ids = {v for r in records if isinstance(v := detail(r, "print_item_id"), int)}
    names = dict(session.execute(select(Recipient.id, Recipient.name).where(Recipient.id.in_(recipient_ids))).all()) \
        if recipient_ids else {}
    printed = dict(session.execute(select(PrintItem.id, PrintItem.delivery_id).where(PrintItem.id.in_(print_ids)))
                   .all()) if print_ids else {}
    wanted = delivery_ids | set(printed.values())
    deliveries = {row.id: row for row in session.execute(
        select(Delivery.id, Delivery.recipient_name, Delivery.address).where(Delivery.id.in_(wanted)))} \
        if wanted else {}
    out: dict[int, str] = {}
    for record in records:
        rid, address = detail(record, "recipient_id"), detail(record, "address")
        did = detail(record, "delivery_id") or printed.get(detail(record, "print_item_id"))
        if rid in names:
            out[record.id] = names[rid]
        elif did in deliveries:
            out[record.id] = f"{deliveries[did].recipient_name} · {deliveries[did].address}"
        elif isinstance(address, str) and address:
            out[record.id] = address
    return out


def audit_trail(session: Session, customer_id: int, page: int = 1) -> HistoryPage:
    """The customer's audit events and those of its recipients (an address corrected in an inbox)."""
    page = _page_number(page)
    recipients = select(cast(Recipient.id, String)).where(Recipient.customer_id == customer_id)
    stmt = (
        select(AuditEvent)
        .where(or_(and_(AuditEvent.entity_type == "customer", AuditEvent.entity_id == str(customer_id)),
                   and_(AuditEvent.entity_type == "recipient", AuditEvent.entity_id.in_(recipients))))
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * HISTORY_PAGE)
        .limit(HISTORY_PAGE + 1)
    )
    rows = list(session.scalars(stmt))
    return HistoryPage(rows[:HISTORY_PAGE], page, len(rows) > HISTORY_PAGE)


def point_count(session: Session, customer_id: int) -> int:
    return session.scalar(select(func.count()).where(ServicePoint.customer_id == customer_id)) or 0


# ---------------------------------------------------------------------------------------------
# Edits: delivery wishes and recipients. Each is validated, audited (before/after) and written to
# the contact history.


class FormInvalid(ValueError):
    """Field → message for every field that is wrong; nothing was changed."""

    def __init__(self, errors: dict[str, Any]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _paper_check(customer: Customer, paper_key_accounts_only: bool) -> str | None:
    from console.paper.rules import PAPER_REFUSED, paper_allowed

    return None if paper_allowed(customer, paper_key_accounts_only) else PAPER_REFUSED


def paper_offered(customer: Customer, paper_key_accounts_only: bool) -> bool:
    """May the screens offer paper (a channel, a paper recipient) to this customer? The same rule that
    refuses it (PAPER_KEY_ACCOUNTS_ONLY), so no form offers what its save would refuse."""
    return _paper_check(customer, paper_key_accounts_only) is None


def _wishes(customer: Customer) -> dict:
    return {
        "wants_ebill": customer.wants_ebill,
        "channels": customer.channels,
        "email": customer.email,
        "attach_pdf": customer.attach_pdf,
    }


def update_delivery_wishes(
    session: Session,
    customer: Customer,
    actor: Actor,
    *,
    wants_ebill: bool,
    channels: list[str],
    email: str,
    attach_pdf: bool | None,
    paper_key_accounts_only: bool = True,
) -> bool:
    """Sets the e-bill wish, the channels, the e-mail address and the PDF attachment choice.
    Returns False when nothing changed (then nothing is recorded)."""
    errors: dict[str, Any] = {}
    unknown = [c for c in channels if c not in ("portal", "email", "paper")]
    if unknown:
        errors["channels"] = _l("Unknown channel.")
    email = email.strip()
    normalized = None
    if email:
        try:
            normalized = parse_email(email)
        except ValueError:
            errors["email"] = _l("Not a valid e-mail address.")
    if "email" in channels and not email:
        errors["email"] = _l("The e-mail channel needs an e-mail address.")
    if wants_ebill and not {"portal", "email"} & set(channels):
        errors["channels"] = _l("An e-bill needs the web page or e-mail.")
    if not channels:
        errors["channels"] = _l("Choose at least one channel.")
    if "paper" in channels and not customer.channel_paper:
        refused = _paper_check(customer, paper_key_accounts_only)
        if refused:
            errors["channels"] = refused
    if errors:
        raise FormInvalid(errors)
    before = _wishes(customer)
    customer.wants_ebill = wants_ebill
    for channel in ("portal", "email", "paper"):
        setattr(customer, f"channel_{channel}", channel in channels)
    customer.email = normalized
    customer.attach_pdf = attach_pdf
    after = _wishes(customer)
    if before == after:
        return False
    session.flush()
    record_audit(session, actor, "customer.delivery_wishes", "customer", customer.id, before=before, after=after)
    changed = [k for k in after if before[k] != after[k]]
    record_contact(
        session, customer.id, "console", ContactEvent.DELIVERY_WISHES, actor, params={"fields": changed},
        details={"before": before, "after": after},
    )
    session.flush()
    return True


def _recipient_dict(recipient: Recipient) -> dict:
    return {
        "name": recipient.name,
        "relationship": recipient.relation,
        "channel": recipient.channel,
        "address": recipient.address,
        "copies": recipient.copies,
        "active": recipient.active,
    }


def _clean_recipient(
    session: Session,
    customer: Customer,
    values: dict[str, str],
    paper_key_accounts_only: bool,
    recipient_id: int | None,
) -> dict:
    errors: dict[str, Any] = {}
    name = (values.get("name") or "").strip()
    relation = (values.get("relationship") or "").strip()
    channel = (values.get("channel") or "").strip()
    address = (values.get("address") or "").strip()
    copies_text = (values.get("copies") or "1").strip()
    if not name or len(name) > 200:
        errors["name"] = _l("Enter a name (at most 200 characters).")
    if relation not in RELATIONSHIPS:
        errors["relationship"] = _l("Choose a relationship.")
    if channel not in RECIPIENT_CHANNELS:
        errors["channel"] = _l("Choose e-mail or paper.")
    if channel == "email":
        try:
            address = parse_email(address)
        except ValueError:
            errors["address"] = _l("Not a valid e-mail address.")
    elif channel == "paper":
        if not address or len(address) > 300:
            errors["address"] = _l("Enter a postal address (at most 300 characters).")
        refused = _paper_check(customer, paper_key_accounts_only)
        if refused:
            errors["channel"] = refused
    try:
        copies = int(copies_text)
        if not 1 <= copies <= 20:
            raise ValueError
    except ValueError:
        errors["copies"] = _l("Copies: a number from 1 to 20.")
        copies = 1
    if not errors:
        clash = session.scalar(
            select(Recipient.id).where(
                Recipient.customer_id == customer.id, Recipient.channel == channel, Recipient.address == address
            )
        )
        if clash is not None and clash != recipient_id:
            errors["address"] = _l("This customer already has a recipient at this address.")
    if errors:
        raise FormInvalid(errors)
    return {"name": name, "relationship": relation, "channel": channel, "address": address, "copies": copies}


def add_recipient(
    session: Session, customer: Customer, actor: Actor, values: dict[str, str], paper_key_accounts_only: bool = True
) -> Recipient:
    clean = _clean_recipient(session, customer, values, paper_key_accounts_only, None)
    recipient = Recipient(
        customer_id=customer.id, name=clean["name"], relation=clean["relationship"], channel=clean["channel"],
        address=clean["address"], copies=clean["copies"], active=True,
    )
    session.add(recipient)
    session.flush()
    after = _recipient_dict(recipient)
    record_audit(session, actor, "recipient.add", "customer", customer.id, after={"recipient_id": recipient.id} | after)
    record_contact(session, customer.id, "console", ContactEvent.RECIPIENT_ADDED, actor,
                   params={"name": recipient.name}, details={"recipient_id": recipient.id, "after": after})
    session.flush()
    return recipient


def get_recipient(session: Session, customer: Customer, recipient_id: int) -> Recipient:
    recipient = session.get(Recipient, recipient_id)
    if recipient is None or recipient.customer_id != customer.id:
        raise CustomerNotFound(recipient_id)
    return recipient


def update_recipient(
    session: Session,
    customer: Customer,
    recipient: Recipient,
    actor: Actor,
    values: dict[str, str],
    paper_key_accounts_only: bool = True,
) -> bool:
    clean = _clean_recipient(session, customer, values, paper_key_accounts_only, recipient.id)
    before = _recipient_dict(recipient)
    recipient.name, recipient.relation = clean["name"], clean["relationship"]
    recipient.channel, recipient.address, recipient.copies = clean["channel"], clean["address"], clean["copies"]
    after = _recipient_dict(recipient)
    if before == after:
        return False
    session.flush()
    record_audit(session, actor, "recipient.update", "customer", customer.id,
                 before={"recipient_id": recipient.id} | before, after={"recipient_id": recipient.id} | after)
    record_contact(session, customer.id, "console", ContactEvent.RECIPIENT_CHANGED, actor,
                   params={"name": recipient.name},
                   details={"recipient_id": recipient.id, "before": before, "after": after})
    session.flush()
    return True


def set_recipient_active(session: Session, customer: Customer, recipient: Recipient, actor: Actor, active: bool) -> bool:
    if recipient.active == active:
        return False
    before = _recipient_dict(recipient)
    recipient.active = active
    session.flush()
    action = "recipient.reactivate" if active else "recipient.deactivate"
    record_audit(session, actor, action, "customer", customer.id,
                 before={"recipient_id": recipient.id} | before,
                 after={"recipient_id": recipient.id} | _recipient_dict(recipient))
    code = ContactEvent.RECIPIENT_REACTIVATED if active else ContactEvent.RECIPIENT_DEACTIVATED
    record_contact(session, customer.id, "console", code, actor, params={"name": recipient.name},
                   details={"recipient_id": recipient.id})
    session.flush()
    return True


def usernames(session: Session, user_ids: set[int]) -> dict[int, str]:
    """Staff user id -> user name (the account managers of an export page, in one query)."""
    if not user_ids:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all())


def parse_since(text: str) -> date | None:
    """The date collective billing applies from, as the form gives it (empty: today)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FormInvalid({"collective_billing": _l("Enter the date as YYYY-MM-DD.")}) from None


def customer_csv_row(customer: Customer, account_manager: str | None) -> dict[str, str]:
    """The customer as a row of the customers import (docs/import-formats.md): every import column, in
    its order, booleans as 1/0, so the exported file imports back unchanged. The ID number is masked;
    the import accepts a masked ID number only when it is the customer's own, unchanged."""
    from console.customers.importers import CUSTOMER_COLUMNS, CUSTOMER_OPTIONAL_COLUMNS

    def flag(value: bool) -> str:
        return "1" if value else "0"

    since = customer.collective_billing_since if customer.collective_billing else None
    row = {
        "account_no": customer.account_no, "name": customer.name, "customer_type": customer.customer_type,
        "key_account": flag(customer.key_account), "account_manager": account_manager or "",
        "id_number": mask_id_number(customer.id_number), "phone": customer.phone or "", "email": customer.email or "",
        "postal_address": customer.postal_address or "", "postal_code": customer.postal_code or "",
        "wants_ebill": flag(customer.wants_ebill), "channels": ";".join(customer.channels),
        "collective_billing": flag(customer.collective_billing),
        "collective_billing_since": since.isoformat() if since else "",
    }
    return {column: row[column] for column in CUSTOMER_COLUMNS + CUSTOMER_OPTIONAL_COLUMNS}


def customer_export_row(customer: Customer) -> dict:
    """The customer as an export or log would show it: the ID number masked."""
    return {
        "account_no": customer.account_no,
        "name": customer.name,
        "customer_type": customer.customer_type,
        "key_account": customer.key_account,
        "id_number": mask_id_number(customer.id_number),
        "phone": customer.phone,
        "email": customer.email,
        "postal_address": customer.postal_address,
        "postal_code": customer.postal_code,
        "wants_ebill": customer.wants_ebill,
        "channels": ";".join(customer.channels),
        "collective_billing": customer.collective_billing,
    }




# ---------------------------------------------------------------------------------------------
# Collective billing (issue 4): the flag (key accounts only) and the account manager's pins.

PIN_KINDS = ("together", "apart")


def _collective(customer: Customer) -> dict:
    since = customer.collective_billing_since
    return {"collective_billing": customer.collective_billing, "since": since.isoformat() if since else None}


def can_start_collective(customer: Customer) -> bool:
    """Collective billing is for key accounts only: the customer page offers to start it to them alone,
    and set_collective_billing refuses anyone else."""
    return bool(customer.key_account)


def set_collective_billing(
    session: Session, customer: Customer, actor: Actor, enabled: bool, today: date, since: date | None = None
) -> bool:
    """Turns collective billing on from `since` (default today) or off. A cycle not yet generated whose
    bill date is on or after `since` bills the account collectively (console/billing/generation.py).
    Only key accounts may have it: anyone else is refused with FormInvalid. Returns False when nothing
    changed (then nothing is recorded); switching on again with another date changes the date."""
    if enabled and not can_start_collective(customer):
        raise FormInvalid({"collective_billing": _l("Collective billing is only for key accounts.")})
    since = (since or today) if enabled else None
    if customer.collective_billing == enabled and (not enabled or customer.collective_billing_since == since):
        return False
    before = _collective(customer)
    customer.collective_billing = enabled
    customer.collective_billing_since = since
    session.flush()
    record_audit(session, actor, "customer.collective_billing", "customer", customer.id, before=before,
                 after=_collective(customer))
    return True


@dataclass
class PinView:
    id: int
    kind: str
    point_a: str
    point_b: str


def collective_pins(session: Session, customer_id: int) -> list[PinView]:
    from console.models.billing import CollectivePin

    a, b = ServicePoint.__table__.alias("a"), ServicePoint.__table__.alias("b")
    pins = CollectivePin.__table__.c
    rows = session.execute(
        select(pins.id, pins.kind, a.c.point_no, b.c.point_no)
        .join(a, a.c.id == pins.point_a_id).join(b, b.c.id == pins.point_b_id)
        .where(pins.customer_id == customer_id).order_by(a.c.point_no, b.c.point_no)
    ).all()
    return [PinView(*row) for row in rows]


def set_collective_pin(session: Session, customer: Customer, actor: Actor, point_a: str, point_b: str,
                       kind: str) -> bool:
    """Pins two of the key account's points (by point number) together or apart for its collective bills;
    a pair has one pin, which this replaces. Audited. Returns False when nothing changed."""
    from console.models.billing import CollectivePin

    errors: dict[str, Any] = {}
    if not customer.key_account:
        errors["pin"] = _l("Collective billing is only for key accounts.")
    if kind not in PIN_KINDS:
        errors["kind"] = _l("Choose together or apart.")
    points = dict(session.execute(
        select(ServicePoint.point_no, ServicePoint.id).where(ServicePoint.customer_id == customer.id,
                                                             ServicePoint.point_no.in_([point_a, point_b]))
    ).all())
    if point_a not in points or point_b not in points:
        errors["points"] = _l("Choose two service points of this customer.")
    elif point_a == point_b:
        errors["points"] = _l("Choose two different service points.")
    if errors:
        raise FormInvalid(errors)
    low, high = sorted((points[point_a], points[point_b]))
    pin = session.scalar(select(CollectivePin).where(
        CollectivePin.customer_id == customer.id, CollectivePin.point_a_id == low, CollectivePin.point_b_id == high))
    names = sorted((point_a, point_b))
    before = None if pin is None else {"points": names, "kind": pin.kind}
    if pin is not None and pin.kind == kind:
        return False
    if pin is None:
        pin = CollectivePin(customer_id=customer.id, point_a_id=low, point_b_id=high, kind=kind,
                            created_by_id=actor.user_id)
        session.add(pin)
    else:
        pin.kind = kind
    session.flush()
    record_audit(session, actor, "customer.collective_pin", "customer", customer.id, before=before,
                 after={"points": names, "kind": kind})
    return True


def remove_collective_pin(session: Session, customer: Customer, actor: Actor, pin_id: int) -> bool:
    from console.models.billing import CollectivePin

    pin = session.get(CollectivePin, pin_id)
    if pin is None or pin.customer_id != customer.id:
        raise CustomerNotFound(pin_id)
    view = next(p for p in collective_pins(session, customer.id) if p.id == pin_id)
    session.delete(pin)
    session.flush()
    record_audit(session, actor, "customer.collective_pin_removed", "customer", customer.id,
                 before={"points": [view.point_a, view.point_b], "kind": view.kind}, after=None)
    return True


# ---------------------------------------------------------------------------------------------
# Contact details: phone, postal address and code, e-mail, account manager — validated as the
# import validates (console.customers.importers' parsers, console.csvimport.parse_email).


def clean_phone(text: str) -> str:
    from console.customers.importers import parse_phone

    value = " ".join((text or "").split())
    try:
        return parse_phone(value)
    except ValueError:
        raise FormInvalid({"phone": _l("Not a phone number (digits, '+', '-', spaces).")}) from None


def clean_postal(address: str, code: str) -> tuple[str, str]:
    from console.customers.importers import parse_postcode

    address = " ".join((address or "").split())
    code = (code or "").strip()
    errors: dict[str, Any] = {}
    if not address or len(address) > 300:
        errors["postal_address"] = _l("Enter the postal address (300 characters at most).")
    try:
        parse_postcode(code)
    except ValueError:
        errors["postal_code"] = _l("A postal code is 6 digits.")
    if errors:
        raise FormInvalid(errors)
    return address, code


CONTACT_FIELDS = ("phone", "postal_address", "postal_code", "email", "account_manager_id")


def manager_choices(session: Session) -> list[tuple[int, str]]:
    from console.models import UserRole

    return list(session.execute(
        select(User.id, User.display_name).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "account_manager", User.active.is_(True)).order_by(User.display_name).limit(500)
    ).all())


def update_contact_details(
    session: Session,
    customer: Customer,
    actor: Actor,
    *,
    phone: str,
    postal_address: str,
    postal_code: str,
    email: str,
    account_manager_id: str | int | None,
    may_set_manager: bool,
) -> bool:
    """Phone, postal address and code, e-mail and (for admins) the account manager, validated as
    the import validates; audited (before/after) and written to the contact history. Returns False
    when nothing changed."""
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if (phone or "").strip():
        try:
            values["phone"] = clean_phone(phone)
        except FormInvalid as exc:
            errors |= exc.errors
    else:
        values["phone"] = None
    if (postal_address or "").strip() or (postal_code or "").strip():
        try:
            values["postal_address"], values["postal_code"] = clean_postal(postal_address, postal_code)
        except FormInvalid as exc:
            errors |= exc.errors
    else:
        values["postal_address"] = values["postal_code"] = None
    if (email or "").strip():
        try:
            values["email"] = parse_email(email.strip())
        except ValueError:
            errors["email"] = _l("Not a valid e-mail address.")
    elif customer.channel_email:
        errors["email"] = _l("The e-mail channel needs an e-mail address.")
    else:
        values["email"] = None
    if may_set_manager:
        chosen = str(account_manager_id or "").strip()
        if not chosen:
            values["account_manager_id"] = None
        elif chosen.isdigit() and int(chosen) in {uid for uid, _name in manager_choices(session)}:
            values["account_manager_id"] = int(chosen)
        else:
            errors["account_manager_id"] = _l("Choose an account manager.")
    if errors:
        raise FormInvalid(errors)
    before = {name: getattr(customer, name) for name in values}
    after = dict(values)
    if before == after:
        return False
    for name, value in values.items():
        setattr(customer, name, value)
    session.flush()
    changed = [name for name in values if before[name] != after[name]]
    record_audit(session, actor, "customer.contact_details", "customer", customer.id,
                 before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    record_contact(session, customer.id, "console", ContactEvent.CONTACT_DETAILS, actor,
                   params={"fields": changed},
                   details={"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}})
    session.flush()
    return True


def customer_bills(session: Session, customer_id: int, limit: int = 24) -> list[dict]:
    """The customer's latest bills with their deliveries (per recipient, with state): the cockpit."""
    from console.models import Bill, Cycle, Delivery

    bills = session.execute(
        select(Bill, Cycle.period).join(Cycle, Cycle.id == Bill.cycle_id).where(Bill.customer_id == customer_id)
        .order_by(Bill.bill_date.desc(), Bill.id.desc()).limit(limit)
    ).all()
    ids = [b.id for b, _p in bills]
    deliveries: dict[int, list] = {}
    if ids:
        for d in session.scalars(select(Delivery).where(Delivery.bill_id.in_(ids)).order_by(Delivery.id)):
            deliveries.setdefault(d.bill_id, []).append(d)
    return [{"bill": b, "period": period, "deliveries": deliveries.get(b.id, [])} for b, period in bills]


def open_items(session: Session, customer_id: int) -> list:
    from console.models import WorkItem

    return list(session.scalars(
        select(WorkItem).where(WorkItem.customer_id == customer_id, WorkItem.status.in_(("open", "claimed")))
        .order_by(WorkItem.created_at)
    ))


def bill_numbers(session: Session, bill_ids: set[int]) -> dict[int, str]:
    from console.models import Bill

    if not bill_ids:
        return {}
    return dict(session.execute(select(Bill.id, Bill.bill_no).where(Bill.id.in_(bill_ids))).all())


def contact_editing(customer: Customer, user_id: int | None, roles: set[str]) -> tuple[bool, bool]:
    """(may edit the contact details, may choose the account manager): admins for any customer,
    account managers for the accounts they manage (and not the manager field); nobody else."""
    if "admin" in roles:
        return True, True
    if "account_manager" in roles and user_id is not None and customer.account_manager_id == user_id:
        return True, False
    return False, False

