"""`/metrics` in Prometheus' text format (prometheus-client), read from the database and Redis at
each scrape: every web process answers the same figures, nothing is counted in memory.

Gauges, because they are states read back (deliveries by status, open work items), and counters
where the database keeps an ever-growing record (inbound messages by classification: retention
empties raw bytes but never removes the rows).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

from flask import Flask
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.models import Delivery, DeliveryAttempt, WorkItem
from console.models.delivery import ConfirmedBy, WorkItemStatus
from console.models.mailin import InboundMessage, InboundReportRecipient
from console.ops import health

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Open work items by age: the label values.
AGE_BUCKETS = ((timedelta(days=1), "lt_1d"), (timedelta(days=3), "1d_3d"), (None, "gt_3d"))
LATENCY_WINDOW = timedelta(hours=1)
_REPORT_CONFIRMED = (ConfirmedBy.DELIVERED, ConfirmedBy.RELAYED, ConfirmedBy.EXPANDED)


def allowed(remote_addr: str | None, authorization: str, networks: str, token: str) -> bool:
    """From one of `networks` (comma-separated addresses or networks), or with `Bearer <token>`."""
    import hmac

    given = authorization[7:].strip().encode("utf-8", "replace") if authorization.startswith("Bearer ") else b""
    if token and given and hmac.compare_digest(given, token.encode("utf-8")):
        return True
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    for item in filter(None, (part.strip() for part in networks.split(","))):
        try:
            if address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class BillpostCollector:
    def __init__(self, app: Flask, session: Session) -> None:
        self.app, self.session = app, session

    def collect(self) -> Iterator[Metric]:
        yield from self._deliveries()
        yield from self._inbound()
        yield from self._latency()
        yield from self._work_items()
        yield from self._redis()

    def _deliveries(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("billpost_deliveries", "Deliveries by status and channel", labels=["status", "channel"])
        rows = self.session.execute(
            select(Delivery.status, Delivery.channel, func.count()).group_by(Delivery.status, Delivery.channel)
        )
        for status, channel, count in rows:
            family.add_metric([status, channel], count)
        yield family

    def _inbound(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "billpost_inbound_messages", "Messages taken in at the bounce domain, by classification",
            labels=["classification"],
        )
        rows = self.session.execute(
            select(InboundMessage.classification, func.count()).group_by(InboundMessage.classification)
        )
        for classification, count in rows:
            family.add_metric([classification], count)
        yield family
        evidence = CounterMetricFamily(
            "billpost_report_blocks", "Per-recipient blocks of the reports taken in, by how they were read "
            "(rfc3464, dsn_fields, text: a non-standard bounce)", labels=["evidence"],
        )
        for kind, count in self.session.execute(
            select(InboundReportRecipient.evidence, func.count()).group_by(InboundReportRecipient.evidence)
        ):
            evidence.add_metric([kind or "none"], count)
        yield evidence
        quarantined = self.session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.quarantined.is_(True))
        )
        yield GaugeMetricFamily("billpost_quarantine_messages", "Messages in the mail-in quarantine", value=quarantined)

    def _latency(self) -> Iterator[Metric]:
        """Report received at the bounce domain → delivery confirmed, over the last hour's confirmations."""
        since = utcnow() - LATENCY_WINDOW
        rows = self.session.execute(
            select(InboundMessage.received_at, Delivery.confirmed_at)
            .join(InboundReportRecipient, InboundReportRecipient.inbound_id == InboundMessage.id)
            .join(DeliveryAttempt, DeliveryAttempt.id == InboundReportRecipient.attempt_id)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(
                InboundReportRecipient.applied.is_(True),
                Delivery.confirmed_at >= since,
                Delivery.confirmed_by.in_(_REPORT_CONFIRMED),
            )
            .limit(50_000)
        ).all()
        values = [max(0.0, (confirmed - received).total_seconds()) for received, confirmed in rows if received and confirmed]
        family = GaugeMetricFamily(
            "billpost_report_to_confirmation_seconds",
            "Report received to delivery confirmed, confirmations of the last hour", labels=["quantile"],
        )
        for q in (0.5, 0.95, 1.0):
            family.add_metric([str(q)], _quantile(values, q))
        yield family
        yield GaugeMetricFamily(
            "billpost_report_confirmations_last_hour", "Deliveries confirmed by a report in the last hour", value=len(values)
        )

    def _work_items(self) -> Iterator[Metric]:
        """Counted in the database by age bucket (a CASE on created_at): no row comes to Python."""
        now = utcnow()
        whens = [(WorkItem.created_at > now - limit, name) for limit, name in AGE_BUCKETS if limit is not None]
        bucket = case(*whens, else_=AGE_BUCKETS[-1][1])
        family = GaugeMetricFamily("billpost_work_items_open", "Open work items by role and age", labels=["role", "age"])
        rows = self.session.execute(
            select(WorkItem.assigned_role, bucket, func.count())
            .where(WorkItem.status.in_((WorkItemStatus.OPEN, WorkItemStatus.CLAIMED)))
            .group_by(WorkItem.assigned_role, bucket)
        )
        for role, age, count in sorted(rows):
            family.add_metric([role, age], count)
        yield family

    def _redis(self) -> Iterator[Metric]:
        from console.queues import QUEUES, get_queue

        up = GaugeMetricFamily("billpost_redis_up", "1 when Redis answers")
        try:
            waiting = GaugeMetricFamily("billpost_queue_jobs", "Jobs waiting per queue", labels=["queue"])
            failed = GaugeMetricFamily("billpost_jobs_failed", "Failed jobs kept per queue", labels=["queue"])
            for name in QUEUES:
                queue = get_queue(name, self.app)
                waiting.add_metric([name], queue.count)
                failed.add_metric([name], queue.failed_job_registry.count)
            worker_count = len(health.workers(self.app))
            lag = health.sweep_lag(self.app, time.time())
        except Exception:  # noqa: BLE001 - Redis away: say so, the database figures still count
            log.warning("/metrics: Redis did not answer; billpost_redis_up 0", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield waiting
        yield failed
        yield GaugeMetricFamily("billpost_workers", "RQ workers registered", value=worker_count)
        yield GaugeMetricFamily(
            "billpost_sweep_lag_seconds", "Seconds since the delivery sweeper last ran (NaN: none recorded)",
            value=float("nan") if lag is None else lag,
        )


def render(app: Flask, session: Session) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BillpostCollector(app, session))
    return generate_latest(registry)
