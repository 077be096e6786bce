"""What a load balancer, Prometheus and `console doctor` all ask: is the database there, is Redis
there, is a worker beating, when did the sweeper last run.

The last sweep's time is kept in Redis (`LAST_SWEEP_KEY`, written by the sweep job after its commit):
Redis holds only queues and this clock, and a lost Redis shows up here as "no sweep recorded" until
the next sweep, which any worker arms again within one period (console/worker.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import text

LAST_SWEEP_KEY = "billpost:last-sweep"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def record_sweep(app: Flask, when: float | None = None) -> None:
    """Called after a sweep committed: the time (Unix seconds) the health checks compare against."""
    from console.queues import get_redis

    get_redis(app).set(LAST_SWEEP_KEY, f"{when if when is not None else time.time():.3f}")


def last_sweep(app: Flask) -> float | None:
    from console.queues import get_redis

    value = get_redis(app).get(LAST_SWEEP_KEY)
    return float(value) if value else None


def sweep_lag(app: Flask, now: float | None = None) -> float | None:
    """Seconds since the last sweep, None when none is recorded."""
    last = last_sweep(app)
    return None if last is None else max(0.0, (now or time.time()) - last)


def database_check(app: Flask) -> Check:
    try:
        with app.extensions["billpost.engine"].connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - the answer is the check's result
        return Check("database", False, type(exc).__name__)
    return Check("database", True)


def redis_check(app: Flask) -> Check:
    from console.queues import get_redis

    try:
        get_redis(app).ping()
    except Exception as exc:  # noqa: BLE001
        return Check("redis", False, type(exc).__name__)
    return Check("redis", True)


def workers(app: Flask) -> list:
    from rq import Worker

    from console.queues import get_redis

    return Worker.all(connection=get_redis(app))


def worker_check(app: Flask) -> Check:
    """At least one `console worker` registered: RQ drops a worker's key when it stops beating."""
    try:
        count = len(workers(app))
    except Exception as exc:  # noqa: BLE001
        return Check("worker", False, type(exc).__name__)
    return Check("worker", count > 0, f"{count} worker(s)")


def sweeper_check(app: Flask, config: Mapping) -> Check:
    try:
        lag = sweep_lag(app)
    except Exception as exc:  # noqa: BLE001
        return Check("sweeper", False, type(exc).__name__)
    if lag is None:
        return Check("sweeper", False, "no sweep recorded")
    return Check("sweeper", lag <= int(config["HEALTH_SWEEP_LAG_SECONDS"]), f"{lag:.0f} s since the last sweep")


def health(app: Flask) -> list[Check]:
    """The load balancer's checks, cheap enough to run every few seconds."""
    return [database_check(app), redis_check(app), worker_check(app), sweeper_check(app, app.config)]
