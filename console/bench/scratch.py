"""A scratch application for a bench: a temporary SQLite file, or a PostgreSQL database whose schema
is dropped and rebuilt from the migrations."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import text


def scratch_app(prefix: str, database_url: str | None, **config: Any) -> tuple[Flask, Path]:
    from console import create_app
    from console.db import make_engine
    from console.migrations import upgrade

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    app = create_app({"ENGINE": engine, "DATABASE_URL": url, "TESTING": True, "RATELIMIT_STORAGE_URI": "memory://"}
                     | config)
    upgrade(app)
    return app, folder
