"""Admin pages of the sending side: e-mail figures per cycle and the deliveries by status, with
each one's attempts and the servers' replies. Guarded by the delivery blueprint (admin only)."""

from __future__ import annotations

from flask import request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from console.delivery.report import delivery_counts
from console.delivery.routes import bp
from console.extensions import db
from console.models import Cycle, Delivery
from console.models.billing import CycleStatus
from console.models.delivery import DELIVERY_STATUSES
from console.models.mailin import DeliveryEvent
from console.web.htmx import render_page_or_fragment

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
