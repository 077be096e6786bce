"""Actors, audit events, contact records and the security log: who did what, and every customer contact."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from console.models import AuditEvent, ContactRecord

security_log = logging.getLogger("billpost.security")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff user (id + username) or the system / the command line."""

    label: str
    user_id: int | None = None
    remote_addr: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls("system")

    @classmethod
    def cli(cls) -> Actor:
        return cls("cli")

    @classmethod
    def of_user(cls, user: Any, remote_addr: str | None = None) -> Actor:
        return cls(user.username, user.id, remote_addr)


def record_audit(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: Any,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=before,
        after=after,
        remote_addr=actor.remote_addr,
    )
    session.add(event)
    _queue_security_line(session, actor, action, entity_type, entity_id)
    return event


def record_contact(
    session: Session,
    customer_id: int,
    channel: str,
    code: str,
    actor: Actor,
    bill_id: int | None = None,
    details: dict | None = None,
    params: dict | None = None,
    note: str | None = None,
) -> ContactRecord:
    """A contact record: `code` (a ContactEvent) and its `params` say what happened — rendered in the
    reader's language by console/web/events.py, never stored as text; `note` keeps what a person
    typed; `details` the ids and facts other code reads (delivery, recipient, print item …)."""
    record = ContactRecord(
        customer_id=customer_id,
        channel=channel,
        code=code,
        params={k: v for k, v in (params or {}).items() if v is not None} or None,
        note=note or None,
        actor_id=actor.user_id,
        bill_id=bill_id,
        details=details,
    )
    session.add(record)
    return record


# Audit actions that are also security events: written to the security log once the unit of work
# that recorded them commits (a rolled-back change was never made, so it is never logged).
SECURITY_ACTIONS = {
    "user.password": "password_changed",
    "portal.password": "password_changed",
    "portal.password_reset": "password_changed",
    "customer.email": "contact_changed",
    "customer.channels": "contact_changed",
    "customer.delivery_wishes": "contact_changed",
    "customer.contact_details": "contact_changed",
    "recipient.add": "contact_changed",
    "recipient.address": "contact_changed",
    "recipient.update": "contact_changed",
    "cycle.publish": "publish",
    "user.create": "user_created",
    "user.roles": "roles_changed",
    "user.password_reset": "password_changed",
    "user.deactivate": "user_deactivated",
    "user.activate": "user_activated",
    "tariff.load": "tariff_loaded",
}


def _security_event_for(action: str) -> str | None:
    if action.startswith("import."):
        return "import"
    return SECURITY_ACTIONS.get(action)


def _queue_security_line(session: Session, actor: Actor, action: str, entity_type: str, entity_id: Any) -> None:
    event = _security_event_for(action)
    if event is None:
        return
    pending = session.info.setdefault("billpost.security_lines", [])
    pending.append((event, actor.label, f"{action} {entity_type}={entity_id}", actor.remote_addr))


@sa_event.listens_for(Session, "after_commit")
def _write_security_lines(session: Session) -> None:
    for event, who, detail, remote_addr in session.info.pop("billpost.security_lines", []):
        log_security_event(event, who, detail, remote_addr)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_security_lines(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the whole unit of work, not a savepoint
        session.info.pop("billpost.security_lines", None)


def _client_address() -> str | None:
    from flask import has_request_context, request

    return request.remote_addr if has_request_context() else None


def log_security_event(event: str, who: Any, detail: Any = "", remote_addr: str | None = None) -> None:
    """One line of the security log: sign-ins, failures, sign-outs, refusals, password and contact
    changes, imports, publishing. User, address and detail have CR/LF escaped; the line's UTC time
    and request id come from the one logging set-up (console.logs), which also masks ID numbers."""
    from console.logs import current_request_id, escape

    if remote_addr is None:
        remote_addr = _client_address()
    name = getattr(who, "username", None) or getattr(who, "account_no", None) or who
    fields = {"event": event, "user": escape(name), "addr": remote_addr, "request_id": current_request_id(),
              "detail": escape(detail)}
    security_log.info(
        "%s user=%s addr=%s detail=%s", event, escape(name), escape(remote_addr or "-"), escape(detail),
        extra={"security": fields},
    )
