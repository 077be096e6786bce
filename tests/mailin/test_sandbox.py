"""The demo mail sandbox: DSN offered and accepted, real RFC 3464 reports through the same intake."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from console.delivery.reports import parse_message
from console.devtools.ports import free_port
from console.devtools.sandbox import outcome_for, start_sandbox
from console.models import Delivery, WorkItem
from console.models.mailin import InboundMessage, SandboxMessage
from tests.mailin.conftest import BOUNCE_DOMAIN, add_attempt, wait_for


def xtext(value: str) -> str:
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


@pytest.fixture
def sandbox(committed_app):
    running = start_sandbox(committed_app, port=free_port(), report_delay=0.05)
    yield running
    running.stop()


def _send(sandbox, attempt, address: str, notify: str = "SUCCESS,FAILURE,DELAY") -> None:  # noqa: ANN001
    msg = EmailMessage()
    msg["From"] = "billing@bills.test"
    msg["To"] = address
    msg["Subject"] = "您的电费账单 Your electricity bill"
    msg["Message-ID"] = attempt.message_id
    msg["X-Bill-Id"] = str(attempt.delivery.bill_id)
    msg.set_content("账单 bill")
    with smtplib.SMTP(sandbox.host, sandbox.port, timeout=30) as conn:
        conn.ehlo()
        assert conn.has_extn("dsn")
        conn.sendmail(
            f"bounces+{attempt.token}@{BOUNCE_DOMAIN}", [address], msg.as_bytes(),
            mail_options=["RET=HDRS", f"ENVID={xtext(attempt.envid)}"],
            rcpt_options=[f"NOTIFY={notify}", f"ORCPT=rfc822;{xtext(address)}"],
        )


def _delivery(cdb, attempt) -> Delivery:  # noqa: ANN001
    cdb.rollback()
    return cdb.get(Delivery, attempt.delivery_id)


def test_outcome_patterns():
    assert outcome_for("alice@customers.test", "bounce|fail", "silent") == "delivered"
    assert outcome_for("bounce.me@customers.test", "bounce|fail", "silent") == "failed"
    assert outcome_for("Silent-Bob@customers.test", "bounce|fail", "silent") == "silent"


def test_delivered_report_confirms_through_the_intake(cdb, sandbox):
    attempt = add_attempt(cdb, "alice+bill@customers.test")
    cdb.commit()
    _send(sandbox, attempt, "alice+bill@customers.test")
    assert wait_for(lambda: _delivery(cdb, attempt).status == "confirmed")
    assert _delivery(cdb, attempt).confirmed_by == "delivered"
    kept = cdb.scalars(select(SandboxMessage)).one()
    assert (kept.rcpt_to, kept.outcome, kept.ret) == ("alice+bill@customers.test", "delivered", "HDRS")
    assert kept.envid == attempt.envid and kept.notify == "DELAY,FAILURE,SUCCESS"
    report = cdb.scalars(select(InboundMessage)).one()
    assert report.source == "sandbox" and report.classification == "report"
    parsed = parse_message(report.raw)
    assert parsed.envid == attempt.envid  # the ENVID comes back exactly, case and all
    assert parsed.original_message_id == attempt.message_id.strip("<>")
    (block,) = parsed.recipients
    assert block.original_recipient == "alice+bill@customers.test"  # ORCPT xtext decoded
    assert (block.action, block.status) == ("delivered", "2.0.0")


def test_fail_pattern_yields_a_failed_report(cdb, sandbox):
    attempt = add_attempt(cdb, "bounce-me@customers.test")
    cdb.commit()
    _send(sandbox, attempt, "bounce-me@customers.test")
    assert wait_for(lambda: _delivery(cdb, attempt).status == "failed")
    item = cdb.scalars(select(WorkItem).where(WorkItem.delivery_id == attempt.delivery_id)).one()
    assert item.params["status"] == "5.1.1"
    (block,) = parse_message(cdb.scalars(select(InboundMessage)).one().raw).recipients
    assert (block.action, block.status) == ("failed", "5.1.1") and "User unknown" in block.diagnostic


def test_silent_pattern_yields_nothing(cdb, sandbox):
    attempt = add_attempt(cdb, "silent-bob@customers.test")
    cdb.commit()
    _send(sandbox, attempt, "silent-bob@customers.test")
    assert wait_for(lambda: cdb.rollback() or cdb.scalar(select(func.count()).select_from(SandboxMessage)) == 1)
    time.sleep(0.5)
    cdb.rollback()
    assert cdb.scalar(select(func.count()).select_from(InboundMessage)) == 0
    assert _delivery(cdb, attempt).status == "sent"


def test_no_success_report_without_notify_success(cdb, sandbox):
    attempt = add_attempt(cdb, "plain@customers.test")
    cdb.commit()
    _send(sandbox, attempt, "plain@customers.test", notify="FAILURE")
    assert wait_for(lambda: cdb.rollback() or cdb.scalar(select(func.count()).select_from(SandboxMessage)) == 1)
    time.sleep(0.3)
    cdb.rollback()
    assert cdb.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_bad_dsn_parameters_are_refused(sandbox):
    with smtplib.SMTP(sandbox.host, sandbox.port, timeout=30) as conn:
        conn.ehlo()
        assert conn.mail(f"bounces+x@{BOUNCE_DOMAIN}", ["RET=BOTH"])[0] == 501
        conn.rset()
        assert conn.mail(f"bounces+x@{BOUNCE_DOMAIN}", ["RET=FULL", "ENVID=abc"])[0] == 250
        assert conn.rcpt("a@customers.test", ["NOTIFY=NEVER,SUCCESS"])[0] == 501
        assert conn.rcpt("a@customers.test", ["NOTIFY=NEVER"])[0] == 250


def test_never_relays_reports_for_foreign_senders(cdb, sandbox):
    with smtplib.SMTP(sandbox.host, sandbox.port, timeout=30) as conn:
        conn.sendmail("someone@elsewhere.test", ["bounce-x@customers.test"], b"Subject: x\r\n\r\nhi\r\n",
                      rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    assert wait_for(lambda: cdb.rollback() or cdb.scalar(select(func.count()).select_from(SandboxMessage)) == 1)
    time.sleep(0.3)
    cdb.rollback()
    assert cdb.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_demo_loop_with_the_real_sender(cdb, committed_app, sandbox):
    """The embedded default end to end: publish → sender (SMTP_HOST empty: the sandbox, DSN offered)
    → sandbox report → intake → policy. Delivered confirms, the fail pattern opens a work item,
    silence leaves the delivery waiting for the sweeper."""
    from console.audit import Actor
    from console.db import utcnow
    from console.delivery.publish import publish_cycle
    from console.delivery.sender import send_batch
    from tests.delivery.conftest import add_bill, new_customer

    bills = []
    for email_address in ("demo-ok@customers.test", "demo-bounce@customers.test", "demo-silent@customers.test"):
        bills.append(add_bill(cdb, new_customer(cdb, email=email_address)))
    publish_cycle(cdb, bills[0].cycle_id, Actor.cli(), utcnow())
    cdb.commit()
    deliveries = {
        d.address: d.id
        for d in cdb.scalars(select(Delivery).where(Delivery.bill_id.in_([b.id for b in bills]),
                                                    Delivery.channel == "email"))
    }
    config = dict(committed_app.config) | {"SMTP_HOST": "", "SANDBOX_PORT": sandbox.port}
    with committed_app.app_context():  # as in a job: the message renders the bill with templates
        counts = send_batch(cdb, list(deliveries.values()), config)
    assert counts["sent"] == 3

    def status(address: str) -> str:
        cdb.rollback()
        return cdb.get(Delivery, deliveries[address]).status

    assert wait_for(lambda: status("demo-ok@customers.test") == "confirmed")
    assert wait_for(lambda: status("demo-bounce@customers.test") == "failed")
    time.sleep(0.3)
    assert status("demo-silent@customers.test") == "sent"
    cdb.rollback()
    assert cdb.scalars(select(WorkItem.delivery_id)).all() == [deliveries["demo-bounce@customers.test"]]
    assert cdb.scalar(select(func.count()).select_from(SandboxMessage)) == 3
    assert cdb.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.quarantined)) == 0
