from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from console.audit import Actor


def _session():  # noqa: ANN202
    return current_app.extensions["billpost.session_factory"]()


@click.group("cycle")
def cycle_group() -> None:
    """Billing cycles: open, run (RQ jobs per chunk of customers), report, publish."""


@cycle_group.command("open")
@click.argument("period")
@click.option("--bill-date", type=click.DateTime(["%Y-%m-%d"]), help="Default: today within the period, else its last day.")
@with_appcontext
def cycle_open(period: str, bill_date) -> None:  # noqa: ANN001
    from console.billing import cycles, dates
    from console.billing.tariffs import seed_sample_tariffs
    from console.models.billing import Tariff

    with _session() as session:
        if session.query(Tariff).count() == 0:
            click.echo(f"no tariffs: loaded {seed_sample_tariffs(session)} SAMPLE tariffs")
        try:
            cycle = cycles.open_cycle(session, period, Actor.cli(), bill_date.date() if bill_date else None,
                                      today=dates.local_today(current_app.config["BABEL_DEFAULT_TIMEZONE"]))
        except cycles.CycleError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
        click.echo(f"cycle {cycle.period} {cycle.status}, bill date {cycle.bill_date}")


@cycle_group.command("run")
@click.argument("period")
@click.option("--wait", is_flag=True, help="Work the jobs in this process until done, printing progress.")
@with_appcontext
def cycle_run(period: str, wait: bool) -> None:
    from console import outbox
    from console.billing import cycles
    from console.billing.burst import run_burst

    app = current_app._get_current_object()
    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        try:
            chunks = cycles.start_run(session, period, Actor.cli(), int(app.config["CYCLE_CHUNK_SIZE"]))
        except cycles.CycleError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
        cycle = cycles.get_cycle(session, period)
        click.echo(f"cycle {period}: {len(chunks)} chunks to do, {_handed(outbox.handed_over(session))} jobs enqueued")
    if wait:
        run_burst(app, factory, cycle.id, click.echo)
        with factory() as session:
            report = cycles.cycle_report(session, period)
        click.echo(f"cycle {period} {report['status']}: {report['bills']} bills, "
                   f"{report['chunks']['chunks_failed']} failed chunks")
        if report["chunks"]["chunks_failed"]:
            for failed in report["failed_chunks"]:
                click.echo(f"  chunk {failed['chunk_no']} ({failed['customers']}): {failed['error'][0]}")
            sys.exit(1)


@cycle_group.command("report")
@click.argument("period")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def cycle_report(period: str, as_json: bool) -> None:
    from console.billing import cycles

    with _session() as session:
        try:
            report = cycles.cycle_report(session, period)
        except cycles.CycleError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for key, value in report.items():
            click.echo(f"{key}: {value}")


@cycle_group.command("publish")
@click.argument("period")
@with_appcontext
def cycle_publish(period: str) -> None:
    from console import outbox
    from console.billing import cycles

    with _session() as session:
        try:
            result = cycles.publish(session, period, Actor.cli(), current_app.config)
        except ValueError as exc:  # CycleError, or the delivery domain's PublishError
            raise click.ClickException(str(exc)) from None
        session.commit()
        sends = _handed(outbox.handed_over(session))
    click.echo(f"cycle {period} published: {result}; {sends} send jobs enqueued")


def _handed(count: int | None) -> str:
    return "no (Redis unreachable; the sweeper will queue them)" if count is None else str(count)


@click.group("bills")
def bills_group() -> None:
    """Bills: export."""


@bills_group.command("export")
@click.argument("period")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Default: standard output.")
@with_appcontext
def bills_export(period: str, fmt: str, output: str | None) -> None:
    from console.billing import export
    from console.billing.cycles import CycleError

    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        with _session() as session:
            count = (export.export_csv if fmt == "csv" else export.export_json)(session, period, out)
    except CycleError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"{count} bills written to {output}")


@click.group("tariffs")
def tariffs_group() -> None:
    """Tariffs (versioned by effective date)."""


@tariffs_group.command("load-samples")
@with_appcontext
def tariffs_load_samples() -> None:
    """Load the SAMPLE tariffs shipped with the console (RES, RES-TOU, COM, IND)."""
    from console.billing.tariffs import seed_sample_tariffs

    with _session() as session:
        added = seed_sample_tariffs(session)
        session.commit()
    click.echo(f"{added} sample tariff versions loaded")


def register(app: Flask, import_group: click.Group) -> None:
    """Adds this domain's commands."""
    for group in (cycle_group, bills_group, tariffs_group):
        app.cli.add_command(group)
