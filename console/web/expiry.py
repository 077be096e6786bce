"""An expired CSRF token or session never loses what the user typed.

- htmx requests get a notice swapped into `#session-notice` (HX-Retarget) instead of their target,
  with a "send again" button; static/session.js fetches a fresh token (GET /session/token) and
  sends the same request again from the same element, whose fields still hold the input. When the
  session itself has ended, the notice offers sign-in in a new tab first.
- Plain forms get a page in the user's language that carries the submitted values (hidden) in a
  form to the same address with a fresh token; password fields are asked for again, never echoed.

CSRF failures keep status 400 and a signed-out request 401, so nothing counts them as done.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf

NOTICE_TARGET = "#session-notice"
_NEVER_ECHOED = ("password", "current", "new", "code")


def _secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(part == lowered or part in lowered.split("_") or lowered.startswith(part) for part in _NEVER_ECHOED)


def kept_fields() -> tuple[list[tuple[str, str]], list[str]]:
    """(values to carry again, names of password-like fields to ask for again)."""
    kept, secret = [], []
    for name, value in request.form.items(multi=True):
        if name == "csrf_token":
            continue
        if _secret_field(name):
            if name not in secret:
                secret.append(name)
        else:
            kept.append((name, value[:10_000]))
    return kept, secret


def _signed_in() -> bool:
    return bool(current_user and current_user.is_authenticated)


def _sign_in_url() -> str:
    return url_for("portal.login") if request.blueprint == "portal" else url_for("auth.login")


def expired_response(reason: str, status: int) -> Response:
    """`reason`: "token" (the page's CSRF token is too old or missing) or "signed_out"."""
    context = {"reason": reason, "sign_in_url": _sign_in_url(), "signed_in": _signed_in()}
    if request.headers.get("HX-Request") == "true":
        response = Response(render_template("web/_session_notice.html", **context), status=status)
        response.headers["HX-Retarget"] = NOTICE_TARGET
        response.headers["HX-Reswap"] = "innerHTML"
        response.headers["X-Billpost-Resubmit"] = "1"
        return response
    kept, secret = kept_fields()
    layout = "portal/layout.html" if request.blueprint == "portal" else "base.html"
    html = render_template(
        "web/resubmit.html", layout=layout, action=request.full_path.rstrip("?"), kept=kept, secret=secret,
        **context,
    )
    return Response(html, status=status)


def _csrf_failed(error: CSRFError) -> Response:
    from console.audit import log_security_event

    log_security_event("csrf_refused", getattr(current_user, "username", None) or "-", f"{request.method} {request.path}: {error.description}")
    public = request.endpoint in PUBLIC_FORMS or (request.blueprint == "portal" and request.endpoint in _portal_public())
    return expired_response("token" if _signed_in() or public else "signed_out", 400)


# Forms that need no sign-in: an expired token there only needs a fresh one.
PUBLIC_FORMS = {"auth.login", "auth.language"}


def _portal_public() -> frozenset:
    from console.portal.routes import PUBLIC_ENDPOINTS

    return PUBLIC_ENDPOINTS


def session_token() -> Response:
    """A fresh CSRF token for the current session (and whether it is signed in): static/session.js
    asks for one before sending an expired form again."""
    response = jsonify(token=generate_csrf(), signed_in=_signed_in())
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_failed)
