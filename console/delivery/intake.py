"""Intake of mail received at the bounce domain: store, parse, match, apply (or quarantine).

`process_inbound` is called by the SMTP receiver (console/delivery/mailin.py), the IMAP poller and
the demo sandbox alike. It flushes, never commits.

Matching, per recipient block of a report (email-dsn.md): the VERP token in the envelope recipient
(`bounces+TOKEN@BOUNCE_DOMAIN`) first, then the report's Original-Envelope-Id, then the Message-ID
in the returned headers. Each matched block goes to `console.delivery.policy.apply_report`.

Reports must be about the address we sent to (docs/delivery.md, threat model): a confirmation is
applied only when the block's Final-Recipient or Original-Recipient is the attempt's address
(compared as mailbox addresses); otherwise the block is quarantined as a mismatch. A failure that
names another address (a forwarding hop) is applied and flagged. Auto-replies and ARF complaints
matched to an attempt are recorded (policy.record_auto_reply / record_complaint). A report that
matches nothing, a complaint about no known attempt, and anything unreadable are quarantined for an
admin. The same message delivered twice (a lost `250`, an IMAP re-poll) is recognised by its
SHA-256 and applied once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.delivery import reports
from console.delivery.policy import (
    AttemptRow,
    apply_report_row,
    attempt_rows_by,
    record_auto_reply,
    record_complaint,
)
from console.models import DeliveryAttempt
from console.models.mailin import InboundMessage, InboundReportRecipient

CONFIRMING_ACTIONS = ("delivered", "relayed", "expanded")
KEEP_BYTES = 2 * 1024 * 1024
INBOUND = InboundMessage.__table__
INBOUND_RECIPIENTS = InboundReportRecipient.__table__
_MESSAGE_COLUMNS = ("sha256", "source", "mail_from", "rcpt_tos", "received_at", "size", "raw", "truncated", "subject",
                    "from_header", "message_id", "classification", "reason", "quarantined", "created_at")
_BLOCK_COLUMNS = ("position", "final_recipient", "original_recipient", "action", "status", "diagnostic", "remote_mta",
                  "attempt_id", "matched_by", "evidence", "applied", "note")
# Built once (see console.delivery.policy): the message, and on PostgreSQL the message with its one
# recipient block as a CTE of the block's INSERT.
_STORE = insert(INBOUND).values(
    {name: bindparam(f"m_{name}", type_=INBOUND.c[name].type) for name in _MESSAGE_COLUMNS}
).returning(INBOUND.c.id)
_STORED = _STORE.cte("message_stored")
_STORE_WITH_BLOCK = insert(INBOUND_RECIPIENTS).from_select(
    ["inbound_id", *_BLOCK_COLUMNS],
    select(_STORED.c.id, *(bindparam(f"r_{name}", type_=INBOUND_RECIPIENTS.c[name].type) for name in _BLOCK_COLUMNS)),
    include_defaults=False,
).returning(INBOUND_RECIPIENTS.c.inbound_id)  # raw bytes kept per message (MAILIN_KEEP_BYTES)


@dataclass
class IntakeResult:
    inbound_id: int
    classification: str  # report, auto_reply, unmatched, malformed
    reason: str
    duplicate: bool = False
    quarantined: bool = False
    applied: list[tuple[int, str]] = field(default_factory=list)  # (attempt id, action)
    unmatched_blocks: int = 0
    noticed: int | None = None  # attempt id an auto-reply or complaint was recorded on


def verp_tokens(rcpt_tos: list[str], bounce_domain: str | None = None) -> list[str]:
    """Tokens of `bounces+TOKEN@domain` envelope recipients (domain checked when given)."""
    tokens = []
    for rcpt in rcpt_tos or []:
        address = str(rcpt).strip().strip("<>")
        local, at, domain = address.rpartition("@")
        if not at or "+" not in local:
            continue
        if bounce_domain and domain.lower() != bounce_domain.lower():
            continue
        token = local.split("+", 1)[1]
        if token and len(token) <= 64 and token not in tokens:
            tokens.append(token)
    return tokens


def _attempts_by(session: Session, column, values: list[str]) -> list[AttemptRow]:  # noqa: ANN001
    """Attempts (with their delivery's columns) by token, ENVID or Message-ID: one SELECT."""
    values = [v for v in values if v]
    if not values:
        return []
    return attempt_rows_by(session, column.key, values)


def _address_of(attempt: AttemptRow) -> str:
    return mailbox(attempt.address)


def mailbox(address: str | None) -> str:
    """An address as a mailbox to compare: no display name, angle brackets or `rfc822;`; the domain
    in lower case (and IDNA-decoded); the local part case-folded (every mail system we send to
    treats it so)."""
    value = (address or "").strip()
    if ";" in value and value.split(";", 1)[0].strip().lower() in ("rfc822", "utf-8"):
        value = value.split(";", 1)[1].strip()
    value = parseaddr(value)[1] or value.strip("<> ")
    local, at, domain = value.rpartition("@")
    if not at:
        return value.lower()
    domain = domain.strip().rstrip(".").lower()
    if domain.startswith("xn--") or ".xn--" in domain:
        try:
            domain = domain.encode("ascii").decode("idna")
        except UnicodeError:
            pass
    return f"{local.strip().lower()}@{domain}"


def _named(block: reports.RecipientBlock) -> set[str]:
    return {mailbox(a) for a in (block.final_recipient, block.original_recipient, *block.addresses) if a}


def match_block(
    session: Session,
    block: reports.RecipientBlock,
    parsed: reports.ParsedMessage,
    token_attempts: list[AttemptRow],
) -> tuple[AttemptRow | None, str | None]:
    """The attempt a recipient block reports on, and how it was found."""
    addresses = _named(block)

    def pick(candidates: list[AttemptRow]) -> AttemptRow | None:
        if len(candidates) == 1:
            return candidates[0]
        by_address = [a for a in candidates if _address_of(a) in addresses]
        return by_address[0] if len(by_address) == 1 else None

    found = pick(token_attempts)
    if found is not None:
        return found, "token"
    if parsed.envid:
        found = pick(_attempts_by(session, DeliveryAttempt.envid, [parsed.envid]))
        if found is not None:
            return found, "envid"
    mid = reports.normalize_message_id(parsed.original_message_id)
    if mid:
        found = pick(_attempts_by(session, DeliveryAttempt.message_id, [mid, f"<{mid}>"]))
        if found is not None:
            return found, "message_id"
    return None, None


def _clean(value: object, limit: int = 320) -> str:
    """Envelope strings as text without control characters (PostgreSQL refuses NUL)."""
    return re.sub(r"[\x00-\x1f\x7f]", "", str(value or ""))[:limit]


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def process_inbound(
    session: Session,
    raw: bytes,
    mail_from: str,
    rcpt_tos: list[str],
    received_at: datetime | None = None,
    *,
    bounce_domain: str | None = None,
    keep_bytes: int = KEEP_BYTES,
    source: str = "smtp",
    look_for_duplicate: bool = True,
) -> IntakeResult:
    """Store one received message, classify it, apply each matched report block. Flushes only.

    With `look_for_duplicate=False` the unique SHA-256 alone catches a message seen before: its
    INSERT (the first write) fails, and the caller rolls back and calls again looking (one query
    less per report for the SMTP receiver, where duplicates are rare)."""
    received_at = received_at or utcnow()
    raw = bytes(raw or b"")
    digest = _sha256(raw)
    existing = None
    if look_for_duplicate:
        existing = session.scalars(select(InboundMessage).where(InboundMessage.sha256 == digest)).first()
    if existing is not None:
        return IntakeResult(
            existing.id, existing.classification, existing.reason, duplicate=True, quarantined=existing.quarantined
        )

    parsed = reports.parse_message(raw, mail_from, bounce_domain)
    classification, reason = parsed.kind, parsed.reason
    rows: list[dict] = []
    to_apply: list[tuple[AttemptRow, reports.RecipientBlock, str | None]] = []
    unmatched = mismatched = 0
    noticed: AttemptRow | None = None  # the attempt an auto-reply or complaint is about
    if parsed.kind in ("auto_reply", "complaint"):
        token_attempts = _attempts_by(session, DeliveryAttempt.token, verp_tokens(rcpt_tos, bounce_domain))
        noticed, _ = match_block(session, reports.RecipientBlock(), parsed, token_attempts[:1])
        if noticed is None and parsed.kind == "complaint":
            classification, reason = "complaint", "complaint (ARF) about no known attempt"
    if parsed.kind == "report":
        # Match every block first, so the message is written once with its final classification.
        token_attempts = _attempts_by(session, DeliveryAttempt.token, verp_tokens(rcpt_tos, bounce_domain))
        for position, block in enumerate(parsed.recipients):
            attempt, how = match_block(session, block, parsed, token_attempts)
            note = None
            other = None
            if attempt is None:
                note = "no attempt matches the token, envelope id or Message-ID"
            elif block.action is None:
                note = "no valid Action"
            else:
                ours = _address_of(attempt)
                named = _named(block)
                if ours not in named and named:
                    other = sorted(named)[0] if block.final_recipient is None else mailbox(block.final_recipient)
                if block.action in CONFIRMING_ACTIONS and block.source == "rfc3464" and ours not in named:
                    note = "a confirmation about another address than the one sent to (mismatch)"
                    mismatched += 1
                else:
                    to_apply.append((attempt, block, other))
            unmatched += note is not None
            rows.append(
                {
                    "position": position,
                    "final_recipient": block.final_recipient,
                    "original_recipient": block.original_recipient,
                    "action": block.action or (block.raw_action or None) and block.raw_action[:16],
                    "status": block.status,
                    "diagnostic": block.diagnostic,
                    "remote_mta": block.remote_mta,
                    "attempt_id": attempt.id if attempt else None,
                    "matched_by": how,
                    "evidence": block.source,
                    "applied": note is None,
                    "note": note if note or not other else f"about another address: {other}"[:300],
                }
            )
        if not to_apply:
            classification = "unmatched"
            reason = ("delivery report about another address (mismatch)" if mismatched
                      else "delivery report for no known attempt")
        elif unmatched:
            reason = f"{reason}; {unmatched} block(s) not applied"

    quarantined = (classification in ("unmatched", "malformed") or unmatched > 0
                   or (classification == "complaint" and noticed is None))
    # Two connections storing the same message at the same instant: the unique sha256 makes the
    # second INSERT (or commit) fail; the receiver answers 451 and the retry finds the first copy.
    # Core statements: the hot path of every report (console.delivery.policy's module notes).
    connection = session.connection()
    stored = {
        "sha256": digest,
        "source": source[:8],
        "mail_from": _clean(mail_from),
        "rcpt_tos": [_clean(r) for r in (rcpt_tos or [])[:100]],
        "received_at": received_at,
        "size": len(raw),
        "raw": raw[:keep_bytes],
        "truncated": len(raw) > keep_bytes,
        "subject": parsed.subject,
        "from_header": parsed.from_header,
        "message_id": parsed.message_id,
        "classification": classification,
        "reason": reason,
        "quarantined": quarantined,
        "created_at": utcnow(),
    }
    params = {f"m_{name}": value for name, value in stored.items()}
    if len(rows) == 1 and connection.dialect.name == "postgresql":
        # The usual report (one recipient): the message and its block in one statement.
        params.update({f"r_{name}": value for name, value in rows[0].items()})
        message_id = connection.execute(_STORE_WITH_BLOCK, params).scalar_one()
    else:
        message_id = connection.execute(_STORE, params).scalar_one()
        if rows:
            connection.execute(insert(INBOUND_RECIPIENTS), [dict(row, inbound_id=message_id) for row in rows])

    for attempt, block, other in to_apply:
        apply_report_row(session, attempt, block.action, block.status, block.diagnostic, received_at,
                         block.remote_mta, evidence=block.source, other_address=other,
                         key_sentence=block.key_sentence, inbound_id=message_id)
    if noticed is not None and parsed.kind == "auto_reply":
        record_auto_reply(session, noticed, received_at, parsed.auto_kind, parsed.subject, parsed.key_sentence,
                          inbound_id=message_id)
    elif noticed is not None and parsed.kind == "complaint":
        record_complaint(session, noticed, received_at, parsed.feedback, inbound_id=message_id)
    session.flush()
    result = IntakeResult(message_id, classification, reason, quarantined=quarantined, unmatched_blocks=unmatched)
    result.applied = [(attempt.id, block.action) for attempt, block, _ in to_apply]
    result.noticed = noticed.id if noticed is not None else None
    return result


STATES = ("open", "handled", "all", "received")


def quarantine_query(classification: str | None = None, state: str = "open"):  # noqa: ANN201
    """The admin's list, newest first: quarantined messages not yet handled (`open`), handled, all
    quarantined, or every message received (`received`, reports and auto-replies included)."""
    query = select(InboundMessage).order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
    if state != "received":
        query = query.where(InboundMessage.quarantined.is_(True))
    if state == "open":
        query = query.where(InboundMessage.handled_at.is_(None))
    elif state == "handled":
        query = query.where(InboundMessage.handled_at.is_not(None))
    if classification:
        query = query.where(InboundMessage.classification == classification)
    return query


def mark_handled(session: Session, inbound_id: int, actor, note: str = "") -> InboundMessage | None:  # noqa: ANN001
    """An admin has looked at a quarantined message. Audited."""
    from console.audit import record_audit

    message = session.get(InboundMessage, inbound_id)
    if message is None:
        return None
    if message.handled_at is None:
        message.handled_at = utcnow()
        message.handled_by_id = actor.user_id
        message.handled_note = (note or "").strip()[:2000] or None
        record_audit(
            session, actor, "mailin.quarantine_handled", "inbound_message", message.id,
            before={"handled": False}, after={"handled": True, "note": message.handled_note},
        )
        session.flush()
    return message
