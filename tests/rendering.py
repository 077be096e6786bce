"""Rendering stored codes in a language, for tests that check what a reader sees (console/web/events.py)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import force_locale


def rendered(app: Flask, language: str, func: Any, *args: Any) -> str:
    """`func(*args)` (an events renderer) in `language`, inside a request of `app`."""
    with app.test_request_context(), force_locale(language):
        return func(*args)


def plain(func: Any, *args: Any) -> str:
    """`func(*args)` outside any application: the English catalog ids (for unit tests of parsers)."""
    return func(*args)


def en(app: Flask, func: Any, *args: Any) -> str:
    return rendered(app, "en", func, *args)


def zh(app: Flask, func: Any, *args: Any) -> str:
    return rendered(app, "zh", func, *args)
