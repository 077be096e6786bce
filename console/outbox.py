"""Work handed to the queue after the transaction that promised it commits (the transactional outbox).

A service that wants a job run records it on its session with `after_commit(session, ...)`, by the
job's dotted name (`"jobs.delivery.send_batch"`), so `console/` never imports `jobs/`. When that
session's transaction commits, the hook installed on the app's session factory (`install`) hands
every recorded job to RQ; a rollback forgets them. The database rows are the promise and the job
only the courier: if Redis cannot take a job after the commit, it is logged and the sweeper finds
the rows again (`console.delivery.sweeper`).

Jobs carry deterministic ids and go in with RQ's `unique=True`: a job of that id still waiting or
running is not queued twice. A finished or failed job of the same id (an earlier run, kept for its
result or for the admin's failed-jobs list) is replaced.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.worker import Worker
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

_PENDING = "billpost.outbox"
_HANDED = "billpost.outbox.handed"
_APP = "billpost.app"
# A job in one of these states is the one that will do the work: a second one is not queued.
LIVE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED})


@dataclass(frozen=True)
class QueuedJob:
    queue: str
    func: str  # dotted name of a function in jobs/
    args: tuple
    job_id: str
    options: dict[str, Any] = field(default_factory=dict)  # RQ's: job_timeout, retry, result_ttl, failure_ttl
    delay: timedelta | None = None  # run no earlier than this after the commit


def after_commit(
    session: Session, queue: str, func: str, *args: Any, job_id: str, delay: timedelta | None = None, **options: Any
) -> None:
    """Queue `func(*args)` on `queue` once this session's transaction commits."""
    session.info.setdefault(_PENDING, []).append(QueuedJob(queue, func, tuple(args), job_id, options, delay))


def pending(session: Session) -> list[QueuedJob]:
    """What this session will hand to the queue at its next commit (for tests and the CLI's echo)."""
    return list(session.info.get(_PENDING, ()))


def handed_over(session: Session) -> int | None:
    """How many jobs the last commit handed to RQ (live duplicates skipped); None if it could not."""
    return session.info.get(_HANDED)


def install(app: Flask, factory: sessionmaker) -> None:
    """Bind the after-commit hand-over to every session of this factory (once per factory)."""
    factory.kw.setdefault("info", {})[_APP] = app
    if not event.contains(factory, "after_commit", _hand_over):
        event.listen(factory, "after_commit", _hand_over)
        event.listen(factory, "after_rollback", _forget)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _hand_over(session: Session) -> None:
    jobs = session.info.pop(_PENDING, None)
    app = session.info.get(_APP)
    session.info[_HANDED] = 0
    if not jobs or app is None:
        return
    session.info[_HANDED] = None
    try:
        session.info[_HANDED] = enqueue(app, jobs)
    except Exception:  # noqa: BLE001 - Redis down after the commit: the rows stay, the sweeper re-finds them
        log.exception("could not queue %d job(s) after commit (%s…); left for the sweeper", len(jobs), jobs[0].job_id)


def enqueue(app: Flask, jobs: list[QueuedJob]) -> int:
    """Hand these jobs to RQ now; returns how many were queued (live duplicates are skipped)."""
    from console.queues import get_queue

    by_queue: dict[str, list[QueuedJob]] = defaultdict(list)
    for job in jobs:
        by_queue[job.queue].append(job)
    queued = 0
    for name, group in by_queue.items():
        queue = get_queue(name, app)
        for job in group:
            queued += _enqueue_unique(queue, job)
    return queued


def _enqueue_unique(queue, job: QueuedJob) -> int:  # noqa: ANN001
    for _ in range(2):
        try:
            if job.delay:
                queue.enqueue_in(job.delay, job.func, args=job.args, job_id=job.job_id, unique=True, **job.options)
            else:
                queue.enqueue(job.func, args=job.args, job_id=job.job_id, unique=True, **job.options)
            return 1
        except DuplicateJobError:
            existing = Job.fetch_many([job.job_id], connection=queue.connection, serializer=queue.serializer)[0]
            if existing is not None and _alive(existing):
                return 0
            if existing is not None:  # an earlier run's finished or failed job, or a dead worker's: replaced
                existing.delete()
    return 0


def _alive(job: Job) -> bool:
    """Waiting, or running on a worker that still beats. A worker killed with -9 leaves its job
    `started` until RQ's maintenance gives up on it (minutes); its key expires within
    job_monitoring_interval + 60 s, after which the job is taken for dead and queued anew."""
    status = job.get_status(refresh=False)
    if status not in LIVE:
        return False
    if status == JobStatus.STARTED and job.worker_name:
        return bool(job.connection.exists(Worker.redis_worker_namespace_prefix + job.worker_name))
    return True
