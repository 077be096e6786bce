"""Delivery jobs: send a batch of e-mail deliveries; render the PDFs their e-mails attach, then ask
for those sends (on the `pdf` queue); sweep deadlines and lost work (console.delivery)."""

from __future__ import annotations

from console.db import utcnow
from console.delivery import queueing, sender, sweeper
from console.ops import health
from jobs.context import job_app, job_session


def send_batch(delivery_ids: list[int]) -> dict:
    with job_session():  # the worker's app and a connection pool of this process's own
        app = job_app()
        factory = app.extensions["billpost.session_factory"]
        return sender.send_batch_over_connections(app, factory, delivery_ids, int(app.config["SEND_CONNECTIONS"]))


def render_then_send(bill_ids: list[int]) -> dict:
    """Render these bills' PDFs; their e-mails' send jobs go to the queue once the PDFs are committed.
    A bill that could not be rendered fails the job after the commit (its e-mails were queued all the same)."""
    with job_session() as session:
        result = queueing.render_then_queue_sends(session, bill_ids, utcnow(), int(job_app().config["SEND_BATCH_SIZE"]))
        session.commit()
    result.check()
    return {"rendered": len(result.rendered), "send_jobs": result.send_jobs}


def sweep() -> dict:
    with job_session() as session:
        counts = sweeper.sweep(session, utcnow(), job_app().config)
        session.commit()
    health.record_sweep(job_app())  # after the commit: /healthz and `console doctor` read the lag
    return counts
