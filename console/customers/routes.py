"""The customer file screens: search, the customer page, in-place edits of delivery wishes and recipients."""

from __future__ import annotations

import csv
import io
from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from console.audit import Actor
from console.csvimport import safe_cell
from console.customers import services
from console.extensions import db
from console.models import ROLES
from console.web import confirm
from console.web.auth import guard_blueprint
from console.web.htmx import is_fragment_request, render_page_or_fragment

bp = guard_blueprint(Blueprint("customers", __name__, url_prefix="/customers"), roles=ROLES)

EXPORT_LIMIT = 10_000


@bp.app_template_filter("mask_id")
def _mask_id(value: str | None) -> str:
    return services.mask_id_number(value)


def _actor() -> Actor:
    return Actor.of_user(current_user, request.remote_addr)


def _paper_rule() -> bool:
    return bool(current_app.config["PAPER_KEY_ACCOUNTS_ONLY"])


@bp.app_template_global("paper_offered")
def _paper_offered(customer) -> bool:  # noqa: ANN001
    """Whether the forms offer paper to this customer (the rule that refuses it, PAPER_KEY_ACCOUNTS_ONLY)."""
    return services.paper_offered(customer, _paper_rule())


def _customer_or_404(customer_id: int):  # noqa: ANN202
    try:
        return services.load_customer(db(), customer_id)
    except services.CustomerNotFound:
        abort(404)


@bp.route("/")
def search():
    page = services.search_customers(
        db(), request.args.get("q", ""), request.args.get("kind", "auto"), request.args.get("after") or None
    )
    return render_page_or_fragment(
        "customers/search.html", "customers/_results.html",
        results=page, kinds=services.SEARCH_LABELS, me=current_user.id,
    )


@bp.route("/export.csv")
def export_csv():
    """The search results as CSV in the customers import's columns, so it imports back unchanged (ID
    numbers masked, formula-like cells neutralized)."""
    query, kind = request.args.get("q", ""), request.args.get("kind", "auto")
    out = io.StringIO()
    writer = None
    after = None
    written = 0
    while written < EXPORT_LIMIT:
        page = services.search_customers(db(), query, kind, after, page_size=500)
        kind = page.kind
        managers = services.usernames(db(), {c.account_manager_id for c in page.rows} - {None})
        for customer in page.rows:
            row = services.customer_csv_row(customer, managers.get(customer.account_manager_id))
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow({k: safe_cell(v) for k, v in row.items()})
            written += 1
        if not page.next_after:
            break
        after = page.next_after
    response = Response("\ufeff" + out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=customers.csv"
    return response


def _contact_context(customer, **extra):  # noqa: ANN001, ANN003, ANN202
    may_edit, may_set_manager = services.contact_editing(customer, current_user.id, current_user.roles)
    return {
        "manager_name": services.account_manager_name(db(), customer),
        "may_edit_contact": may_edit,
        "may_set_manager": may_set_manager,
    } | extra


def _customer_context(customer, **extra):  # noqa: ANN001, ANN003, ANN202
    session = db()
    return {
        "customer": customer,
        "mine": customer.key_account and customer.account_manager_id == current_user.id,
        "bills": services.customer_bills(session, customer.id),
        "items": services.open_items(session, customer.id),
        "history": services.contact_history(session, customer.id, 1),
        "audit": services.audit_trail(session, customer.id, 1),
    } | _contact_context(customer) | _collective_context(customer) | extra


@bp.route("/<int:customer_id>")
def show(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_template("customers/customer.html", **_customer_context(customer))


@bp.route("/<int:customer_id>.json")
def show_json(customer_id: int):
    customer = _customer_or_404(customer_id)
    return jsonify(services.customer_export_row(customer))


@bp.route("/<int:customer_id>/history")
def history(customer_id: int):
    customer = _customer_or_404(customer_id)
    page = services.contact_history(db(), customer.id, request.args.get("page", 1, type=int))
    return render_template("customers/_history.html", customer=customer, history=page)


@bp.route("/<int:customer_id>/audit")
def audit(customer_id: int):
    customer = _customer_or_404(customer_id)
    page = services.audit_trail(db(), customer.id, request.args.get("page", 1, type=int))
    return render_template("customers/_audit.html", customer=customer, audit=page)


# Contact details (issue 14): admins for any customer, account managers for their own accounts ----


def _contact_editor_or_403(customer) -> bool:  # noqa: ANN001
    """May the user choose the account manager too? Refuses (403) who may not edit at all."""
    may_edit, may_set_manager = services.contact_editing(customer, current_user.id, current_user.roles)
    if not may_edit:
        abort(403)
    return may_set_manager


@bp.route("/<int:customer_id>/contact")
def contact(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_template("customers/_contact.html", customer=customer, **_contact_context(customer))


@bp.route("/<int:customer_id>/contact/edit")
def edit_contact(customer_id: int):
    customer = _customer_or_404(customer_id)
    may_set_manager = _contact_editor_or_403(customer)
    managers = services.manager_choices(db()) if may_set_manager else []
    return render_page_or_fragment(
        "customers/customer.html", "customers/_contact_form.html",
        **_customer_context(customer, inline_form="customers/_contact_form.html", errors={}, form=None,
                            managers=managers),
    )


@bp.route("/<int:customer_id>/contact", methods=["POST"])
def save_contact(customer_id: int):
    customer = _customer_or_404(customer_id)
    may_set_manager = _contact_editor_or_403(customer)
    try:
        services.update_contact_details(
            db(), customer, _actor(),
            phone=request.form.get("phone", ""),
            postal_address=request.form.get("postal_address", ""),
            postal_code=request.form.get("postal_code", ""),
            email=request.form.get("email", ""),
            account_manager_id=request.form.get("account_manager_id"),
            may_set_manager=may_set_manager,
        )
    except services.FormInvalid as invalid:
        db().rollback()
        customer = _customer_or_404(customer_id)
        managers = services.manager_choices(db()) if may_set_manager else []
        return _form_error("customers/_contact_form.html", customer, errors=invalid.errors, form=request.form,
                           managers=managers, **_contact_context(customer))
    db().commit()
    return _changed("customers/_contact.html", customer, **_contact_context(customer))


# Delivery wishes ------------------------------------------------------------------------------


def _changed(fragment: str, customer, **context):  # noqa: ANN001, ANN003, ANN202
    """After a successful edit: the new fragment for htmx (and an event that refreshes the history
    and the audit trail), a redirect to the customer page otherwise."""
    if not is_fragment_request():
        return redirect(url_for("customers.show", customer_id=customer.id), 303)
    response = Response(render_template(fragment, customer=customer, **context))
    response.headers["HX-Trigger"] = "customer-changed"
    if fragment == "customers/_recipients.html":  # the form sat inside the section: replace the section
        response.headers["HX-Retarget"] = "#recipients"
        response.headers["HX-Reswap"] = "outerHTML"
    return response


def _form_error(fragment: str, customer, **context):  # noqa: ANN001, ANN003, ANN202
    if is_fragment_request():
        return render_template(fragment, customer=customer, **context), 422
    page_context = _customer_context(customer, **context)
    page_context["inline_form"] = fragment
    return render_template("customers/customer.html", **page_context), 422


@bp.route("/<int:customer_id>/wishes")
def wishes(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_template("customers/_wishes.html", customer=customer)


@bp.route("/<int:customer_id>/wishes/edit")
def edit_wishes(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_page_or_fragment(
        "customers/customer.html", "customers/_wishes_form.html",
        **_customer_context(customer, inline_form="customers/_wishes_form.html", errors={}, form=None),
    )


@bp.route("/<int:customer_id>/wishes", methods=["POST"])
def save_wishes(customer_id: int):
    customer = _customer_or_404(customer_id)
    attach = request.form.get("attach_pdf", "default")
    try:
        services.update_delivery_wishes(
            db(), customer, _actor(),
            wants_ebill=request.form.get("wants_ebill") == "1",
            channels=request.form.getlist("channels"),
            email=request.form.get("email", ""),
            attach_pdf=None if attach == "default" else attach == "1",
            paper_key_accounts_only=_paper_rule(),
        )
    except services.FormInvalid as invalid:
        db().rollback()
        customer = _customer_or_404(customer_id)
        return _form_error("customers/_wishes_form.html", customer, errors=invalid.errors, form=request.form)
    db().commit()
    return _changed("customers/_wishes.html", customer)


# Recipients ---------------------------------------------------------------------------------


@bp.route("/<int:customer_id>/recipients")
def recipients(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_template("customers/_recipients.html", customer=customer)


@bp.route("/<int:customer_id>/recipients/new")
def new_recipient(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_page_or_fragment(
        "customers/customer.html", "customers/_recipient_form.html",
        **_customer_context(customer, inline_form="customers/_recipient_form.html", errors={}, form=None,
                            recipient=None),
    )


@bp.route("/<int:customer_id>/recipients", methods=["POST"])
def add_recipient(customer_id: int):
    customer = _customer_or_404(customer_id)
    try:
        services.add_recipient(db(), customer, _actor(), request.form.to_dict(), _paper_rule())
    except services.FormInvalid as invalid:
        db().rollback()
        return _form_error("customers/_recipient_form.html", customer, errors=invalid.errors, form=request.form,
                           recipient=None)
    db().commit()
    return _changed("customers/_recipients.html", _customer_or_404(customer_id))


def _recipient_or_404(customer, recipient_id: int):  # noqa: ANN001, ANN202
    try:
        return services.get_recipient(db(), customer, recipient_id)
    except services.CustomerNotFound:
        abort(404)


@bp.route("/<int:customer_id>/recipients/<int:recipient_id>/edit")
def edit_recipient(customer_id: int, recipient_id: int):
    customer = _customer_or_404(customer_id)
    recipient = _recipient_or_404(customer, recipient_id)
    return render_page_or_fragment(
        "customers/customer.html", "customers/_recipient_form.html",
        **_customer_context(customer, inline_form="customers/_recipient_form.html", errors={}, form=None,
                            recipient=recipient),
    )


@bp.route("/<int:customer_id>/recipients/<int:recipient_id>", methods=["POST"])
def update_recipient(customer_id: int, recipient_id: int):
    customer = _customer_or_404(customer_id)
    recipient = _recipient_or_404(customer, recipient_id)
    try:
        services.update_recipient(db(), customer, recipient, _actor(), request.form.to_dict(), _paper_rule())
    except services.FormInvalid as invalid:
        db().rollback()
        customer = _customer_or_404(customer_id)
        return _form_error("customers/_recipient_form.html", customer, errors=invalid.errors, form=request.form,
                           recipient=_recipient_or_404(customer, recipient_id))
    db().commit()
    return _changed("customers/_recipients.html", _customer_or_404(customer_id))


def _ask_deactivate_recipient(customer_id: int, recipient_id: int) -> confirm.Confirmation:
    customer = _customer_or_404(customer_id)
    recipient = _recipient_or_404(customer, recipient_id)
    if not recipient.active:
        raise confirm.Refused(_("This recipient is already inactive."))
    from console.web.labels import label

    facts = [_("%(name)s (%(channel)s: %(address)s) will no longer receive the bills of %(customer)s, from the "
               "next publishing on.", name=recipient.name, channel=label("channel", recipient.channel),
               address=recipient.address, customer=customer.name)]
    if recipient.channel == "paper" and recipient.copies > 1:
        facts.append(_("That is %(copies)s paper copies fewer of each bill.", copies=recipient.copies))
    facts.append(_("Bills already sent or on their way are not changed. The recipient can be reactivated later."))
    return confirm.Confirmation(
        action=url_for("customers.set_recipient_active", customer_id=customer.id, recipient_id=recipient.id),
        question=_("Deactivate the recipient %(name)s?", name=recipient.name), facts=facts,
        button=_("Confirm: deactivate"), back=url_for("customers.show", customer_id=customer.id),
        target="#recipients", fields={"active": "0"},
    )


@confirm.confirmed(bp, "/<int:customer_id>/recipients/<int:recipient_id>/active", ask=_ask_deactivate_recipient,
                   needed=lambda: request.values.get("active") != "1")
def set_recipient_active(customer_id: int, recipient_id: int):
    customer = _customer_or_404(customer_id)
    recipient = _recipient_or_404(customer, recipient_id)
    if not services.set_recipient_active(db(), customer, recipient, _actor(), request.form.get("active") == "1"):
        return confirm.already_done(url_for("customers.show", customer_id=customer.id))
    db().commit()
    return _changed("customers/_recipients.html", _customer_or_404(customer_id))


# Collective billing (issue 4): the flag (key accounts only) and the account manager's pins -------

FLAG_ROLES = ("clerk", "account_manager", "admin")
PIN_ROLES = ("account_manager", "admin")


def _collective_context(customer, **extra):  # noqa: ANN001, ANN003, ANN202
    return {
        "pins": services.collective_pins(db(), customer.id),
        "can_set_collective": current_user.has_role(*FLAG_ROLES),
        "can_start_collective": services.can_start_collective(customer),
        "today": date.today(),
        "can_pin": current_user.has_role(*PIN_ROLES),
        "collective_errors": {},
    } | extra


def _collective_fragment(customer, status: int = 200, **extra):  # noqa: ANN001, ANN003, ANN202
    if not is_fragment_request() and status == 200:
        return redirect(url_for("customers.show", customer_id=customer.id), 303)
    if not is_fragment_request():
        return render_template("customers/customer.html", **_customer_context(customer, **extra)), status
    response = Response(render_template("customers/_collective.html", customer=customer,
                                        **_collective_context(customer, **extra)), status)
    if status == 200:
        response.headers["HX-Trigger"] = "customer-changed"
    return response


@bp.route("/<int:customer_id>/collective")
def collective(customer_id: int):
    customer = _customer_or_404(customer_id)
    return render_template("customers/_collective.html", customer=customer, **_collective_context(customer))


def _ask_stop_collective(customer_id: int) -> confirm.Confirmation:
    if not current_user.has_role(*FLAG_ROLES):
        abort(403)
    customer = _customer_or_404(customer_id)
    if not customer.collective_billing:
        raise confirm.Refused(_("Collective billing is already off for this customer."))
    points = services.point_count(db(), customer.id)
    return confirm.Confirmation(
        action=url_for("customers.save_collective", customer_id=customer.id),
        question=_("Stop collective billing for %(customer)s?", customer=customer.name),
        facts=[_("The %(points)s service points of %(customer)s will be billed each on its own bill again, from the "
                 "next cycle not yet generated.", points=confirm.figure(points), customer=customer.name),
               _("Bills already generated stay as they are.")],
        button=_("Confirm: stop collective billing"), back=url_for("customers.show", customer_id=customer.id),
        target="#collective", fields={"collective_billing": "0"},
    )


@confirm.confirmed(bp, "/<int:customer_id>/collective", ask=_ask_stop_collective,
                   needed=lambda: request.values.get("collective_billing") != "1")
def save_collective(customer_id: int):
    if not current_user.has_role(*FLAG_ROLES):
        abort(403)
    customer = _customer_or_404(customer_id)
    try:
        since = services.parse_since(request.form.get("since", ""))
        changed = services.set_collective_billing(db(), customer, _actor(),
                                                  request.form.get("collective_billing") == "1", date.today(), since)
    except services.FormInvalid as invalid:
        db().rollback()
        return _collective_fragment(_customer_or_404(customer_id), 422, collective_errors=invalid.errors)
    if not changed and request.form.get("collective_billing") != "1":
        return confirm.already_done(url_for("customers.show", customer_id=customer.id))
    db().commit()
    return _collective_fragment(customer)


@bp.route("/<int:customer_id>/collective/pins", methods=["POST"])
def add_pin(customer_id: int):
    if not current_user.has_role(*PIN_ROLES):
        abort(403)
    customer = _customer_or_404(customer_id)
    try:
        services.set_collective_pin(db(), customer, _actor(), request.form.get("point_a", ""),
                                    request.form.get("point_b", ""), request.form.get("kind", ""))
    except services.FormInvalid as invalid:
        db().rollback()
        return _collective_fragment(_customer_or_404(customer_id), 422, collective_errors=invalid.errors)
    db().commit()
    return _collective_fragment(customer)


def _ask_remove_pin(customer_id: int, pin_id: int) -> confirm.Confirmation:
    if not current_user.has_role(*PIN_ROLES):
        abort(403)
    customer = _customer_or_404(customer_id)
    pin = next((p for p in services.collective_pins(db(), customer.id) if p.id == pin_id), None)
    if pin is None:
        abort(404)
    kind = _("billed together") if pin.kind == "together" else _("billed apart")
    return confirm.Confirmation(
        action=url_for("customers.remove_pin", customer_id=customer.id, pin_id=pin_id),
        question=_("Remove the pin of %(a)s and %(b)s?", a=pin.point_a, b=pin.point_b),
        facts=[_("%(a)s and %(b)s are no longer %(kind)s: from the next cycle not yet generated they are grouped by "
                 "their read dates.", a=pin.point_a, b=pin.point_b, kind=kind)],
        button=_("Confirm: remove the pin"), back=url_for("customers.show", customer_id=customer.id),
        target="#collective",
    )


@confirm.confirmed(bp, "/<int:customer_id>/collective/pins/<int:pin_id>/delete", ask=_ask_remove_pin)
def remove_pin(customer_id: int, pin_id: int):
    if not current_user.has_role(*PIN_ROLES):
        abort(403)
    customer = _customer_or_404(customer_id)
    try:
        services.remove_collective_pin(db(), customer, _actor(), pin_id)
    except services.CustomerNotFound:
        abort(404)
    db().commit()
    return _collective_fragment(customer)
