"""The customer-file imports: customers, service points, recipients (docs/import-formats.md).

Each parses and checks every row first, loads the existing rows for the file's keys in bulk
(chunked IN queries), compares, and only then writes with Core executemany — never one ORM object
per row. All or nothing: any error raises ImportFailed with every error and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from console.audit import Actor
from console.csvimport import (
    ImportFailed,
    ImportSummary,
    Problem,
    Row,
    RowError,
    parse_bool,
    parse_choice,
    parse_date,
    parse_email,
    parse_int,
    parse_list,
    parse_text,
    read_rows,
)
from console.customers.services import mask_id_number, parse_id_number
from console.db import bulk_insert, utcnow
from console.models import Customer, Recipient, ServicePoint, User, UserRole
from console.models.customers import CHANNELS, CUSTOMER_TYPES, RECIPIENT_CHANNELS, RELATIONSHIPS

CHUNK = 5000  # keys per IN query when loading existing rows
WRITE_CHUNK = 2000

CUSTOMER_COLUMNS = [
    "account_no", "name", "customer_type", "key_account", "account_manager", "id_number", "phone", "email",
    "postal_address", "postal_code", "wants_ebill", "channels", "collective_billing",
]
# Optional: the date from which collective billing applies (default: the day it is first set).
CUSTOMER_OPTIONAL_COLUMNS = ["collective_billing_since"]
POINT_COLUMNS = ["account_no", "point_no", "address", "meter_no", "tariff", "read_day"]
RECIPIENT_COLUMNS = ["account_no", "name", "relationship", "channel", "address", "copies"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{2,38}$")
_POSTCODE = re.compile(r"^[0-9]{6}$")
_TARIFF = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,15}$")


def parse_key(text: str) -> str:
    if not _KEY.match(text):
        raise Problem("bad_key")
    return text


def parse_phone(text: str) -> str:
    if not _PHONE.match(text):
        raise Problem("bad_phone")
    return text


def parse_postcode(text: str) -> str:
    if not _POSTCODE.match(text):
        raise Problem("bad_postcode")
    return text


def parse_tariff(text: str) -> str:
    value = text.strip().upper()
    if not _TARIFF.match(value):
        raise Problem("bad_tariff")
    return value


_ASCII_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class EmailParser:
    """parse_email (email-validator, no DNS) with the domain checked once per file: a plain ASCII
    local part is checked here, anything else goes through email-validator whole. Same results."""

    def __init__(self) -> None:
        self.domains: dict[str, str | ValueError] = {}

    def __call__(self, text: str) -> str:
        local, at, domain = text.rpartition("@")
        if not at or len(text) > 254 or len(local) > 64 or not _ASCII_LOCAL.match(local) or not domain.isascii():
            return parse_email(text)
        normalized = self.domains.get(domain)
        if normalized is None:
            try:
                normalized = parse_email("a@" + domain).partition("@")[2]
            except ValueError as exc:
                normalized = exc
            self.domains[domain] = normalized
        if isinstance(normalized, ValueError):
            return parse_email(text)  # the full reason
        return f"{local}@{normalized}"


def field(row: Row, column: str, parser: Any, required: bool = True) -> Any:
    """`Row.get` without its extra call per field (the customers import parses 13 per row)."""
    text = row.values.get(column)
    text = text.strip() if text else ""
    if not text:
        if required:
            row.error(column, "required")
        return None
    try:
        return parser(text)
    except ValueError as exc:
        row.problem(column, exc)
        return None


def memo(parser: Any) -> Any:
    """A parser that remembers its answers: for columns with few distinct values (types, booleans,
    channel lists, postal codes), so a 100,000-row file parses each distinct value once."""
    answers: dict[str, Any] = {}

    def _parse(text: str) -> Any:
        answer = answers.get(text)
        if answer is None:
            try:
                answer = parser(text)
            except ValueError as exc:
                answer = exc
            if len(answers) < 10_000:
                answers[text] = answer
        if isinstance(answer, ValueError):
            raise answer
        return list(answer) if isinstance(answer, list) else answer

    return _parse


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _customers_by_account(session: Session, accounts: Iterable[str]) -> dict[str, tuple[int, bool]]:
    """account_no → (id, key_account) for the accounts that exist."""
    found: dict[str, tuple[int, bool]] = {}
    wanted = sorted(set(accounts))
    for chunk in _chunks(wanted):
        stmt = select(Customer.account_no, Customer.id, Customer.key_account).where(Customer.account_no.in_(chunk))
        for account_no, cid, key in session.execute(stmt):
            found[account_no] = (cid, bool(key))
    return found


ANALYZE_AFTER_ROWS = 10_000


def _write(session: Session, table: Any, inserts: list[dict], updates: list[dict]) -> None:
    """New rows in bulk, then the updates (executemany by primary key)."""
    bulk_insert(session.connection(), table, inserts)
    if len(inserts) >= ANALYZE_AFTER_ROWS and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics: without them the next import's key look-ups were planned for an empty
        # table (a re-import of 100,000 rows right after the first took 240 s instead of 4 s).
        session.execute(text(f"ANALYZE {table.name}"))
    if updates:
        columns = [c for c in updates[0] if c != "b_id"]
        stmt = update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(c) for c in columns})
        for chunk in _chunks(updates, WRITE_CHUNK):
            session.execute(stmt, chunk)


def _duplicate(seen: dict, key: Any, row: Row, column: str) -> bool:
    first = seen.get(key)
    if first is not None:
        row.error(column, "duplicate", first=first)
        return True
    seen[key] = row.line
    return False


# ---------------------------------------------------------------------------------------------
# customers

_CUSTOMER_FIELDS = (
    "name", "customer_type", "key_account", "account_manager_id", "id_number", "phone", "email",
    "postal_address", "postal_code", "wants_ebill", "channel_portal", "channel_email", "channel_paper",
    "collective_billing",
)


def _account_managers(session: Session, usernames: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(usernames)):
        stmt = (
            select(User.username, User.id)
            .join(UserRole, UserRole.user_id == User.id)
            .where(User.username.in_(chunk), UserRole.role == "account_manager")
        )
        found.update(dict(session.execute(stmt).all()))
    return found


def import_customers(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    from console.paper.rules import paper_allowed

    paper_key_only = bool(settings.get("PAPER_KEY_ACCOUNTS_ONLY", True))
    errors: list[RowError] = []
    parsed: list[tuple[Row, dict, str | None]] = []
    seen: dict[str, int] = {}
    text_200, text_300 = parse_text(200), parse_text(300)
    type_choice = memo(parse_choice(CUSTOMER_TYPES))
    channel_list = memo(parse_list(CHANNELS))
    boolean = memo(parse_bool)
    postcode = memo(parse_postcode)
    email_parser = EmailParser()
    masked: list[tuple[Row, dict, str]] = []  # rows whose ID number is masked, as the console exports it
    for row in read_rows(data, CUSTOMER_COLUMNS, CUSTOMER_OPTIONAL_COLUMNS):
        account_no = field(row, "account_no", parse_key)
        if account_no is not None:
            _duplicate(seen, account_no, row, "account_no")
        key_account = field(row, "key_account", boolean, required=False) or False
        channels = field(row, "channels", channel_list, required=False) or []
        email = field(row, "email", email_parser, required=False)
        wants_ebill = field(row, "wants_ebill", boolean, required=False) or False
        collective = field(row, "collective_billing", boolean, required=False) or False
        postal_address = field(row, "postal_address", text_300, required=False)
        values = {
            "account_no": account_no,
            "name": field(row, "name", text_200),
            "customer_type": field(row, "customer_type", type_choice),
            "key_account": key_account,
            "id_number": None if "*" in row.raw("id_number") else field(row, "id_number", parse_id_number,
                                                                        required=False),
            "phone": field(row, "phone", parse_phone, required=False),
            "email": email,
            "postal_address": postal_address,
            "postal_code": field(row, "postal_code", postcode, required=False),
            "wants_ebill": wants_ebill,
            "channel_portal": "portal" in channels,
            "channel_email": "email" in channels,
            "channel_paper": "paper" in channels,
            "collective_billing": collective,
        }
        if not row.raw("channels"):
            row.error("channels", "channels_required")
        if "email" in channels and not row.raw("email"):
            row.error("email", "email_for_channel")
        if "paper" in channels and not row.raw("postal_address"):
            row.error("postal_address", "postal_for_channel")
        if "paper" in channels and not paper_allowed(SimpleNamespace(key_account=key_account), paper_key_only):
            row.error("channels", "paper_refused")
        if wants_ebill and channels and not {"portal", "email"} & set(channels):
            row.error("wants_ebill", "ebill_channel")
        if collective and not key_account:
            row.error("collective_billing", "collective_key_only")
        since = field(row, "collective_billing_since", parse_date, required=False)
        if since and not collective:
            row.error("collective_billing_since", "collective_since")
        values["_since"] = since
        if "*" in row.raw("id_number"):
            masked.append((row, values, row.raw("id_number")))
        manager = field(row, "account_manager", parse_key, required=False)
        errors.extend(row.errors)
        parsed.append((row, values, manager))

    managers = _account_managers(session, {m for _r, _v, m in parsed if m})
    for row, values, manager in parsed:
        if manager is None:
            values["account_manager_id"] = None
        elif manager in managers:
            values["account_manager_id"] = managers[manager]
        else:
            errors.append(RowError(row.line, "account_manager", "unknown_manager", {"manager": manager}))
    if errors:
        raise ImportFailed(errors)

    existing: dict[str, Any] = {}
    cols = [Customer.account_no, Customer.id, Customer.collective_billing_since] + [
        getattr(Customer, f) for f in _CUSTOMER_FIELDS
    ]
    for chunk in _chunks([v["account_no"] for _r, v, _m in parsed]):
        for found in session.execute(select(*cols).where(Customer.account_no.in_(chunk))):
            existing[found.account_no] = found
    for row, values, shown in masked:  # a masked ID number stands for the customer's own, unchanged
        old = existing.get(values["account_no"])
        if old is not None and old.id_number and mask_id_number(old.id_number) == shown.upper():
            values["id_number"] = old.id_number
        else:
            errors.append(RowError(row.line, "id_number", "masked_id"))
    if errors:
        raise ImportFailed(errors)

    summary = ImportSummary()
    inserts: list[dict] = []
    updates: list[dict] = []
    today = date.today()
    now = utcnow()
    for _row, values, _manager in parsed:
        old = existing.get(values["account_no"])
        given = values.pop("_since")
        if old is None:
            values["collective_billing_since"] = (given or today) if values["collective_billing"] else None
            values["created_at"] = values["updated_at"] = now
            values["status"], values["attach_pdf"] = "active", None
            inserts.append(values)
            summary.created += 1
            continue
        since = old.collective_billing_since if old.collective_billing else None
        if values["collective_billing"]:
            since = given or since or today
        if all(getattr(old, f) == values[f] for f in _CUSTOMER_FIELDS) and (
            not values["collective_billing"] or since == old.collective_billing_since
        ):
            summary.unchanged += 1
            continue
        change = {f: values[f] for f in _CUSTOMER_FIELDS}
        change.update(b_id=old.id, collective_billing_since=since if values["collective_billing"] else None)
        change["updated_at"] = now
        updates.append(change)
        summary.updated += 1
    if not dry_run:
        _write(session, Customer.__table__, inserts, updates)
    return summary


# ---------------------------------------------------------------------------------------------
# service points

_POINT_FIELDS = ("customer_id", "address", "meter_no", "tariff_code", "read_day")


def import_service_points(
    session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict
) -> ImportSummary:
    errors: list[RowError] = []
    parsed: list[tuple[Row, str | None, dict]] = []
    seen: dict[str, int] = {}
    text_300 = parse_text(300)
    day = parse_int(1, 31)
    for row in read_rows(data, POINT_COLUMNS):
        account_no = row.get("account_no", parse_key)
        point_no = row.get("point_no", parse_key)
        if point_no is not None:
            _duplicate(seen, point_no, row, "point_no")
        values = {
            "point_no": point_no,
            "address": row.get("address", text_300),
            "meter_no": row.get("meter_no", parse_key),
            "tariff_code": row.get("tariff", parse_tariff),
            "read_day": row.get("read_day", day),
        }
        errors.extend(row.errors)
        parsed.append((row, account_no, values))
    customers = _customers_by_account(session, [a for _r, a, _v in parsed if a])
    for row, account_no, values in parsed:
        if account_no is None:
            continue
        if account_no not in customers:
            errors.append(RowError(row.line, "account_no", "unknown_account", {"account_no": account_no}))
        else:
            values["customer_id"] = customers[account_no][0]
    if errors:
        raise ImportFailed(errors)

    existing: dict[str, Any] = {}
    for chunk in _chunks([v["point_no"] for _r, _a, v in parsed]):
        stmt = select(ServicePoint.point_no, ServicePoint.id, *[getattr(ServicePoint, f) for f in _POINT_FIELDS])
        for found in session.execute(stmt.where(ServicePoint.point_no.in_(chunk))):
            existing[found.point_no] = found
    summary = ImportSummary()
    inserts: list[dict] = []
    updates: list[dict] = []
    now = utcnow()
    for _row, _account, values in parsed:
        old = existing.get(values["point_no"])
        if old is None:
            inserts.append(values | {"status": "active", "is_billing_point": False, "created_at": now})
            summary.created += 1
        elif all(getattr(old, f) == values[f] for f in _POINT_FIELDS):
            summary.unchanged += 1
        else:
            updates.append({f: values[f] for f in _POINT_FIELDS} | {"b_id": old.id})
            summary.updated += 1
    if not dry_run:
        _write(session, ServicePoint.__table__, inserts, updates)
    return summary


# ---------------------------------------------------------------------------------------------
# recipients

_RECIPIENT_FIELDS = ("name", "relationship", "copies", "active")


def import_recipients(session: Session, data: bytes, actor: Actor, dry_run: bool, settings: dict) -> ImportSummary:
    from console.paper.rules import paper_allowed

    paper_key_only = bool(settings.get("PAPER_KEY_ACCOUNTS_ONLY", True))
    errors: list[RowError] = []
    parsed: list[tuple[Row, str | None, dict]] = []
    text_200, text_300 = parse_text(200), parse_text(300)
    relation = parse_choice(RELATIONSHIPS)
    channel_choice = parse_choice(RECIPIENT_CHANNELS)
    copies = parse_int(1, 20)
    email_parser = EmailParser()
    for row in read_rows(data, RECIPIENT_COLUMNS):
        account_no = row.get("account_no", parse_key)
        channel = row.get("channel", channel_choice)
        if channel == "email":
            address = row.get("address", email_parser)
        else:
            address = row.get("address", text_300)
        values = {
            "name": row.get("name", text_200),
            "relationship": row.get("relationship", relation),
            "channel": channel,
            "address": address,
            "copies": row.get("copies", copies, required=False) or 1,
            "active": True,
        }
        errors.extend(row.errors)
        parsed.append((row, account_no, values))
    customers = _customers_by_account(session, [a for _r, a, _v in parsed if a])
    seen: dict[tuple, int] = {}
    for row, account_no, values in parsed:
        if account_no is None:
            continue
        if account_no not in customers:
            errors.append(RowError(row.line, "account_no", "unknown_account", {"account_no": account_no}))
            continue
        customer_id, key_account = customers[account_no]
        values["customer_id"] = customer_id
        if values["channel"] == "paper" and not paper_allowed(SimpleNamespace(key_account=key_account), paper_key_only):
            errors.append(RowError(row.line, "channel", "paper_refused"))
        if values["channel"] and values["address"]:
            probe = Row(row.line, {})
            _duplicate(seen, (customer_id, values["channel"], values["address"]), probe, "address")
            errors.extend(probe.errors)
    if errors:
        raise ImportFailed(errors)

    existing: dict[tuple, Any] = {}
    table = Recipient.__table__
    for chunk in _chunks(sorted({v["customer_id"] for _r, _a, v in parsed})):
        stmt = select(table.c.id, table.c.customer_id, table.c.channel, table.c.address,
                      *[table.c[f] for f in _RECIPIENT_FIELDS]).where(table.c.customer_id.in_(chunk))
        for found in session.execute(stmt):
            existing[(found.customer_id, found.channel, found.address)] = found
    summary = ImportSummary()
    inserts: list[dict] = []
    updates: list[dict] = []
    for _row, _account, values in parsed:
        old = existing.get((values["customer_id"], values["channel"], values["address"]))
        if old is None:
            inserts.append(values)
            summary.created += 1
        elif all(old._mapping[f] == values[f] for f in _RECIPIENT_FIELDS):
            summary.unchanged += 1
        else:
            updates.append({f: values[f] for f in _RECIPIENT_FIELDS} | {"b_id": old.id})
            summary.updated += 1
    if not dry_run:
        _write(session, table, inserts, updates)
    return summary


# Registered with the import registry by create_app (console.imports.register_importers).
IMPORTERS = {
    "customers": (_l("Customers"), import_customers),
    "service-points": (_l("Service points"), import_service_points),
    "recipients": (_l("Bill recipients"), import_recipients),
}
