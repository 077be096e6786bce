"""`console doctor`: one test per fault it claims to find, and the probe through the documented Postfix."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from console import create_app
from console.db import make_engine
from console.ops import doctor, health


def _finding(findings, name):  # noqa: ANN001, ANN202
    return next(f for f in findings if f.name == name)


def test_a_migrated_database_passes(app):
    assert _finding(doctor.check_database(app), "database").ok


def test_an_unmigrated_database_is_found(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    app = create_app({"TESTING": True, "ENGINE": engine})
    finding = _finding(doctor.check_database(app), "database")
    assert not finding.ok and "console db upgrade" in finding.text
    engine.dispose()


def test_an_unreachable_database_is_found(tmp_path):
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    app = create_app({"TESTING": True, "ENGINE": engine})
    finding = _finding(doctor.check_database(app), "database")
    assert not finding.ok and "DATABASE_URL" in finding.text


def test_redis_unreachable_is_found(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/10"
    app.extensions.pop("billpost.redis", None)
    assert not _finding(doctor.check_redis(app), "redis").ok
    assert not _finding(doctor.check_sweeper(app), "sweeper").ok


def test_a_relay_without_dsn_or_pipelining_is_found(app, plain_relay):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=plain_relay.port, SMTP_STARTTLS=False, SMTP_USER="")
    findings = doctor.check_relay(app)
    dsn, pipelining = _finding(findings, "relay_dsn"), _finding(findings, "relay_pipelining")
    assert not dsn.ok and "DSN" in dsn.text
    assert not pipelining.ok


def test_an_unreachable_relay_is_found(app):
    from console.devtools.ports import free_port

    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())
    assert not _finding(doctor.check_relay(app), "relay").ok


@pytest.mark.postfix
def test_the_documented_postfix_offers_dsn_and_pipelining(app, loopback_postfix):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=loopback_postfix.port, SMTP_STARTTLS=False, SMTP_USER="")
    findings = doctor.check_relay(app)
    assert _finding(findings, "relay_dsn").ok and _finding(findings, "relay_pipelining").ok


def test_a_missing_cjk_font_is_found(app, tmp_path):
    app.config["PAPER_CJK_FONT"] = str(tmp_path / "no-such-font.ttc")
    finding = _finding(doctor.check_font(app), "font")
    assert not finding.ok and "PAPER_CJK_FONT" in finding.text


def test_a_present_font_passes(app, tmp_path):
    font = tmp_path / "font.ttc"
    font.write_bytes(b"x")
    app.config["PAPER_CJK_FONT"] = str(font)
    assert _finding(doctor.check_font(app), "font").ok


def test_a_sweeper_not_armed_or_late_is_found(app, redis_conn):
    from console.worker import SWEEP_ARMED_KEY

    findings = doctor.check_sweeper(app)
    assert not _finding(findings, "sweeper_armed").ok and not _finding(findings, "sweeper_recent").ok
    redis_conn.set(SWEEP_ARMED_KEY, "w", ex=60)
    health.record_sweep(app, time.time() - 3600)
    findings = doctor.check_sweeper(app)
    assert _finding(findings, "sweeper_armed").ok and not _finding(findings, "sweeper_recent").ok
    health.record_sweep(app)
    assert all(f.ok for f in doctor.check_sweeper(app))


def test_too_little_disk_space_is_found(app):
    app.config["DOCTOR_MIN_FREE_MB"] = 10**12
    assert not _finding(doctor.check_disk(app), "disk").ok
    app.config["DOCTOR_MIN_FREE_MB"] = 1
    assert _finding(doctor.check_disk(app), "disk").ok


def test_a_bounce_domain_not_routed_is_found(app, plain_relay):
    """The relay takes the probe and nothing ever comes back to mailin."""
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=plain_relay.port, SMTP_STARTTLS=False, SMTP_USER="")
    finding = doctor.probe_bounce_route(app, app.extensions["billpost.session_factory"], wait_seconds=1)
    assert not finding.ok and app.config["BOUNCE_DOMAIN"] in finding.text
    [(mail_from, rcpts)] = plain_relay.messages
    assert mail_from.startswith("bounces+doctor-") and rcpts == [app.config["DOCTOR_PROBE_ADDRESS"]]


@pytest.mark.postfix
def test_the_probe_comes_back_through_the_documented_postfix_into_mailin(committed, loopback_postfix):
    """deploy/postfix/ as the loopback Postfix runs it: the probe bounces, the report is routed by
    billpost_transport to mailin's receiver, and the doctor sees it (and marks it handled)."""
    from console.delivery.mailin import start_receiver
    from console.models.mailin import InboundMessage

    app = committed
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=loopback_postfix.port, SMTP_STARTTLS=False, SMTP_USER="",
                      BOUNCE_DOMAIN="bounces.bills.test")
    receiver = start_receiver(app, "127.0.0.1", loopback_postfix.receiver_port)
    try:
        finding = doctor.probe_bounce_route(app, app.extensions["billpost.session_factory"], wait_seconds=30)
    finally:
        receiver.stop()
        loopback_postfix.flush_queue()
    assert finding.ok, finding.text
    session = app.extensions["billpost.session_factory"]()
    message = session.scalars(select(InboundMessage)).one()
    assert message.handled_at is not None and any("doctor-" in r for r in message.rcpt_tos)
    session.close()


@pytest.mark.parametrize(("lang", "words"), [("en", "CJK font"), ("zh", "字体")])
def test_the_command_says_what_is_wrong_in_both_languages_and_exits_1(app, runner, tmp_path, lang, words):
    app.config["PAPER_CJK_FONT"] = str(tmp_path / "missing.ttc")
    result = runner.invoke(args=["doctor", "--lang", lang])
    assert result.exit_code == 1
    assert words in result.output
    assert "!! font:" in result.output


def test_reports_that_stopped_arriving_are_found(app, db):
    from datetime import timedelta

    from console.audit import Actor
    from console.db import utcnow
    from console.delivery.publish import publish_cycle
    from console.models import Delivery, DeliveryAttempt
    from console.models.mailin import InboundMessage
    from tests.delivery.conftest import add_bill, new_customer

    assert _finding(doctor.check_reports_arriving(app), "reports").ok
    bill = add_bill(db, new_customer(db))
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    delivery = db.query(Delivery).filter_by(bill_id=bill.id, channel="email").one()
    sent = utcnow() - timedelta(hours=3)
    db.add(DeliveryAttempt(delivery_id=delivery.id, attempt_no=1, token="tok-doc", envid="env-doc",
                           message_id="<m@doc>", sent_at=sent, dsn_requested=True))
    db.commit()
    finding = _finding(doctor.check_reports_arriving(app), "reports")
    assert not finding.ok and "--probe" in finding.text
    db.add(InboundMessage(sha256="d" * 64, mail_from="<>", rcpt_tos=["bounces+tok-doc@b.test"],
                          received_at=sent + timedelta(minutes=1), size=1, raw=b"x", classification="report"))
    db.commit()
    assert _finding(doctor.check_reports_arriving(app), "reports").ok
