"""The whole loop against a real Postfix on loopback: publish → send with DSN → Postfix delivers or
fails → RFC 3464 report → mail-in's receiver → policy → contact record or work item."""

from __future__ import annotations

import email
import time
from datetime import timedelta
from email import policy as email_policy

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.db import utcnow
from console.delivery.publish import publish_cycle
from console.delivery.sender import send_batch
from console.delivery.sweeper import sweep
from console.models import ContactRecord, Delivery, DeliveryAttempt, WorkItem
from tests.delivery.conftest import WorkerProcess, add_bill, new_customer

pytestmark = pytest.mark.postfix


def _session(app):  # noqa: ANN001, ANN202
    return app.extensions["billpost.session_factory"]()


def _publish(app, **customer_fields):  # noqa: ANN001, ANN202
    """One customer, one bill, published; returns the e-mail delivery ids."""
    with app.app_context():
        session = _session(app)
        customer = new_customer(session, **customer_fields)
        bill = add_bill(session, customer)
        publish_cycle(session, bill.cycle_id, Actor.cli(), utcnow())
        session.commit()
        ids = session.scalars(
            select(Delivery.id).where(Delivery.bill_id == bill.id, Delivery.channel == "email").order_by(Delivery.id)
        ).all()
        session.close()
        return list(ids)


def _send(app, ids, **kwargs):  # noqa: ANN001, ANN003, ANN202
    with app.app_context():
        session = _session(app)
        try:
            return send_batch(session, ids, app.config, **kwargs)
        finally:
            session.close()


def _wait_for(app, delivery_id, predicate, seconds=15.0):  # noqa: ANN001, ANN202
    """Poll the database (short waits) until predicate(delivery) holds; returns the delivery."""
    deadline = time.monotonic() + seconds
    while True:
        session = _session(app)
        delivery = session.get(Delivery, delivery_id)
        ok = predicate(delivery)
        session.close()
        if ok:
            return delivery
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery {delivery_id} stayed {delivery.status}")
        time.sleep(0.1)


def _maildir(postfix, seconds=10.0, at_least=1):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while postfix.message_count() < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return [email.message_from_bytes(raw, policy=email_policy.default) for raw in postfix.all_messages()]


def test_delivered_report_confirms_and_writes_contact_record(mail_loop, loopback_postfix):
    app = mail_loop
    [delivery_id] = _publish(app)
    assert _send(app, [delivery_id])["sent"] == 1
    delivery = _wait_for(app, delivery_id, lambda d: d.status == "confirmed")
    assert delivery.confirmed_by == "delivered"
    session = _session(app)
    attempt = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)).one()
    assert attempt.dsn_requested and attempt.smtp_response.startswith("250")
    assert attempt.outcome == "delivered" and attempt.status_code == "2.0.0"
    assert delivery.confirm_due_at is None
    record = session.scalars(select(ContactRecord).where(ContactRecord.bill_id == delivery.bill_id)).one()
    assert record.channel == "email"
    assert record.details["message_id"] == attempt.message_id
    assert record.details["address"] == delivery.address
    assert record.details["confirmed_by"] == "delivered"
    session.close()

    [message] = _maildir(loopback_postfix)
    assert message["Message-ID"] == attempt.message_id
    assert message["Return-Path"] == f"<bounces+{attempt.token}@bounces.bills.test>"
    assert "电费账单" in message["Subject"]
    assert message["To"].addresses[0].addr_spec == delivery.address
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"/my/bills/{delivery.bill_id}" in text and f"/my/bills/{delivery.bill_id}" in html
    assert "电费  86.45 元" in text and "Dear customer" in text  # each charge by its Chinese label
    assert "86.45" in html


def test_failure_after_acceptance_opens_work_item_with_diagnostic(mail_loop):
    app = mail_loop
    [delivery_id] = _publish(app, email="fail-late@customers.test")
    assert _send(app, [delivery_id])["sent"] == 1  # Postfix accepted it
    delivery = _wait_for(app, delivery_id, lambda d: d.status == "failed")
    assert delivery.attempts_made == 1
    session = _session(app)
    item = session.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery_id)).one()
    assert item.reason == "email_failed" and item.assigned_role == "phone_rep"
    assert item.code == "email_failed" and "does not exist here" in item.params["diagnostic"]
    assert item.details["attempts"][0]["status"] == "5.1.1"
    # no resend to the same address, even when the deadline passes
    assert sweep(session, utcnow() + timedelta(days=3), app.config)["resend_queued"] == 0
    session.close()


def test_relayed_confirms_flagged(mail_loop):
    app = mail_loop
    [delivery_id] = _publish(app, email="someone@relay.test")
    _send(app, [delivery_id])
    delivery = _wait_for(app, delivery_id, lambda d: d.status == "confirmed")
    assert delivery.confirmed_by == "relayed"


def test_refused_at_rcpt_is_a_work_item_at_once_and_never_resent(mail_loop, loopback_postfix):
    app = mail_loop
    manager_session = _session(app)
    from console.staff.services import create_user

    manager = create_user(manager_session, "am-delivery", "correct horse battery", ["account_manager"], Actor.system())
    manager_session.commit()
    manager_id = manager.id
    manager_session.close()
    [delivery_id] = _publish(app, email="nosuch-user@customers.test", key_account=True, account_manager_id=manager_id)
    assert _send(app, [delivery_id])["refused"] == 1
    session = _session(app)
    delivery = session.get(Delivery, delivery_id)
    assert delivery.status == "failed" and delivery.attempts_made == 1
    item = session.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery_id)).one()
    assert (item.assigned_role, item.assigned_user_id) == ("account_manager", manager_id)
    assert "550" in item.details["attempts"][0]["smtp_response"]
    assert _deadline_counts(sweep(session, utcnow() + timedelta(days=3), app.config)) == (0, 0, [])
    session.close()


def test_silence_past_deadline_resends_once_then_work_item(mail_loop, loopback_postfix):
    app = mail_loop
    [delivery_id] = _publish(app, email="silent-one@customers.test")
    _send(app, [delivery_id])
    session = _session(app)
    first = session.get(Delivery, delivery_id)
    assert first.status == "sent"
    assert first.confirm_due_at - session.scalars(select(DeliveryAttempt.sent_at)).one() == app.config["CONFIRM_AFTER"]
    later = utcnow() + timedelta(hours=25)
    counts = sweep(session, later, app.config)
    session.commit()
    assert counts["resend_queued"] == 1 and counts["to_send"] == [delivery_id]
    session.close()
    assert _send(app, [delivery_id], now=lambda: later)["sent"] == 1
    assert _send(app, [delivery_id], now=lambda: later)["sent"] == 0  # nothing more to send
    session = _session(app)
    counts = sweep(session, later + timedelta(hours=25), app.config)
    session.commit()
    assert _deadline_counts(counts) == (0, 1, [])
    attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)).all()
    assert len(attempts) == 2 and attempts[0].message_id != attempts[1].message_id
    assert attempts[0].token != attempts[1].token
    item = session.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery_id)).one()
    assert item.reason == "email_unconfirmed" and len(item.details["attempts"]) == 2
    assert session.get(Delivery, delivery_id).status == "failed"
    session.close()


def test_header_injection_and_address_tricks_never_reach_headers_or_envelope(mail_loop, loopback_postfix):
    app = mail_loop
    ids = _publish(
        app,
        name="客户\r\nBcc: victim@customers.test\r\nX-Evil: 1",
        email="ok-inject@customers.test",
        recipients=[
            {"name": "trick", "relation": "other", "channel": "email", "address": "a@customers.test)<nosuch-evil@customers.test>"},
            {"name": "trick2", "relation": "other", "channel": "email", "address": "b@customers.test, evil2@customers.test"},
            {"name": "名字\nTo: evil3@customers.test", "relation": "proxy", "channel": "email", "address": "ok-proxy@customers.test"},
        ],
    )
    session = _session(app)
    statuses = {d.address: d.status for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    session.close()
    assert statuses["ok-inject@customers.test"] == "queued" and statuses["ok-proxy@customers.test"] == "queued"
    assert sorted(s for s in statuses.values()) == ["failed", "failed", "queued", "queued"]
    assert _send(app, ids)["sent"] == 2
    messages = _maildir(loopback_postfix, at_least=2)
    time.sleep(0.5)
    messages = _maildir(loopback_postfix, at_least=2)
    assert len(messages) == 2
    for message in messages:
        assert message["Bcc"] is None and message["X-Evil"] is None
        assert len(message.get_all("To")) == 1
        assert [a.addr_spec for a in message["To"].addresses] in (["ok-inject@customers.test"], ["ok-proxy@customers.test"])
        assert message["Delivered-To"] in ("ok-inject@customers.test", "ok-proxy@customers.test")
    log = loopback_postfix.log_text()
    assert "evil" not in log and "victim" not in log


def test_kill_9_of_a_worker_mid_batch_loses_nothing_and_duplicates_at_most_the_one_in_flight(
    mail_loop, loopback_postfix, own_redis
):
    import signal

    from console import outbox
    from console.delivery.queueing import queue_queued_sends

    app = mail_loop
    app.config.update(SEND_BATCH_SIZE=1000, SEND_REENQUEUE_SECONDS=0)
    total = 100
    with app.app_context():
        session = _session(app)
        cycle_bill = None
        for _ in range(total):
            customer = new_customer(session)
            cycle_bill = add_bill(session, customer, period="2026-10")
        session.commit()
        publish_cycle(session, cycle_bill.cycle_id, Actor.cli(), utcnow())
        session.commit()
        queue_queued_sends(session, utcnow(), 1000)
        session.commit()
        assert outbox.handed_over(session) == 1  # one batch of 100
        session.close()

    settings = {"DELIVERY_LEASE_SECONDS": "2", "SWEEP_SECONDS": "2", "SEND_REENQUEUE_SECONDS": "0"}
    worker = WorkerProcess(app, loopback_postfix.port, burst=True, **settings)
    try:
        deadline = time.monotonic() + 60
        while _sent(app) < 20:  # kill it once part of the batch is out
            worker.check_alive()
            assert time.monotonic() < deadline, "the worker never got going"
            time.sleep(0.01)
    finally:
        worker.stop(signal.SIGKILL)
    assert _sent(app) < total, "the batch finished before the kill; nothing tested"

    # A supervisor restarts the worker within 2 s. No sweep is called in-process: the restarted
    # worker arms the sweeper itself, which re-finds the unsent rows once the dead claim runs out.
    restarted_at = time.monotonic()
    worker = WorkerProcess(app, loopback_postfix.port, **settings)
    try:
        while (out := _sent(app)) < total - 1:
            worker.check_alive()
            assert time.monotonic() - restarted_at < 60, (
                f"not recovered 60 s after the restart: {out} of {total} sent; unsent: {_unsent(app)}; "
                f"worker: {worker.tail()}"
            )
            time.sleep(0.2)
        recovery = time.monotonic() - restarted_at
        assert recovery < 30, recovery  # one lease (2 s) + one sweep period (2 s) + sending, with room
    finally:
        worker.stop()

    session = _session(app)
    deliveries = session.scalars(select(Delivery).where(Delivery.channel == "email")).all()
    assert len(deliveries) == total
    assert {d.status for d in deliveries} <= {"sent", "confirmed"}
    attempts = session.scalars(select(DeliveryAttempt)).all()
    assert len(attempts) == total and {a.attempt_no for a in attempts} == {1}
    # The one in flight at the kill may have reached Postfix and come back `delivered` before the
    # recovery: then its delivery is confirmed (by the report) and rightly never sent again.
    unsent = [a for a in attempts if a.sent_at is None]
    assert len(unsent) <= 1
    for attempt in unsent:
        assert attempt.outcome == "delivered" and session.get(Delivery, attempt.delivery_id).status == "confirmed"
    expected = {a.message_id for a in attempts}
    session.close()
    messages = _maildir(loopback_postfix, seconds=30, at_least=total)
    ids = [m["Message-ID"] for m in messages]
    assert set(ids) == expected  # nothing lost
    assert len(ids) - len(set(ids)) <= 1  # at most the one in flight twice, with the same Message-ID


def _deadline_counts(counts: dict) -> tuple:
    return counts["resend_queued"], counts["escalated"], counts["to_send"]


def _unsent(app) -> list:  # noqa: ANN001
    """(delivery id, its status, attempt outcome) of each attempt without sent_at: explains a stalled wait."""
    session = _session(app)
    try:
        return session.execute(
            select(Delivery.id, Delivery.status, DeliveryAttempt.outcome)
            .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id).where(DeliveryAttempt.sent_at.is_(None))
        ).all()
    finally:
        session.close()


def _sent(app) -> int:  # noqa: ANN001
    session = _session(app)
    try:
        return session.scalar(select(func.count(DeliveryAttempt.id)).where(DeliveryAttempt.sent_at.is_not(None)))
    finally:
        session.close()
