"""`console bench mailin`: delivery reports over SMTP to the receiver, reports/s to confirmation, and
one 20 MB message (adds bench rows: use a scratch database)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from console.db import utcnow
from console.delivery.mailin import start_receiver
from console.devtools.ports import free_port


def _bench_attempts(session, count: int, tag: str) -> list:  # noqa: ANN001
    """`count` e-mail deliveries waiting for confirmation, each with its sent attempt (bench data)."""
    from datetime import date, timedelta
    from decimal import Decimal

    from sqlalchemy import select

    from console.models import Bill, Customer, Cycle, Delivery, DeliveryAttempt, ServicePoint

    period = "2031-02"
    cycle = session.scalars(select(Cycle).where(Cycle.period == period)).first()
    if cycle is None:
        cycle = Cycle(period=period, bill_date=date(2031, 2, 25), status="published")
        session.add(cycle)
        session.flush()
    now = utcnow()
    attempts = []
    for i in range(count):
        key = f"{tag}{i:06d}"
        customer = Customer(
            account_no=f"BM{key}", name=f"基准客户{i}", customer_type="residential", email=f"{key}@customers.test",
            phone="13800000000", postal_address="苏州市", postal_code="215000", wants_ebill=True,
            channel_portal=True, channel_email=True, channel_paper=False,
        )
        session.add(customer)
        session.flush()
        point = ServicePoint(customer_id=customer.id, point_no=f"BP{key}", address="苏州市", meter_no=f"BM{key}",
                             tariff_code="RES", read_day=10)
        session.add(point)
        session.flush()
        bill = Bill(
            bill_no=f"BB{key}", cycle_id=cycle.id, customer_id=customer.id, service_point_id=point.id,
            unit_key=f"P{key}", bill_type="regular", template="residential-regular", bill_date=cycle.bill_date,
            due_date=date(2031, 3, 10), previous_balance=Decimal("0"), payments_total=Decimal("0"),
            charges_total=Decimal("1.00"), current_balance=Decimal("1.00"), deposit_held=Decimal("0"),
            status="published",
        )
        session.add(bill)
        session.flush()
        delivery = Delivery(bill_id=bill.id, customer_id=customer.id, channel="email", address=customer.email,
                            recipient_name=customer.name, status="sent", attempts_made=1,
                            confirm_due_at=now + timedelta(hours=24))
        session.add(delivery)
        session.flush()
        attempt = DeliveryAttempt(delivery_id=delivery.id, attempt_no=1, token=f"bm{key}", envid=f"bm-{key}",
                                  message_id=f"<bm{key}@bills.test>", dsn_requested=True, sent_at=now)
        session.add(attempt)
        attempts.append((attempt, customer.email))
    session.commit()
    return attempts


def run_bench(app: Flask, reports_count: int, connections: int):  # noqa: ANN201
    """Delivered reports over SMTP to the receiver on `connections` parallel connections: reports/s
    from the first MAIL FROM to the last 250 (each 250 comes after the commit), then one 20 MB report."""
    import resource
    import smtplib
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from console.devtools.sandbox import build_report
    from console.models import Delivery

    domain = app.config["BOUNCE_DOMAIN"]
    tag = f"{int(time.time()) % 100000:05d}"
    with app.app_context():
        session = app.extensions["billpost.session_factory"]()
        try:
            attempts = _bench_attempts(session, reports_count, tag)
            jobs = []
            for attempt, address in attempts:
                raw = build_report(
                    mail_from=f"bounces+{attempt.token}@{domain}", envid=attempt.envid, arrival=utcnow(),
                    blocks=[{"final_recipient": address, "original_recipient": f"rfc822;{address}",
                             "action": "delivered", "status": "2.0.0", "diagnostic": "smtp; 250 2.0.0 Ok",
                             "remote_mta": None}],
                    original_headers=f"Message-ID: {attempt.message_id}\nTo: {address}\n",
                )
                jobs.append((raw, f"bounces+{attempt.token}@{domain}"))
            ids = [attempt.delivery_id for attempt, _ in attempts]
        finally:
            session.close()
    yield f"{reports_count} deliveries waiting for confirmation seeded ({app.extensions['billpost.engine'].dialect.name})"
    receiver = start_receiver(app, "127.0.0.1", free_port())

    def client(chunk: list[tuple[bytes, str]]) -> None:
        with smtplib.SMTP(receiver.host, receiver.port, timeout=120) as conn:
            for raw, rcpt in chunk:
                conn.sendmail("", [rcpt], raw)

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(client, [jobs[i::connections] for i in range(connections)]))
        elapsed = time.perf_counter() - started
        with app.app_context():
            session = app.extensions["billpost.session_factory"]()
            try:
                confirmed = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.id.in_(ids), Delivery.status == "confirmed")
                )
            finally:
                session.close()
        yield (f"{reports_count} delivered reports over {connections} connection(s): {elapsed:.2f} s, "
               f"{reports_count / elapsed:.0f} reports/s, {elapsed / reports_count * 1000:.1f} ms each; "
               f"{confirmed} deliveries confirmed")
        big = jobs[0][0] + b"\r\n" + (b"Z" * 900 + b"\r\n") * (20 * 1024 * 1024 // 902)
        started = time.perf_counter()
        with smtplib.SMTP(receiver.host, receiver.port, timeout=120) as conn:
            conn.sendmail("", [f"bounces+bench-big@{domain}"], big)
        yield (f"one 20 MB message: {time.perf_counter() - started:.2f} s; peak memory of this process "
               f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        receiver.stop()


@click.command("mailin")
@click.option("--reports", "reports_count", default=1000, show_default=True)
@click.option("--connections", default=4, show_default=True, help="Parallel SMTP connections (Postfix uses several).")
@with_appcontext
def bench_mailin_command(reports_count: int, connections: int) -> None:
    """Report intake over SMTP: reports/s to confirmation (adds bench rows: use a scratch database)."""
    for line in run_bench(current_app._get_current_object(), reports_count, max(1, connections)):
        click.echo(line)
