"""Staff sign-in, the role landing pages and the admin's user screens."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from console.audit import Actor, log_security_event
from console.extensions import db, limiter
from console.models import ROLES, User
from console.staff import services
from console.web import confirm
from console.web.auth import guard_blueprint, is_staff

auth_bp = Blueprint("auth", __name__)
home_bp = guard_blueprint(Blueprint("home", __name__), roles=ROLES)
admin_bp = guard_blueprint(Blueprint("admin", __name__, url_prefix="/admin"), roles=["admin"])

# Where each role lands after sign-in, most senior role first. Later issues point these at the inboxes.
ROLE_HOME = [
    ("admin", "inbox_admin.index"),
    ("account_manager", "inbox_am.index"),
    ("phone_rep", "inbox_rep.index"),
    ("clerk", "inbox_clerk.index"),
]


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _staff_error_text(exc: services.StaffError) -> str:
    """A password's reason in the user's language; the other refusals by their message."""
    from console.passwords import describe

    field, _sep, reason = str(exc).partition(": ")
    if field == "password":
        return describe(reason)
    known = {
        "username: required": _("A user name is required."),
        "role: at least one": _("Choose at least one role."),
        "active: you cannot deactivate yourself": _("You cannot deactivate your own account."),
        "role: you cannot take the administrator role from yourself": _(
            "You cannot take the administrator role from yourself."),
    }
    if str(exc) in known:
        return known[str(exc)]
    if field == "username" and reason.endswith("already exists"):
        return _("The user name %(name)s is taken.", name=reason.removesuffix(" already exists"))
    if field == "role":
        return _("Choose at least one role.")
    return str(exc)


@auth_bp.route("/login", methods=["GET", "POST"])
@limiter.limit("60 per minute", methods=["POST"])  # per address: a whole office signs in at 8:00
@limiter.limit("10 per minute", methods=["POST"], key_func=lambda: "staff:" + services.normalize_username(request.form.get("username")))
def login():
    error = None
    if request.method == "POST":
        user = services.authenticate(db(), request.form.get("username", ""), request.form.get("password", ""))
        if user is None:
            log_security_event("login_failed", services.normalize_username(request.form.get("username")))
            error = _("Wrong user name or password.")
        else:
            session.clear()  # a new session at sign-in
            login_user(user)
            log_security_event("login", user)
            return redirect(_safe_next(request.args.get("next")) or url_for("home.index"))
    return render_template("staff/login.html", error=error), (401 if error else 200)


@auth_bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = current_user._get_current_object()
    if is_staff(user):
        # Rotating the token makes a copied session cookie useless after sign-out.
        services.end_sessions(db(), user)
        db().commit()
        log_security_event("logout", user)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@auth_bp.route("/session/token")
def session_token():
    """A fresh CSRF token for this session: an expired form is sent again with it (static/session.js)."""
    from console.web.expiry import session_token as fresh

    return fresh()


@auth_bp.route("/language", methods=["POST"])
def language():
    lang = request.form.get("lang", "zh")
    if lang not in ("zh", "en"):
        abort(400)
    if current_user.is_authenticated and is_staff(current_user):
        services.set_language(db(), current_user, lang)
        db().commit()
    response = redirect(_safe_next(request.form.get("next")) or url_for("home.index"))
    response.set_cookie("lang", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


@home_bp.route("/")
def index():
    for role, endpoint in ROLE_HOME:
        if current_user.has_role(role):
            return redirect(url_for(endpoint))
    abort(403)


@home_bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    error = None
    if request.method == "POST":
        user = current_user._get_current_object()
        from console.passwords import verify_password

        if not verify_password(user.password_hash, request.form.get("current", "")):
            error = _("The current password is wrong.")
        else:
            try:
                services.change_password(db(), user, request.form.get("new", ""), Actor.of_user(user, request.remote_addr))
            except services.StaffError as exc:
                error = _staff_error_text(exc)
            else:
                db().commit()  # the security log's password_changed line is written by this commit
                session.clear()
                login_user(user)  # this session goes on with the new token; all others end
                flash(_("Password changed. Other sessions have been signed out."))
                return redirect(url_for("home.index"))
    return render_template("staff/password.html", error=error), (422 if error else 200)


@admin_bp.route("/")
def home():
    return render_template("staff/admin_home.html")


@admin_bp.route("/users")
def users():
    rows = db().scalars(select(User).order_by(User.username)).all()
    deactivatable = {u.id for u in rows if u.active and services.may_deactivate(u, current_user.id)}
    return render_template("staff/users.html", users=rows, roles=ROLES, deactivatable=deactivatable)


@admin_bp.route("/users", methods=["POST"])
def create_user():
    try:
        services.create_user(
            db(),
            request.form.get("username", ""),
            request.form.get("password", ""),
            request.form.getlist("roles"),
            Actor.of_user(current_user, request.remote_addr),
            display_name=request.form.get("display_name", ""),
        )
    except services.StaffError as exc:
        flash(_staff_error_text(exc), "error")
        return redirect(url_for("admin.users")), 303
    db().commit()
    return redirect(url_for("admin.users")), 303


def _user_action(user_id: int, action, done: str):  # noqa: ANN001, ANN202
    """Load the user (404), apply one staff service, commit, flash; refusals flashed as errors."""
    user = db().get(User, user_id) or abort(404)
    try:
        action(user, Actor.of_user(current_user, request.remote_addr))
    except services.StaffError as exc:
        db().rollback()
        flash(_staff_error_text(exc), "error")
    else:
        db().commit()
        flash(done % {"name": user.username})
    return redirect(url_for("admin.users")), 303


@admin_bp.route("/users/<int:user_id>/roles", methods=["POST"])
def set_roles(user_id: int):
    roles = request.form.getlist("roles")
    return _user_action(user_id, lambda user, actor: services.set_roles(db(), user, roles, actor),
                        _("Roles of %(name)s saved."))


def _ask_deactivate_user(user_id: int) -> confirm.Confirmation:
    user = db().get(User, user_id) or abort(404)
    if not services.may_deactivate(user, current_user.id):
        raise confirm.Refused(_("You cannot deactivate your own account."))
    if not user.active:
        raise confirm.Refused(_("%(name)s is already deactivated.", name=user.username))
    facts = [_("%(name)s (%(user)s) can no longer sign in, and every session of theirs ends now.",
               name=user.display_name, user=user.username)]
    claimed = services.claimed_work_items(db(), user)
    if claimed:
        facts.append(_("The %(n)s work items they are working on stay theirs until someone reassigns them.",
                       n=confirm.figure(claimed)))
    facts.append(_("An administrator can reactivate the account later."))
    return confirm.Confirmation(
        action=url_for("admin.deactivate_user", user_id=user.id),
        question=_("Deactivate %(name)s?", name=user.username), facts=facts,
        button=_("Confirm: deactivate"), back=url_for("admin.users"),
    )


@confirm.confirmed(admin_bp, "/users/<int:user_id>/deactivate", ask=_ask_deactivate_user)
def deactivate_user(user_id: int):
    return _user_action(user_id, lambda user, actor: services.set_active(db(), user, False, actor),
                        _("%(name)s is deactivated and signed out everywhere."))


@admin_bp.route("/users/<int:user_id>/activate", methods=["POST"])
def activate_user(user_id: int):
    return _user_action(user_id, lambda user, actor: services.set_active(db(), user, True, actor),
                        _("%(name)s can sign in again."))


def _ask_reset_password(user_id: int) -> confirm.Confirmation:
    user = db().get(User, user_id) or abort(404)
    return confirm.Confirmation(
        action=url_for("admin.reset_password", user_id=user.id),
        question=_("Set a new password for %(name)s?", name=user.username),
        facts=[_("%(name)s (%(user)s) signs in with the password typed here from now on; every session of theirs "
                 "ends now.", name=user.display_name, user=user.username)],
        button=_("Confirm: set the password"), back=url_for("admin.users"),
        inputs=[confirm.Input("password", _("New password"), type="password", minlength=8,
                              autocomplete="new-password")],
    )


@confirm.confirmed(admin_bp, "/users/<int:user_id>/password", ask=_ask_reset_password)
def reset_password(user_id: int):
    password = request.form.get("password", "")
    return _user_action(user_id, lambda user, actor: services.reset_password(db(), user, password, actor),
                        _("New password set for %(name)s; their sessions have ended."))


# ---- tariffs ---------------------------------------------------------------------------------------


def _tariff_error_text(exc) -> str:  # noqa: ANN001
    texts = {
        "too_large": _("The file is too large for a tariff."),
        "not_json": _("The file is not a JSON object (UTF-8)."),
        "bad_code": _("The tariff code is missing or longer than 16 characters."),
        "bad_name": _("The tariff name is missing or longer than 100 characters."),
        "bad_kind": _("Unknown kind %(kind)s: tiered or time_of_use."),
        "bad_rates": _("The rates do not match the kind (tiers for tiered; peak, flat, valley for time_of_use)."),
        "bad_tiers": _("Each tier but the last needs a positive limit in kWh; the last has none (null)."),
        "bad_number": _("%(value)s is not an amount (a non-negative decimal, written as a string)."),
        "exists": _("Tariff %(code)s already has a version from %(date)s; versions are never changed."),
        "billed": _("Tariff %(code)s was billed for reads up to %(date)s: a new version must take effect after "
                    "that day."),
        "bad_date": _("Choose the date the version takes effect."),
        "no_file": _("Choose a tariff file."),
    }
    text = texts.get(exc.code, exc.code)
    return text % exc.params if exc.params else text


@admin_bp.route("/tariffs")
def tariffs():
    from console.billing import tariff_admin

    return render_template("staff/tariffs.html", rows=tariff_admin.versions(db()), error=None)


@admin_bp.route("/tariffs", methods=["POST"])
def load_tariff():
    from datetime import date

    from console.billing import tariff_admin

    upload = request.files.get("file")
    try:
        try:
            effective = date.fromisoformat(request.form.get("effective_from", ""))
        except ValueError:
            raise tariff_admin.TariffError("bad_date") from None
        if upload is None or not upload.filename:
            raise tariff_admin.TariffError("no_file")
        tariff = tariff_admin.load_version(db(), upload.read(tariff_admin.MAX_FILE_BYTES + 1), effective,
                                           Actor.of_user(current_user, request.remote_addr))
    except tariff_admin.TariffError as exc:
        db().rollback()
        return render_template("staff/tariffs.html", rows=tariff_admin.versions(db()),
                               error=_tariff_error_text(exc)), 422
    db().commit()
    flash(_("Tariff %(code)s: the version from %(date)s is loaded.", code=tariff.code,
            date=tariff.effective_from.isoformat()))
    return redirect(url_for("admin.tariff", tariff_id=tariff.id)), 303


@admin_bp.route("/tariffs/<int:tariff_id>")
def tariff(tariff_id: int):
    from console.billing import tariff_admin

    rows = tariff_admin.versions(db())
    row = next((r for r in rows if r.tariff.id == tariff_id), None) or abort(404)
    return render_template("staff/tariff.html", row=row)
