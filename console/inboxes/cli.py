"""The inboxes' commands: `console bench inbox`."""

from __future__ import annotations

import click
from flask import Flask


@click.command("inbox")
@click.option("--items", default=100_000, show_default=True, help="Open work items to seed.")
@click.option("--requests", default=200, show_default=True, help="Timed requests per page.")
@click.option(
    "--database-url", default=None,
    help="A scratch database to seed (its schema is DROPPED and rebuilt); default: a temporary SQLite file.",
)
def bench_inbox(items: int, requests: int, database_url: str | None) -> None:
    """Median and p95 server time of the rep's inbox page and of an item page with many open items."""
    from console.inboxes.bench import run

    for line in run(items, database_url, requests):
        click.echo(line)


def register(app: Flask, import_group: click.Group, bench_group: click.Group) -> None:
    bench_group.add_command(bench_inbox)
