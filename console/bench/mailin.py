"""`console bench mailin`: delivery reports over SMTP to the receiver — RFC 3464 `delivered` reports
and qmail text bounces —, reports/s to confirmation and the receiver's CPU ms per report, and one
20 MB message (adds bench rows: use a scratch database)."""

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


TEXT_BOUNCE = (
    "From: MAILER-DAEMON@qmail.isp.test\r\nTo: {verp}\r\nSubject: failure notice\r\n"
    "Date: Wed, 15 Jan 2031 10:20:30 +0800\r\nMessage-ID: <qsbmf.{token}@qmail.isp.test>\r\n\r\n"
    "Hi. This is the qmail-send program at qmail.isp.test.\r\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
    "<{address}>:\r\n198.51.100.7 does not like recipient.\r\n"
    "Remote host said: 550 5.1.1 <{address}>: Recipient address rejected: User unknown\r\n"
    "Giving up on 198.51.100.7.\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n"
    "Return-Path: <{verp}>\r\nMessage-ID: {message_id}\r\nTo: {address}\r\nSubject: bill\r\n\r\nbill\r\n"
)


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_bench(app: Flask, reports_count: int, connections: int):  # noqa: ANN201
    """Reports over SMTP to the receiver on `connections` parallel connections, first RFC 3464
    `delivered` reports, then qmail text bounces (read from text, a work item each): reports/s from
    the first MAIL FROM to the last 250 (each 250 comes after the commit) and the receiver's CPU ms
    per report (this process's CPU less the SMTP clients' own threads); then one 20 MB report."""
    import resource
    import smtplib
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from console.devtools.sandbox import build_report
    from console.models import Delivery

    domain = app.config["BOUNCE_DOMAIN"]
    tag = f"{int(time.time()) % 100000:05d}"
    warm = min(20, reports_count)  # first messages of each kind, untimed: statement caches, pool
    with app.app_context():
        session = app.extensions["billpost.session_factory"]()
        try:
            per_kind = reports_count + warm
            attempts = _bench_attempts(session, 2 * per_kind, tag)
            runs: dict[str, list] = {"RFC 3464 delivered reports": [], "text bounces (qmail)": []}
            for n, (attempt, address) in enumerate(attempts):
                verp = f"bounces+{attempt.token}@{domain}"
                if n < per_kind:
                    raw = build_report(
                        mail_from=verp, envid=attempt.envid, arrival=utcnow(),
                        blocks=[{"final_recipient": address, "original_recipient": f"rfc822;{address}",
                                 "action": "delivered", "status": "2.0.0", "diagnostic": "smtp; 250 2.0.0 Ok",
                                 "remote_mta": None}],
                        original_headers=f"Message-ID: {attempt.message_id}\nTo: {address}\n",
                    )
                    runs["RFC 3464 delivered reports"].append((raw, verp, attempt.delivery_id))
                else:
                    raw = TEXT_BOUNCE.format(verp=verp, token=attempt.token, address=address,
                                             message_id=attempt.message_id).encode()
                    runs["text bounces (qmail)"].append((raw, verp, attempt.delivery_id))
        finally:
            session.close()
    yield f"{2 * (reports_count + warm)} deliveries waiting for confirmation seeded ({app.extensions['billpost.engine'].dialect.name})"
    receiver = start_receiver(app, "127.0.0.1", free_port())

    def client(chunk: list[tuple[bytes, str, int]]) -> float:
        started = time.thread_time()
        with smtplib.SMTP(receiver.host, receiver.port, timeout=120) as conn:
            for raw, rcpt, _ in chunk:
                conn.sendmail("", [rcpt], raw)
        return time.thread_time() - started

    try:
        for label, jobs in runs.items():
            client(jobs[:warm])
            jobs = jobs[warm:]
            cpu_before, started = _cpu_seconds(), time.perf_counter()
            with ThreadPoolExecutor(connections) as pool:
                client_cpu = sum(pool.map(client, [jobs[i::connections] for i in range(connections)]))
            elapsed = time.perf_counter() - started
            receiver_cpu = _cpu_seconds() - cpu_before - client_cpu
            ids = [delivery_id for _, _, delivery_id in jobs]
            with app.app_context():
                session = app.extensions["billpost.session_factory"]()
                try:
                    by_status = dict(session.execute(
                        select(Delivery.status, func.count()).where(Delivery.id.in_(ids)).group_by(Delivery.status)
                    ).all())
                finally:
                    session.close()
            yield (f"{reports_count} {label} over {connections} connection(s): {elapsed:.2f} s, "
                   f"{reports_count / elapsed:.0f} reports/s, {elapsed / reports_count * 1000:.1f} ms each, "
                   f"receiver CPU {receiver_cpu / reports_count * 1000:.2f} ms per report; "
                   f"{by_status.get('confirmed', 0)} deliveries confirmed, {by_status.get('failed', 0)} failed")
        big = runs["RFC 3464 delivered reports"][0][0] + b"\r\n" + (b"Z" * 900 + b"\r\n") * (20 * 1024 * 1024 // 902)
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
    """Report intake over SMTP: reports/s and receiver CPU ms per report, RFC 3464 and text bounces
    (adds bench rows: use a scratch database)."""
    for line in run_bench(current_app._get_current_object(), reports_count, max(1, connections)):
        click.echo(line)
