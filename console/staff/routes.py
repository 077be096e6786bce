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
    """A password's reason in the user's language; other messages as they are."""
    from console.passwords import describe

    field, _sep, reason = str(exc).partition(": ")
    return describe(reason) if field == "password" else str(exc)


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
    return render_template("staff/users.html", users=rows, roles=ROLES)


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


@admin_bp.route("/users/<int:user_id>/roles", methods=["POST"])
def set_roles(user_id: int):
    user = db().get(User, user_id) or abort(404)
    services.set_roles(db(), user, request.form.getlist("roles"), Actor.of_user(current_user, request.remote_addr))
    db().commit()
    return redirect(url_for("admin.users")), 303
