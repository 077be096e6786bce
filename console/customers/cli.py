"""Customer-file commands: the imports (through the registry) and the demo data."""

from __future__ import annotations

import resource
import time
from datetime import date

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from console.customers.demo import seed_demo, sign_in_lines
from console.imports import add_import_commands


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _migrate() -> None:
    from console.migrations import upgrade

    upgrade(current_app._get_current_object())


@click.command("demo-data")
@click.option("--customers", default=2000, show_default=True, help="How many customers.")
@click.option("--seed", default=1, show_default=True, help="The same seed gives the same data.")
@with_appcontext
def demo_data(customers: int, seed: int) -> None:
    """Seed a realistic, deterministic demo customer file (into an empty database)."""
    _migrate()
    engine = current_app.extensions["billpost.engine"]
    started = time.perf_counter()
    try:
        with engine.begin() as connection:
            counts = seed_demo(connection, customers, seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{counts['customers']} customers, {counts['service_points']} service points, "
        f"{counts['recipients']} recipients in {time.perf_counter() - started:.1f} s"
    )
    from console.billing.demo import seed_billing_demo
    from console.billing.settings import billing_settings

    today = date.today()
    with current_app.extensions["billpost.session_factory"]() as session:
        billed = seed_billing_demo(session, today, billing_settings(current_app.config), seed)
        session.commit()
    click.echo(f"{billed['reads']} meter reads, {billed['entries']} ledger entries, {billed['history_bills']} bills "
               f"of the two months before {today:%Y-%m} (published); open and run cycle {today:%Y-%m} "
               "to see every bill type and charge (docs/billing.md)")
    for line in sign_in_lines():
        click.echo(line)


def register(app: Flask, import_group: click.Group) -> None:
    """Adds this domain's commands; `console import NAME` for every registered importer."""
    add_import_commands(import_group)
    app.cli.add_command(demo_data)
