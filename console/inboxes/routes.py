"""The role inboxes, the work-item page with its actions, the clerk's exceptions and the cycle dashboard.

One blueprint per audience, each guarded once (console.web.auth.guard_blueprint); within the
work-item blueprint, what a user may see is decided by services.visible_clause (404 otherwise).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import OperationalError

from console import outbox
from console.audit import Actor, log_security_event, record_audit
from console.billing.review import ReviewSettings
from console.extensions import db
from console.inboxes import dashboard, services
from console.models import Cycle
from console.web import confirm
from console.web.auth import guard_blueprint
from console.web.htmx import is_fragment_request, render_page_or_fragment

rep_bp = guard_blueprint(Blueprint("inbox_rep", __name__, url_prefix="/inbox/rep"), roles=["phone_rep", "admin"])
am_bp = guard_blueprint(Blueprint("inbox_am", __name__, url_prefix="/inbox/accounts"), roles=["account_manager"])
items_bp = guard_blueprint(
    Blueprint("work_items", __name__, url_prefix="/work-items"), roles=["phone_rep", "account_manager", "admin"]
)
clerk_bp = guard_blueprint(Blueprint("inbox_clerk", __name__, url_prefix="/inbox/clerk"), roles=["clerk", "admin"])
admin_bp = guard_blueprint(Blueprint("inbox_admin", __name__, url_prefix="/inbox/admin"), roles=["admin"])

BLUEPRINTS = (rep_bp, am_bp, items_bp, clerk_bp, admin_bp)


POLL_SECONDS = 5


def _viewer() -> services.Viewer:
    return services.Viewer.of(current_user)


def _actor() -> Actor:
    return Actor.of_user(current_user, request.remote_addr)


def endpoint_url(endpoint: str, **values: Any) -> str | None:
    """A link to another domain's page when that page exists (domains are built independently)."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except Exception:  # noqa: BLE001 - a page with other parameters than we guess: no link
        return None


def _when(value: Any) -> str:
    """A time in the display time zone, `2026-11-27 09:30` (babel's formatter costs ~0.2 ms a call;
    the queue shows 50 a page, refreshed every few seconds)."""
    if not value:
        return ""
    zone = g.get("_inbox_tz")
    if zone is None:
        zone = g._inbox_tz = get_timezone()
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


rep_bp.app_template_global("endpoint_url")(endpoint_url)
rep_bp.app_template_filter("inbox_when")(_when)


# ---- the queues ----------------------------------------------------------------------------------


def _targets() -> dict:
    return {"key_account": current_app.config["CASE_TARGET_HOURS_KEY_ACCOUNT"],
            "default": current_app.config["CASE_TARGET_HOURS"]}


def _queue_view(queue: str, endpoint: str, page: str, **extra: Any) -> str:
    query = services.InboxQuery.from_args(queue, request.args)
    session = db()
    result = services.list_items(session, _viewer(), query)
    zone, targets = get_timezone(), _targets()
    for row in result.rows:
        row.update(services.timing(row["created_at"], row["key_account"], targets, zone))
    counts = services.counts(session, _viewer(), queue)
    return render_page_or_fragment(
        page, "inboxes/_queue.html", inbox=result, counts=counts, endpoint=endpoint, reasons=services.REASONS,
        poll_seconds=POLL_SECONDS, queue=queue, bulk_actions=services.BULK_ACTIONS, **extra,
    )


@items_bp.route("/next/<queue>", methods=["POST"])
def take_next(queue: str):
    """Claims the most urgent unclaimed item of the queue for me and opens it."""
    if queue not in ("phone_rep", "account_manager"):
        abort(404)
    session = db()
    item = services.take_next(session, _viewer(), queue, _actor())
    session.commit()
    if item is None:
        flash(_("Nothing is waiting in this queue."))
        target = url_for("home.index")
    else:
        target = url_for("work_items.show", item_id=item.id)
    if is_fragment_request():
        response = current_app.make_response(("", 204))
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target), 303


def _ask_bulk_close() -> confirm.Confirmation:
    """Closing several items at once (the queue's plain form is sent here by confirm when it says "close")."""
    ids = [int(i) for i in request.values.getlist("item") if i.isdigit()]
    reason = (request.values.get("reason") or "").strip()
    if not reason:
        raise confirm.Refused(_("Say why the item is closed."))
    preview = services.bulk_close_preview(db(), _viewer(), ids)
    if not preview["closes"]:
        raise confirm.Refused(_("None of the selected items can be closed."))
    facts = [_("%(n)s work items are closed with the reason: %(reason)s",
               n=confirm.figure(len(preview["closes"])), reason=reason),
             _("Their failed deliveries are no longer followed up; nothing is sent again.")]
    if preview["refused"]:
        facts.append(_("%(n)s of the selected items stay as they are: closed already, or someone else is working on "
                       "them.", n=confirm.figure(preview["refused"])))
    return confirm.Confirmation(
        action=url_for("work_items.bulk"), question=_("Close %(n)s work items?", n=confirm.figure(len(preview["closes"]))),
        facts=facts, button=_("Confirm: close"), back=confirm.referring_page(url_for("home.index")),
        fields={"action": "close", "reason": reason, "item": [str(i) for i in preview["closes"]]},
    )


@confirm.confirmed(items_bp, "/bulk", ask=_ask_bulk_close, needed=lambda: request.values.get("action") == "close")
def bulk():
    ids = [int(i) for i in request.form.getlist("item") if i.isdigit()]
    session = db()
    back = confirm.back_url(request.referrer or url_for("home.index"))
    try:
        result = services.bulk(session, _viewer(), ids, request.form.get("action", ""), _actor(),
                               target=request.form.get("target", ""), reason=request.form.get("reason", ""))
    except services.InboxError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(back), 303
    session.commit()
    flash(_("%(done)d items done, %(refused)d refused.", done=result["done"], refused=result["refused"]))
    return redirect(back), 303


@rep_bp.route("/")
def index():
    return _queue_view("phone_rep", "inbox_rep.index", "inboxes/rep.html")


@am_bp.route("/")
def index():  # noqa: F811 - one `index` per blueprint
    accounts = services.managed_accounts(db(), current_user.id) if not is_fragment_request() else []
    return _queue_view("account_manager", "inbox_am.index", "inboxes/accounts.html", accounts=accounts)


# ---- one work item -------------------------------------------------------------------------------


def _paper_rule() -> bool:
    return bool(current_app.config["PAPER_KEY_ACCOUNTS_ONLY"])


def _item_context(item_id: int) -> dict:
    try:
        return services.item_view(db(), _viewer(), item_id, _paper_rule())
    except services.NotFound:
        abort(404)


@items_bp.route("/<int:item_id>")
def show(item_id: int):
    context = _item_context(item_id)
    context["timing"] = services.timing(context["item"].created_at, context["customer"].key_account, _targets(),
                                        get_timezone())
    return render_page_or_fragment("inboxes/item.html", "inboxes/_item.html", **context)


def _act(item_id: int, action, success: str | None = None):  # noqa: ANN001, ANN202
    """Runs one service; on success commits and shows the item again, on refusal shows why (422)."""
    session = db()
    try:
        try:
            outcome = action(session)
        except OperationalError as exc:
            # SQLite: a writer committed since this request's first read (SQLITE_BUSY); try once more
            # on a fresh transaction. PostgreSQL serializes the conditional UPDATEs by itself.
            if "locked" not in str(exc):
                raise
            session.rollback()
            outcome = action(session)
    except services.NotFound:
        session.rollback()
        abort(404)
    except services.InboxError as exc:
        session.rollback()
        message = str(exc)
        # 422, not 409, for "someone else has it" too: base.html lets htmx swap 422 only, and the
        # person must see why nothing happened.
        status = 422
        if not is_fragment_request():
            flash(message, "error")
            return redirect(url_for("work_items.show", item_id=item_id)), 303
        context = _item_context(item_id)
        return render_template("inboxes/_item.html", error=message, **context), status
    session.commit()
    notice = success(outcome) if callable(success) else success
    try:
        context = services.item_view(db(), _viewer(), item_id, _paper_rule())
    except services.NotFound:  # handed to someone this user may not see: back to the inbox
        if notice:
            flash(notice)
        if is_fragment_request():
            response = current_app.make_response(("", 204))
            response.headers["HX-Redirect"] = url_for("home.index")
            return response
        return redirect(url_for("home.index")), 303
    if not is_fragment_request():
        if notice:
            flash(notice)
        return redirect(url_for("work_items.show", item_id=item_id)), 303
    response = current_app.make_response(render_template("inboxes/_item.html", notice=notice, **context))
    response.headers["HX-Trigger"] = "inbox-changed"
    return response


@items_bp.route("/<int:item_id>/claim", methods=["POST"])
def claim(item_id: int):
    return _act(item_id, lambda s: services.claim(s, _viewer(), item_id, _actor()), _("You are working on this item."))


@items_bp.route("/<int:item_id>/release", methods=["POST"])
def release(item_id: int):
    return _act(item_id, lambda s: services.release(s, _viewer(), item_id, _actor()), _("The item is back in the queue."))


@items_bp.route("/<int:item_id>/call", methods=["POST"])
def call(item_id: int):
    return _act(
        item_id,
        lambda s: services.record_call(
            s, _viewer(), item_id, request.form.get("outcome", ""), request.form.get("note", ""), _actor(),
            new_phone=request.form.get("phone", ""),
        ),
        _("The call is in the contact history."),
    )


# ---- the confirmations of the actions that send, print or close (console/web/confirm.py) -------


def _case(item_id: int) -> services.CasePreview:
    try:
        return services.case_preview(db(), _viewer(), item_id)
    except services.NotFound:
        abort(404)
    except services.InboxError as exc:
        raise confirm.Refused(str(exc)) from None


def _item_confirmation(item_id: int, endpoint: str, **values) -> dict:  # noqa: ANN003
    return {"action": url_for(endpoint, item_id=item_id), "back": url_for("work_items.show", item_id=item_id),
            "target": "#item", **values}


def _ask_correct_email(item_id: int) -> confirm.Confirmation:
    from console.emailaddress import InvalidAddress, parse_address

    typed = (request.values.get("email") or "").strip()
    try:
        address = parse_address(typed)
    except InvalidAddress:
        raise confirm.Refused(_("That is not a valid e-mail address.")) from None
    case = _case(item_id)
    failed = [d for d in case.failed if d.channel == "email"]
    if not failed:
        raise confirm.Refused(_("Nothing on this item is waiting to be sent again."))
    if any(d.address == address for d in failed):
        raise confirm.Refused(_("The new address is the same as the old one."))
    bills = len({d.bill_id for d in failed})
    return confirm.Confirmation(**_item_confirmation(
        item_id, "work_items.correct_email",
        question=_("Send the bills again to %(address)s?", address=address),
        facts=[_("%(old)s is replaced by %(new)s in the customer file.",
                 old=", ".join(sorted({d.address for d in failed})), new=address),
               _("%(bills)s bills of this case are e-mailed again to %(new)s, and the work item is closed.",
                 bills=confirm.figure(bills), new=address)],
        button=_("Confirm: correct and resend"), fields={"email": typed},
    ))


def _ask_correct_postal(item_id: int) -> confirm.Confirmation:
    from console.customers.services import FormInvalid, clean_postal

    try:
        postal_address, postal_code = clean_postal(request.values.get("postal_address", ""),
                                                   request.values.get("postal_code", ""))
    except FormInvalid as exc:
        raise confirm.Refused(str(next(iter(exc.errors.values())))) from None
    case = _case(item_id)
    failed = [d for d in case.failed if d.channel == "paper"]
    if not failed:
        raise confirm.Refused(_("Nothing on this item is waiting to be sent again."))
    bills = len({d.bill_id for d in failed})
    return confirm.Confirmation(**_item_confirmation(
        item_id, "work_items.correct_postal",
        question=_("Print the bills again for %(address)s?", address=postal_address),
        facts=[_("The postal address becomes %(address)s, postal code %(code)s (it was %(old)s).",
                 address=postal_address, code=postal_code, old=", ".join(sorted({d.address for d in failed}))),
               _("%(bills)s bills of this case are printed again in the next print batch, and the work item is closed.",
                 bills=confirm.figure(bills))],
        button=_("Confirm: correct and reprint"),
        fields={"postal_address": postal_address, "postal_code": postal_code},
    ))


def _ask_switch_to_paper(item_id: int) -> confirm.Confirmation:
    try:
        preview = services.paper_switch_preview(db(), _viewer(), item_id, _paper_rule())
    except services.NotFound:
        abort(404)
    except services.InboxError as exc:
        raise confirm.Refused(str(exc)) from None
    customer = preview["customer"]
    if preview["email_stops"]:
        facts = [_("%(customer)s gets paper bills from now on, and no more e-mailed bills.", customer=customer.name)]
    else:
        facts = [_("%(customer)s gets paper bills from now on.", customer=customer.name)]
    if preview["letters"]:
        facts.append(_("Bill %(bill)s is queued for printing: %(copies)s copies to %(addresses)s.",
                       bill=preview["bill_no"], copies=confirm.figure(preview["copies"]),
                       addresses="; ".join(preview["addresses"])))
    else:
        facts.append(_("Bill %(bill)s already has its paper copies.", bill=preview["bill_no"]))
    facts.append(_("The work item is closed."))
    return confirm.Confirmation(**_item_confirmation(
        item_id, "work_items.switch_to_paper",
        question=_("Switch %(customer)s to paper bills?", customer=customer.name), facts=facts,
        button=_("Confirm: switch to paper"),
    ))


def _ask_close(item_id: int) -> confirm.Confirmation:
    reason = (request.values.get("reason") or "").strip()
    if not reason:
        raise confirm.Refused(_("Say why the item is closed."))
    if len(reason) > 2000:
        raise confirm.Refused(_("The note is too long (2,000 characters at most)."))
    case = _case(item_id)
    facts = [_("Work item #%(id)s of %(customer)s is closed with the reason: %(reason)s",
               id=case.item.id, customer=case.customer.name, reason=reason)]
    if case.failed:
        facts.append(_("Its %(n)s failed deliveries (%(addresses)s) are no longer followed up; nothing is sent again.",
                       n=confirm.figure(len(case.failed)), addresses=", ".join(case.addresses)))
    return confirm.Confirmation(**_item_confirmation(
        item_id, "work_items.close", question=_("Close work item #%(id)s?", id=case.item.id), facts=facts,
        button=_("Confirm: close"), fields={"reason": reason},
    ))


@confirm.confirmed(items_bp, "/<int:item_id>/email", ask=_ask_correct_email)
def correct_email(item_id: int):
    def action(session):  # noqa: ANN001, ANN202
        delivery = services.correct_email(
            session, _viewer(), item_id, request.form.get("email", ""), _actor(),
            int(current_app.config["SEND_BATCH_SIZE"]),
        )
        return delivery

    def done(delivery) -> str:  # noqa: ANN001
        # the security log's contact_changed line is written by the commit (console.audit.SECURITY_ACTIONS)
        if outbox.handed_over(db()):  # the send job reached the queue with the commit
            return _("Address corrected; the bill is being sent again to %(address)s.", address=delivery.address)
        return _("Address corrected; the bill is queued to be sent again to %(address)s.", address=delivery.address)

    return _act(item_id, action, done)


@confirm.confirmed(items_bp, "/<int:item_id>/postal", ask=_ask_correct_postal)
def correct_postal(item_id: int):
    return _act(
        item_id,
        lambda s: services.correct_postal(
            s, _viewer(), item_id, request.form.get("postal_address", ""), request.form.get("postal_code", ""),
            _actor(),
        ),
        _("Postal address corrected; the bills are queued for the next print batch."),
    )


@confirm.confirmed(items_bp, "/<int:item_id>/paper", ask=_ask_switch_to_paper)
def switch_to_paper(item_id: int):
    return _act(
        item_id,
        lambda s: services.switch_to_paper(
            s, _viewer(), item_id, _actor(), current_app.config["PAPER_KEY_ACCOUNTS_ONLY"]
        ),
        _("The customer now gets paper bills; this bill is queued for printing."),
    )


@items_bp.route("/<int:item_id>/reassign", methods=["POST"])
def reassign(item_id: int):
    return _act(
        item_id,
        lambda s: services.reassign(s, _viewer(), item_id, request.form.get("target", ""), _actor()),
        _("The item has been reassigned."),
    )


@confirm.confirmed(items_bp, "/<int:item_id>/close", ask=_ask_close)
def close(item_id: int):
    return _act(
        item_id,
        lambda s: services.close(s, _viewer(), item_id, request.form.get("reason", ""), _actor()),
        _("The item is closed."),
    )


# ---- the clerk's exceptions ----------------------------------------------------------------------


@clerk_bp.route("/")
def index():  # noqa: F811
    session = db()
    cycle = dashboard.latest_cycle(session)
    settings = ReviewSettings.of(current_app.config)
    total, bills = dashboard.no_usable_recipient(session, cycle.id, settings) if cycle else (0, [])
    return render_page_or_fragment(
        "inboxes/clerk.html", "inboxes/_clerk.html", cycle=cycle, unusable_total=total, unusable=bills,
        paper=dashboard.paper_queue(session), poll_seconds=POLL_SECONDS * 2,
    )


# ---- the admin's cycle dashboard -----------------------------------------------------------------


def _failed_jobs() -> tuple[list[dict], bool]:
    from console.queues import get_redis

    try:
        return dashboard.failed_jobs(get_redis()), True
    except Exception:  # noqa: BLE001 - Redis down: the dashboard still shows the database's view
        return [], False


@admin_bp.route("/")
def index():  # noqa: F811
    session = db()
    jobs, queues_ok = _failed_jobs()
    return render_template(
        "inboxes/admin.html", cards=dashboard.cycles_overview(session), jobs=jobs, queues_ok=queues_ok,
        poll_seconds=POLL_SECONDS,
    )


@admin_bp.route("/cycles/<int:cycle_id>")
def cycle_card(cycle_id: int):
    session = db()
    cycle = session.get(Cycle, cycle_id) or abort(404)
    card = dashboard.cycle_card(session, cycle)
    return render_template("inboxes/_cycle.html", card=card, poll_seconds=POLL_SECONDS)


@admin_bp.route("/cycles/<int:cycle_id>/retry", methods=["POST"])
def retry_cycle(cycle_id: int):
    session = db()
    cycle = session.get(Cycle, cycle_id) or abort(404)
    try:
        dashboard.retry_failed_chunks(session, cycle, _actor(), current_app.config["CYCLE_CHUNK_SIZE"])
    except LookupError:
        abort(404)
    except ValueError as exc:  # billing refuses (e.g. the cycle is published)
        session.rollback()
        return render_template("inboxes/_cycle.html", card=dashboard.cycle_card(session, cycle),
                               poll_seconds=POLL_SECONDS, error=str(exc)), 422
    session.commit()
    if not is_fragment_request():
        flash(_("The failed chunks are queued again."))
        return redirect(url_for("inbox_admin.index")), 303
    return render_template("inboxes/_cycle.html", card=dashboard.cycle_card(session, cycle), poll_seconds=POLL_SECONDS)


@admin_bp.route("/jobs")
def jobs():
    jobs, queues_ok = _failed_jobs()
    return render_template("inboxes/_jobs.html", jobs=jobs, queues_ok=queues_ok, poll_seconds=POLL_SECONDS)


@admin_bp.route("/jobs/<queue>/<job_id>/retry", methods=["POST"])
def retry_job(queue: str, job_id: str):
    from console.queues import get_redis

    try:
        dashboard.retry_failed_job(get_redis(), queue, job_id)
    except LookupError:
        abort(404)
    record_audit(db(), _actor(), "job.retry", "rq_job", f"{queue}/{job_id}")
    db().commit()
    log_security_event("job_retried", current_user, f"{queue}/{job_id}")
    if is_fragment_request():
        return jobs()
    flash(_("The job is queued again."))
    return redirect(url_for("inbox_admin.index")), 303
