"""`console delivery ...` commands."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from console.audit import Actor


def _session():  # noqa: ANN202
    return current_app.extensions["billpost.session_factory"]()


@click.group("delivery")
def delivery_group() -> None:
    """E-mail delivery: publish a cycle (the outbox), send, sweep deadlines, counts."""


@delivery_group.command("publish")
@click.argument("period")
@click.option("--chunk-size", default=0, type=int,
              help="Publish this many bills per transaction, printing progress (a large cycle); stopped "
                   "halfway, running again goes on where it stopped. 0: the whole cycle at once.")
@with_appcontext
def publish_command(period: str, chunk_size: int) -> None:
    """Publish the cycle PERIOD's bills, write their deliveries and queue the e-mail send jobs."""
    from console import outbox
    from console.billing import cycles
    from console.db import utcnow

    with _session() as session:
        try:  # the billing domain's publish: it re-dates late bills, then hands them to delivery
            if chunk_size > 0:
                result, queued = {"bills_left": 0}, 0
                for result in cycles.publish_in_parts(session, period, Actor.cli(), current_app.config, chunk_size):
                    session.commit()
                    queued += outbox.handed_over(session) or 0
                    first, last = result["bill_ids"]
                    click.echo(f"part {result['part']}/{result['parts']}: bills {first}..{last}, "
                               f"{result['email']} e-mails, {result['bills_left']} bills left")
                result["send_jobs_queued"] = queued
            else:
                result = cycles.publish(session, period, Actor.cli(), current_app.config, utcnow())
                session.commit()
                result["send_jobs_queued"] = outbox.handed_over(session)
        except ValueError as exc:  # CycleError, or the delivery domain's PublishError
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, ensure_ascii=False, default=str))


@delivery_group.command("send-queued")
@with_appcontext
def send_queued_command() -> None:
    """Queue send jobs for every queued, unclaimed e-mail delivery (the sweeper does this too)."""
    from console import outbox
    from console.db import utcnow
    from console.delivery.queueing import queue_queued_sends

    with _session() as session:
        queue_queued_sends(session, utcnow(), int(current_app.config["SEND_BATCH_SIZE"]))
        session.commit()
        jobs = outbox.handed_over(session)
    click.echo(f"{jobs} send jobs queued")


@delivery_group.command("sweep")
@with_appcontext
def sweep_command() -> None:
    """Run the sweeper once now (deadlines, resends, forgotten sends)."""
    from console.db import sqlite_write_transactions, utcnow
    from console.delivery import sweeper

    with sqlite_write_transactions(), _session() as session:
        counts = sweeper.sweep(session, utcnow(), current_app.config)
        session.commit()
    click.echo(json.dumps(counts))


@delivery_group.command("counts")
@click.argument("period")
@with_appcontext
def counts_command(period: str) -> None:
    """E-mail delivery counts of a cycle as JSON (also in `console cycle report PERIOD --json`)."""
    from sqlalchemy import select

    from console.delivery.counts import delivery_counts
    from console.models import Cycle

    with _session() as session:
        cycle = session.scalars(select(Cycle).where(Cycle.period == period)).first()
        if cycle is None:
            raise click.ClickException(f"no cycle {period}")
        click.echo(json.dumps(delivery_counts(session, cycle.id), ensure_ascii=False, indent=2))


def register(app: Flask, import_group: click.Group) -> None:
    """Adds this domain's commands."""
    from console.delivery.mailin import mailin_command

    app.cli.add_command(delivery_group)
    app.cli.add_command(mailin_command)
