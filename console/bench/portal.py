"""`console bench portal --bills N`: seed (or reuse) N published bills (COPY on PostgreSQL), then time
the bill list and bill pages, signed in as customers chosen at random: through the test client, or with
`--wrk` under Debian's wrk against gunicorn started as in production (console/bench/portal_wrk.py)."""

from __future__ import annotations

import random
import resource
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select, text

from console.db import bulk_insert, reserve_ids, utcnow
from console.models import Bill, BillLine, Customer, Cycle, ServicePoint
from console.models.portal import WebAccount
from console.passwords import hash_password

PREFIX = "PORTALB"
PERIODS = [f"2090-{m:02d}" for m in range(1, 13)]  # periods of its own, far from real ones
BATCH = 5000
PASSWORD = "bench password for the portal"


def _batches(rows: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _count_bills(session) -> int:  # noqa: ANN001
    return session.scalar(
        select(func.count()).select_from(Bill).join(Cycle, Cycle.id == Bill.cycle_id).where(Cycle.period.in_(PERIODS))
    )


def seed(session, bills: int) -> Iterator[str]:  # noqa: ANN001
    """Customers PORTALB00000001... with one point each and one published bill per bench period;
    3 lines per bill (4 with a late fee). Reused when the database already holds them; a seed cut
    short goes on where it stopped. On PostgreSQL every row goes in by COPY (console.db.bulk_insert,
    the ids reserved first), elsewhere by Core executemany; one batch of BATCH customers at a time,
    committed, so memory stays flat whatever N is."""
    have = _count_bills(session)
    if have >= bills:
        yield f"reusing {have} bench bills"
        return
    customers = -(-bills // len(PERIODS))
    started = time.perf_counter()
    connection = session.connection()
    existing = session.scalar(
        select(func.count()).select_from(Customer).where(Customer.account_no.like(f"{PREFIX}%"))
    )
    for first in range(existing + 1, customers + 1, BATCH):
        bulk_insert(connection, Customer.__table__, [
            {"account_no": f"{PREFIX}{n:08d}", "name": f"网页压测客户{n}", "customer_type": "residential",
             "key_account": False, "wants_ebill": True, "channel_portal": True, "channel_email": False,
             "channel_paper": False, "collective_billing": False, "status": "active",
             "email": f"portalbench{n}@customers.test",
             "id_number": f"320502{19000101 + n % 1000:08d}{n % 10000:04d}"}
            for n in range(first, min(first + BATCH, customers + 1))
        ])
        session.commit()
        connection = session.connection()
    unpointed = session.execute(
        select(Customer.id, Customer.account_no)
        .where(Customer.account_no.like(f"{PREFIX}%"), ~Customer.id.in_(select(ServicePoint.customer_id)))
        .order_by(Customer.id)
    ).all()
    for part in _batches(unpointed):
        bulk_insert(connection, ServicePoint.__table__, [
            {"customer_id": cid, "point_no": f"PP{acct[len(PREFIX):]}", "address": f"苏州市工业园区星湖街{cid}号",
             "meter_no": f"PM{acct[len(PREFIX):]}", "tariff_code": "RES", "read_day": 10 + cid % 15,
             "is_billing_point": True, "status": "active"}
            for cid, acct in part
        ])
        session.commit()
        connection = session.connection()
    yield (f"{max(customers - existing, 0)} customers and {len(unpointed)} points in "
           f"{time.perf_counter() - started:.1f} s")
    del unpointed

    cycle_ids = {}
    for period in PERIODS:
        cycle = session.scalar(select(Cycle).where(Cycle.period == period))
        if cycle is None:
            year, month = (int(x) for x in period.split("-"))
            cycle = Cycle(period=period, bill_date=date(year, month, 28), status="published", published_at=utcnow())
            session.add(cycle)
            session.flush()
        cycle_ids[period] = cycle.id
    session.commit()

    # (customer id, point id, account number) of the first `customers` bench customers: ~40 bytes
    # each, 83,334 of them for a million bills.
    pairs = session.execute(
        select(ServicePoint.customer_id, ServicePoint.id, Customer.account_no)
        .join(Customer, Customer.id == ServicePoint.customer_id)
        .where(Customer.account_no.like(f"{PREFIX}%"))
        .order_by(ServicePoint.customer_id)
        .limit(customers)
    ).all()
    now = utcnow()
    done = have
    bills_started = time.perf_counter()
    for period in PERIODS:
        cycle_id = cycle_ids[period]
        billed = set(session.scalars(select(Bill.customer_id).where(Bill.cycle_id == cycle_id)))
        year, month = (int(x) for x in period.split("-"))
        todo = [p for p in pairs if p[0] not in billed]
        del billed
        for part in _batches(todo):
            _insert_bills(session.connection(), part, cycle_id, date(year, month, 28), period, now)
            session.commit()
            done += len(part)
        yield f"  {period}: {done} bills so far ({time.perf_counter() - bills_started:.0f} s)"
    if session.bind.dialect.name == "postgresql":
        session.execute(text("ANALYZE customers"))
        session.execute(text("ANALYZE bills"))
        session.execute(text("ANALYZE bill_lines"))
        session.commit()
    elapsed = time.perf_counter() - started
    added = done - have
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    yield (f"seeded {added} bills in {elapsed:.1f} s ({added / elapsed:,.0f} bills/s with their lines; "
           f"{session.bind.dialect.name}, {'COPY' if session.bind.dialect.name == 'postgresql' else 'executemany'}); "
           f"peak memory of this process {peak_mb:.0f} MB")


def _insert_bills(connection, part: list, cycle_id: int, bill_date: date, period: str, now) -> None:  # noqa: ANN001
    """One batch of published bills and their lines. PostgreSQL: ids reserved from the sequence,
    then COPY; elsewhere an INSERT … RETURNING in parameter order, then the lines."""
    year, month = bill_date.year, bill_date.month
    due = date(year + month // 12, month % 12 + 1, 12)
    read = date(year, month, 12)
    bill_rows, extras = [], []
    for customer_id, point_id, account_no in part:
        kwh = 100 + customer_id % 400
        charge = (Decimal(kwh) * Decimal("0.5283")).quantize(Decimal("0.01"))
        late = Decimal("1.25") if customer_id % 7 == 0 else Decimal("0.00")
        bill_rows.append({
            "bill_no": f"W{period.replace('-', '')}{account_no[len(PREFIX):]}", "cycle_id": cycle_id,
            "customer_id": customer_id, "service_point_id": point_id, "unit_key": f"P{point_id}",
            "bill_type": "regular", "template": "residential_regular", "bill_date": bill_date,
            "due_date": due, "read_date": read,
            "previous_balance": Decimal("35.00"), "payments_total": Decimal("35.00"),
            "charges_total": charge + late, "adjustments_total": Decimal("0.00"),
            "deposit_applied": Decimal("0.00"), "current_balance": charge + late,
            "deposit_held": Decimal("0.00"), "status": "published", "published_at": now, "created_at": now,
        })
        extras.append((kwh, charge, late))
    table = Bill.__table__
    ids = reserve_ids(connection, table, len(bill_rows))
    if ids is not None:
        for row, bill_id in zip(bill_rows, ids, strict=True):
            row["id"] = bill_id
        bulk_insert(connection, table, bill_rows)
    else:
        ids = connection.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), bill_rows
        ).scalars().all()
    lines = []
    for bill_id, row, (kwh, charge, late) in zip(ids, bill_rows, extras, strict=True):
        lines.append({"bill_id": bill_id, "position": 1, "kind": "previous_balance", "service_point_id": None,
                      "description": "previous balance", "amount": Decimal("35.00"), "details": None})
        lines.append({"bill_id": bill_id, "position": 2, "kind": "payment", "service_point_id": None,
                      "description": "payment", "amount": Decimal("-35.00"), "details": {"reference": f"PAY{bill_id}"}})
        lines.append({"bill_id": bill_id, "position": 3, "kind": "electricity",
                      "service_point_id": row["service_point_id"], "description": "electricity", "amount": charge,
                      "details": {"kwh": str(kwh), "previous_read": "1000", "current_read": str(1000 + kwh)}})
        if late:
            lines.append({"bill_id": bill_id, "position": 4, "kind": "late_fee", "service_point_id": None,
                          "description": "late fee", "amount": late, "details": None})
    bulk_insert(connection, BillLine.__table__, lines)


def _accounts(session, count: int) -> list[WebAccount]:  # noqa: ANN001
    """Web accounts for `count` bench customers chosen at random (created once, one hash for all)."""
    accounts = session.scalars(
        select(WebAccount).where(WebAccount.username.like(f"{PREFIX}%")).limit(count)
    ).all()
    if len(accounts) >= count:
        return list(accounts)
    hashed = hash_password(PASSWORD)
    have = {a.customer_id for a in accounts}
    total = session.scalar(select(func.count()).select_from(Customer).where(Customer.account_no.like(f"{PREFIX}%")))
    rng = random.Random(7)
    wanted = sorted({rng.randint(1, total) for _ in range(count * 2)})[: count * 2]
    rows = session.execute(
        select(Customer.id, Customer.account_no).where(Customer.account_no.in_([f"{PREFIX}{n:08d}" for n in wanted]))
    ).all()
    for customer_id, account_no in rows:
        if len(have) >= count:
            break
        if customer_id in have:
            continue
        session.add(WebAccount(customer_id=customer_id, username=account_no, password_hash=hashed,
                               session_token=secrets.token_hex(16)))
        have.add(customer_id)
    session.commit()
    return list(session.scalars(select(WebAccount).where(WebAccount.username.like(f"{PREFIX}%")).limit(count)))


def _figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (f"{name:<10} n={len(ordered):<5} median {statistics.median(ordered) * 1000:7.1f} ms   "
            f"p95 {p95 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms")


def run_bench(app: Flask, bills: int, requests: int, customers: int, wrk: dict | None = None) -> Iterator[str]:
    """Seed (or reuse), then time the pages: through the test client, or with `wrk` (a dict of its
    settings: seconds, connections, threads, workers, warmup) against gunicorn (console/bench/portal_wrk.py)."""
    from console.migrations import upgrade

    if wrk is not None:
        from console.bench import portal_wrk

        portal_wrk.wrk_binary()  # missing: say so before seeding a million bills
    upgrade(app)
    factory = app.extensions["billpost.session_factory"]
    session = factory()
    try:
        yield f"database: {session.bind.dialect.name}"
        yield from seed(session, bills)
        yield f"bench bills in the database: {_count_bills(session)}; all bills: {session.scalar(select(func.count()).select_from(Bill))}"
        accounts = _accounts(session, customers)
        own_bills = {
            a.customer_id: session.scalars(
                select(Bill.id).where(Bill.customer_id == a.customer_id, Bill.status == "published")
            ).all()
            for a in accounts
        }
        if session.bind.dialect.name == "postgresql":
            plan = session.execute(text(
                "EXPLAIN SELECT bills.id FROM bills JOIN cycles ON cycles.id = bills.cycle_id "
                "WHERE bills.customer_id = :c AND bills.status = 'published' "
                "ORDER BY bills.cycle_id DESC, bills.id DESC LIMIT 25"
            ), {"c": accounts[0].customer_id}).scalars().all()
            yield "list query plan:\n    " + "\n    ".join(plan)
        usernames = [(a.username, a.customer_id) for a in accounts]
    finally:
        session.close()

    if wrk is not None:
        yield from portal_wrk.run(app, [(name, own_bills[cid]) for name, cid in usernames], PASSWORD, **wrk)
        return

    # The requests run on a thread of their own: the command's app context must not be shared with
    # them (Flask reuses an app context already pushed, and `g` with it, across test-client requests).
    lines: list[str] = []
    failure: list[BaseException] = []

    def _measure() -> None:
        try:
            lines.extend(_measure_requests(app, usernames, own_bills, requests))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failure.append(exc)

    worker = threading.Thread(target=_measure, name="portal-bench")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    yield from lines


def _measure_requests(app: Flask, usernames: list, own_bills: dict, requests: int) -> list[str]:
    out = []
    app.config["WTF_CSRF_ENABLED"] = False
    clients = {}
    started = time.perf_counter()
    for username, customer_id in usernames:
        client = app.test_client()
        response = client.post("/my/login", data={"username": username, "password": PASSWORD})
        if response.status_code != 302:
            raise RuntimeError(f"bench sign-in failed for {username}: {response.status_code}")
        clients[customer_id] = client
    out.append(f"{len(clients)} customers signed in ({time.perf_counter() - started:.1f} s)")

    rng = random.Random(42)
    ids = list(clients)
    for _ in range(min(20, requests)):  # warm-up: templates compiled, pools filled
        clients[ids[0]].get("/my/bills")
    timings: dict[str, list[float]] = {"bill list": [], "bill page": []}
    for _ in range(requests):
        customer_id = rng.choice(ids)
        client = clients[customer_id]
        t0 = time.perf_counter()
        response = client.get("/my/bills")
        timings["bill list"].append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"bill list answered {response.status_code}")
        bill_id = rng.choice(own_bills[customer_id])
        t0 = time.perf_counter()
        response = client.get(f"/my/bills/{bill_id}")
        timings["bill page"].append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"bill page {bill_id} of customer {customer_id} answered {response.status_code}")
    for name, samples in timings.items():
        out.append(_figures(name, samples))
    return out


@click.command("portal")
@click.option("--bills", default=1_000_000, show_default=True, help="Published bills in the database (seeded once).")
@click.option("--requests", default=1000, show_default=True, help="Test client: requests of each page to time.")
@click.option("--customers", type=int, default=None,
              help="Signed-in customers, chosen at random (default: 100; with --wrk 200).")
@click.option("--wrk", "use_wrk", is_flag=True,
              help="Run Debian's wrk against gunicorn (the production unit's settings) instead of the test client.")
@click.option("--seconds", default=30, show_default=True, help="wrk: seconds of each page (-d).")
@click.option("--connections", default=16, show_default=True, help="wrk: connections (-c).")
@click.option("--threads", default=2, show_default=True, help="wrk: threads (-t).")
@click.option("--workers", type=int, default=None, help="wrk: gunicorn workers (default: 2 × cores + 1).")
@click.option("--warmup", default=5, show_default=True, help="wrk: seconds of each page run first, not counted.")
@with_appcontext
def bench_portal(bills: int, requests: int, customers: int | None, use_wrk: bool, seconds: int, connections: int,
                 threads: int, workers: int | None, warmup: int) -> None:
    """The customer's bill list and bill page with BILLS published bills: median/p95 through the test
    client, or with --wrk requests/s, p50, p95 and p99 of the real server under wrk."""
    wrk = None
    if use_wrk:
        from console.bench.portal_wrk import default_workers

        wrk = {"seconds": seconds, "connections": connections, "threads": threads,
               "workers": workers or default_workers(), "warmup": warmup}
    for line in run_bench(current_app._get_current_object(), bills, requests,
                          customers or (200 if use_wrk else 100), wrk):
        click.echo(line)
