from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


@click.command("portal")
@click.option("--bills", default=1_000_000, show_default=True, help="Published bills in the database (seeded once).")
@click.option("--requests", default=1000, show_default=True, help="Requests of each page to time.")
@click.option("--customers", default=100, show_default=True, help="Signed-in customers, chosen at random.")
@with_appcontext
def bench_portal(bills: int, requests: int, customers: int) -> None:
    """Median and p95 of the customer's bill list and bill pages with BILLS published bills."""
    from console.portal.bench import run_bench

    for line in run_bench(current_app._get_current_object(), bills, requests, customers):
        click.echo(line)


def register(app: Flask, import_group: click.Group, bench_group: click.Group) -> None:
    """Adds this domain's commands."""
    bench_group.add_command(bench_portal)
