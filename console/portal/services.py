"""The customer web page's rules: registration with proof of ownership, sign-in, password changes
and resets, the customer's published bills and the receipt a first opening gives.

Services take a Session, plain values and an Actor; they flush, never commit, never read the request.
Codes are kept only as keyed digests (HMAC with the secret key); the e-mail is sent by the caller,
after its commit (console.portal.mail).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from console.audit import Actor, record_audit, record_contact
from console.customers.services import mask_id_number
from console.db import bulk_insert, utcnow
from console.models import Bill, Customer, Cycle
from console.models.billing import BillStatus
from console.models.customers import ContactEvent
from console.models.portal import BillOpen, BillRegistrationCode, PortalCode, WebAccount
from console.passwords import DUMMY_HASH, hash_password, password_problem, verify_password

GENERIC_CODE_ERROR = "The code is wrong or has expired."
_ID_NUMBER = re.compile(r"^(\d{17}[\dX]|\d{15})$")
_BILL_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class PortalError(ValueError):
    """`field` names the form field; `message` is an English msgid the route translates."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Outgoing:
    """A mail the route sends after its commit: a code, or a note that an account already exists."""

    kind: str  # "code" or "already_registered"
    purpose: str  # "register" or "reset"
    to: str
    customer_id: int
    code: str | None = None


# --- identifiers and masking ---------------------------------------------------------------------


def normalize_identifier(text: str | None) -> str:
    return re.sub(r"\s+", "", text or "")[:64]


def looks_like_id_number(text: str) -> bool:
    return bool(_ID_NUMBER.match(text.upper()))


def mask_identifier(text: str) -> str:
    """For logs and throttle keys: an ID-card number typed as a user name is never kept whole."""
    return mask_id_number(text.upper()) if looks_like_id_number(text) else text


def _digest(secret: str, *parts: object) -> str:
    message = ":".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def id_digest(secret: str, id_number: str) -> str:
    return _digest(secret, "id", id_number.upper())


def throttle_key(session: Session, secret: str, identifier: str) -> str:
    """The per-customer throttle key for whatever identifier was typed: the account number and the
    ID-card number of one customer share one budget (resolved as sign-in and registration resolve
    them); an unknown identifier keeps a key of its own. The key is a digest, so Redis never holds
    the identifier, and it is never shown, so it tells nobody whether the identifier exists."""
    customer_id = _customer_id_for(session, secret, identifier)
    if customer_id is not None:
        return _digest(secret, "throttle-customer", customer_id)[:32]
    return _digest(secret, "throttle", normalize_identifier(identifier).upper())[:32]


def _customer_id_for(session: Session, secret: str, identifier: str) -> int | None:
    account = _account_for(session, secret, identifier)
    if account is not None:
        return account.customer_id
    customer = find_customer(session, identifier)
    return customer.id if customer is not None else None


def find_customer(session: Session, identifier: str) -> Customer | None:
    """By account number, else by ID-card number when exactly one customer has it."""
    ident = normalize_identifier(identifier)
    if not ident:
        return None
    customer = session.scalar(select(Customer).where(Customer.account_no == ident))
    if customer is not None or not looks_like_id_number(ident):
        return customer
    rows = session.scalars(select(Customer).where(Customer.id_number == ident.upper()).limit(2)).all()
    return rows[0] if len(rows) == 1 else None


def customer_actor(account: WebAccount | None, remote_addr: str | None, identifier: str = "") -> Actor:
    label = f"customer:{account.username}" if account else f"customer:{mask_identifier(identifier)}"
    return Actor(label[:100], None, remote_addr)


# --- e-mailed codes ------------------------------------------------------------------------------


def _new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def request_code(
    session: Session, identifier: str, purpose: str, now: datetime, secret: str, minutes: int
) -> Outgoing | None:
    """A code for `purpose` ("register" or "reset") to the e-mail on file, or None.

    The caller answers the same whatever this returns: known and unknown accounts look alike.
    Earlier unused codes of the same purpose stop working.
    """
    customer = find_customer(session, identifier)
    if customer is None or not customer.email:
        _digest(secret, purpose, 0, _new_code())  # the same work either way
        return None
    has_account = session.scalar(select(exists().where(WebAccount.customer_id == customer.id)))
    if purpose == "register" and has_account:
        record_contact(session, customer.id, "email", ContactEvent.PORTAL_ALREADY_REGISTERED, Actor.system())
        return Outgoing("already_registered", purpose, customer.email, customer.id)
    if purpose == "reset" and not has_account:
        return None
    session.execute(
        update(PortalCode)
        .where(PortalCode.customer_id == customer.id, PortalCode.purpose == purpose, PortalCode.used_at.is_(None))
        .values(used_at=now)
    )
    code = _new_code()
    session.add(
        PortalCode(
            customer_id=customer.id,
            purpose=purpose,
            code_digest=_digest(secret, purpose, customer.id, code),
            expires_at=now + timedelta(minutes=minutes),
            created_at=now,
        )
    )
    event = ContactEvent.PORTAL_REGISTRATION_CODE if purpose == "register" else ContactEvent.PORTAL_RESET_CODE
    record_contact(session, customer.id, "email", event, Actor.system())
    session.flush()
    return Outgoing("code", purpose, customer.email, customer.id, code)


def _use_mailed_code(
    session: Session, customer_id: int, purpose: str, code: str, now: datetime, secret: str, max_attempts: int
) -> bool:
    live = session.scalars(
        select(PortalCode)
        .where(
            PortalCode.customer_id == customer_id,
            PortalCode.purpose == purpose,
            PortalCode.used_at.is_(None),
            PortalCode.expires_at > now,
            PortalCode.attempts < max_attempts,
        )
        .order_by(PortalCode.id.desc())
    ).all()
    wanted = _digest(secret, purpose, customer_id, code)
    for row in live:
        if hmac.compare_digest(row.code_digest, wanted):
            row.used_at = now
            session.flush()
            return True
    for row in live:  # a wrong guess counts against every live code
        row.attempts += 1
    session.flush()
    return False


# --- codes printed on bills ----------------------------------------------------------------------


def _bill_code_text(secret: str, bill_id: int, bill_no: str) -> str:
    raw = hmac.new(secret.encode(), f"billcode:{bill_id}:{bill_no}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(raw[:10], "big")
    chars = []
    for _ in range(12):
        number, index = divmod(number, len(_BILL_CODE_ALPHABET))
        chars.append(_BILL_CODE_ALPHABET[index])
    text = "".join(chars)
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


def _normalize_bill_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def registration_code_for_bill(
    session: Session, bill: Bill, secret: str | None = None, now: datetime | None = None, days: int | None = None,
    stored: bool | None = None,
) -> str:
    """The registration code to print on `bill` (paper, PDF): the same text every call for a bill;
    only its digest is stored, valid PORTAL_BILL_CODE_DAYS from the first call, single use. Flushes.
    Needs an app context when `secret`/`days` are not given; `stored`: whether the digest is stored
    already, when the caller knows."""
    if secret is None or days is None:
        from flask import current_app

        from console.portal.settings import int_setting

        secret = secret or current_app.config["SECRET_KEY"]
        days = days or int_setting("PORTAL_BILL_CODE_DAYS")
    now = now or utcnow()
    text = _bill_code_text(secret, bill.id, bill.bill_no)
    if stored is None:  # not known from a batch's prefetch (console.billing.document.prefetch_documents)
        stored = session.scalar(select(exists().where(BillRegistrationCode.bill_id == bill.id)))
    if not stored:
        try:
            with session.begin_nested():
                session.add(
                    BillRegistrationCode(
                        bill_id=bill.id,
                        customer_id=bill.customer_id,
                        code_digest=_digest(secret, "bill", bill.customer_id, _normalize_bill_code(text)),
                        expires_at=now + timedelta(days=days),
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # printed by another process at the same moment: same text, same digest
    return text


def issue_bill_codes(
    session: Session, cycle_id: int, secret: str, days: int, now: datetime, bill_ids: tuple[int, int] | None = None
) -> int:
    """At publishing: the registration code of every bill of the cycle whose customer has no web account
    yet, stored as its digest (valid `days`, single use). Printing and e-mailing the bill then only
    read it (`registration_code_for_bill` finds the row): a send never writes here, which on SQLite
    would wait for the mail-in's write lock. Idempotent; returns the codes added. Flushes."""
    rows = session.execute(
        select(Bill.id, Bill.bill_no, Bill.customer_id)
        .where(
            Bill.cycle_id == cycle_id,
            *((Bill.id.between(*bill_ids),) if bill_ids else ()),
            ~exists().where(WebAccount.customer_id == Bill.customer_id),
            ~exists().where(BillRegistrationCode.bill_id == Bill.id),
        )
        .order_by(Bill.id)
    ).all()
    codes = [
        {
            "bill_id": bill_id, "customer_id": customer_id, "expires_at": now + timedelta(days=days), "created_at": now,
            "code_digest": _digest(secret, "bill", customer_id, _normalize_bill_code(
                _bill_code_text(secret, bill_id, bill_no))),
        }
        for bill_id, bill_no, customer_id in rows
    ]
    bulk_insert(session.connection(), BillRegistrationCode.__table__, codes)
    return len(codes)


def _use_bill_code(session: Session, customer_id: int, code: str, now: datetime, secret: str) -> bool:
    wanted = _digest(secret, "bill", customer_id, _normalize_bill_code(code))
    row = session.scalar(
        select(BillRegistrationCode).where(
            BillRegistrationCode.customer_id == customer_id,
            BillRegistrationCode.code_digest == wanted,
            BillRegistrationCode.used_at.is_(None),
            BillRegistrationCode.expires_at > now,
        )
    )
    if row is None:
        return False
    row.used_at = now
    session.flush()
    return True


# --- accounts ------------------------------------------------------------------------------------


def _check_password(password: str, field: str = "password") -> None:
    problem = password_problem(password)
    if problem:
        raise PortalError(field, problem)


def complete_registration(
    session: Session,
    identifier: str,
    code: str,
    password: str,
    now: datetime,
    secret: str,
    actor: Actor,
    max_attempts: int = 5,
) -> WebAccount:
    """A web account for the customer named by `identifier`, if `code` proves ownership (a mailed
    code or the code printed on one of their bills). Unknown accounts fail exactly like wrong codes."""
    _check_password(password)
    customer = find_customer(session, identifier)
    code = (code or "").strip()
    if customer is None or not code:
        _digest(secret, "register", 0, code)
        raise PortalError("code", GENERIC_CODE_ERROR)
    if session.scalar(select(exists().where(WebAccount.customer_id == customer.id))):
        raise PortalError("code", GENERIC_CODE_ERROR)
    if code.isdigit():
        proved = _use_mailed_code(session, customer.id, "register", code, now, secret, max_attempts)
    else:
        proved = _use_bill_code(session, customer.id, code, now, secret)
    if not proved:
        raise PortalError("code", GENERIC_CODE_ERROR)
    account = WebAccount(
        customer_id=customer.id,
        username=customer.account_no,
        id_digest=id_digest(secret, customer.id_number) if customer.id_number else None,
        password_hash=hash_password(password),
        session_token=secrets.token_hex(16),
        created_at=now,
        password_changed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(account)
    except IntegrityError:  # registered at the same moment by another request
        raise PortalError("code", GENERIC_CODE_ERROR) from None
    record_audit(session, actor, "portal.register", "portal_account", account.id, after={"customer_id": customer.id})
    record_contact(session, customer.id, "portal", ContactEvent.PORTAL_REGISTERED, Actor.system())
    return account


def _account_for(session: Session, secret: str, identifier: str) -> WebAccount | None:
    """The web account an identifier signs in to: by account number, else by a unique ID-card number."""
    ident = normalize_identifier(identifier)
    if not ident:
        return None
    account = session.scalar(select(WebAccount).where(WebAccount.username == ident))
    if account is None and looks_like_id_number(ident):
        rows = session.scalars(select(WebAccount).where(WebAccount.id_digest == id_digest(secret, ident)).limit(2)).all()
        account = rows[0] if len(rows) == 1 else None
    return account


def authenticate(session: Session, identifier: str, password: str, secret: str) -> WebAccount | None:
    """The account for an account number (or a unique ID-card number) and password, else None;
    the same password work is spent for unknown names."""
    account = _account_for(session, secret, identifier)
    if account is None:
        verify_password(DUMMY_HASH, password)
        return None
    if not verify_password(account.password_hash, password):
        return None
    return account


def record_login(session: Session, account: WebAccount, now: datetime) -> None:
    account.last_login_at = now
    session.flush()


def end_sessions(session: Session, account: WebAccount) -> None:
    """A new session token: every cookie issued before stops working (sign-out, password change)."""
    account.session_token = secrets.token_hex(16)
    session.flush()


def change_password(
    session: Session, account: WebAccount, current: str, new: str, now: datetime, actor: Actor
) -> None:
    if not verify_password(account.password_hash, current):
        raise PortalError("current", "The current password is wrong.")
    _check_password(new, "new")
    _set_password(session, account, new, now)
    record_audit(session, actor, "portal.password", "portal_account", account.id)


def reset_password(
    session: Session,
    identifier: str,
    code: str,
    new: str,
    now: datetime,
    secret: str,
    actor: Actor,
    max_attempts: int = 5,
) -> WebAccount:
    _check_password(new, "password")
    customer = find_customer(session, identifier)
    code = (code or "").strip()
    account = (
        session.scalar(select(WebAccount).where(WebAccount.customer_id == customer.id)) if customer else None
    )
    if account is None or not code.isdigit():
        _digest(secret, "reset", 0, code)
        raise PortalError("code", GENERIC_CODE_ERROR)
    if not _use_mailed_code(session, customer.id, "reset", code, now, secret, max_attempts):
        raise PortalError("code", GENERIC_CODE_ERROR)
    _set_password(session, account, new, now)
    record_audit(session, actor, "portal.password_reset", "portal_account", account.id)
    return account


def _set_password(session: Session, account: WebAccount, new: str, now: datetime) -> None:
    account.password_hash = hash_password(new)
    account.password_changed_at = now
    end_sessions(session, account)


# The queries every page of the customer's runs, built once with bound parameters: building a statement
# and its cache key on each request cost ~0.2 ms of CPU apiece (more with eager loads), as much as
# running it. The account comes with its customer: every page shows them (one round trip less).
_ACCOUNT = select(WebAccount).options(joinedload(WebAccount.customer)).where(WebAccount.id == bindparam("id"))


def load_account(session: Session, rest: str) -> WebAccount | None:
    """The Flask-Login loader's work: "<id>:<token>" → the account, if the token is current."""
    id_part, _, token = rest.partition(":")
    if not id_part.isdigit() or not token:
        return None
    account = session.scalar(_ACCOUNT, {"id": int(id_part)})
    if account is None or not hmac.compare_digest(account.session_token, token):
        return None
    return account


# --- bills ---------------------------------------------------------------------------------------


_PUBLISHED_BILLS = (
    select(
        Bill.id,
        Bill.bill_no,
        Bill.bill_type,
        Bill.bill_date,
        Bill.due_date,
        Bill.charges_total,
        Bill.current_balance,
        Cycle.period,
    )
    .join(Cycle, Cycle.id == Bill.cycle_id)
    .where(Bill.customer_id == bindparam("customer_id"), Bill.status == BillStatus.PUBLISHED)
    .order_by(Bill.cycle_id.desc(), Bill.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def published_bills(session: Session, customer_id: int, limit: int, offset: int = 0) -> list:
    """The customer's published bills, newest first (index ix_bills_customer_cycle)."""
    return session.execute(_PUBLISHED_BILLS, {"customer_id": customer_id, "limit": limit, "offset": offset}).all()


# Its customer, service point and cycle in the same query; the document finds them in the session.
_BILL = (
    select(Bill, exists().where(BillOpen.bill_id == Bill.id))
    .options(joinedload(Bill.customer), joinedload(Bill.cycle), joinedload(Bill.service_point))
    .where(Bill.id == bindparam("bill_id"), Bill.customer_id == bindparam("customer_id"),
           Bill.status == BillStatus.PUBLISHED)
)


def bill_for(session: Session, customer_id: int, bill_id: int) -> tuple[Bill, bool] | None:
    """The bill if it is this customer's and published, and whether it was opened before
    (`record_open`); None otherwise (the route answers 404). One round trip instead of five (each
    ~0.3 ms of CPU in the ORM and the driver)."""
    row = session.execute(_BILL, {"bill_id": bill_id, "customer_id": customer_id}).first()
    return None if row is None else (row[0], row[1])


CHARGE_ORDER = (
    "previous_balance", "payment", "electricity", "late_fee", "business_expansion", "connection",
    "inspection", "adjustment", "write_off", "installment", "deposit_applied",
)


def charges_by_type(bill: Bill) -> list[tuple[str, Decimal, int]]:
    """(kind, total, number of lines) per charge type, in the bill's reading order."""
    totals: OrderedDict[str, list] = OrderedDict((k, [Decimal("0.00"), 0]) for k in CHARGE_ORDER)
    for line in bill.lines:
        entry = totals.setdefault(line.kind, [Decimal("0.00"), 0])
        entry[0] += line.amount
        entry[1] += 1
    return [(kind, total, count) for kind, (total, count) in totals.items() if count]


def record_open(session: Session, account: WebAccount, bill: Bill, now: datetime, opened_before: bool) -> bool:
    """The first opening of a published bill: a receipt for the delivery rules and a contact record.
    Later openings change nothing. True when this was the first. `opened_before`: from `bill_for`."""
    if opened_before:
        return False
    try:
        with session.begin_nested():
            session.add(BillOpen(bill_id=bill.id, account_id=account.id, opened_at=now))
    except IntegrityError:
        return False  # opened in another tab at the same moment
    record_contact(
        session, bill.customer_id, "portal", ContactEvent.BILL_OPENED, Actor.system(), bill_id=bill.id,
        details={"opened_at": now.isoformat(), "account_id": account.id},
    )
    from console.delivery.policy import confirm_by_portal_open

    confirm_by_portal_open(session, bill.id, now)
    session.flush()
    return True
