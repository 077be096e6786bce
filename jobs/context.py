"""The one job-context wrapper: the app is built once per worker process, a session opened per job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy.orm import Session

_app: Flask | None = None


def job_app() -> Flask:
    global _app
    if _app is None:
        from console import create_app

        _app = create_app()
    return _app


def use_app(app: Flask | None) -> None:
    """Tests (and the worker command) hand in the app jobs should run against."""
    global _app
    _app = app


@contextmanager
def job_session() -> Iterator[Session]:
    app = job_app()
    with app.app_context():
        session = app.extensions["billpost.session_factory"]()
        try:
            yield session
        finally:
            session.close()


def ping(value: str) -> str:
    """A job that proves the queue, the worker and the database are wired up (used by tests)."""
    from sqlalchemy import text

    with job_session() as session:
        session.execute(text("SELECT 1"))
    return f"pong:{value}"
