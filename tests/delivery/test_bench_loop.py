"""bench loop's summary of the job failures its workers logged (console/bench/loop.py)."""

from __future__ import annotations

import logging
import traceback

from console.bench.loop import job_failures


def test_the_workers_job_failures_are_counted_from_their_tracebacks(tmp_path):
    """What RQ writes when a job fails (its traceback through the logging module), amid log lines."""
    log = tmp_path / "workers.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("rq.worker.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for error in (RuntimeError("a bill that cannot be built"), RuntimeError("a bill that cannot be built"),
                      ConnectionError("connection refused")):
            try:
                raise error
            except Exception:
                logger.error("[Job delivery-send-1-200-200]: exception raised while executing\n%s",
                             traceback.format_exc())
            logger.warning("a line after: 12:00:01 with colons")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert job_failures(log) == ["2 x RuntimeError: a bill that cannot be built",
                                 "1 x ConnectionError: connection refused"]
    assert job_failures(tmp_path / "none.log") == []
