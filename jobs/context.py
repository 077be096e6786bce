"""The one job-context wrapper: the app is built once per worker process, a session opened per job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy.orm import Session

from console.db import sqlite_write_transactions

_app: Flask | None = None


def job_app() -> Flask:
    global _app
    if _app is None:
        from console import create_app

        _app = create_app()
        _remember_pid()
    return _app


def use_app(app: Flask | None) -> None:
    """Tests (and the worker command) hand in the app jobs should run against."""
    global _app
    _app = app
    _remember_pid()


_engine_pid: int | None = None


def _remember_pid() -> None:
    global _engine_pid
    _engine_pid = os.getpid()


def _fresh_pool_after_fork(app: Flask) -> None:
    """RQ's Worker forks a process per job: the child never reuses a pooled connection of the parent."""
    global _engine_pid
    if _engine_pid is not None and _engine_pid != os.getpid():
        app.extensions["billpost.engine"].dispose(close=False)
        _engine_pid = os.getpid()


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
