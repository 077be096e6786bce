"""`console bench metrics`: server time of one /metrics scrape over N deliveries and open work items.

Seeds with the inbox bench's seeder (customers, bills, failed e-mail deliveries with an attempt
each, N open work items) in a scratch database (a temporary SQLite file unless --database-url names
one, whose schema is DROPPED and rebuilt), then scrapes /metrics in-process from 127.0.0.1. Redis
is the embedded one of a temporary instance folder unless REDIS_URL is set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import click


def run(items: int, database_url: str | None, requests: int) -> Iterator[str]:
    from console.audit import Actor
    from console.bench.inbox import PASSWORD, _figures, _time, seed
    from console.bench.scratch import scratch_app
    from console.staff.services import create_user

    app, folder = scratch_app("billpost-bench-metrics-", database_url)
    app.config["INSTANCE_PATH"] = str(folder)
    engine = app.extensions["billpost.engine"]
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
