"""The sender and the message against a plain SMTP server without DSN (aiosmtpd), and the jobs
through a real Redis/RQ."""

from __future__ import annotations

import email
import threading
import time
from datetime import timedelta
from email import policy as email_policy

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from console.audit import Actor
from console.db import utcnow
from console.delivery.message import build_message, xtext
from console.delivery.publish import publish_cycle
from console.delivery.sender import send_batch
from console.delivery.sweeper import sweep
from console.emailaddress import InvalidAddress, parse_address
from console.models import Delivery, DeliveryAttempt
from tests.delivery.conftest import add_bill, new_customer


@pytest.mark.parametrize(
    "raw",
    [
        "a@x.org)<b@evil.test>",
        "a@x.org, b@evil.test",
        '"a" <b@evil.test>',
        "a@x.org\r\nRCPT TO:<b@evil.test>",
        "a@x.org\nBcc: b@evil.test",
        "<a@x.org>",
        "a@@x.org",
        "a@x.org b@evil.test",
        "",
        "a@x.org;b@evil.test",
    ],
)
def test_address_tricks_are_refused(raw):
    with pytest.raises(InvalidAddress):
        parse_address(raw)


def test_addresses_are_normalized_and_xtext_encoded():
    assert parse_address("  Someone@Customers.TEST ") == "Someone@customers.test"
    assert xtext("bill+4003=x@y.org") == "bill+2B4003+3Dx@y.org"


def _config(app, port):  # noqa: ANN001, ANN202
    return dict(app.config) | {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False, "SMTP_USER": ""}


def _publish(db, **fields):  # noqa: ANN001, ANN003, ANN202
    customer = new_customer(db, **fields)
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    db.commit()
    return db.scalars(
        select(Delivery).where(Delivery.bill_id == bill.id, Delivery.channel == "email").order_by(Delivery.id)
    ).all()


def test_message_headers_resist_injection_and_pdf_attaches_per_setting(app, db):
    [delivery] = _publish(db, name="张三\r\nBcc: evil@evil.test\r\n", key_account=True)
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=1, token="d1-1-abc", envid="d1-1-abc", message_id="<d1-1-abc@b.test>"
    )
    db.add(attempt)
    db.flush()
    with app.app_context():
        raw = build_message(db, delivery, attempt, app.config).as_bytes()
    message = email.message_from_bytes(raw, policy=email_policy.default)
    assert max(raw) < 128  # 7-bit: any relay takes it, 8BITMIME or not
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    assert message["Message-ID"] == "<d1-1-abc@b.test>"
    assert [p.get_content_type() for p in message.iter_parts()] == ["multipart/alternative", "application/pdf"]
    pdf = next(p for p in message.iter_attachments())
    assert pdf.get_filename().endswith(".pdf") and pdf.get_content().startswith(b"%PDF")


@pytest.mark.parametrize("name", ["张三", "Zhang San", 'Zhang "Sam", San', "王" * 60])
def test_the_mail_policys_shortcuts_write_what_the_stdlib_smtp_policy_writes(app, db, name):
    """console.delivery.message's policy stores and writes short plain headers as they are and shares
    parsed Content- headers: the bytes must be the very ones the standard SMTP policy makes."""
    [delivery] = _publish(db, name=name, key_account=True)
    delivery.recipient_name = name
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=1, token="d1-1-abc", envid="d1-1-abc", message_id="<d1-1-abc@b.test>"
    )
    db.add(attempt)
    db.flush()
    with app.app_context():
        message = build_message(db, delivery, attempt, app.config)
    ours = message.as_bytes()
    assert ours == message.as_bytes(policy=email_policy.SMTP)
    parsed = email.message_from_bytes(ours, policy=email_policy.SMTP)
    # (the stdlib reads a name folded over several encoded words back with spaces between them)
    assert parsed["To"].addresses[0].display_name.replace(" ", "") == name.replace(" ", "")
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html",
        "image/png", "image/png", "application/pdf"]
    assert max(ours) < 128 and max(len(line) for line in ours.split(b"\r\n")) <= 78  # 7-bit, folded


def test_no_dsn_offered_is_recorded_and_4xx_waits_with_the_same_attempt(app, db, smtp_sink):
    ok, busy = _publish(
        db,
        email="plain@customers.test",
        recipients=[{"name": "忙", "relation": "tenant", "channel": "email", "address": "busy@customers.test"}],
    )
    config = _config(app, smtp_sink.port)
    with app.app_context():
        counts = send_batch(db, [ok.id, busy.id], config)
    assert counts == {"sent": 1, "refused": 0, "temporary": 1, "skipped": 0}
    db.refresh(ok)
    db.refresh(busy)
    sent_attempt = db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == ok.id)).one()
    assert ok.status == "sent" and sent_attempt.dsn_requested is False
    assert ok.confirm_due_at == sent_attempt.sent_at + config["CONFIRM_AFTER"]
    mail_from, rcpts, raw = smtp_sink.messages[-1]
    assert mail_from == f"bounces+{sent_attempt.token}@{config['BOUNCE_DOMAIN']}" and rcpts == ["plain@customers.test"]
    # the busy one: still queued, backed off, its unsent attempt kept for the retry
    assert busy.status == "queued" and busy.send_errors == 1 and busy.claimed_until > utcnow()
    pending = db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == busy.id)).one()
    assert pending.sent_at is None and "450" in pending.smtp_response
    with app.app_context():
        assert send_batch(db, [busy.id], config)["skipped"] == 1  # backing off
        later = utcnow() + timedelta(minutes=2)
        assert send_batch(db, [busy.id], config, now=lambda: later)["temporary"] == 1
    again = db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == busy.id)).all()
    assert [a.message_id for a in again] == [pending.message_id]  # never a second Message-ID for it


def test_content_is_dot_stuffed_as_smtplib_does():
    from console.delivery.sender import _dot_stuffed

    assert _dot_stuffed(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert _dot_stuffed(b".start") == b"..start\r\n.\r\n"


def test_pipelined_batch_overlaps_envelopes_and_keeps_each_outcome(app, db, smtp_sink):
    """With PIPELINING each message's content goes out with the next message's envelope: refusals
    in the middle (450, 550) stop only their own message, every other one arrives whole, in order,
    with dots stuffed, and nothing arrives twice."""
    from console.delivery.sender import connect

    def pipelining(config):  # noqa: ANN001, ANN202 - the sink does not announce it, but handles it
        smtp = connect(config)
        smtp.esmtp_features["pipelining"] = ""
        return smtp

    addresses = ["p1@customers.test", "busyp@customers.test", "p2@customers.test", "nosuchp@customers.test", "p3@customers.test"]
    deliveries = [d for address in addresses for d in _publish(db, email=address)]
    before = len(smtp_sink.messages)
    with app.app_context():
        counts = send_batch(db, [d.id for d in deliveries], _config(app, smtp_sink.port), connection_factory=pipelining)
    assert counts == {"sent": 3, "refused": 1, "temporary": 1, "skipped": 0}
    arrived = smtp_sink.messages[before:]
    assert [rcpts for _, rcpts, _ in arrived] == [["p1@customers.test"], ["p2@customers.test"], ["p3@customers.test"]]
    for (_, _, raw), delivery in zip(arrived, [deliveries[0], deliveries[2], deliveries[4]], strict=True):
        message = email.message_from_bytes(raw, policy=email_policy.default)
        attempt = db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)).one()
        assert message["Message-ID"] == attempt.message_id and attempt.sent_at is not None
        assert raw.endswith(b"\r\n") and b"\r\n.\r\n" not in raw
    for delivery in deliveries:
        db.refresh(delivery)
    assert [d.status for d in deliveries] == ["sent", "queued", "sent", "failed", "sent"]


def test_send_jobs_through_rq_and_sweeper_arming(committed, own_redis, smtp_sink):
    from rq import SimpleWorker
    from rq.job import Job

    from console import outbox
    from console.delivery.queueing import queue_queued_sends
    from console.queues import get_queue
    from console.worker import SWEEP_JOB_ID, arm_sweeper

    app = committed
    redis_conn = own_redis
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port, SEND_BATCH_SIZE=2, SWEEP_SECONDS=60)
    session = app.extensions["billpost.session_factory"]()
    ids = []
    for _ in range(3):
        ids += [d.id for d in _publish(session)]
    assert queue_queued_sends(session, utcnow(), 2) == 2  # batches of 2, asked for in the transaction
    assert get_queue("delivery", app).count == 0  # nothing reaches Redis before the commit
    session.commit()
    assert outbox.handed_over(session) == 2
    queue_queued_sends(session, utcnow(), 2)
    session.commit()
    assert outbox.handed_over(session) == 0  # the same batches are waiting: not queued twice
    queue = get_queue("delivery", app)
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    session.expire_all()
    assert {d.status for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))} == {"sent"}

    assert arm_sweeper(app) is True
    assert arm_sweeper(app) is False  # one sweep per period, whichever worker asks
    job = Job.fetch(SWEEP_JOB_ID, connection=redis_conn, serializer=queue.serializer)
    assert job.func_name == "jobs.delivery.sweep" and job.args == [] and job.kwargs == {}
    assert queue.job_ids[0] == SWEEP_JOB_ID  # at the front, before any send batch
    redis_conn.flushall()  # Redis lost: the next worker tick arms the sweeper again at once
    assert arm_sweeper(app) is True
    assert SWEEP_JOB_ID in queue.job_ids
    session.close()


def test_a_rolled_back_transaction_queues_nothing(committed, own_redis):
    from console.delivery.queueing import queue_queued_sends
    from console.queues import get_queue

    app = committed
    session = app.extensions["billpost.session_factory"]()
    _publish(session)
    session.commit()
    assert queue_queued_sends(session, utcnow(), 10) == 1
    session.rollback()
    session.commit()
    assert get_queue("delivery", app).count == 0
    session.close()


def test_two_sweepers_at_once_resend_once(committed):
    app = committed
    factory = app.extensions["billpost.session_factory"]
    session = factory()
    ids = []
    for _ in range(20):
        [delivery] = _publish(session)
        attempt = DeliveryAttempt(
            delivery_id=delivery.id, attempt_no=1, token=f"s{delivery.id}", envid=f"s{delivery.id}",
            message_id=f"<s{delivery.id}@b.test>", sent_at=utcnow() - timedelta(hours=30),
        )
        session.add(attempt)
        delivery.status, delivery.attempts_made = "sent", 1
        delivery.confirm_due_at = utcnow() - timedelta(hours=6)
        ids.append(delivery.id)
    session.commit()
    session.close()

    barrier = threading.Barrier(2)
    results, errors = [], []

    def run() -> None:
        own = factory()
        try:
            barrier.wait()
            counts = sweep(own, utcnow(), app.config)
            own.commit()
            results.append(counts["resend_queued"])
        except OperationalError as exc:
            errors.append(exc)
            own.rollback()
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors  # PostgreSQL: SKIP LOCKED + conditional UPDATEs; SQLite: the second waits its turn
    assert sum(results) == 20
    session = factory()
    rows = session.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
    assert {(d.status, d.attempts_made) for d in rows} == {("queued", 1)}
    session.close()


def test_the_sent_record_is_one_atomic_write_and_spares_a_settled_delivery(committed):
    """On PostgreSQL one statement on an autocommit connection, on SQLite two UPDATEs in one
    transaction: the attempt always gets sent_at; the delivery becomes `sent` only if still queued
    for this attempt (here the second was confirmed meanwhile, by the customer on the web page)."""
    from sqlalchemy import update

    from console.delivery.sender import Sender

    app = committed
    factory = app.extensions["billpost.session_factory"]
    setup = factory()
    ids = [d.id for _ in range(2) for d in _publish(setup)]
    setup.close()
    with factory() as session, app.app_context():
        sender = Sender(session, app.config)
        deliveries = sender.load(sender.claim(ids))
        attempts = sender.prepare(deliveries)
        with factory() as web:
            web.execute(update(Delivery).where(Delivery.id == ids[1]).values(status="confirmed", confirmed_by="portal_open"))
            web.commit()
        for delivery in deliveries:
            sender._record_sent(delivery, attempts[delivery.id], "250 2.0.0 Ok: queued")
        sender.close()
    with factory() as check:
        sent, settled = (check.get(Delivery, i) for i in ids)
        assert sent.status == "sent" and sent.confirm_due_at is not None and sent.claimed_by is None
        assert settled.status == "confirmed" and settled.confirmed_by == "portal_open"
        for delivery_id in ids:
            attempt = check.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)).one()
            assert attempt.sent_at is not None and attempt.smtp_response == "250 2.0.0 Ok: queued"


class _SlowSink:
    """An SMTP server that takes `delay` seconds over each message's content."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.message_ids: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        import asyncio
        import email

        await asyncio.sleep(self.delay)
        self.message_ids.append(email.message_from_bytes(envelope.original_content)["Message-ID"])
        return "250 2.0.0 Ok: queued"


def test_a_send_job_run_again_after_it_succeeded_sends_nothing_and_opens_no_item(committed, smtp_sink):
    """RQ may flag a job failed after it succeeded and run it again: the database says what is done."""
    from console.models import WorkItem

    app = committed
    config = dict(app.config, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port)
    session = app.extensions["billpost.session_factory"]()
    ids = [d.id for _ in range(3) for d in _publish(session)]
    before = len(smtp_sink.messages)
    with app.app_context():
        assert send_batch(session, ids, config)["sent"] == 3
        again = send_batch(session, ids, config)
    assert again["sent"] == 0 and again["skipped"] == 3
    assert len(smtp_sink.messages) - before == 3
    assert session.scalar(select(func.count(WorkItem.id))) == 0
    session.close()


def test_a_batch_stopped_by_its_job_timeout_keeps_what_it_sent_and_the_rest_is_picked_up(committed, own_redis):
    """A real RQ job with a 1 s timeout over a relay that takes 0.3 s a message: RQ stops it midway.
    What went out stays sent; the rest is sent once the stopped sender's lease runs out."""
    import time

    from aiosmtpd.controller import Controller
    from rq import SimpleWorker

    from console.delivery.queueing import SEND_JOB
    from console.devtools.ports import free_port
    from console.queues import get_queue

    sink, port = _SlowSink(0.3), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = committed
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, DELIVERY_LEASE_SECONDS=1)
        session = app.extensions["billpost.session_factory"]()
        ids = [d.id for _ in range(10) for d in _publish(session)]
        queue = get_queue("delivery", app)
        queue.enqueue(SEND_JOB, args=(ids,), job_id="timeout-test", job_timeout=1)
        SimpleWorker([queue], connection=own_redis, serializer=queue.serializer).work(burst=True)
        assert queue.failed_job_registry.get_job_ids() == ["timeout-test"]
        session.rollback()  # a fresh snapshot (SQLite keeps the read transaction _publish began)
        statuses = {d.id: d.status for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
        sent = [i for i, status in statuses.items() if status == "sent"]
        assert 0 < len(sent) < len(ids), (statuses, sink.message_ids)

        time.sleep(1.1)  # the stopped sender's lease runs out
        counts = sweep(session, utcnow(), app.config)
        session.commit()
        assert set(counts["to_send"]) == set(ids) - set(sent)
        with app.app_context():
            send_batch(session, counts["to_send"], app.config)
        session.rollback()
        assert {d.status for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))} == {"sent"}
        attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids))).all()
        assert len(attempts) == len(ids)  # one attempt each: the stop cost no resend
        assert set(sink.message_ids) == {a.message_id for a in attempts}  # nothing lost
        assert len(sink.message_ids) - len(set(sink.message_ids)) <= 1  # at most the one in flight twice
        session.close()
    finally:
        controller.stop()


def test_a_batch_over_several_connections_sends_each_message_once(committed, smtp_sink):
    """SEND_CONNECTIONS: the batch spread over parallel SMTP connections, each a sender of its own
    (PostgreSQL; SQLite sends over one)."""
    import email

    from console.delivery.sender import send_batch_over_connections

    app = committed
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port)
    factory = app.extensions["billpost.session_factory"]
    session = factory()
    ids = [d.id for _ in range(12) for d in _publish(session)]
    session.close()
    before = len(smtp_sink.messages)
    counts = send_batch_over_connections(app, factory, ids, 3)
    assert counts == {"sent": 12, "refused": 0, "temporary": 0, "skipped": 0}
    got = [email.message_from_bytes(raw)["Message-ID"] for _f, _t, raw in smtp_sink.messages[before:]]
    session = factory()
    attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids))).all()
    assert sorted(got) == sorted(a.message_id for a in attempts) and len(attempts) == 12
    assert {d.status for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))} == {"sent"}
    session.close()
    assert send_batch_over_connections(app, factory, ids, 3)["skipped"] == 12  # nothing twice


def test_a_batch_that_fails_midway_gives_its_claims_back_so_the_jobs_retry_sends_the_rest(
    committed, smtp_sink, monkeypatch
):
    """Seen in bench loop (10,000 customers): five send jobs failed once after claiming their batch; the
    claims stayed, so each job's RQ retry skipped all of it ("skipped": 200) and 730 e-mails waited 7
    minutes for the lease to run out and the sweeper. A failure of any kind now gives back the claims
    not used. The fault: the third message cannot be built."""
    from console.delivery import build_ahead, sender

    app = committed
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port)
    session = app.extensions["billpost.session_factory"]()
    ids = [d.id for _ in range(5) for d in _publish(session)]
    real_build = sender.build_message

    def build_or_fail(session, delivery, attempt, config):  # noqa: ANN001, ANN202
        if delivery.id == ids[2]:
            raise RuntimeError("a bill that cannot be built")
        return real_build(session, delivery, attempt, config)

    monkeypatch.setattr(sender, "build_message", build_or_fail)
    monkeypatch.setattr(build_ahead, "build_message", build_or_fail)
    with app.app_context(), pytest.raises(RuntimeError, match="cannot be built"):
        send_batch(session, ids, app.config)
    session.expire_all()  # the sender's session: read what the database holds now
    deliveries = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    assert [deliveries[i].status for i in ids] == ["sent", "sent", "queued", "queued", "queued"]
    assert [(deliveries[i].claimed_by, deliveries[i].claimed_until) for i in ids[2:]] == [(None, None)] * 3

    monkeypatch.undo()  # the messages can be built again
    with app.app_context():
        again = send_batch(session, ids, app.config)  # the job's retry, at once: nothing waits for a lease
    assert again == {"sent": 3, "refused": 0, "temporary": 0, "skipped": 2}
    session.close()


def _waiting_on_a_lock(engine, marker: str) -> bool:  # noqa: ANN001
    with engine.connect() as probe:
        return bool(probe.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :marker"
        ), {"marker": f"%{marker}%"}))


def _until(condition, seconds: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the statement never came to wait on the lock"
        time.sleep(0.02)


def _sender_with_one_prepared_attempt(app):  # noqa: ANN001, ANN202
    """A published delivery claimed, loaded and given its attempt by a Sender on a session of its own,
    up to the moment the relay would answer 250: (delivery, sender session, sender, loaded, attempt)."""
    from console.delivery.sender import Sender

    factory = app.extensions["billpost.session_factory"]
    setup = factory()
    [delivery] = _publish(setup)
    setup.close()
    sender_session = factory()
    with app.app_context():
        sender = Sender(sender_session, app.config)
        [loaded] = sender.load(sender.claim([delivery.id]))
        attempt = sender.prepare([loaded])[loaded.id]
    return delivery, sender_session, sender, loaded, attempt


def test_a_report_that_overtakes_the_sent_record_does_not_deadlock_with_it(committed):
    """Seen in `bench email --reports received` (loopback Postfix, 2026-12-03): the DSN came back and the
    mail-in confirmed while the sender was still writing `sent` for the same message. The sender's
    statement locks the attempt, then the delivery; the mail-in's took the delivery, then the attempt
    (its CTEs ran in no set order), and PostgreSQL killed one of them as a deadlock (the bench's sender,
    once in three runs). Made to happen every time: a third connection holds the attempt's row, the
    sender waits for it first, the mail-in second; then the row is let go."""
    from console.delivery.policy import apply_report

    app = committed
    engine = app.extensions["billpost.engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: SQLite writes one transaction at a time")
    factory = app.extensions["billpost.session_factory"]
    delivery, sender_session, sender, loaded, attempt = _sender_with_one_prepared_attempt(app)
    errors: list[Exception] = []

    def record_sent() -> None:
        try:
            with app.app_context():
                sender._record_sent(loaded, attempt, "250 2.0.0 Ok: queued")
        except Exception as exc:  # noqa: BLE001 - the deadlock, reported below
            errors.append(exc)

    def report_delivered() -> None:
        with factory() as mailin:
            try:
                apply_report(mailin, mailin.get(DeliveryAttempt, attempt.id), "delivered", "2.0.0",
                             "smtp; 250 2.0.0 Ok", utcnow(), "mx.customers.test")
                mailin.commit()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    holder = engine.connect()
    holder.begin()
    holder.execute(text("SELECT id FROM delivery_attempts WHERE id = :id FOR UPDATE"), {"id": attempt.id})
    threads = [threading.Thread(target=record_sent), threading.Thread(target=report_delivered)]
    threads[0].start()
    _until(lambda: _waiting_on_a_lock(engine, "attempt_sent"))
    threads[1].start()
    _until(lambda: _waiting_on_a_lock(engine, "attempt_reported"))
    holder.rollback()
    holder.close()
    for thread in threads:
        thread.join(30)
    sender.close()
    sender_session.close()
    assert errors == []
    with factory() as check:
        assert check.get(Delivery, delivery.id).status == "confirmed"
        recorded = check.get(DeliveryAttempt, attempt.id)
        assert recorded.sent_at is not None and recorded.outcome == "delivered"


def test_the_sent_record_outlives_a_dropped_database_connection(committed, caplog):
    """The relay has taken the message; then PostgreSQL drops the sender's connection (a restart, a
    failover, here its backend terminated). The `sent` is written on a new connection, not lost, so the
    message is not sent again when the claim's lease runs out."""
    app = committed
    engine = app.extensions["billpost.engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    factory = app.extensions["billpost.session_factory"]
    delivery, sender_session, sender, loaded, attempt = _sender_with_one_prepared_attempt(app)
    with app.app_context():
        backend = sender._autocommit().execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar()
        sender._record_sent(loaded, attempt, "250 2.0.0 Ok: queued")
        assert sender._autocommit().execute(text("SELECT pg_backend_pid()")).scalar() != backend
    sender.close()
    sender_session.close()
    assert "trying again" in caplog.text
    with factory() as check:
        sent = check.get(Delivery, delivery.id)
        assert sent.status == "sent" and sent.confirm_due_at is not None
        assert check.get(DeliveryAttempt, attempt.id).sent_at is not None
