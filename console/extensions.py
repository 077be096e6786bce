"""Extensions created at module level and bound to the app in create_app (init_app)."""

from __future__ import annotations

from flask import current_app, g, has_request_context, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def db() -> Session:
    """The request's session: one per request, closed at teardown, committed explicitly by the route."""
    if "db" not in g:
        g.db = current_app.extensions["billpost.session_factory"]()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def select_locale() -> str:
    """A signed-in user's language, else ?lang= / the cookie, else Chinese."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # jobs and commands: callers choose with flask_babel.force_locale
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    wanted = request.args.get("lang") or request.cookies.get("lang")
    if wanted in languages:
        return wanted
    user = getattr(g, "_login_user", None) or (current_user if current_user else None)
    language = getattr(user, "language", None)
    if language in languages:
        return language
    return current_app.config["BABEL_DEFAULT_LOCALE"]
