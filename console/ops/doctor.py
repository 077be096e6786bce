"""`console doctor`: checks a configured installation and says in words what is wrong.

Each check returns a Finding (its name, whether it passed, a sentence in the reader's language from
the ops catalog). `run_checks` runs them in the order an operator fixes things: database, Redis, the
relay, the font, the sweeper, disk space; `probe_bounce_route` (`--probe`) sends one message from a
VERP address to DOCTOR_PROBE_ADDRESS — an address the relay accepts and cannot deliver — and waits
for the bounce to come back through the bounce domain's MX into `mailin`.
"""

from __future__ import annotations

import secrets
import shutil
import smtplib
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from flask import Flask
from flask_babel import gettext as _
from sqlalchemy import func, select

from console import smtp
from console.audit import Actor
from console.db import utcnow
from console.ops import health


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    text: str
    warning: bool = False  # worth saying, not a fault (the exit status stays 0)


def check_database(app: Flask) -> list[Finding]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from console.migrations import alembic_config

    engine = app.extensions["billpost.engine"]
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # noqa: BLE001 - the answer is the finding
        return [Finding("database", False, _("The database cannot be reached (%(error)s). Check DATABASE_URL.",
                                             error=type(exc).__name__))]
    heads = set(ScriptDirectory.from_config(alembic_config(app)).get_heads())
    if current != heads:
        return [Finding("database", False, _(
            "The database is not migrated (at %(current)s, the code needs %(head)s): run `console db upgrade`.",
            current=", ".join(sorted(current)) or "-", head=", ".join(sorted(heads))))]
    return [Finding("database", True, _("The database answers and is at the latest migration."))]


def check_redis(app: Flask) -> list[Finding]:
    result = health.redis_check(app)
    if not result.ok:
        return [Finding("redis", False, _("Redis cannot be reached (%(error)s). Check REDIS_URL.", error=result.detail))]
    return [Finding("redis", True, _("Redis answers."))]


def check_relay(app: Flask) -> list[Finding]:
    config = app.config
    host, port = smtp.smtp_target(config)
    try:
        conn = smtp.connect(config, timeout=10)
    except (OSError, smtplib.SMTPException) as exc:
        return [Finding("relay", False, _("The SMTP relay %(host)s:%(port)s cannot be reached (%(error)s).",
                                          host=host, port=port, error=type(exc).__name__))]
    try:
        dsn, pipelining = conn.has_extn("dsn"), conn.has_extn("pipelining")
    finally:
        conn.close()
    findings = []
    if not config["SMTP_HOST"]:
        findings.append(Finding("relay", True, _(
            "SMTP_HOST is empty: bills go to the demo mail sandbox, never to customers."), warning=True))
    findings.append(Finding("relay_dsn", dsn, _("The relay %(host)s:%(port)s offers DSN.", host=host, port=port) if dsn
                            else _("The relay %(host)s:%(port)s does not offer DSN: no delivery would ever be confirmed "
                                   "by a report. Turn DSN on (Postfix: remove dsn from smtpd_discard_ehlo_keywords).",
                                   host=host, port=port)))
    findings.append(Finding("relay_pipelining", pipelining,
                            _("The relay offers PIPELINING.") if pipelining
                            else _("The relay does not offer PIPELINING: sending is slower (one round trip per "
                                   "command).")))
    return findings


def check_font(app: Flask) -> list[Finding]:
    font = Path(app.config["PAPER_CJK_FONT"])
    if not font.is_file():
        return [Finding("font", False, _(
            "The CJK font %(path)s is missing: bill PDFs cannot be rendered. Install fonts-wqy-microhei or set "
            "PAPER_CJK_FONT.", path=str(font)))]
    return [Finding("font", True, _("The CJK font for PDFs is present."))]


def check_sweeper(app: Flask) -> list[Finding]:
    from console.queues import get_redis
    from console.worker import SWEEP_ARMED_KEY

    try:
        armed = bool(get_redis(app).exists(SWEEP_ARMED_KEY))
        lag = health.sweep_lag(app)
    except Exception as exc:  # noqa: BLE001
        return [Finding("sweeper", False, _("The sweeper cannot be checked: Redis does not answer (%(error)s).",
                                            error=type(exc).__name__))]
    limit = int(app.config["HEALTH_SWEEP_LAG_SECONDS"])
    findings = [Finding("sweeper_armed", armed, _("The sweeper is armed.") if armed else _(
        "The sweeper is not armed: no `console worker` is running (deadlines, resends and lost jobs wait)."))]
    if lag is None:
        findings.append(Finding("sweeper_recent", False, _("No sweep has been recorded yet.")))
    elif lag > limit:
        findings.append(Finding("sweeper_recent", False, _(
            "The last sweep was %(seconds)d s ago (more than %(limit)d s): is a worker running?",
            seconds=int(lag), limit=limit)))
    else:
        findings.append(Finding("sweeper_recent", True, _("The last sweep was %(seconds)d s ago.", seconds=int(lag))))
    return findings


def check_disk(app: Flask) -> list[Finding]:
    folder = Path(app.config["INSTANCE_PATH"])
    free_mb = shutil.disk_usage(folder).free // (1024 * 1024)
    wanted = int(app.config["DOCTOR_MIN_FREE_MB"])
    if free_mb < wanted:
        return [Finding("disk", False, _(
            "Only %(free)d MB free under %(path)s for PDFs (DOCTOR_MIN_FREE_MB wants %(wanted)d MB).",
            free=free_mb, path=str(folder), wanted=wanted))]
    return [Finding("disk", True, _("%(free)d MB free for PDFs under %(path)s.", free=free_mb, path=str(folder)))]


def check_reports_arriving(app: Flask) -> list[Finding]:
    """Without sending anything: e-mails went out with DSN between 24 h and 1 h ago, and since the
    first of them not one message reached the bounce domain — every delivered DSN e-mail brings a
    report, so the route from the MX to mailin is broken (or mailin is down)."""
    from console.models import DeliveryAttempt
    from console.models.mailin import InboundMessage

    now = utcnow()
    session = app.extensions["billpost.session_factory"]()
    try:
        first_sent = session.scalar(
            select(func.min(DeliveryAttempt.sent_at)).where(
                DeliveryAttempt.dsn_requested.is_(True),
                DeliveryAttempt.sent_at >= now - timedelta(hours=24),
                DeliveryAttempt.sent_at <= now - timedelta(hours=1),
            )
        )
        if first_sent is None:
            return [Finding("reports", True, _("No e-mail with DSN went out in the last day: nothing to expect yet."),
                            warning=True)]
        received = session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.received_at >= first_sent)
        )
    except Exception as exc:  # noqa: BLE001 - the database finding says why
        return [Finding("reports", False, _("The reports cannot be checked (%(error)s).", error=type(exc).__name__))]
    finally:
        session.close()
    if not received:
        return [Finding("reports", False, _(
            "E-mails went out with DSN since %(since)s UTC, and no report has reached mailin since: is mailin "
            "running, and is the bounce domain routed to it? (`console doctor --probe`)",
            since=first_sent.strftime("%Y-%m-%d %H:%M")))]
    return [Finding("reports", True, _("%(count)d message(s) reached the bounce domain since the first of the last "
                                       "day's e-mails went out.", count=received))]


CHECKS = (check_database, check_redis, check_relay, check_font, check_sweeper, check_disk, check_reports_arriving)


def run_checks(app: Flask) -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(app))
    return findings


def probe_bounce_route(app: Flask, session_factory, wait_seconds: float = 120.0) -> Finding:  # noqa: ANN001
    """Send a probe from bounces+doctor-<random>@BOUNCE_DOMAIN to DOCTOR_PROBE_ADDRESS and wait for
    the report to be taken in by `mailin`. The probe's message is marked handled in the quarantine."""
    from console.delivery.intake import mark_handled
    from console.models.mailin import InboundMessage

    config = app.config
    token = "doctor-" + secrets.token_hex(8)
    sender = f"bounces+{token}@{config['BOUNCE_DOMAIN']}"
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = config["DOCTOR_PROBE_ADDRESS"]
    message["Subject"] = "Billpost doctor probe"
    message["Message-ID"] = make_msgid(domain=config["BOUNCE_DOMAIN"])
    message.set_content("A probe of `console doctor`: it should bounce back to the bounce domain.\n")
    started = utcnow()
    try:
        conn = smtp.connect(config, timeout=30)
        try:
            options = ["RET=HDRS", f"ENVID={token}"] if conn.has_extn("dsn") else []
            rcpt = ["NOTIFY=FAILURE,DELAY"] if conn.has_extn("dsn") else []
            conn.sendmail(sender, [config["DOCTOR_PROBE_ADDRESS"]], message.as_bytes(), mail_options=options,
                          rcpt_options=rcpt)
        finally:
            conn.close()
    except smtplib.SMTPRecipientsRefused:
        return Finding("bounce_route", False, _(
            "The relay refused the probe address %(address)s at once: set DOCTOR_PROBE_ADDRESS to an address the "
            "relay accepts and then bounces.", address=config["DOCTOR_PROBE_ADDRESS"]))
    except (OSError, smtplib.SMTPException) as exc:
        return Finding("bounce_route", False, _("The probe could not be sent (%(error)s).", error=type(exc).__name__))
    deadline = time.monotonic() + wait_seconds
    while True:
        session = session_factory()
        try:
            rows = session.execute(
                select(InboundMessage.id, InboundMessage.rcpt_tos).where(InboundMessage.received_at >= started)
            ).all()
            found = next((row.id for row in rows if any(token in str(r) for r in row.rcpt_tos or ())), None)
            if found is not None:
                mark_handled(session, found, Actor.cli(), "console doctor probe")
                session.commit()
                seconds = (utcnow() - started).total_seconds()
                return Finding("bounce_route", True, _(
                    "The probe's report reached mailin after %(seconds)d s: the bounce domain is routed.",
                    seconds=int(seconds)))
        finally:
            session.close()
        if time.monotonic() > deadline:
            return Finding("bounce_route", False, _(
                "No report of the probe reached mailin within %(seconds)d s: the bounce domain %(domain)s is not "
                "routed to mailin (MX, the MTA's transport map, MAILIN_TRUSTED_PEERS) or the relay keeps bounces.",
                seconds=int(wait_seconds), domain=config["BOUNCE_DOMAIN"]))
        time.sleep(0.5)
