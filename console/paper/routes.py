"""Clerk screens for paper bills: print batches (gather, progress, download, printed) and dispatch."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from console.audit import Actor
from console.extensions import db
from console.models import Bill, Customer, Cycle, Delivery
from console.models.delivery import DeliveryStatus
from console.models.paper import BatchStatus, PrintBatch, PrintItem
from console.paper import batches, dispatch
from console.paper.batches import PaperError
from console.web import confirm
from console.web.auth import guard_blueprint
from console.web.htmx import is_fragment_request, render_page_or_fragment
from console.web.lookups import cycle_or_404

bp = guard_blueprint(Blueprint("paper", __name__, url_prefix="/paper"), roles=["clerk", "admin"])
bp.add_app_template_global(dispatch.next_steps, "paper_next_steps")  # the buttons of a printed bill


def _actor() -> Actor:
    return Actor.of_user(current_user, request.remote_addr)


def _batch_or_404(batch_id: int) -> PrintBatch:
    batch = db().get(PrintBatch, batch_id)
    if batch is None:
        abort(404)
    return batch


@bp.route("/")
def index():
    session = db()
    waiting = dict(
        session.execute(
            select(Bill.cycle_id, func.count(Delivery.id))
            .join(Bill, Bill.id == Delivery.bill_id)
            .where(Delivery.channel == "paper", Delivery.status == DeliveryStatus.QUEUED,
                   ~select(PrintItem.id).where(PrintItem.delivery_id == Delivery.id).exists())
            .group_by(Bill.cycle_id)
        ).all()
    )
    cycles = list(session.scalars(select(Cycle).order_by(Cycle.period.desc()).limit(24)))
    return render_template("paper/index.html", cycles=cycles, waiting=waiting, deliverers=dispatch.deliverers(session))


def _cycle_context(period: str, error: str | None = None) -> dict:
    session = db()
    cycle = cycle_or_404(period)
    rows = list(session.scalars(select(PrintBatch).where(PrintBatch.cycle_id == cycle.id).order_by(PrintBatch.batch_no)))
    progress = batches.cycle_progress(session, period)
    return {
        "cycle": cycle,
        "batches": rows,
        "progress": progress,
        "running": any(b.status == BatchStatus.RENDERING for b in rows),
        "error": error,
        "default_size": batches.default_batch_size(),
    }


@bp.route("/cycles/<period>")
def cycle(period: str):
    return render_page_or_fragment("paper/cycle.html", "paper/_batches.html", **_cycle_context(period))


@bp.route("/cycles/<period>/progress")
def progress(period: str):
    """The batches widget alone: polled by htmx while a batch is rendering (the cycle dashboard may include it)."""
    return render_template("paper/_batches.html", **_cycle_context(period))


@bp.post("/cycles/<period>/gather")
def gather(period: str):
    session = db()
    cycle_or_404(period)
    try:
        size = int(request.form.get("size") or batches.default_batch_size())
        batches.gather_batches(
            session, period, _actor(), size=size,
            key_accounts_only=current_app.config["PAPER_KEY_ACCOUNTS_ONLY"],
        )
        batches.queue_rendering(session, batches.unfinished_batch_ids(session, period))
        session.commit()
    except (PaperError, ValueError) as exc:
        session.rollback()
        message = str(exc) if isinstance(exc, PaperError) else str(_l("The batch size must be at least 1."))
        return render_page_or_fragment("paper/cycle.html", "paper/_batches.html",
                                       **_cycle_context(period, error=message)), 422
    if is_fragment_request():
        return render_template("paper/_batches.html", **_cycle_context(period))
    return redirect(url_for("paper.cycle", period=period))


@bp.route("/batches/<int:batch_id>")
def batch(batch_id: int):
    session = db()
    row = _batch_or_404(batch_id)
    cycle = session.get(Cycle, row.cycle_id)
    items = session.execute(
        select(PrintItem, Bill.bill_no, Delivery.recipient_name, Delivery.address, Customer.account_no)
        .join(Bill, Bill.id == PrintItem.bill_id)
        .join(Delivery, Delivery.id == PrintItem.delivery_id)
        .join(Customer, Customer.id == PrintItem.customer_id)
        .where(PrintItem.batch_id == batch_id)
        .order_by(PrintItem.position)
    ).all()
    return render_template("paper/batch.html", batch=row, cycle=cycle, items=items,
                           progress=batches.batch_progress(session, batch_id), error=None,
                           can_hand=dispatch.can_hand_batch(session, row))


@bp.route("/batches/<int:batch_id>/pdf")
def batch_pdf(batch_id: int):
    row = _batch_or_404(batch_id)
    if not row.pdf_path:
        abort(404)
    cycle = db().get(Cycle, row.cycle_id)
    return send_file(batches.batch_file(row), mimetype="application/pdf", as_attachment=True,
                     download_name=f"print-{cycle.period}-{row.batch_no:04d}.pdf", max_age=0)


def _batch_name(batch: PrintBatch) -> str:
    return _("batch %(no)s of %(period)s", no=batch.batch_no, period=db().get(Cycle, batch.cycle_id).period)


def _ask_printed(batch_id: int) -> confirm.Confirmation:
    batch = _batch_or_404(batch_id)
    if batch.status == BatchStatus.PRINTED:
        raise confirm.Refused(_("This batch is already marked printed."))
    if batch.status != BatchStatus.READY:
        raise confirm.Refused(_("The batch is still being rendered."))
    name, f = _batch_name(batch), confirm.figure
    return confirm.Confirmation(
        action=url_for("paper.printed", batch_id=batch_id),
        question=_("Mark %(batch)s printed?", batch=name),
        facts=[
            _("%(bills)s bills of %(batch)s, %(copies)s copies on %(pages)s pages, are recorded as printed.",
              bills=f(batch.bills_count), batch=name, copies=f(batch.copies_count), pages=f(batch.pages_count or 0)),
            _("Then they can be posted or handed to a deliverer. This cannot be undone."),
        ],
        button=_("Confirm: printed"),
        back=url_for("paper.batch", batch_id=batch_id),
    )


@confirm.confirmed(bp, "/batches/<int:batch_id>/printed", ask=_ask_printed)
def printed(batch_id: int):
    session = db()
    if _batch_or_404(batch_id).status == BatchStatus.PRINTED:
        return confirm.already_done(url_for("paper.batch", batch_id=batch_id))
    try:
        batches.mark_printed(session, batch_id, _actor())
        session.commit()
    except PaperError:
        session.rollback()
        abort(409)
    return redirect(url_for("paper.batch", batch_id=batch_id))


def _ask_batch_by_hand(batch_id: int) -> confirm.Confirmation:
    session = db()
    batch = _batch_or_404(batch_id)
    postal_code = (request.values.get("postal_code") or "").strip() or None
    try:
        deliverer = dispatch.clean_deliverer(request.values.get("deliverer"))
    except PaperError as exc:
        raise confirm.Refused(str(exc)) from None
    waiting = dispatch.waiting_in_batch(session, batch_id, postal_code)
    if batch.status != BatchStatus.PRINTED or not waiting["bills"]:
        raise confirm.Refused(_("No bill of this batch is waiting to be dispatched."))
    name, f = _batch_name(batch), confirm.figure
    facts = [_("%(bills)s paper bills of %(batch)s (%(copies)s copies) will be handed to %(deliverer)s for delivery.",
               bills=f(waiting["bills"]), batch=name, copies=f(waiting["copies"]), deliverer=deliverer)]
    if postal_code:
        facts.append(_("Only the bills for postal code %(code)s.", code=postal_code))
    facts.append(_("Each is recorded as handed over in its customer's contact history and is on the run sheet of "
                   "%(deliverer)s.", deliverer=deliverer))
    return confirm.Confirmation(
        action=url_for("paper.batch_by_hand", batch_id=batch_id),
        question=_("Hand %(batch)s to %(deliverer)s?", batch=name, deliverer=deliverer),
        facts=facts, button=_("Confirm: hand over"), back=url_for("paper.batch", batch_id=batch_id),
        fields={"deliverer": deliverer, "postal_code": postal_code or ""},
    )


@confirm.confirmed(bp, "/batches/<int:batch_id>/hand", ask=_ask_batch_by_hand)
def batch_by_hand(batch_id: int):
    session = db()
    _batch_or_404(batch_id)
    try:
        dispatch.dispatch_batch_by_hand(session, batch_id, request.form.get("deliverer", ""), _actor(),
                                        postal_code=request.form.get("postal_code") or None)
        session.commit()
    except PaperError:
        session.rollback()
        abort(422)
    return redirect(url_for("paper.batch", batch_id=batch_id))


def _item_row(item_id: int, error: str | None = None):  # noqa: ANN202
    session = db()
    row = session.execute(
        select(PrintItem, Bill.bill_no, Delivery.recipient_name, Delivery.address, Customer.account_no)
        .join(Bill, Bill.id == PrintItem.bill_id)
        .join(Delivery, Delivery.id == PrintItem.delivery_id)
        .join(Customer, Customer.id == PrintItem.customer_id)
        .where(PrintItem.id == item_id)
    ).one()
    batch = session.get(PrintBatch, row[0].batch_id)
    return render_template("paper/_item.html", row=row, batch=batch, error=error)


def _ask_item_action(item_id: int, action: str) -> confirm.Confirmation:
    session = db()
    row = session.execute(
        select(PrintItem, Bill.bill_no, Delivery.recipient_name, Delivery.address)
        .join(Bill, Bill.id == PrintItem.bill_id)
        .join(Delivery, Delivery.id == PrintItem.delivery_id)
        .where(PrintItem.id == item_id)
    ).one_or_none()
    if row is None or action not in ("post", "hand", "delivered", "returned"):
        abort(404)
    item, bill_no, name, address = row
    if action not in dispatch.next_steps(item, session.get(PrintBatch, item.batch_id)):
        raise confirm.Refused(_("This step is not possible for this bill any more; reload the page."))
    values, fields = request.values, {"note": (request.values.get("note") or "").strip()[:500]}
    try:
        if action == "post":
            tracking_no = dispatch.clean_tracking_no(values.get("tracking_no"))
            fields = {"tracking_no": tracking_no}
            question = _("Post bill %(bill)s?", bill=bill_no)
            facts = [_("Bill %(bill)s goes by post to %(name)s, %(address)s, tracking number %(tracking)s.",
                       bill=bill_no, name=name, address=address, tracking=tracking_no)]
        elif action == "hand":
            deliverer = dispatch.clean_deliverer(values.get("deliverer"))
            fields = {"deliverer": deliverer}
            question = _("Hand bill %(bill)s to %(deliverer)s?", bill=bill_no, deliverer=deliverer)
            facts = [_("Bill %(bill)s is handed to %(deliverer)s for %(name)s, %(address)s.",
                       bill=bill_no, deliverer=deliverer, name=name, address=address)]
        elif action == "delivered":
            question = _("Bill %(bill)s delivered?", bill=bill_no)
            facts = [_("Bill %(bill)s is recorded as delivered to %(name)s: its delivery is confirmed.",
                       bill=bill_no, name=name)]
        else:
            question = _("Bill %(bill)s returned?", bill=bill_no)
            facts = [_("Bill %(bill)s is recorded as returned from %(address)s: its delivery failed, and a work item "
                       "is opened for someone to call %(name)s and correct the address.",
                       bill=bill_no, address=address, name=name)]
    except PaperError as exc:
        raise confirm.Refused(str(exc)) from None
    if fields.get("note"):
        facts.append(_("Note: %(note)s", note=fields["note"]))
    return confirm.Confirmation(
        action=url_for("paper.item_action", item_id=item_id, action=action), question=question, facts=facts,
        button=_("Confirm"), back=url_for("paper.batch", batch_id=item.batch_id),
        target=f"#print-item-{item_id}", fields=fields,
    )


@confirm.confirmed(bp, "/items/<int:item_id>/<action>", ask=_ask_item_action)
def item_action(item_id: int, action: str):
    session = db()
    item = session.get(PrintItem, item_id)
    if item is None:
        abort(404)
    actor, form = _actor(), request.form
    actions = {
        "post": lambda: dispatch.dispatch_by_post(session, item_id, form.get("tracking_no", ""), actor),
        "hand": lambda: dispatch.dispatch_by_hand(session, item_id, form.get("deliverer", ""), actor),
        "delivered": lambda: dispatch.confirm_delivered(session, item_id, actor, form.get("note", "")),
        "returned": lambda: dispatch.record_returned(session, item_id, actor, form.get("note", "")),
    }
    if action not in actions:
        abort(404)
    try:
        actions[action]()
        session.commit()
    except PaperError as exc:
        session.rollback()
        if is_fragment_request():
            return _item_row(item_id, error=str(exc)), 422
        abort(422)
    if is_fragment_request():
        return _item_row(item_id)
    return redirect(url_for("paper.batch", batch_id=item.batch_id))


@bp.route("/runsheet")
def runsheet():
    deliverer = request.args.get("deliverer", "").strip()
    period = request.args.get("period") or None
    lines = dispatch.run_sheet(db(), deliverer, period) if deliverer else []
    return render_template("paper/runsheet.html", deliverer=deliverer, period=period, lines=lines)
