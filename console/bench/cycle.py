"""`console bench cycle`: seed (or reuse) N customers with points, reads and charges, generate a cycle
with ONE worker process (a burst RQ SimpleWorker in a subprocess, so its memory is its own; `--workers`
for several at once), and
compare with the floor: the same bill rows written by a bare Core bulk insert."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, func, insert, select, text, update

from console.audit import Actor
from console.billing import cycles
from console.billing.generation import period_bounds
from console.billing.tariffs import seed_sample_tariffs
from console.config import child_environment
from console.models import Customer, ServicePoint
from console.models.billing import Bill, BillLine, BillMessage, Cycle, CycleChunk, LedgerEntry, MeterRead
from console.queues import get_queue, redis_url

PREFIX = "BENCH"
BATCH = 5000
MIX = [("residential", "RES")] * 14 + [("residential", "RES-TOU")] * 2 + [("commercial", "COM")] * 3 + [
    ("industrial", "IND")
]


def _batches(rows: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def seed(session, customers: int, period: str) -> list[str]:  # noqa: ANN001
    """Bench customers BENCH00000001... with one point each, a baseline read before the period and
    a read in it, an inspection fee for one in ten, a payment for one in four. Reused when present."""
    out = []
    have = session.scalar(select(func.count()).select_from(Customer).where(Customer.account_no.like(f"{PREFIX}%")))
    if have < customers:
        rows = []
        for n in range(have + 1, customers + 1):
            ctype, _tariff = MIX[n % len(MIX)]
            rows.append({"account_no": f"{PREFIX}{n:08d}", "name": f"压测客户{n}", "customer_type": ctype,
                         "key_account": False, "wants_ebill": True, "channel_portal": True, "channel_email": False,
                         "channel_paper": False, "collective_billing": False, "status": "active",
                         "email": f"bench{n}@customers.test"})
        for part in _batches(rows):
            session.execute(insert(Customer.__table__), part)
        ids = session.execute(
            select(Customer.id, Customer.account_no).where(Customer.account_no.like(f"{PREFIX}%"),
                                                           ~Customer.id.in_(select(ServicePoint.customer_id)))
        ).all()
        points = []
        for customer_id, account_no in ids:
            n = int(account_no[len(PREFIX):])
            points.append({"customer_id": customer_id, "point_no": f"BP{n:08d}", "address": f"压测路{n}号",
                           "meter_no": f"BM{n:08d}", "tariff_code": MIX[n % len(MIX)][1], "read_day": 1 + n % 28,
                           "is_billing_point": True, "status": "active"})
        for part in _batches(points):
            session.execute(insert(ServicePoint.__table__), part)
        session.commit()
        out.append(f"seeded {customers - have} customers with one service point each")
    start, _end = period_bounds(period)
    points = session.execute(
        select(ServicePoint.id, ServicePoint.customer_id, ServicePoint.point_no, ServicePoint.read_day)
        .where(ServicePoint.point_no.like("BP%"))
    ).all()
    read_in_period = session.scalar(
        select(func.count()).select_from(MeterRead).join(ServicePoint, ServicePoint.id == MeterRead.service_point_id)
        .where(ServicePoint.point_no.like("BP%"), MeterRead.read_date >= start,
               MeterRead.read_date < start + timedelta(days=31))
    )
    if read_in_period < len(points):
        have_reads = set(session.scalars(
            select(MeterRead.service_point_id).where(MeterRead.read_date >= start,
                                                     MeterRead.read_date < start + timedelta(days=31))
        ))
        reads, entries = [], []
        baseline = start - timedelta(days=10)
        for point_id, customer_id, point_no, read_day in points:
            if point_id in have_reads:
                continue
            n = int(point_no[2:])
            used = Decimal(150 + (n * 37) % 900)
            reads.append({"service_point_id": point_id, "read_date": baseline, "total_kwh": Decimal(10000 + n % 5000),
                          "peak_kwh": Decimal(4000), "valley_kwh": Decimal(3000), "max_demand_kw": Decimal(40),
                          "meter_change": False})
            reads.append({"service_point_id": point_id, "read_date": start + timedelta(days=read_day - 1),
                          "total_kwh": Decimal(10000 + n % 5000) + used, "peak_kwh": Decimal(4000) + used * 4 / 10,
                          "valley_kwh": Decimal(3000) + used * 3 / 10, "max_demand_kw": Decimal(40 + n % 60),
                          "meter_change": False})
            if n % 10 == 0:
                entries.append({"customer_id": customer_id, "service_point_id": point_id, "kind": "inspection",
                                "amount": Decimal("30.00"), "entry_date": start + timedelta(days=3),
                                "description": "bench inspection", "reference": None,
                                "natural_key": f"bench:insp:{point_id}:{period}"})
            if n % 4 == 0:
                entries.append({"customer_id": customer_id, "service_point_id": point_id, "kind": "payment",
                                "amount": Decimal("-50.00"), "entry_date": start + timedelta(days=5),
                                "reference": f"BENCH-{period}-{n}", "description": "",
                                "natural_key": f"bench:pay:{point_id}:{period}"})
        existing_baselines = set(session.execute(
            select(MeterRead.service_point_id, MeterRead.read_date).where(MeterRead.read_date == baseline)
        ).all())
        reads = [r for r in reads if (r["service_point_id"], r["read_date"]) not in existing_baselines]
        for part in _batches(reads):
            session.execute(insert(MeterRead.__table__), part)
        keys = set(session.scalars(select(LedgerEntry.natural_key).where(LedgerEntry.natural_key.like("bench:%"))))
        entries = [e for e in entries if e["natural_key"] not in keys]
        for part in _batches(entries):
            session.execute(insert(LedgerEntry.__table__), part)
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE"))  # fresh statistics after a bulk load, as an operator would
            session.commit()
        out.append(f"seeded {len(reads)} reads and {len(entries)} ledger entries for {period}")
    return out


def reset_cycle(session, period: str) -> None:  # noqa: ANN001
    """Remove an earlier bench run of this period (its bills, their new entries) so it can run again."""
    cycle = cycles.get_cycle(session, period)
    if cycle is None:
        return
    bill_ids = select(Bill.id).where(Bill.cycle_id == cycle.id)
    session.execute(delete(BillMessage).where(BillMessage.bill_id.in_(bill_ids)))
    session.execute(delete(BillLine).where(BillLine.bill_id.in_(bill_ids)))
    made = ("elec:", "late:", "inst:", "dep:")
    for prefix in made:
        session.execute(delete(LedgerEntry).where(LedgerEntry.bill_id.in_(bill_ids),
                                                  LedgerEntry.natural_key.like(f"{prefix}%")))
    session.execute(update(LedgerEntry).where(LedgerEntry.bill_id.in_(bill_ids)).values(bill_id=None))
    session.execute(delete(Bill).where(Bill.cycle_id == cycle.id))
    session.execute(delete(CycleChunk).where(CycleChunk.cycle_id == cycle.id))
    session.execute(delete(Cycle).where(Cycle.id == cycle.id))
    session.commit()


def floor(session, cycle: Cycle, chunk_size: int) -> tuple[int, float]:  # noqa: ANN001
    """The same bill rows, written by a bare Core executemany per chunk into a scratch cycle; rolled back."""
    rows = [dict(r._mapping) for r in session.execute(select(Bill.__table__).where(Bill.cycle_id == cycle.id))]
    scratch = Cycle(period="9999-12", bill_date=date(9999, 12, 31), status="open")
    session.add(scratch)
    session.flush()
    for row in rows:
        row.pop("id")
        row["cycle_id"] = scratch.id
        row["bill_no"] = "F" + row["bill_no"]
    started = time.perf_counter()
    for part in _batches(rows, chunk_size):
        session.execute(insert(Bill.__table__), part)
    session.flush()
    seconds = time.perf_counter() - started
    session.rollback()
    return len(rows), seconds


KEY_PREFIX = "BENCHK"
# The days of the month a key account's points are read (cycled over its points): 3, 5, 8 make one
# collective bill (span 5 days), 17, 19 a second, 26 a third.
KEY_READ_DAYS = (3, 5, 8, 17, 19, 26)


def seed_key_accounts(session, accounts: int, per_account: int, period: str) -> list[str]:  # noqa: ANN001
    """Collective-billing key accounts BENCHK0000001... with `per_account` points each (reads spread
    over the month so each account gets several collective bills), a baseline read before the period and
    a read in it, an inspection fee for one point in ten, a payment for one in four. Reused when present."""
    out = []
    have = session.scalar(select(func.count()).select_from(Customer).where(Customer.account_no.like(f"{KEY_PREFIX}%")))
    if have < accounts:
        rows = [{"account_no": f"{KEY_PREFIX}{n:07d}", "name": f"压测大客户{n}",
                 "customer_type": "industrial" if n % 2 else "commercial", "key_account": True, "wants_ebill": True,
                 "channel_portal": True, "channel_email": False, "channel_paper": True, "collective_billing": True,
                 "collective_billing_since": date(2020, 1, 1), "status": "active",
                 "email": f"benchk{n}@customers.test"} for n in range(have + 1, accounts + 1)]
        for part in _batches(rows):
            session.execute(insert(Customer.__table__), part)
        ids = session.execute(
            select(Customer.id, Customer.account_no, Customer.customer_type)
            .where(Customer.account_no.like(f"{KEY_PREFIX}%"), ~Customer.id.in_(select(ServicePoint.customer_id)))
        ).all()
        points = []
        for customer_id, account_no, ctype in ids:
            n = int(account_no[len(KEY_PREFIX):])
            for i in range(per_account):
                points.append({"customer_id": customer_id, "point_no": f"BK{n:07d}{i:03d}", "address": f"压测园区{n}号{i}栋",
                               "meter_no": f"BKM{n:07d}{i:03d}", "tariff_code": "IND" if ctype == "industrial" else "COM",
                               "read_day": KEY_READ_DAYS[i % len(KEY_READ_DAYS)], "is_billing_point": i == 0,
                               "status": "active"})
        for part in _batches(points):
            session.execute(insert(ServicePoint.__table__), part)
        session.commit()
        out.append(f"seeded {accounts - have} collective key accounts with {per_account} service points each")
    start, _end = period_bounds(period)
    baseline = start - timedelta(days=10)
    have_reads = set(session.scalars(
        select(MeterRead.service_point_id).join(ServicePoint, ServicePoint.id == MeterRead.service_point_id)
        .where(ServicePoint.point_no.like("BK%"), MeterRead.read_date >= start,
               MeterRead.read_date < start + timedelta(days=31))
    ))
    points = session.execute(
        select(ServicePoint.id, ServicePoint.customer_id, ServicePoint.point_no, ServicePoint.read_day)
        .where(ServicePoint.point_no.like("BK%"))
    ).all()
    missing = [p for p in points if p[0] not in have_reads]
    if missing:
        existing_baselines = set(session.scalars(
            select(MeterRead.service_point_id).join(ServicePoint, ServicePoint.id == MeterRead.service_point_id)
            .where(ServicePoint.point_no.like("BK%"), MeterRead.read_date == baseline)
        ))
        reads, entries = [], []
        for point_id, customer_id, point_no, read_day in missing:
            n = int(point_no[2:])
            used = Decimal(500 + (n * 37) % 4000)
            if point_id not in existing_baselines:
                reads.append({"service_point_id": point_id, "read_date": baseline, "total_kwh": Decimal(50000),
                              "peak_kwh": Decimal(20000), "valley_kwh": Decimal(15000), "max_demand_kw": Decimal(200),
                              "meter_change": False})
            reads.append({"service_point_id": point_id, "read_date": start + timedelta(days=read_day - 1),
                          "total_kwh": Decimal(50000) + used, "peak_kwh": Decimal(20000) + used * 4 / 10,
                          "valley_kwh": Decimal(15000) + used * 3 / 10, "max_demand_kw": Decimal(100 + n % 300),
                          "meter_change": False})
            if n % 10 == 0:
                entries.append({"customer_id": customer_id, "service_point_id": point_id, "kind": "inspection",
                                "amount": Decimal("30.00"), "entry_date": start + timedelta(days=3),
                                "description": "bench inspection", "reference": None,
                                "natural_key": f"bench:kinsp:{point_id}:{period}"})
            if n % 4 == 0:
                entries.append({"customer_id": customer_id, "service_point_id": point_id, "kind": "payment",
                                "amount": Decimal("-500.00"), "entry_date": start + timedelta(days=5),
                                "reference": f"BENCHK-{period}-{n}", "description": "",
                                "natural_key": f"bench:kpay:{point_id}:{period}"})
        for part in _batches(reads):
            session.execute(insert(MeterRead.__table__), part)
        keys = set(session.scalars(select(LedgerEntry.natural_key).where(LedgerEntry.natural_key.like("bench:k%"))))
        entries = [e for e in entries if e["natural_key"] not in keys]
        for part in _batches(entries):
            session.execute(insert(LedgerEntry.__table__), part)
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE"))
            session.commit()
        out.append(f"seeded {len(reads)} reads and {len(entries)} ledger entries for the key accounts' points")
    return out


def chunk_rates(session, cycle: Cycle) -> dict[str, dict]:  # noqa: ANN001
    """Per kind of chunk (ordinary customers only / collective key accounts only; mixed chunks left out):
    chunks, bills, service points billed and seconds (from the chunks' own start and finish times)."""
    out: dict[str, dict] = {}
    bc = Bill.__table__.c
    for chunk in session.scalars(select(CycleChunk).where(CycleChunk.cycle_id == cycle.id)):
        in_range = bc.customer_id.between(chunk.first_customer_id, chunk.last_customer_id)
        by_type = dict(session.execute(
            select(bc.bill_type, func.count()).where(bc.cycle_id == cycle.id, in_range).group_by(bc.bill_type)
        ).all())
        kinds = {True: by_type.get("collective", 0), False: sum(by_type.values()) - by_type.get("collective", 0)}
        key_accounts = session.scalar(select(func.count()).select_from(Customer).where(
            Customer.id.between(chunk.first_customer_id, chunk.last_customer_id),
            Customer.account_no.like(f"{KEY_PREFIX}%")))
        if chunk.status != "done" or chunk.started_at is None or chunk.finished_at is None:
            continue
        if key_accounts == 0:
            kind = "ordinary"
        elif key_accounts == chunk.customers:
            kind = "key accounts"
        else:
            continue
        points = session.scalar(select(func.count(func.distinct(BillLine.service_point_id))).join(Bill).where(
            Bill.cycle_id == cycle.id, Bill.customer_id.between(chunk.first_customer_id, chunk.last_customer_id)))
        figures = out.setdefault(kind, {"chunks": 0, "bills": 0, "collective": 0, "points": 0, "seconds": 0.0})
        figures["chunks"] += 1
        figures["bills"] += sum(kinds.values())
        figures["collective"] += kinds.get(True, 0)
        figures["points"] += points
        figures["seconds"] += (chunk.finished_at - chunk.started_at).total_seconds()
    return out


def _generate(app: Flask, period: str, chunk_size: int, workers: int = 1) -> Iterator[str | dict]:
    """Open the bench cycle afresh, enqueue its chunks, run them with `workers` worker processes at once;
    yields their figures (a dict: the longest worker's seconds, the largest peak memory) last."""
    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        reset_cycle(session, period)
        get_queue("billing", app).empty()
        cycles.open_cycle(session, period, Actor.cli())
        chunks = cycles.start_run(session, period, Actor.cli(), chunk_size)
        session.commit()  # the chunk jobs reach the queue with the commit
        yield f"{len(chunks)} chunks of up to {chunk_size} customers enqueued"
    env = child_environment(REDIS_URL=redis_url(app), DATABASE_URL=app.config["DATABASE_URL"])
    processes = [subprocess.Popen([sys.executable, "-m", "console.bench.cycle_worker"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    figures = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            yield err[-3000:]
            raise RuntimeError("a bench worker failed")
        figures.append(json.loads(out.strip().splitlines()[-1]))
    yield {"seconds": max(f["seconds"] for f in figures), "maxrss_kb": max(f["maxrss_kb"] for f in figures),
           "startup_rss_kb": max(f["startup_rss_kb"] for f in figures)}


def run_collective_bench(app: Flask, customers: int, period: str, key_accounts: int,
                         per_account: int) -> Iterator[str]:
    """Ordinary customers plus collective key accounts in one cycle: bills/s and service points/s of the
    ordinary chunks and of the key-account chunks; then the same key accounts billed point by point
    (collective billing off) for the cost of the collective seam itself."""
    factory = app.extensions["billpost.session_factory"]
    chunk_size = int(app.config["CYCLE_CHUNK_SIZE"])
    with factory() as session:
        seed_sample_tariffs(session)
        session.commit()
        started = time.perf_counter()
        yield from seed(session, customers, period)
        yield from seed_key_accounts(session, key_accounts, per_account, period)
        session.execute(update(Customer).where(Customer.account_no.like(f"{KEY_PREFIX}%"))
                        .values(collective_billing=True))
        session.commit()
        yield f"seeding/reuse took {time.perf_counter() - started:.1f} s"
    runs = {}
    for label, collective_on in (("collective", True), ("point by point", False)):
        with factory() as session:
            session.execute(update(Customer).where(Customer.account_no.like(f"{KEY_PREFIX}%"))
                            .values(collective_billing=collective_on))
            session.commit()
        for item in _generate(app, period, chunk_size):
            if isinstance(item, dict):
                yield f"[{label}] generation: {item['seconds']:.2f} s with one worker process, " \
                      f"peak memory {item['maxrss_kb'] / 1024:.0f} MB"
            else:
                yield f"[{label}] {item}"
        with factory() as session:
            runs[label] = chunk_rates(session, cycles.get_cycle(session, period))
    with factory() as session:  # leave the key accounts collective
        session.execute(update(Customer).where(Customer.account_no.like(f"{KEY_PREFIX}%"))
                        .values(collective_billing=True))
        session.commit()
    dialect = app.extensions["billpost.engine"].dialect.name
    yield f"database: {dialect}; {customers} ordinary customers, {key_accounts} key accounts x {per_account} points"

    def rate(figures: dict, what: str) -> float:
        return figures[what] / figures["seconds"] if figures.get("seconds") else 0.0

    ordinary = runs["collective"].get("ordinary", {})
    key = runs["collective"].get("key accounts", {})
    plain = runs["point by point"].get("key accounts", {})
    if ordinary:
        yield f"ordinary chunks: {ordinary['bills']} bills in {ordinary['seconds']:.2f} s = " \
              f"{rate(ordinary, 'bills'):,.0f} bills/s (one bill per service point)"
    if key:
        yield f"collective chunks: {key['collective']} collective bills covering {key['points']} service points in " \
              f"{key['seconds']:.2f} s = {rate(key, 'bills'):,.0f} collective bills/s, " \
              f"{rate(key, 'points'):,.0f} service points/s"
    if plain:
        yield f"same key accounts billed point by point: {plain['bills']} bills in {plain['seconds']:.2f} s = " \
              f"{rate(plain, 'bills'):,.0f} bills/s"
    if ordinary and key:
        yield f"ratio collective points/s / ordinary bills/s: {rate(key, 'points') / rate(ordinary, 'bills'):.2f} " \
              "(target >= 0.80)"
    if plain and key:
        yield f"ratio collective points/s / same points billed point by point: " \
              f"{rate(key, 'points') / rate(plain, 'bills'):.2f}"


def run_bench(app: Flask, customers: int, period: str, workers: int = 1) -> Iterator[str]:
    factory = app.extensions["billpost.session_factory"]
    chunk_size = int(app.config["CYCLE_CHUNK_SIZE"])
    with factory() as session:
        seed_sample_tariffs(session)
        session.commit()
        started = time.perf_counter()
        yield from seed(session, customers, period)
        yield f"seeding/reuse took {time.perf_counter() - started:.1f} s"
    figures: dict = {}
    for item in _generate(app, period, chunk_size, workers):
        if isinstance(item, dict):
            figures = item
        else:
            yield item
    with factory() as session:
        cycle = cycles.get_cycle(session, period)
        report = cycles.cycle_report(session, period)
        bills = report["bills"]
        lines = session.scalar(select(func.count()).select_from(BillLine).join(Bill).where(Bill.cycle_id == cycle.id))
        floor_rows, floor_seconds = floor(session, cycle, chunk_size)
    rate = bills / figures["seconds"] if figures["seconds"] else 0.0
    floor_rate = floor_rows / floor_seconds if floor_seconds else 0.0
    dialect = app.extensions["billpost.engine"].dialect.name
    yield f"database: {dialect}; cycle {period}: {report['status']}, {bills} bills, {lines} lines, " \
          f"{report['chunks']['chunks_failed']} failed chunks"
    processes = "one worker process" if workers == 1 else f"{workers} worker processes at once"
    yield f"generation: {figures['seconds']:.2f} s with {processes} = {rate:,.0f} bills/s" + (
        f" ({rate / workers:,.0f} a worker)" if workers > 1 else "")
    yield f"peak worker memory (max RSS): {figures['maxrss_kb'] / 1024:.0f} MB " \
          f"(after start-up: {figures['startup_rss_kb'] / 1024:.0f} MB)"
    yield f"floor (bare Core bulk insert of the same {floor_rows} bill rows): {floor_seconds:.2f} s = " \
          f"{floor_rate:,.0f} bills/s"
    against = "" if workers == 1 else f" ({workers} workers against the floor's one connection)"
    yield f"ratio generation/floor: {rate / floor_rate:.2f}{against}" if floor_rate else "ratio: n/a"


@click.command("cycle")
@click.option("--customers", default=100000, show_default=True)
@click.option("--period", default="2031-01", show_default=True, help="A period of its own for the bench.")
@click.option("--key-accounts", default=0, show_default=True,
              help="Also seed this many collective-billing key accounts and compare their rate (issue 4).")
@click.option("--points-per-account", default=20, show_default=True)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes generating at once (the scale-out figure; the floor stays one connection).")
@with_appcontext
def bench_cycle(customers: int, period: str, key_accounts: int, points_per_account: int, workers: int) -> None:
    """Generate a cycle for N customers with one worker process (or --workers): bills/s, peak memory,
    bare-insert floor. With --key-accounts: ordinary vs collective rates instead."""
    app = current_app._get_current_object()
    if key_accounts:
        lines = run_collective_bench(app, customers, period, key_accounts, points_per_account)
    else:
        lines = run_bench(app, customers, period, workers)
    for line in lines:
        click.echo(line)
