"""The bench's worker process: a burst SimpleWorker on the billing queue; prints its figures as JSON."""

from __future__ import annotations

import json
import time


def peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM): unlike ru_maxrss, not inherited from the parent."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    from rq import SimpleWorker
    from rq.utils import import_attribute

    from console import create_app
    from console.billing.cycles import CHUNK_JOB
    from console.queues import get_queue, get_redis

    app = create_app()
    import_attribute(CHUNK_JOB)  # the job module loaded before the clock starts, as a long-lived worker has it
    queue = get_queue("billing", app)
    startup = peak_rss_kb()
    with app.app_context():  # the jobs run against this app (jobs.context)
        started = time.perf_counter()
        SimpleWorker([queue], connection=get_redis(app), serializer=queue.serializer).work(
            burst=True, logging_level="WARNING"
        )
        seconds = time.perf_counter() - started
    peak = peak_rss_kb()
    print(json.dumps({"seconds": seconds, "maxrss_kb": peak, "startup_rss_kb": startup}))


if __name__ == "__main__":
    main()
