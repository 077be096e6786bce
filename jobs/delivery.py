"""Delivery jobs: send a batch of e-mail deliveries; sweep deadlines and lost work (console.delivery)."""

from __future__ import annotations

from console.db import utcnow
from console.delivery import sender, sweeper
from console.ops import health
from jobs.context import job_app, job_session


def send_batch(delivery_ids: list[int]) -> dict:
    with job_session():  # the worker's app and a connection pool of this process's own
        app = job_app()
        factory = app.extensions["billpost.session_factory"]
        return sender.send_batch_over_connections(app, factory, delivery_ids, int(app.config["SEND_CONNECTIONS"]))


def sweep() -> dict:
    with job_session() as session:
        counts = sweeper.sweep(session, utcnow(), job_app().config)
        session.commit()
    health.record_sweep(job_app())  # after the commit: /healthz and `console doctor` read the lag
    return counts
