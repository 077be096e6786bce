"""Billing screens: bills (all staff), cycle control and campaigns (admins only)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select

from console.audit import Actor
from console.billing import campaigns as campaign_service
from console.billing import cycles, dates, review
from console.billing.document import render_bill_html
from console.db import utcnow
from console.delivery.counts import sending_progress
from console.extensions import db
from console.models import ROLES, Customer, ServicePoint
from console.models.billing import Bill, BillStatus, Campaign, Cycle, CycleStatus
from console.models.customers import CUSTOMER_TYPES
from console.web import confirm
from console.web.auth import guard_blueprint
from console.web.htmx import is_fragment_request, render_page_or_fragment
from console.web.lookups import cycle_or_404

bp = guard_blueprint(Blueprint("billing", __name__, url_prefix="/billing"), roles=ROLES)

PAGE = 50
# Cycle control and campaigns: admins only (the blueprint lets all staff see bills).
ADMIN_ONLY = {
    "billing.cycles_page", "billing.open_cycle", "billing.cycle_page", "billing.cycle_progress", "billing.run_cycle",
    "billing.retry_cycle", "billing.publish_cycle", "billing.review_page", "billing.campaigns_page", "billing.new_campaign",
    "billing.run_cycle_confirm", "billing.publish_cycle_confirm",
    "billing.create_campaign", "billing.edit_campaign", "billing.update_campaign",
}


@bp.before_request
def _admin_only():  # noqa: ANN202
    if request.endpoint in ADMIN_ONLY and not current_user.has_role("admin"):
        from console.audit import log_security_event

        log_security_event("authorization_refused", current_user, request.path)
        abort(403)
    return None


def _actor() -> Actor:
    return Actor.of_user(current_user, request.remote_addr)


# Bills (all staff) ---------------------------------------------------------------------------


@bp.route("/")
def index():
    session = db()
    rows = session.execute(
        select(Cycle, func.count(Bill.id)).outerjoin(Bill, Bill.cycle_id == Cycle.id)
        .group_by(Cycle.id).order_by(Cycle.period.desc())
    ).all()
    return render_template("billing/index.html", cycles=rows)


@bp.route("/cycles/<period>/bills")
def cycle_bills(period: str):
    cycle = cycle_or_404(period)
    page = max(request.args.get("page", 1, type=int), 1)
    bill_type = request.args.get("type", "")
    query = (
        select(Bill, Customer.account_no, Customer.name, ServicePoint.point_no)
        .join(Customer, Customer.id == Bill.customer_id)
        .outerjoin(ServicePoint, ServicePoint.id == Bill.service_point_id)
        .where(Bill.cycle_id == cycle.id)
    )
    if bill_type:
        query = query.where(Bill.bill_type == bill_type)
    rows = db().execute(query.order_by(Bill.id).offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    return render_page_or_fragment(
        "billing/cycle_bills.html", "billing/_bill_rows.html", cycle=cycle, rows=rows[:PAGE], page_no=page,
        more=len(rows) > PAGE, bill_type=bill_type,
    )


@bp.route("/customers/<int:customer_id>/bills")
def customer_bills(customer_id: int):
    session = db()
    customer = session.get(Customer, customer_id) or abort(404)
    rows = session.execute(
        select(Bill, Customer.account_no, Customer.name, ServicePoint.point_no, Cycle.period)
        .join(Customer, Customer.id == Bill.customer_id)
        .join(Cycle, Cycle.id == Bill.cycle_id)
        .outerjoin(ServicePoint, ServicePoint.id == Bill.service_point_id)
        .where(Bill.customer_id == customer_id)
        .order_by(Cycle.period.desc(), Bill.bill_no)
    ).all()
    return render_template("billing/customer_bills.html", customer=customer, rows=rows)


@bp.route("/bills/<int:bill_id>")
def bill_page(bill_id: int):
    session = db()
    bill = session.get(Bill, bill_id) or abort(404)
    cycle = session.get(Cycle, bill.cycle_id)
    return render_template("billing/bill.html", bill=bill, cycle=cycle,
                           document=Markup(render_bill_html(session, bill, "console")))


# Cycles (admins) -----------------------------------------------------------------------------


@bp.route("/cycles")
def cycles_page():
    session = db()
    return render_template("billing/cycles.html", cycles=session.scalars(select(Cycle).order_by(Cycle.period.desc())).all(),
                           error=None, period=request.args.get("period", ""))


@bp.route("/cycles", methods=["POST"])
def open_cycle():
    session = db()
    period = request.form.get("period", "").strip()
    try:
        cycle = cycles.open_cycle(session, period, _actor(),
                                  today=dates.local_today(current_app.config["BABEL_DEFAULT_TIMEZONE"]))
    except cycles.CycleError:
        session.rollback()
        return render_template(
            "billing/cycles.html", cycles=session.scalars(select(Cycle).order_by(Cycle.period.desc())).all(),
            error=_("Enter a period like 2026-11."), period=period,
        ), 422
    from console.billing.tariffs import seed_sample_tariffs
    from console.models.billing import Tariff

    if session.scalar(select(func.count()).select_from(Tariff)) == 0:
        seed_sample_tariffs(session)
    session.commit()
    return redirect(url_for("billing.cycle_page", period=cycle.period))


def _progress_context(cycle: Cycle) -> dict:
    return {"cycle": cycle, "progress": cycles.progress(db(), cycle),
            "bills": db().scalar(select(func.count()).select_from(Bill).where(Bill.cycle_id == cycle.id)),
            "to_run": cycles.run_preview(db(), cycle, int(current_app.config["CYCLE_CHUNK_SIZE"]))}


@bp.route("/cycles/<period>")
def cycle_page(period: str):
    cycle = cycle_or_404(period)
    sending = sending_progress(db(), cycle.id, utcnow()) if cycle.status == CycleStatus.PUBLISHED else None
    return render_template("billing/cycle.html", sending=sending, **_progress_context(cycle))


@bp.route("/cycles/<period>/progress")
def cycle_progress(period: str):
    cycle = cycle_or_404(period)
    return render_page_or_fragment("billing/cycle.html", "billing/_progress.html", **_progress_context(cycle))


def _run(period: str, retry_only: bool = False):  # noqa: ANN202
    cycle = cycle_or_404(period)
    session = db()
    error = None
    try:
        cycles.start_run(session, period, _actor(), int(current_app.config["CYCLE_CHUNK_SIZE"]), only_retries=retry_only)
        session.commit()
    except cycles.CycleError as exc:
        session.rollback()
        error = str(exc)
    context = _progress_context(cycle) | {"error": error}
    return render_page_or_fragment("billing/cycle.html", "billing/_progress.html", **context), (422 if error else 200)


def _ask_run(period: str) -> confirm.Confirmation:
    cycle = cycle_or_404(period)
    to_run = cycles.run_preview(db(), cycle, int(current_app.config["CYCLE_CHUNK_SIZE"]))
    if not to_run["jobs"] or cycles.progress(db(), cycle)["running"]:
        raise confirm.Refused(_("There is nothing to generate in this cycle now."))
    facts = [_("Bills of %(period)s are generated for %(customers)s customers, in %(jobs)s jobs.", period=period,
               customers=confirm.figure(to_run["customers"]), jobs=confirm.figure(to_run["jobs"]))]
    if cycle.status == CycleStatus.GENERATED:
        facts.append(_("Bills already generated are not generated again."))
    facts.append(_("Nothing is sent yet: publishing comes after the review."))
    return confirm.Confirmation(
        action=url_for("billing.run_cycle", period=period), question=_("Run cycle %(period)s?", period=period),
        facts=facts, button=_("Confirm: run"), back=url_for("billing.cycle_page", period=period),
        target="#cycle-progress",
    )


@confirm.confirmed(bp, "/cycles/<period>/run", ask=_ask_run)
def run_cycle(period: str):
    return _run(period)


@bp.route("/cycles/<period>/retry", methods=["POST"])
def retry_cycle(period: str):
    return _run(period, retry_only=True)


@bp.route("/cycles/<period>/review")
def review_page(period: str):
    """What publishing will send and the exceptions to look at first; publishing is confirmed here."""
    cycle = cycle_or_404(period)
    return render_template("billing/review.html", cycle=cycle, review=_review(cycle), error=None)


def _review(cycle: Cycle) -> review.Review:
    config = current_app.config
    return review.review_cycle(db(), cycle, review.ReviewSettings.of(config),
                               today=dates.local_today(config["BABEL_DEFAULT_TIMEZONE"]))


def publish_confirmation(cycle: Cycle, figures: review.Review | None = None) -> confirm.Confirmation:
    """The in-page confirmation of publishing, with the review's figures (billing/review.py) — what the
    review page shows in its box; `figures`: the review already computed for the page."""
    figures = figures or _review(cycle)
    f = confirm.figure
    facts = [_("E-bills will be sent to %(addresses)s recipients (%(emails)s e-mails).",
               addresses=f(figures.email_addresses), emails=f(figures.emails)),
             _("%(bills)s bills go on the customer web page.", bills=f(figures.to_publish))]
    if figures.paper_letters:
        facts.append(_("%(copies)s paper copies (%(letters)s letters) are queued for printing.",
                       copies=f(figures.paper_copies), letters=f(figures.paper_letters)))
    if figures.redate_on_publish:
        facts.append(_("%(n)s bills are re-dated: issued today, with the minimum time to pay.",
                       n=f(figures.redate_on_publish)))
    warning = _("This cannot be undone.")
    if figures.exception_bills:
        warning = _("%(n)s bills are listed as exceptions on the review page. This cannot be undone.",
                    n=f(figures.exception_bills))
    return confirm.Confirmation(
        action=url_for("billing.publish_cycle", period=cycle.period),
        question=_("Publish cycle %(period)s?", period=cycle.period), facts=facts, warning=warning,
        button=_("Confirm: publish"), back=url_for("billing.review_page", period=cycle.period),
    )


def _ask_publish(period: str) -> confirm.Confirmation:
    cycle = cycle_or_404(period)
    figures = _review(cycle)
    if cycle.status == CycleStatus.PUBLISHED and not figures.to_publish:
        raise confirm.Refused(_("This cycle is published already."))
    if cycle.status not in (CycleStatus.GENERATED, CycleStatus.PUBLISHED):
        raise confirm.Refused(_("The cycle can be published once all its bills are generated."))
    return publish_confirmation(cycle, figures)


@confirm.confirmed(bp, "/cycles/<period>/publish", ask=_ask_publish)
def publish_cycle(period: str):
    """From the review page (a form): to the cycle page, where the sending shows; from htmx: the
    progress fragment. A published cycle with no bill left to publish: already done (nothing queued again)."""
    cycle = cycle_or_404(period)
    session = db()
    if cycle.status == CycleStatus.PUBLISHED and not session.scalar(
        select(func.count(Bill.id)).where(Bill.cycle_id == cycle.id, Bill.status != BillStatus.PUBLISHED)
    ):
        return confirm.already_done(url_for("billing.cycle_page", period=period))
    error = None
    try:
        cycles.publish(session, period, _actor(), current_app.config)
        session.commit()
    except ValueError as exc:  # CycleError, or the delivery domain's PublishError
        session.rollback()
        error = str(exc)
    if not is_fragment_request():
        if error is None:
            return redirect(url_for("billing.cycle_page", period=period), 303)
        return render_template("billing/review.html", cycle=cycle, review=_review(cycle), error=error), 422
    context = _progress_context(cycle) | {"error": error}
    return render_page_or_fragment("billing/cycle.html", "billing/_progress.html", **context), (422 if error else 200)


# Campaigns (admins) --------------------------------------------------------------------------


def _campaign_form_from_request() -> campaign_service.CampaignForm:
    form = request.form
    return campaign_service.CampaignForm(
        name=form.get("name", ""), text_zh=form.get("text_zh", ""), text_en=form.get("text_en", ""),
        customer_types=tuple(form.getlist("customer_types")), starts_on=form.get("starts_on", ""),
        ends_on=form.get("ends_on", ""), priority=form.get("priority", "0"), active=form.get("active") == "1",
    )


def _form_page(form, campaign: Campaign | None, errors: dict, status: int = 200):  # noqa: ANN001, ANN202
    return render_page_or_fragment(
        "billing/campaign_form.html", "billing/_campaign_form.html", form=form, campaign=campaign,
        errors={k: _(v) for k, v in errors.items()}, customer_types=CUSTOMER_TYPES,
    ), status


@bp.route("/campaigns")
def campaigns_page():
    return render_template("billing/campaigns.html", campaigns=campaign_service.list_campaigns(db()))


@bp.route("/campaigns/new")
def new_campaign():
    return _form_page(campaign_service.CampaignForm(), None, {})


@bp.route("/campaigns", methods=["POST"])
def create_campaign():
    form = _campaign_form_from_request()
    values, errors = form.clean()
    if errors:
        return _form_page(form, None, errors, 422)
    campaign_service.save_campaign(db(), values, _actor())
    db().commit()
    return redirect(url_for("billing.campaigns_page"))


@bp.route("/campaigns/<int:campaign_id>")
def edit_campaign(campaign_id: int):
    campaign = db().get(Campaign, campaign_id) or abort(404)
    return _form_page(campaign_service.CampaignForm.of(campaign), campaign, {})


@bp.route("/campaigns/<int:campaign_id>", methods=["POST"])
def update_campaign(campaign_id: int):
    campaign = db().get(Campaign, campaign_id) or abort(404)
    form = _campaign_form_from_request()
    values, errors = form.clean()
    if errors:
        return _form_page(form, campaign, errors, 422)
    campaign_service.save_campaign(db(), values, _actor(), campaign)
    db().commit()
    return redirect(url_for("billing.campaigns_page"))
