"""`console worker`: an RQ worker on every queue, and the one thing that keeps the sweeper coming.

The sweeper (jobs.delivery.sweep) finds every deadline and every lost job in the database, so it
must itself never be lost. It is not a repeating job kept in Redis (a FLUSHALL, a restart without
persistence or an eviction would lose it, and RQ's scheduler lock left by a worker killed with -9
delays a new scheduler by minutes). Instead every worker process runs a small thread that, each
few seconds, tries to take a Redis key with NX and a TTL of one sweep period; whoever takes it
queues one sweep job (unique id, at the front of the delivery queue). So with any number of
workers there is one sweep per period, and after Redis is lost or a worker dies the next sweep
is queued within one period by any worker that is alive.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from console import outbox
from console.ops import retention
from console.queues import QUEUES, get_queue, get_redis

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "delivery-sweep"
SWEEP_ARMED_KEY = "billpost:sweep-armed"


def arm_sweeper(app: Flask, owner: str = "") -> bool:
    """Queue the sweep unless one was queued within the last sweep period. Safe from any process."""
    period = int(app.config["SWEEP_SECONDS"])
    if not get_redis(app).set(SWEEP_ARMED_KEY, owner or "1", nx=True, ex=period):
        return False
    job = outbox.QueuedJob(
        "delivery", "jobs.delivery.sweep", (), SWEEP_JOB_ID,
        {"job_timeout": 600, "result_ttl": 600, "failure_ttl": 7 * 86400, "at_front": True},
    )
    return outbox.enqueue(app, [job]) == 1


class SweeperArming(threading.Thread):
    """Calls arm_sweeper every few seconds until stopped; a Redis error is logged and tried again."""

    def __init__(self, app: Flask, owner: str) -> None:
        super().__init__(name="billpost-sweeper-arming", daemon=True)
        self.app, self.owner = app, owner
        self.stopped = threading.Event()
        self.tick = max(1.0, min(5.0, int(app.config["SWEEP_SECONDS"]) / 4))

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                arm_sweeper(self.app, self.owner)
                retention.arm_retention(self.app)  # once a day across all workers (console/ops/retention.py)
            except Exception:  # noqa: BLE001 - Redis away for a moment: the next tick tries again
                log.exception("could not arm the sweeper")
            self.stopped.wait(self.tick)


def run_worker(app: Flask, burst: bool = False) -> None:
    """Work every queue with RQ's scheduler (retries with back-off, delayed jobs) and the sweeper arming."""
    from rq import Worker

    from console.paper.pdf import preload_fonts

    preload_fonts()  # once in the parent, so forked job processes start with the CJK font loaded
    queues = [get_queue(name, app) for name in QUEUES]
    worker = Worker(queues, connection=get_redis(app), serializer=queues[0].serializer)
    arming = SweeperArming(app, worker.name)
    if not burst:
        arming.start()
    else:
        arm_sweeper(app, worker.name)
    try:
        worker.work(with_scheduler=True, burst=burst)
    finally:
        arming.stopped.set()
