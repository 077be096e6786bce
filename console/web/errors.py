"""Error pages in the reader's language and in the layout of the site the reader is on: the staff
console's for staff pages, the customer web page's for `/my/…`. htmx requests get the bare message
(the page around them stays)."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, InternalServerError

from console.web.htmx import is_fragment_request

MESSAGES = {
    403: (_l("Not allowed"), _l("Your role may not open this page. If you need it, ask an administrator.")),
    404: (_l("Not found"), _l("There is no such page, or it is not yours to see.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    429: (_l("Too many attempts"), _l("Too many attempts in a short time. Wait a few minutes and try again.")),
    500: (_l("Something went wrong"), _l("The page could not be shown. The error was recorded; try again in a moment.")),
}


def _page(status: int):  # noqa: ANN202
    title, text = MESSAGES[status]
    if is_fragment_request():
        return render_template("errors/_message.html", title=title, text=text, status=status), status
    layout = "portal/layout.html" if request.path.startswith("/my") else "base.html"
    return render_template("errors/page.html", layout=layout, title=title, text=text, status=status), status


def _http_error(error: HTTPException):  # noqa: ANN202
    return _page(error.code if error.code in MESSAGES else 500)


def _server_error(_error: InternalServerError):  # noqa: ANN202
    return _page(500)


def init_app(app: Flask) -> None:
    for status in (403, 404, 405, 429):
        app.register_error_handler(status, _http_error)
    app.register_error_handler(500, _server_error)
