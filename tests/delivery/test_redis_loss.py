"""Redis lost while a real `console worker` runs: the database re-arms everything (issue 19, point 1).

The worker process is the one the Procfile runs; nothing is called in-process. Redis is flushed
after the send jobs and the cycle's chunk jobs were queued, so every job is gone; the worker's
sweeper arming queues a sweep within one period, and the sweep asks again for every queued e-mail
and every unfinished chunk.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from console import outbox
from console.audit import Actor
from console.billing import cycles
from console.billing.tariffs import seed_sample_tariffs
from console.db import utcnow
from console.delivery.publish import publish_cycle
from console.delivery.queueing import queue_queued_sends
from console.models import Bill, DeliveryAttempt
from tests.delivery.conftest import WorkerProcess, add_bill, new_customer

pytestmark = pytest.mark.postfix


def test_flushall_loses_no_send_and_no_chunk(mail_loop, loopback_postfix, own_redis):
    app = mail_loop
    factory = app.extensions["billpost.session_factory"]
    total = 40
    with app.app_context():
        session = factory()
        bill = None
        for _ in range(total):
            bill = add_bill(session, new_customer(session), period="2026-10")
        session.commit()
        publish_cycle(session, bill.cycle_id, Actor.cli(), utcnow())
        queue_queued_sends(session, utcnow(), 10)
        # And a cycle to generate: its chunks are queued in Redis too.
        seed_sample_tariffs(session)
        cycles.open_cycle(session, "2026-11", Actor.system())
        chunks = cycles.start_run(session, "2026-11", Actor.system(), 10)
        session.commit()
        assert outbox.handed_over(session) == total // 10 + len(chunks)  # send batches and chunks, one commit
        session.close()
    assert len(chunks) >= 4
    own_redis.flushall()  # Redis restarted without persistence: every queued job is gone

    worker = WorkerProcess(app, loopback_postfix.port, SWEEP_SECONDS="2", SEND_REENQUEUE_SECONDS="0")
    started = time.monotonic()
    try:
        while True:
            session = factory()
            sent = session.scalar(select(func.count(DeliveryAttempt.id)).where(DeliveryAttempt.sent_at.is_not(None)))
            report = cycles.cycle_report(session, "2026-11")
            session.close()
            if sent == total and report["status"] == "generated":
                break
            worker.check_alive()
            assert time.monotonic() - started < 60, (sent, report["status"], report["chunks"])
            time.sleep(0.3)
    finally:
        worker.stop()
    session = factory()
    attempts = session.scalars(select(DeliveryAttempt)).all()
    assert len(attempts) == total and {a.attempt_no for a in attempts} == {1}  # each sent once
    report = cycles.cycle_report(session, "2026-11")
    assert report["chunks"]["chunks_done"] == report["chunks"]["chunks_total"] == len(chunks)
    per_customer = session.execute(
        select(Bill.customer_id, func.count()).where(Bill.cycle_id == report_cycle_id(session))
        .group_by(Bill.customer_id).having(func.count() > 1)
    ).all()
    session.close()
    assert per_customer == []  # re-asked chunks made no second bill


def report_cycle_id(session) -> int:  # noqa: ANN001
    return cycles.get_cycle(session, "2026-11").id
