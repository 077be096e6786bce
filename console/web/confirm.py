"""Asking before the irreversible, in the page (issue 16): one partial (`web/_confirm.html`), this helper.

An action that sends, prints, dispatches, cancels or deletes takes two requests:

1. **Ask** — GET `<action>/confirm`. The first click (htmx, into the `[data-confirm-slot]` that the
   `asking` macro puts beside its button; a page of its own without JavaScript) renders what will
   happen, in sentences with the domain's own figures ("将向 2,012 个收件人发送电子账单"), a danger
   button "确认…" and "取消". Cancel removes the box (static/confirm.js): the page is as it was. A
   request the domain would refuse anyway is refused here already (422 in the box, `Refused`).
2. **Do** — POST `<action>` from that box, with a one-time token signed (SECRET_KEY) with the user,
   the action's path and a nonce, valid CONFIRM_TOKEN_MINUTES. The first POST with it records the
   nonce (`used_confirmations`, primary key) in the action's own transaction: a refused action
   (rolled back) may be confirmed again; a second identical POST — a double click, the back
   button, two at once — finds the nonce taken, is told "已处理" and does nothing. A POST without a
   valid token does nothing either: htmx is told to confirm first, a plain form is sent to the
   confirmation page.

Wiring a route (the view stays as it was)::

    @confirm.confirmed(bp, "/batches/<int:batch_id>/printed", ask=_ask_printed)
    def printed(batch_id): ...

registers the POST `paper.printed` behind the token and the GET `paper.printed_confirm`, which
renders `_ask_printed(batch_id=…)` — a `Confirmation`. A page of its own may show a confirmation
without the GET: `{% with confirmation=… %}{% include "web/_confirm.html" %}{% endwith %}` (the
partial asks for its token when it renders).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_number
from flask_babel import gettext as _
from flask_login import current_user
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError, OperationalError

from console.db import utcnow
from console.extensions import db
from console.models.staff import UsedConfirmation
from console.web.htmx import is_fragment_request

TOKEN_FIELD = "confirm_token"
BACK_FIELD = "confirm_back"
NOTICE_TARGET = "#session-notice"
_SALT = "billpost.confirm"
_NEVER_CARRIED = ("password", "csrf_token", TOKEN_FIELD)


class Refused(ValueError):
    """The domain would refuse this request: shown in the box instead of a confirmation (422)."""


@dataclass(frozen=True)
class Input:
    """A field asked for in the box itself (a new password), not before it."""

    name: str
    label: str
    type: str = "text"
    required: bool = True
    minlength: int | None = None
    maxlength: int | None = None
    autocomplete: str = "off"


@dataclass
class Confirmation:
    action: str  # the POST address
    question: str  # the box's heading: "发布 2026-11 账期？"
    facts: Sequence[str]  # what will happen, one sentence each, with the figures
    button: str  # the danger button: "确认发布"
    back: str  # the page the action is on: "取消" without JavaScript, and where a plain POST returns
    target: str | None = None  # hx-target of the POST; None: a plain form POST (the page reloads)
    swap: str = "outerHTML"
    fields: Mapping[str, Any] = field(default_factory=dict)  # values carried to the POST, hidden (a list: several)
    inputs: Sequence[Input] = ()
    warning: str | None = None


def figure(number: int) -> str:
    """A count as the reader's language writes it (2,012), for the sentences of a confirmation."""
    return format_number(number)


# ---- the token ---------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def _path(url: str) -> str:
    return urlsplit(url).path


def issue_token(action: str) -> str:
    """A one-time token for the signed-in user and the action at `action` (a URL or a path)."""
    return _serializer().dumps({"u": current_user.id, "a": _path(action), "n": secrets.token_hex(16)})


def _valid_payload(token: str) -> dict | None:
    """The token's payload when it is ours, fresh enough, of this user and of this very action."""
    if not token:
        return None
    try:
        payload = _serializer().loads(token, max_age=int(current_app.config["CONFIRM_TOKEN_MINUTES"]) * 60)
    except BadData:
        return None
    here = request.script_root + request.path
    if not isinstance(payload, dict) or payload.get("u") != current_user.id or payload.get("a") != here:
        return None
    nonce = payload.get("n")
    return payload if isinstance(nonce, str) and 0 < len(nonce) <= 32 else None


def spend() -> Response | None:
    """In the POST, before anything else: None when the request carries a fresh token (its nonce is
    now recorded, and goes with the request's commit or rollback); otherwise the answer to send —
    "already done" for a used token, "confirm first" for none, a forged or an expired one."""
    payload = _valid_payload(request.form.get(TOKEN_FIELD, ""))
    if payload is None:
        return _not_confirmed()
    session = db()
    for attempt in (1, 2):
        try:
            with session.begin_nested():
                session.add(UsedConfirmation(nonce=payload["n"], user_id=payload["u"], action=payload["a"][:300],
                                             used_at=utcnow()))
            return None
        except IntegrityError:
            return already_done()
        except OperationalError as exc:
            # SQLite: the twin request committed since this one's first read (SQLITE_BUSY); once more on a
            # fresh transaction, which then finds the nonce. PostgreSQL makes the second wait by itself.
            if attempt == 2 or "locked" not in str(exc):
                raise
            session.rollback()
    return None


# ---- answers -----------------------------------------------------------------------------------


def _safe_back(target: str | None) -> str | None:
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def back_url(default: str) -> str:
    """Where a plain form's action returns: the page its confirmation came from, else `default`."""
    return _safe_back(request.form.get(BACK_FIELD)) or default


def referring_page(default: str) -> str:
    """The page (path and query on this site) a confirmation was asked from, else `default`."""
    if not request.referrer:
        return default
    parts = urlsplit(request.referrer)
    if parts.netloc and parts.netloc != request.host:
        return default
    return _safe_back(parts.path + (f"?{parts.query}" if parts.query else "")) or default


def _notice(message: str, kind: str, status: int) -> Response:
    response = Response(render_template("web/_confirm.html", notice=message, notice_kind=kind), status)
    response.headers["HX-Retarget"] = NOTICE_TARGET
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def already_done(back: str | None = None) -> Response:
    """A repeated submission (or one the state makes pointless: the recipient is inactive already):
    told so, nothing done. htmx: a notice above the page (200), which stays as it is; a plain form:
    back to its page with the notice."""
    message = _("Already done: this was carried out before, so nothing was done again.")
    if request.headers.get("HX-Request") == "true":
        return _notice(message, "done", 200)
    flash(message, "ok")
    target = _safe_back(request.form.get(BACK_FIELD)) or back or url_for("home.index")
    return redirect(target, 303)


def _not_confirmed() -> Response:
    if request.headers.get("HX-Request") == "true":
        return _notice(_("Nothing was done: this action must be confirmed first, or its confirmation has expired. "
                         "Click the button again."), "unconfirmed", 422)
    carried = [(k, v) for k, v in request.form.items(multi=True) if k not in _NEVER_CARRIED and k != BACK_FIELD]
    query = urlencode(carried)
    return redirect(f"{request.script_root}{request.path}/confirm" + (f"?{query}" if query else ""), 303)


def render(confirmation: Confirmation) -> str:
    """The box alone for htmx, the confirmation page otherwise."""
    template = "web/_confirm.html" if is_fragment_request() else "web/confirm.html"
    return render_template(template, confirmation=confirmation)


def refused(message: str) -> tuple[str, int]:
    template = "web/_confirm.html" if is_fragment_request() else "web/confirm.html"
    return render_template(template, refusal=message, back=_safe_back(request.args.get(BACK_FIELD))), 422


# ---- wiring ------------------------------------------------------------------------------------


def confirmed(
    bp: Blueprint, rule: str, ask: Callable[..., Confirmation], *, needed: Callable[[], bool] | None = None,
) -> Callable:
    """Register the decorated view as the POST of `rule` behind a confirmation, and `rule + "/confirm"`
    (endpoint `<view>_confirm`) as the GET that asks: `ask(**view_args)` returns the Confirmation or
    raises Refused. `needed()`: when only some submissions are irreversible (stopping, not starting)."""

    def register(view: Callable) -> Callable:
        name = view.__name__

        def ask_view(**values: Any) -> Any:
            try:
                return render(ask(**values))
            except Refused as exc:
                return refused(str(exc))

        bp.add_url_rule(f"{rule}/confirm", f"{name}_confirm", ask_view, methods=["GET"])

        @functools.wraps(view)
        def post_view(**values: Any) -> Any:
            if needed is None or needed():
                answer = spend()
                if answer is not None:
                    return answer
            return view(**values)

        bp.add_url_rule(rule, name, post_view, methods=["POST"])
        return post_view

    return register


def init_app(app: Flask) -> None:
    app.jinja_env.globals["confirm_token"] = issue_token
