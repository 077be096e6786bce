"""`console bench metrics`: server time of one /metrics scrape over N deliveries and open work items.

Seeds with the inbox bench's seeder (customers, bills, failed e-mail deliveries with an attempt
each, N open work items) in a scratch database (a temporary SQLite file unless --database-url names
one, whose schema is DROPPED and rebuilt), then scrapes /metrics in-process from 127.0.0.1. Redis
is the embedded one of a temporary instance folder unless REDIS_URL is set.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
from sqlalchemy import text


def run(items: int, database_url: str | None, requests: int) -> Iterator[str]:
    from console import create_app
    from console.audit import Actor
    from console.bench.inbox import PASSWORD, _figures, _time, seed
    from console.db import make_engine
    from console.migrations import upgrade
    from console.staff.services import create_user

    folder = Path(tempfile.mkdtemp(prefix="billpost-bench-metrics-"))
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    app = create_app({"ENGINE": engine, "DATABASE_URL": url, "TESTING": True, "RATELIMIT_STORAGE_URI": "memory://",
                      "INSTANCE_PATH": str(folder)})
    upgrade(app)
    with app.extensions["billpost.session_factory"]() as session:
        rep = create_user(session, "bench_rep", PASSWORD, ["phone_rep"], Actor.cli())
        manager = create_user(session, "bench_manager", PASSWORD, ["account_manager"], Actor.cli())
        session.commit()
        rep_id, manager_id = rep.id, manager.id
    started = time.perf_counter()
    seed(engine, items, rep_id, manager_id)
    yield (f"database {engine.dialect.name}: seeded {items:,} deliveries, attempts and open work items "
           f"in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    body = client.get("/metrics").get_data(as_text=True)
    yield f"/metrics: {len(body.splitlines())} lines, {len(body.encode()):,} bytes"
    yield _figures("/metrics scrape", _time(client, "/metrics", requests))
    engine.dispose()


@click.command("metrics")
@click.option("--items", default=100_000, show_default=True, help="Deliveries (and open work items) to seed.")
@click.option("--requests", default=20, show_default=True, help="Timed scrapes.")
@click.option(
    "--database-url", default=None,
    help="A scratch database to seed (its schema is DROPPED and rebuilt); default: a temporary SQLite file.",
)
def bench_metrics(items: int, requests: int, database_url: str | None) -> None:
    """Median and p95 server time of a /metrics scrape with N deliveries and open work items."""
    for line in run(items, database_url, requests):
        click.echo(line)
