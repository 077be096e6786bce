"""`cycle run --wait`: work the billing queue in this process until the database says the cycle is done."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask
from rq import SimpleWorker

from console.billing.cycles import progress
from console.models.billing import Cycle
from console.queues import get_queue, get_redis


def run_burst(app: Flask, session_factory: Callable, cycle_id: int, echo: Callable[[str], None] | None = None) -> None:
    """Work the billing queue in this process until it is empty, printing progress per job. Jobs run
    against this app (jobs.context takes the app context they run in)."""
    queue = get_queue("billing", app)

    class ProgressWorker(SimpleWorker):
        # RQ's handlers gained arguments between releases (rq 3 passes `execution`): pass them all on.
        def handle_job_success(self, job, queue, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
            super().handle_job_success(job, queue, *args, **kwargs)
            _report(echo, session_factory, cycle_id)

        def handle_job_failure(self, job, queue, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
            super().handle_job_failure(job, queue, *args, **kwargs)
            _report(echo, session_factory, cycle_id)

    # Other workers (the console's own) may hold some of the chunks, and RQ may hold retries of
    # failed ones for later: keep working and waiting until the database says nothing is pending.
    deadline = time.monotonic() + 3600
    while True:
        ProgressWorker([queue], connection=get_redis(app), serializer=queue.serializer).work(
            burst=True, with_scheduler=True
        )
        with session_factory() as session:
            pending = progress(session, session.get(Cycle, cycle_id))["chunks_waiting"]
        retries = len(queue.scheduled_job_registry) + len(queue.started_job_registry)
        if (pending == 0 and retries == 0) or time.monotonic() > deadline:
            return
        time.sleep(1)


def _report(echo, session_factory, cycle_id) -> None:  # noqa: ANN001
    if echo is None:
        return
    with session_factory() as session:
        cycle = session.get(Cycle, cycle_id)
        p = progress(session, cycle)
    echo(f"chunks {p['chunks_done']}/{p['chunks_total']} done, {p['chunks_failed']} failed")
