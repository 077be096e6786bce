"""One place that decides whether a request wants a fragment or a whole page."""

from __future__ import annotations

from typing import Any

from flask import render_template, request


def is_fragment_request() -> bool:
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page: str, fragment: str, **context: Any) -> str:
    """The page includes the fragment template; htmx requests get the fragment alone."""
    return render_template(fragment if is_fragment_request() else page, **context)
