"""/healthz for the load balancer and /metrics for Prometheus."""

from __future__ import annotations

import time
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from console import outbox
from console.audit import Actor
from console.db import utcnow
from console.delivery.publish import publish_cycle
from console.delivery.sweeper import sweep_deadlines
from console.models import Delivery
from console.ops import health
from tests.delivery.conftest import add_bill, new_customer


def _samples(client, **kwargs) -> dict:  # noqa: ANN003
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.content_type.startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(samples: dict, name: str, **labels) -> float:  # noqa: ANN003
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _where_the_jobs_are(app, redis_conn) -> str:  # noqa: ANN001
    """The delivery queue's registries and the workers Redis knows of, to explain a job that is not waiting."""
    from rq import Worker

    from console.queues import get_queue

    queue = get_queue("delivery", app)
    registries = {
        name: getattr(queue, f"{name}_job_registry").get_job_ids()
        for name in ("started", "finished", "failed", "deferred", "scheduled")
    }
    workers = [(w.name, w.hostname, w.pid) for w in Worker.all(connection=redis_conn)]
    return f"waiting {queue.get_job_ids()}; registries {registries}; workers {workers}; keys {sorted(redis_conn.keys())}"


def test_healthz_fails_without_a_worker_or_a_sweep_and_passes_with_them(app, client, redis_conn):
    from rq import Worker

    from console.queues import get_queue

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": True, "redis": True, "worker": False, "sweeper": False}
    worker = Worker([get_queue("default", app)], connection=redis_conn, name="healthz-test")
    worker.register_birth()
    try:
        health.record_sweep(app)
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json["status"] == "ok"
        health.record_sweep(app, time.time() - app.config["HEALTH_SWEEP_LAG_SECONDS"] - 10)
        assert client.get("/healthz").json["checks"]["sweeper"] is False
    finally:
        worker.register_death()


def test_healthz_says_redis_is_down(app, client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/10"
    app.extensions.pop("billpost.redis", None)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["checks"]["redis"] is False


def test_metrics_refuse_an_unknown_address_and_a_wrong_token(app, client, redis_conn):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outside).status_code == 403
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer 令牌"}).status_code == 403
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    app.config["METRICS_ALLOWED_NETWORKS"] = "10.0.0.0/8, 203.0.113.0/24"
    app.config["METRICS_TOKEN"] = ""
    assert client.get("/metrics", environ_base=outside).status_code == 200
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is no longer listed


def test_metrics_move_when_a_cycle_is_published_and_swept(app, client, db, redis_conn):
    from console.delivery.publish import publish_and_queue

    before = _samples(client)
    assert _value(before, "billpost_redis_up") == 1
    customer = new_customer(db)
    bill = add_bill(db, customer)
    publish_and_queue(db, bill.cycle_id, Actor.cli(), utcnow(), app.config)
    db.commit()
    assert outbox.handed_over(db) == 1, outbox.handed_over(db)
    after = _samples(client)
    assert _value(after, "billpost_redis_up") == 1
    queued = _value(after, "billpost_deliveries", status="queued", channel="email")
    assert queued == _value(before, "billpost_deliveries", status="queued", channel="email") + 1
    # Failed once in CI (0 waiting, cause not kept): if it comes back, say where the job went.
    assert _value(after, "billpost_queue_jobs", queue="delivery") >= 1, _where_the_jobs_are(app, redis_conn)
    # The e-mail went out twice and nobody confirmed it: the sweeper gives it to a rep.
    delivery = db.query(Delivery).filter_by(bill_id=bill.id, channel="email").one()
    delivery.status, delivery.attempts_made, delivery.confirm_due_at = "sent", 2, utcnow() - timedelta(minutes=1)
    db.commit()
    assert sweep_deadlines(db, utcnow())["escalated"] == 1
    db.commit()
    health.record_sweep(app, time.time() - 42)
    swept = _samples(client)
    assert _value(swept, "billpost_work_items_open", role="phone_rep", age="lt_1d") == \
        _value(after, "billpost_work_items_open", role="phone_rep", age="lt_1d") + 1
    assert _value(swept, "billpost_deliveries", status="failed", channel="email") == \
        _value(after, "billpost_deliveries", status="failed", channel="email") + 1
    assert 41 <= _value(swept, "billpost_sweep_lag_seconds") < 120


def test_metrics_count_inbound_messages_by_kind_and_the_latency(app, client, db, redis_conn):
    from console.models import DeliveryAttempt
    from console.models.mailin import InboundMessage, InboundReportRecipient

    before = _samples(client)
    customer = new_customer(db)
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    delivery = db.query(Delivery).filter_by(bill_id=bill.id, channel="email").one()
    attempt = DeliveryAttempt(delivery_id=delivery.id, attempt_no=1, token="tok-metrics", envid="env-metrics",
                              message_id="<m@metrics>", sent_at=utcnow())
    now = utcnow()
    message = InboundMessage(sha256="a" * 64, mail_from="<>", rcpt_tos=["bounces+tok-metrics@b.test"],
                             received_at=now - timedelta(seconds=2), size=10, raw=b"x", classification="report")
    db.add_all([attempt, message])
    db.flush()
    db.add(InboundReportRecipient(inbound_id=message.id, position=0, attempt_id=attempt.id, applied=True,
                                  evidence="text"))
    delivery.status, delivery.confirmed_at, delivery.confirmed_by = "confirmed", now, "delivered"
    db.commit()
    after = _samples(client)
    assert _value(after, "billpost_inbound_messages_total", classification="report") == \
        _value(before, "billpost_inbound_messages_total", classification="report") + 1
    assert _value(after, "billpost_report_blocks_total", evidence="text") == \
        _value(before, "billpost_report_blocks_total", evidence="text") + 1
    assert 1.5 <= _value(after, "billpost_report_to_confirmation_seconds", quantile="0.5") <= 3
