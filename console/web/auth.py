"""Sign-in plumbing for two kinds of user: staff ("s:<id>:<token>") and portal customers ("c:...").

The token part changes when a password changes, which ends every other session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask_login import current_user

from console.extensions import db
from console.web.htmx import is_fragment_request

# Portal registers its own loader under "c" (see console.portal).
USER_LOADERS: dict[str, Callable[[str], Any]] = {}


def load_user(user_id: str) -> Any:
    kind, _, rest = user_id.partition(":")
    loader = USER_LOADERS.get(kind)
    return loader(rest) if loader else None


def _load_staff(rest: str) -> Any:
    from console.models import User

    id_part, _, token = rest.partition(":")
    if not id_part.isdigit():
        return None
    user = db().get(User, int(id_part))
    if user is None or not user.active or user.session_token != token:
        return None
    return user


USER_LOADERS["s"] = _load_staff


def unauthorized() -> Response:
    """htmx requests get HX-Redirect (never a login page swapped into an inbox); others a redirect.
    A form sent after the session ended keeps its input: a notice (htmx) or a page that sends it
    again after signing in (console.web.expiry)."""
    if request.method not in ("GET", "HEAD") and request.endpoint != "auth.logout":
        from console.web.expiry import expired_response

        return expired_response("signed_out", 401)
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def is_staff(user: Any) -> bool:
    from console.models import User

    return isinstance(user, User)


def guard_blueprint(bp: Blueprint, roles: Iterable[str]) -> Blueprint:
    """Every view of `bp` needs a signed-in staff user holding one of `roles`.

    Roles are enforced here, once per blueprint; tests walk app.url_map to prove it.
    """
    allowed = frozenset(roles)
    bp.allowed_roles = allowed  # type: ignore[attr-defined]

    @bp.before_request
    def _require_role():  # noqa: ANN202
        if not current_user.is_authenticated or not is_staff(current_user):
            return unauthorized()
        if not current_user.has_role(*allowed):
            from console.audit import log_security_event

            log_security_event("authorization_refused", current_user, request.path)
            abort(403)
        return None

    return bp


__all__ = ["guard_blueprint", "is_fragment_request", "is_staff", "load_user", "unauthorized"]
