"""`console doctor` and `console retention run`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_babel import force_locale
from flask_babel import gettext as _

from console.db import utcnow
from console.extensions import db


@click.command("doctor")
@click.option("--probe", is_flag=True, help="Also send a probe to DOCTOR_PROBE_ADDRESS and wait for its report in mailin.")
@click.option("--wait", "wait_seconds", default=120.0, show_default=True, help="Seconds to wait for the probe's report.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help="Language of the findings (default: DEFAULT_LOCALE).")
@with_appcontext
def doctor(probe: bool, wait_seconds: float, lang: str | None) -> None:
    """Check this installation; exit status 1 when anything is wrong."""
    from console.ops import doctor as checks

    app = current_app._get_current_object()
    with force_locale(lang or app.config["BABEL_DEFAULT_LOCALE"]):
        findings = checks.run_checks(app)
        if probe:
            findings.append(checks.probe_bounce_route(app, app.extensions["billpost.session_factory"], wait_seconds))
        faults = [f for f in findings if not f.ok]
        for finding in findings:
            mark = "!!" if not finding.ok else ("--" if finding.warning else "ok")
            click.echo(f"{mark} {finding.name}: {finding.text}")
        click.echo(_("%(count)d problem(s) found.", count=len(faults)) if faults else _("Everything checked is in order."))
    if faults:
        raise SystemExit(1)


@click.group("retention")
def retention_group() -> None:
    """Retention of raw inbound mail, sandbox mail, used confirmations and rendered PDFs (docs/deploy.md)."""


@retention_group.command("run")
@with_appcontext
def retention_run() -> None:
    """Apply the retention periods now (the worker runs this daily)."""
    from console.ops import retention

    config = current_app.config
    now = utcnow()
    counts = retention.purge_rows(db(), now, config)
    db().commit()
    counts |= retention.remove_old_pdfs(Path(config["INSTANCE_PATH"]), now.date(), int(config["RETAIN_PDF_YEARS"]))
    click.echo(" ".join(f"{key}={value}" for key, value in counts.items()))


def register(app: Flask, import_group: click.Group) -> None:
    app.cli.add_command(doctor)
    app.cli.add_command(retention_group)
