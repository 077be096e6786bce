from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


@click.group("print")
def print_group() -> None:
    """Paper bills: print batches."""


@print_group.command("batch")
@click.argument("period")
@click.option("--size", type=int, default=None, help="Bills per batch (PAPER_BATCH_SIZE, 500).")
@click.option("--now", is_flag=True, help="Render here instead of on the pdf queue (no worker needed).")
@with_appcontext
def print_batch(period: str, size: int | None, now: bool) -> None:
    """Gather PERIOD's queued paper deliveries into print batches and render them (idempotent)."""
    from console.audit import Actor
    from console.paper import batches

    app = current_app._get_current_object()
    session = app.extensions["billpost.session_factory"]()
    try:
        try:
            result = batches.gather_batches(
                session, period, Actor.cli(),
                size=size or batches.default_batch_size(),
                key_accounts_only=app.config["PAPER_KEY_ACCOUNTS_ONLY"],
            )
        except batches.PaperError as exc:
            from flask_babel import force_locale

            with force_locale(app.config["BABEL_DEFAULT_LOCALE"]):
                raise click.ClickException(str(exc)) from None
        session.commit()
        click.echo(
            f"{period}: {len(result.batch_ids)} new batch(es), {result.deliveries} bills, {result.copies} copies"
            + (f", {result.refused} refused (not key accounts)" if result.refused else "")
        )
        pending = batches.unfinished_batch_ids(session, period)
        if now:
            for batch_id in pending:
                batch = batches.render_batch_now(session, batch_id, Actor.cli())
                session.commit()
                click.echo(f"batch {batch.batch_no}: {batch.pages_count} pages -> {batch.pdf_path}")
        elif pending:
            from console import outbox

            batches.queue_rendering(session, pending)
            session.commit()
            jobs = outbox.handed_over(session)
            click.echo(f"{len(pending)} batch(es) rendering: {jobs} job(s) on the pdf queue")
    finally:
        session.close()


def register(app: Flask, import_group: click.Group) -> None:
    """Adds this domain's commands."""
    app.cli.add_command(print_group)
