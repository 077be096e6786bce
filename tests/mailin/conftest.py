"""Fixtures of the mail-in tests: sent attempts to report on, report builders, a receiver on a free port."""

from __future__ import annotations

import itertools
import smtplib
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from console.db import utcnow
from console.devtools.ports import free_port
from console.models import Bill, Customer, Cycle, Delivery, DeliveryAttempt, ServicePoint

SAMPLES = Path("/work/shared/reference/dsn-samples")
HERE_SAMPLES = Path(__file__).parent / "samples"
BOUNCE_DOMAIN = "bounces.bills.test"

_n = itertools.count(1)


def sample(name: str) -> bytes:
    """The real Postfix reports (copied next to the tests so CI has them)."""
    return (HERE_SAMPLES / name).read_bytes()


def add_attempt(session, address: str | None = None, attempt_no: int = 1, key_account: bool = False):  # noqa: ANN001, ANN201
    """A customer, a bill, an e-mail delivery waiting for confirmation and its sent attempt."""
    n = next(_n)
    stamp = f"{int(time.time() * 1000) % 10**9}{n}"
    customer = Customer(
        account_no=f"M{stamp}"[:20], name=f"收件客户{n}", customer_type="residential",
        email=address or f"c{stamp}@customers.test", phone="13800000000", postal_address="苏州市",
        postal_code="215000", wants_ebill=True, channel_portal=True, channel_email=True, channel_paper=False,
        key_account=key_account,
    )
    session.add(customer)
    session.flush()
    point = ServicePoint(
        customer_id=customer.id, point_no=f"P{stamp}"[:20], address="苏州市人民路1号", meter_no=f"M{stamp}"[:20],
        tariff_code="RES", read_day=10,
    )
    session.add(point)
    period = "2031-01"
    cycle = session.scalars(select(Cycle).where(Cycle.period == period)).first()
    if cycle is None:
        cycle = Cycle(period=period, bill_date=date(2031, 1, 25), status="published")
        session.add(cycle)
        session.flush()
    bill = Bill(
        bill_no=f"MB{stamp}"[:32], cycle_id=cycle.id, customer_id=customer.id, service_point_id=point.id,
        unit_key=f"P{stamp}", bill_type="regular", template="residential-regular", bill_date=cycle.bill_date,
        due_date=date(2031, 2, 10), previous_balance=Decimal("0"), payments_total=Decimal("0"),
        charges_total=Decimal("86.45"), current_balance=Decimal("86.45"), deposit_held=Decimal("0"),
        status="published",
    )
    session.add(bill)
    session.flush()
    now = utcnow()
    delivery = Delivery(
        bill_id=bill.id, customer_id=customer.id, channel="email", address=customer.email,
        recipient_name=customer.name, status="sent", attempts_made=attempt_no,
        confirm_due_at=now + timedelta(hours=24),
    )
    session.add(delivery)
    session.flush()
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=attempt_no, token=f"tok{stamp}", envid=f"env-{stamp}",
        message_id=f"<msg{stamp}@bills.test>", dsn_requested=True, sent_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt


@pytest.fixture
def make_attempt(db):
    def _make(address: str | None = None, **kw) -> DeliveryAttempt:  # noqa: ANN001
        attempt = add_attempt(db, address, **kw)
        db.commit()
        return attempt

    return _make


def report_for(attempt: DeliveryAttempt, address: str, action: str = "delivered", status: str = "2.0.0",
               diagnostic: str = "smtp; 250 2.0.0 Ok", envid: str | None = "", message_id: str | None = "",
               rcpt_spacing: str = "; ", extra_blocks: str = "") -> bytes:
    """A Postfix-shaped report on `attempt` (envid/message_id "" = the attempt's, None = left out)."""
    envid = attempt.envid if envid == "" else envid
    message_id = attempt.message_id if message_id == "" else message_id
    envid_line = f"Original-Envelope-Id: {envid}\r\n" if envid is not None else ""
    mid_line = f"Message-ID: {message_id}\r\n" if message_id is not None else ""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mta.test>\r\n"
        f"To: bounces+{attempt.token}@{BOUNCE_DOMAIN}\r\n"
        "Subject: Delivery report\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-Id: <r{next(_n)}.{time.time()}@mta.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n'
        "\r\n"
        "--BB\r\nContent-Type: text/plain\r\n\r\nreport\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mta.test\r\n"
        f"{envid_line}"
        "\r\n"
        f"Final-Recipient: rfc822{rcpt_spacing}{address}\r\n"
        f"Original-Recipient: rfc822;{address}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
        f"{extra_blocks}"
        "\r\n"
        "--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: billing@bills.test\r\nTo: {address}\r\n{mid_line}X-Bill-Id: 7\r\n\r\n"
        "--BB--\r\n"
    ).encode()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def receiver(committed_app):
    from console.delivery.mailin import start_receiver

    running = start_receiver(committed_app, port=free_port())
    yield running
    running.stop()


@pytest.fixture
def smtp_to(receiver):
    """An smtplib connection to the receiver."""
    connections = []

    def _connect() -> smtplib.SMTP:
        conn = smtplib.SMTP(receiver.host, receiver.port, timeout=60)
        connections.append(conn)
        return conn

    yield _connect
    for conn in connections:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass


@pytest.fixture
def cdb(committed_app):
    """A session on committed data (for tests with the receiver's threads)."""
    session = committed_app.extensions["billpost.session_factory"]()
    yield session
    session.close()
