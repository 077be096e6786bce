"""Admin pages of the sending side: e-mail figures per cycle and the deliveries by status, with
each one's attempts and the servers' replies. Guarded by the delivery blueprint (admin only)."""

from __future__ import annotations

from flask import request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from console.delivery.policy import ADDRESS_CHECK
from console.delivery.report import delivery_counts
from console.delivery.routes import bp
from console.extensions import db
from console.inboxes.labels import LABELS as INBOX_LABELS
from console.models import Cycle, Delivery
from console.models.billing import CycleStatus
from console.models.delivery import DELIVERY_STATUSES
from console.models.mailin import DeliveryEvent
from console.web.htmx import render_page_or_fragment
from console.web.labels import LABELS
from console.web.nav import add_admin_link

LABELS.setdefault("delivery_status", {}).update(
    {
        "queued": _l("Waiting to be sent"),
        "sent": _l("Sent, awaiting confirmation"),
        "confirmed": _l("Confirmed"),
        "failed": _l("Failed"),
        "cancelled": _l("Cancelled"),
    }
)
LABELS.setdefault("confirmed_by", {}).update(
    {
        "delivered": _l("Delivery report"),
        "relayed": _l("Relayed (no further report)"),
        "expanded": _l("Mailing list (expanded)"),
        "portal_open": _l("Opened on the web page"),
        "post": _l("Post"),
    }
)

LABELS.setdefault("delivery_event", {}).update(
    {
        "auto_reply": _l("Auto-reply received"),
        "complaint": _l("Complaint: reported as spam"),
        "reopened": _l("Bounced after a relayed confirmation: reopened"),
    }
)
LABELS.setdefault("delivery_event_code", {}).update(
    {
        "abandoned": _l("the address is no longer in use"),
        "challenge": _l("challenge-response"),
        "abuse": _l("abuse"),
        "relayed": _l("relayed"),
        "expanded": _l("expanded"),
    }
)
LABELS.setdefault("report_evidence", {}).update(
    {
        "text": _l("read from the text of a non-standard bounce"),
        "dsn_fields": _l("read from DSN fields in the body of a broken report"),
    }
)
INBOX_LABELS["reason"].setdefault(ADDRESS_CHECK, _l("Confirm the e-mail address"))

add_admin_link("delivery.deliveries", _l("E-mail deliveries"), order=59)

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
