"""Actors, audit events, contact records and the security log: who did what, and every customer contact."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

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
    return event


def record_contact(
    session: Session,
    customer_id: int,
    channel: str,
    summary: str,
    actor: Actor,
    bill_id: int | None = None,
    details: dict | None = None,
) -> ContactRecord:
    record = ContactRecord(
        customer_id=customer_id,
        channel=channel,
        summary=summary,
        actor_id=actor.user_id,
        bill_id=bill_id,
        details=details,
    )
    session.add(record)
    return record


def _escape(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def log_security_event(event: str, who: Any, detail: Any = "", remote_addr: str | None = None) -> None:
    """Logins, failures, refusals, password and contact changes; CR/LF in input escaped."""
    if remote_addr is None:
        try:
            from flask import request

            remote_addr = request.remote_addr
        except RuntimeError:
            remote_addr = None
    name = getattr(who, "username", None) or getattr(who, "account_no", None) or who
    security_log.info("%s user=%s addr=%s detail=%s", event, _escape(name), _escape(remote_addr), _escape(detail))
