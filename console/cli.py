"""The `console` command. Each domain adds its commands in its own cli module (register()); the
benchmarks come from console/bench."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from console import config as config_module


def _create_app(*_args: object) -> Flask:
    from console import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, add_default_commands=True, help="Billpost console.")


@click.group("import")
def import_group() -> None:
    """Import a CSV file: all rows or none, every bad row reported as `line N: column: reason`."""


@click.group("bench")
@with_appcontext
def bench_group() -> None:
    """Benchmarks that print their figures (never timed assertions in the test suite)."""
    from console.migrations import upgrade

    upgrade(current_app._get_current_object())  # a fresh database gets its schema first


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    from console.migrations import upgrade

    upgrade(current_app)
    click.echo("database at the latest revision")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """An RQ worker on every queue, with the scheduler and the sweeper's arming (console/worker.py)."""
    from console.worker import run_worker

    run_worker(current_app._get_current_object(), burst=burst)


@click.command("serve")
@click.option("--demo/--no-demo", default=True, help="Seed demo data first when the database is empty.")
@click.option("--customers", default=2000, show_default=True, help="Demo customers to seed.")
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@with_appcontext
def serve(demo: bool, customers: int, bind: str) -> None:
    """Start web, worker and mail-in (the Procfile) on the embedded defaults."""
    from console.migrations import upgrade
    from console.queues import redis_url

    app = current_app._get_current_object()
    upgrade(app)
    if demo:
        for line in _seed_demo(app, customers):
            click.echo(line)
    bin_dir = str(Path(sys.executable).parent)  # console, gunicorn and honcho live beside python
    env = config_module.child_environment(REDIS_URL=redis_url(app), BIND=bind)
    env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    click.echo(f"Billpost console: http://{bind}/  (Ctrl-C stops web, worker and mail-in)")
    procfile = str(config_module.PROJECT_ROOT / "Procfile")
    process = subprocess.Popen([str(Path(bin_dir) / "honcho"), "-f", procfile, "start"], env=env)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()


def _seed_demo(app: Flask, customers: int) -> list[str]:
    """Customers and staff (first run only), then this month's reads so a cycle can be run."""
    from datetime import date

    from console.billing.demo import seed_billing_demo
    from console.billing.settings import billing_settings
    from console.customers.demo import ensure_demo_data
    from console.extensions import db

    lines = ensure_demo_data(app, customers)
    today = date.today()
    counts = seed_billing_demo(db(), today, billing_settings(app.config))
    db().commit()
    if counts["reads"]:
        lines.append(f"Seeded {counts['reads']} meter reads, two months of published bills and this month's "
                     f"charges (docs/billing.md); open cycle {today:%Y-%m} to see every bill type.")
    lines.append(
        f"To see the delivery loop: sign in as admin, open cycle {today:%Y-%m} under Administration → Billing cycles, "
        "run it, publish it; the mail sandbox answers with delivery reports (Administration → Demo sandbox mailbox)."
    )
    return lines


def register_commands(app: Flask) -> None:
    from console.bench import cli as bench_cli
    from console.billing import cli as billing_cli
    from console.customers import cli as customers_cli
    from console.delivery import cli as delivery_cli
    from console.inboxes import cli as inboxes_cli
    from console.ops import cli as ops_cli
    from console.paper import cli as paper_cli
    from console.staff import cli as staff_cli

    for module in (staff_cli, customers_cli, billing_cli, delivery_cli, paper_cli, ops_cli, inboxes_cli):
        module.register(app, import_group)
    bench_cli.register(bench_group)
    for command in (import_group, bench_group, db_group, worker, serve):
        app.cli.add_command(command)
