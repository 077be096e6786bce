"""The one job-context wrapper: the app is built once per worker process, a session opened per job.

`console worker` runs inside an app context, and RQ forks each job's process from it: a job then
uses that app (`current_app`). A job run anywhere else (a bare `rq worker`) builds the app once.
Tests hand theirs in with `use_app`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

from console.db import sqlite_write_transactions

_app: Flask | None = None


def job_app() -> Flask:
    global _app
    if _app is None:
        if has_app_context():
            _app = current_app._get_current_object()
        else:
            from console import create_app

            _app = create_app()
    return _app


def use_app(app: Flask | None) -> None:
    """Tests hand in the app jobs should run against."""
    global _app
    _app = app


def _fresh_pool_after_fork(app: Flask) -> None:
    """RQ's Worker forks a process per job: the child never reuses a pooled connection of the parent."""
    if app.extensions.get("billpost.engine_pid") != os.getpid():
        if "billpost.engine_pid" in app.extensions:
            app.extensions["billpost.engine"].dispose(close=False)
        app.extensions["billpost.engine_pid"] = os.getpid()


@contextmanager
def job_session() -> Iterator[Session]:
    app = job_app()
    _fresh_pool_after_fork(app)
    with app.app_context(), sqlite_write_transactions():
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
