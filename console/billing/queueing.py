"""Enqueueing cycle chunks (after the commit that recorded them) and running a burst worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask
from rq import Queue, Retry, SimpleWorker

from console.billing.cycles import progress
from console.models.billing import Cycle, CycleChunk
from console.queues import get_queue, get_redis

JOB_TIMEOUT = 1800
RETRIES = 2


def enqueue_chunks(app: Flask, cycle: Cycle, chunks: list[CycleChunk]) -> int:
    """One RQ job per chunk, all in one pipeline (enqueue_many), deterministic ids, retried twice."""
    if not chunks:
        return 0
    queue = get_queue("billing", app)
    # A finished or failed job of the same id (an earlier run) is replaced.
    for chunk in chunks:
        existing = queue.fetch_job(chunk.job_id)
        if existing is not None and existing.get_status(refresh=False) in ("queued", "started", "deferred", "scheduled"):
            continue
        if existing is not None:
            existing.delete()
    datas = [
        Queue.prepare_data(
            "jobs.billing.generate_chunk",
            args=(cycle.id, chunk.chunk_no),
            job_id=chunk.job_id,
            timeout=JOB_TIMEOUT,
            retry=Retry(max=RETRIES),
            result_ttl=86400,
            failure_ttl=7 * 86400,
        )
        for chunk in chunks
        if queue.fetch_job(chunk.job_id) is None
    ]
    if datas:
        queue.enqueue_many(datas)
    return len(datas)


def run_burst(app: Flask, session_factory: Callable, cycle_id: int, echo: Callable[[str], None] | None = None) -> None:
    """Work the billing queue in this process until it is empty, printing progress per job."""
    from jobs.context import use_app

    use_app(app)
    queue = get_queue("billing", app)

    class ProgressWorker(SimpleWorker):
        def handle_job_success(self, job, queue, started_job_registry):  # noqa: ANN001, ANN201
            super().handle_job_success(job, queue, started_job_registry)
            _report(echo, session_factory, cycle_id)

        def handle_job_failure(self, job, queue, **kwargs):  # noqa: ANN001, ANN003, ANN201
            super().handle_job_failure(job, queue, **kwargs)
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


def after_publish(app: Flask, session, cycle_id: int) -> int:  # noqa: ANN001
    """After the publish commit: queue the e-mail sends (the delivery domain's job), if it exists."""
    try:
        from jobs.delivery import enqueue_queued_sends
    except ImportError:
        return 0
    return enqueue_queued_sends(session, app, cycle_id=cycle_id)
