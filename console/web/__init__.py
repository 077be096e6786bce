"""Web plumbing shared by every blueprint: sign-in, role guards, htmx fragments, headers, filters."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request
from flask_babel import get_locale, get_timezone
from werkzeug.middleware.proxy_fix import ProxyFix

from console.extensions import close_db, csrf, limiter, login_manager
from console.money import format_yuan
from console.web import confirm, errors, events, expiry, labels, nav
from console.web.auth import load_user, unauthorized
from console.web.htmx import is_fragment_request


def init_app(app: Flask) -> None:
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        # Behind N trusted proxies the client is the address the first of them saw: throttles and
        # the security log count clients, not the proxy (which would lock everybody out at once).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    csrf.init_app(app)
    expiry.init_app(app)
    confirm.init_app(app)
    app.register_error_handler(413, _too_large)
    errors.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    login_manager.session_protection = "strong"
    app.teardown_appcontext(close_db)
    app.after_request(_security_headers)
    app.jinja_env.filters["money"] = format_yuan
    # One way to show a time, everywhere (Flask-Babel's own `datetimeformat` name included).
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["datetimeformat"] = local_time
    app.jinja_env.globals["is_fragment_request"] = is_fragment_request
    labels.register(app.jinja_env)
    events.register(app.jinja_env)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["nav_links"] = lambda user: nav.links_for(user, nav.NAV_LINKS)
    app.jinja_env.globals["admin_links"] = lambda user: nav.links_for(user, nav.ADMIN_LINKS)


def local_time(value: datetime | None) -> str:
    """A stored (UTC) time in DISPLAY_TIMEZONE, `2026-11-27 09:30` — every page, export and PDF shows
    times this way. Babel's formatter costs ~0.2 ms a call (a queue page shows fifty, refreshed every
    few seconds): the zone is looked up once per request."""
    if not value:
        return ""
    zone = g.get("_display_tz") if has_request_context() else None
    if zone is None:
        zone = get_timezone()
        if has_request_context():
            g._display_tz = zone
    if value.tzinfo is None:  # SQLite hands back naive UTC where a column was not typed UTCDateTime
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _too_large(_error):  # noqa: ANN001, ANN202
    """An upload over its limit (IMPORT_MAX_BYTES): a message in the user's language, not a bare 413."""
    from flask import current_app, render_template

    limit_mb = max(1, round(current_app.config["IMPORT_MAX_BYTES"] / (1024 * 1024)))
    if request.headers.get("HX-Request") == "true":
        response = current_app.make_response((render_template("web/_too_large.html", limit_mb=limit_mb), 413))
        response.headers["HX-Retarget"] = "#session-notice"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render_template("web/too_large.html", limit_mb=limit_mb), 413


def _security_headers(response):  # noqa: ANN001, ANN202
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.vary.add("HX-Request")
    if getattr(g, "_login_user", None) is not None and not getattr(g._login_user, "is_anonymous", True):
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
    if request.endpoint == "static":
        response.headers.pop("Cache-Control", None)
    return response
