"""The customers' own pages: public, with their own sign-in (not guarded by staff roles).

Every view needs a signed-in customer (a WebAccount) except those in PUBLIC_ENDPOINTS; that is
enforced once, in `_require_customer`. Bills are loaded through `_own_bill`, which answers 404 for
any bill that is not this customer's published bill.
"""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup
from sqlalchemy import select

from console.audit import log_security_event
from console.db import utcnow
from console.extensions import db, limiter
from console.models import Customer, ServicePoint
from console.models.portal import WebAccount
from console.portal import mail, services
from console.portal.settings import int_setting, setting
from console.web.auth import USER_LOADERS
from console.web.labels import label

bp = Blueprint("portal", __name__, url_prefix="/my")

PUBLIC_ENDPOINTS = frozenset(
    {"portal.login", "portal.register", "portal.register_complete", "portal.reset", "portal.reset_complete"}
)


def _load_customer(rest: str) -> WebAccount | None:
    return services.load_account(db(), rest)


USER_LOADERS["c"] = _load_customer


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def _account() -> WebAccount:
    return current_user._get_current_object()


def is_customer(user: object) -> bool:
    return isinstance(user, WebAccount)


def _to_login() -> Response:
    if request.method not in ("GET", "HEAD") and request.endpoint != "portal.logout":  # input kept
        from console.web.expiry import expired_response

        return expired_response("signed_out", 401)
    # The page asked for comes back after sign-in (the e-mail's link to one bill lands on that bill).
    target = url_for("portal.login", next=request.full_path.rstrip("?")) if request.method == "GET" else url_for(
        "portal.login"
    )
    if request.headers.get("HX-Request") == "true":
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


@bp.before_request
def _require_customer():  # noqa: ANN202
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_user.is_authenticated and is_customer(_account()):
        return None
    if current_user.is_authenticated:  # staff: not a customer here
        log_security_event("portal_authorization_refused", current_user, request.path)
    return _to_login()


@bp.after_request
def _portal_headers(response: Response) -> Response:
    # Bills, codes and personal data: never cached, per cookie.
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Cookie")
    lang = request.args.get("lang")
    if lang in current_app.config["LANGUAGES"]:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


@bp.errorhandler(429)
def _throttled(error):  # noqa: ANN001, ANN202
    log_security_event("portal_throttled", services.mask_identifier(_identifier()), request.path)
    retry = getattr(error, "limit", None)
    return render_template("portal/locked.html", limit=retry), 429


@bp.app_template_global("portal_is_customer")
def _portal_is_customer() -> bool:
    return bool(current_user and current_user.is_authenticated and is_customer(_account()))


@bp.app_template_global("charge_label")
def charge_label(kind: str) -> str:
    return label("charge_summary", kind)


# --- throttles -----------------------------------------------------------------------------------


def _identifier() -> str:
    return services.normalize_identifier(request.form.get("username") or request.form.get("identifier"))


def _account_key() -> str:
    return "portal-acct:" + services.throttle_key(db(), _secret(), _identifier())


def _address_key() -> str:
    return "portal-addr:" + (get_remote_address() or "")  # behind ProxyFix (TRUSTED_PROXIES): the client's


def _failed(response: Response) -> bool:
    return response.status_code in (401, 422)


def _login_account_limit() -> str:
    return setting("PORTAL_LOGIN_ACCOUNT_LIMIT")


def _login_address_limit() -> str:
    return setting("PORTAL_LOGIN_ADDRESS_LIMIT")


def _code_account_limit() -> str:
    return setting("PORTAL_CODE_ACCOUNT_LIMIT")


def _code_address_limit() -> str:
    return setting("PORTAL_CODE_ADDRESS_LIMIT")


def _sign_in_throttles(view):  # noqa: ANN001, ANN202
    """Failed sign-ins counted per account (from any address) and per address (over any account)."""
    view = limiter.limit(_login_account_limit, key_func=_account_key, methods=["POST"], deduct_when=_failed)(view)
    return limiter.limit(_login_address_limit, key_func=_address_key, methods=["POST"], deduct_when=_failed)(view)


def _code_counted(response: Response) -> bool:
    if request.endpoint in ("portal.register", "portal.reset"):
        return response.status_code == 200  # every code asked for counts
    return response.status_code == 422  # wrong codes count


def _code_throttles(view):  # noqa: ANN001, ANN202
    """Code requests (every one) and code checks (the failed ones), per account and per address."""
    view = limiter.limit(_code_account_limit, key_func=_account_key, methods=["POST"], deduct_when=_code_counted)(view)
    return limiter.limit(_code_address_limit, key_func=_address_key, methods=["POST"], deduct_when=_code_counted)(view)


# --- sign-in, sign-out, registration, reset ------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@_sign_in_throttles
def login():
    error = None
    if request.method == "POST":
        identifier = _identifier()
        account = services.authenticate(db(), identifier, request.form.get("password", ""), _secret())
        if account is None:
            log_security_event("portal_login_failed", services.mask_identifier(identifier))
            error = _("Wrong user name or password.")
        else:
            services.record_login(db(), account, utcnow())
            db().commit()
            session.clear()  # a new session at sign-in
            login_user(account)
            log_security_event("portal_login", account)
            return redirect(_safe_next(request.form.get("next")) or url_for("portal.bills"))
    return render_template("portal/login.html", error=error, next=_safe_next(request.values.get("next"))), (
        401 if error else 200
    )


def _safe_next(target: str | None) -> str | None:
    """A page of the customer web page to return to: same origin only (a path under /my/, no scheme,
    no host, no backslash tricks), never the sign-in page itself."""
    if not target or not target.startswith("/my/") or target.startswith("/my/login"):
        return None
    if "//" in target or "\\" in target or ".." in target or any(ch in target for ch in "\r\n\t"):
        return None
    return target


@bp.route("/logout", methods=["POST"])
def logout():
    account = _account()
    services.end_sessions(db(), account)
    db().commit()
    log_security_event("portal_logout", account)
    logout_user()
    session.clear()
    return redirect(url_for("portal.login"))


@bp.route("/register", methods=["GET", "POST"])
@_code_throttles
def register():
    return _request_code("register")


@bp.route("/reset", methods=["GET", "POST"])
@_code_throttles
def reset():
    return _request_code("reset")


def _request_code(purpose: str):  # noqa: ANN202
    template = f"portal/{purpose}.html"
    if request.method == "GET":
        return render_template(template, step="ask", identifier="", errors={})
    identifier = _identifier()
    if not identifier:
        return render_template(template, step="ask", identifier="", errors={"identifier": _("Required.")}), 422
    minutes = int_setting("PORTAL_CODE_MINUTES")
    outgoing = services.request_code(db(), identifier, purpose, utcnow(), _secret(), minutes)
    db().commit()
    if outgoing is not None:
        mail.send_in_background(mail.build_message(outgoing, minutes))
    log_security_event(f"portal_{purpose}_code_requested", services.mask_identifier(identifier))
    # The same answer whether or not the account exists or has an e-mail on file.
    return render_template(template, step="code", identifier=identifier, errors={})


@bp.route("/register/complete", methods=["GET", "POST"])
@_code_throttles
def register_complete():
    return _complete("register")


@bp.route("/reset/complete", methods=["GET", "POST"])
@_code_throttles
def reset_complete():
    return _complete("reset")


def _complete(purpose: str):  # noqa: ANN202
    template = f"portal/{purpose}.html"
    identifier = _identifier() if request.method == "POST" else request.args.get("identifier", "")[:64]
    if request.method == "GET":
        return render_template(template, step="code", identifier=identifier, errors={})
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        errors = {"password2": _("The two passwords differ.")}
        return render_template(template, step="code", identifier=identifier, errors=errors), 422
    actor = services.customer_actor(None, request.remote_addr, identifier)
    kwargs = dict(now=utcnow(), secret=_secret(), actor=actor, max_attempts=int_setting("PORTAL_CODE_ATTEMPTS"))
    try:
        if purpose == "register":
            account = services.complete_registration(
                db(), identifier, request.form.get("code", ""), password, **kwargs
            )
        else:
            account = services.reset_password(db(), identifier, request.form.get("code", ""), password, **kwargs)
    except services.PortalError as exc:
        db().commit()  # wrong guesses count, even on failure
        log_security_event(f"portal_{purpose}_failed", services.mask_identifier(identifier), exc.field)
        errors = {exc.field: _translate_problem(exc.message)}
        return render_template(template, step="code", identifier=identifier, errors=errors), 422
    db().commit()  # a reset's password_changed line is written by this commit (console.audit)
    if purpose == "register":
        log_security_event("portal_register_done", account)
    flash(_("Done. Please sign in with your new password."))
    return redirect(url_for("portal.login"))


def _translate_problem(message: str) -> str:
    from console.passwords import describe

    known = {
        services.GENERIC_CODE_ERROR: _("The code is wrong or has expired."),
        "The current password is wrong.": _("The current password is wrong."),
    }
    return known.get(message) or describe(message)


# --- the signed-in customer's pages --------------------------------------------------------------


@bp.route("/")
def index():
    return redirect(url_for("portal.bills"))


@bp.route("/bills")
def bills():
    size = int_setting("PORTAL_PAGE_SIZE")
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    customer = db().get(Customer, _account().customer_id)
    rows = services.published_bills(db(), customer.id, size + 1, (page - 1) * size)
    return render_template(
        "portal/bills.html", customer=customer, rows=rows[:size], page=page, has_more=len(rows) > size
    )


def _own_bill(bill_id: int):  # noqa: ANN202
    """Load-or-404: another customer's bill, or one not published, does not exist here. The bill and
    whether it was opened before."""
    found = services.bill_for(db(), _account().customer_id, bill_id)
    if found is None:
        log_security_event("portal_bill_refused", _account(), f"bill {bill_id}")
        abort(404)
    return found


@bp.route("/bills/<int:bill_id>")
def bill(bill_id: int):
    from console.billing.document import render_bill_html

    record, opened = _own_bill(bill_id)
    services.record_open(db(), _account(), record, utcnow(), opened)
    document = Markup(render_bill_html(db(), record, "web"))
    db().commit()
    return render_template(
        "portal/bill.html",
        bill=record,
        summary=services.charges_by_type(record),
        document=document,
        has_pdf=True,
    )


@bp.route("/bills/<int:bill_id>/pdf")
def bill_pdf(bill_id: int):
    from console.paper.pdf import bill_pdf as render

    record, opened = _own_bill(bill_id)
    path = render(db(), record)
    services.record_open(db(), _account(), record, utcnow(), opened)
    db().commit()
    return send_file(
        io.BytesIO(path.read_bytes()), mimetype="application/pdf", as_attachment=True,
        download_name=f"{record.bill_no}.pdf",
    )


@bp.route("/settings")
def settings():
    customer = db().get(Customer, _account().customer_id)
    points = db().scalars(
        select(ServicePoint).where(ServicePoint.customer_id == customer.id).order_by(ServicePoint.point_no)
    ).all()
    return render_template(
        "portal/settings.html",
        customer=customer,
        points=points,
        masked_id=services.mask_id_number(customer.id_number),
        recipients=[r for r in customer.recipients if r.active],
    )


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    errors: dict[str, str] = {}
    if request.method == "POST":
        account = _account()
        try:
            services.change_password(
                db(), account, request.form.get("current", ""), request.form.get("new", ""), utcnow(),
                services.customer_actor(account, request.remote_addr),
            )
        except services.PortalError as exc:
            log_security_event("portal_password_change_failed", account, exc.field)
            errors[exc.field] = _translate_problem(exc.message)
        else:
            db().commit()  # the security log's password_changed line is written by this commit
            session.clear()
            login_user(account)  # this session goes on with the new token; every other one ends
            flash(_("Password changed. Your other sessions have been signed out."))
            return redirect(url_for("portal.bills"))
    return render_template("portal/password.html", errors=errors), (422 if errors else 200)
