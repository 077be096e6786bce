"""The delivery blueprint (admin only): the sending side — e-mail figures per cycle, the deliveries by
status with each one's attempts and the servers' replies — and the mail-in side — the quarantine of
inbound messages that matched no attempt or could not be read, and the demo sandbox's mailbox."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from console.audit import Actor
from console.db import utcnow
from console.delivery.counts import delivery_counts, sending_progress
from console.delivery.intake import STATES, mark_handled, quarantine_query
from console.delivery.status_text import status_meaning
from console.extensions import db
from console.models import Cycle, Delivery
from console.models.billing import CycleStatus
from console.models.delivery import DELIVERY_STATUSES
from console.models.mailin import (
    INBOUND_CLASSES,
    DeliveryEvent,
    InboundMessage,
    InboundReportRecipient,
    SandboxMessage,
)
from console.web.auth import guard_blueprint
from console.web.htmx import render_page_or_fragment

bp = guard_blueprint(Blueprint("delivery", __name__, url_prefix="/delivery"), roles=["admin"])
bp.add_app_template_global(status_meaning, "status_meaning")  # work items in every inbox show it


# ---- the sending side
PAGE_SIZE = 50


@bp.get("/deliveries")
def deliveries():
    status = request.args.get("status", "failed")
    status = status if status in DELIVERY_STATUSES else "failed"
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    session = db()
    cycles = session.scalars(select(Cycle).where(Cycle.status == CycleStatus.PUBLISHED).order_by(Cycle.period.desc()).limit(6)).all()
    figures = [(cycle, delivery_counts(session, cycle.id)) for cycle in cycles]
    where = (Delivery.channel == "email", Delivery.status == status)
    total = session.scalar(select(func.count(Delivery.id)).where(*where))
    rows = session.scalars(
        select(Delivery)
        .where(*where)
        .options(selectinload(Delivery.attempts))
        .order_by(Delivery.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    events: dict[int, list[DeliveryEvent]] = {}
    if rows:
        for event in session.scalars(
            select(DeliveryEvent).where(DeliveryEvent.delivery_id.in_([d.id for d in rows])).order_by(DeliveryEvent.id)
        ):
            events.setdefault(event.delivery_id, []).append(event)
    return render_page_or_fragment(
        "delivery/deliveries.html",
        "delivery/_deliveries_rows.html",
        figures=figures,
        rows=rows,
        events=events,
        status=status,
        statuses=DELIVERY_STATUSES,
        total=total,
        page_no=page,
        pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
    )


@bp.get("/cycles/<int:cycle_id>/sending")
def cycle_sending(cycle_id: int):
    """The cycle's e-mails while they go out: the fragment the cycle page and the dashboard poll."""
    session = db()
    cycle = session.get(Cycle, cycle_id) or abort(404)
    return render_template("delivery/_sending.html", cycle=cycle, sending=sending_progress(session, cycle.id, utcnow()))


# ---- the mail-in side
SHOW_BYTES = 64 * 1024  # of a message's raw text shown on its page


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


def _raw_text(raw: bytes) -> tuple[str, bool]:
    """The first SHOW_BYTES of a message as text (escaped by the template, never rendered)."""
    shown = raw[:SHOW_BYTES]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = shown.decode("utf-8", "replace")
    return text, len(raw) > SHOW_BYTES


@bp.get("/quarantine")
def quarantine():
    state = request.args.get("state", "open")
    state = state if state in STATES else "open"
    classification = request.args.get("classification") or None
    classification = classification if classification in INBOUND_CLASSES else None
    page = _page()
    query = quarantine_query(classification, state)
    session = db()
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    messages = session.scalars(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return render_page_or_fragment(
        "delivery/quarantine.html",
        "delivery/_quarantine_rows.html",
        messages=messages,
        state=state,
        states=STATES,
        classification=classification,
        classes=INBOUND_CLASSES,
        page_no=page,
        total=total,
        page_size=PAGE_SIZE,
    )


@bp.get("/quarantine/<int:message_id>")
def quarantine_message(message_id: int):
    session = db()
    message = session.get(InboundMessage, message_id)
    if message is None:
        abort(404)
    blocks = session.scalars(
        select(InboundReportRecipient)
        .where(InboundReportRecipient.inbound_id == message.id)
        .order_by(InboundReportRecipient.position)
    ).all()
    text, cut = _raw_text(message.raw)
    return render_template("delivery/quarantine_message.html", message=message, blocks=blocks, text=text, cut=cut)


@bp.post("/quarantine/<int:message_id>/handled")
def quarantine_handled(message_id: int):
    session = db()
    message = mark_handled(
        session, message_id, Actor.of_user(current_user, request.remote_addr), request.form.get("note", "")
    )
    if message is None:
        abort(404)
    session.commit()
    flash(_("Marked as handled."), "ok")
    return redirect(url_for("delivery.quarantine_message", message_id=message_id))


@bp.get("/sandbox")
def sandbox():
    page = _page()
    session = db()
    total = session.scalar(select(func.count()).select_from(SandboxMessage))
    messages = session.scalars(
        select(SandboxMessage)
        .order_by(SandboxMessage.received_at.desc(), SandboxMessage.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    return render_page_or_fragment(
        "delivery/sandbox.html",
        "delivery/_sandbox_rows.html",
        messages=messages,
        page_no=page,
        total=total,
        page_size=PAGE_SIZE,
    )


@bp.get("/sandbox/<int:message_id>")
def sandbox_message(message_id: int):
    message = db().get(SandboxMessage, message_id)
    if message is None:
        abort(404)
    text, cut = _raw_text(message.raw)
    return render_template("delivery/sandbox_message.html", message=message, text=text, cut=cut,
                           shown=readable_message(message.raw))


def readable_message(raw: bytes) -> dict:
    """The message as its reader sees it: subject decoded, the text and HTML parts decoded (the HTML
    is shown in a sandboxed frame: no scripts, no navigation), the attachments by name and size."""
    import email
    from email import policy

    msg = email.message_from_bytes(raw or b"", policy=policy.default)
    parts = {}
    for kind in ("plain", "html"):
        body = msg.get_body(preferencelist=(kind,))
        if body is not None:
            try:
                parts[kind] = body.get_content()
            except (LookupError, ValueError):  # an unknown charset or a broken part: the source shows it
                parts[kind] = None
    if parts.get("html"):
        parts["html"] = _inline_related_images(msg, parts["html"])
    attachments = [
        {"name": part.get_filename() or "", "type": part.get_content_type(), "size": len(part.get_payload(decode=True) or b"")}
        for part in msg.iter_attachments()
    ]
    return {"subject": decoded_header(msg["subject"]), "from": decoded_header(msg["from"]),
            "to": decoded_header(msg["to"]), "text": parts.get("plain"), "html": parts.get("html"),
            "attachments": attachments}


def _inline_related_images(msg, html: str) -> str:  # noqa: ANN001
    """`cid:` images of the message (its multipart/related parts) as data: URIs, as a mail client
    shows them: the sandboxed frame cannot reach the message's parts."""
    import base64

    for part in msg.walk():
        content_id = (part.get("Content-ID") or "").strip().strip("<>")
        if content_id and part.get_content_maintype() == "image":
            data = base64.b64encode(part.get_payload(decode=True) or b"").decode("ascii")
            html = html.replace(f"cid:{content_id}", f"data:{part.get_content_type()};base64,{data}")
    return html


@bp.app_template_filter("decoded_header")
def decoded_header(value: object) -> str:
    """An RFC 2047 header (`=?utf-8?b?…?=`) as text."""
    from email.header import decode_header, make_header

    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, ValueError):
        return str(value)
