"""`console bench demo-data|import|search`: the customer file's benchmarks."""

from __future__ import annotations

import csv
import io
import os
import resource
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, func, insert, select

from console.audit import Actor
from console.customers import importers
from console.customers.demo import DemoGenerator, seed_demo
from console.imports import importer_settings, run_import
from console.models import Customer


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _migrate() -> None:
    from console.migrations import upgrade

    upgrade(current_app._get_current_object())


@click.command("demo-data")
@click.option("--customers", default=1_000_000, show_default=True)
@click.option("--seed", default=1, show_default=True)
@with_appcontext
def bench_demo_data(customers: int, seed: int) -> None:
    """Seed demo data into the configured (empty) database: time and peak memory."""
    _migrate()
    engine = current_app.extensions["billpost.engine"]
    click.echo(f"database: {engine.url.render_as_string(hide_password=True)}; peak memory before: {_peak_mb():.0f} MB")
    started = time.perf_counter()
    last = [started]

    def progress(done: int) -> None:
        if done % 100_000 == 0:
            now = time.perf_counter()
            click.echo(f"  {done:>9} customers  {now - last[0]:6.1f} s  peak {_peak_mb():.0f} MB")
            last[0] = now

    try:
        with engine.begin() as connection:
            counts = seed_demo(connection, customers, seed, progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    click.echo(
        f"demo-data: {counts['customers']} customers, {counts['service_points']} points, "
        f"{counts['recipients']} recipients in {elapsed:.1f} s "
        f"({counts['customers'] / elapsed:,.0f} customers/s); peak memory (ru_maxrss) {_peak_mb():.0f} MB"
    )


BENCH_PREFIX = "BENCH"


def _bench_csv(customers: int, seed: int) -> bytes:
    generator = DemoGenerator(seed, managers=[])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(importers.CUSTOMER_COLUMNS)
    for n in range(1, customers + 1):
        c, _points, _recipients = generator.customer(n)
        channels = ";".join(ch for ch in ("portal", "email", "paper") if c[f"channel_{ch}"])
        writer.writerow([
            f"{BENCH_PREFIX}{n:09d}", c["name"], c["customer_type"], int(c["key_account"]), "",
            c["id_number"] or "", c["phone"], c["email"] or "", c["postal_address"], c["postal_code"],
            int(c["wants_ebill"]), channels, int(c["collective_billing"]),
        ])
    return out.getvalue().encode("utf-8")


def _delete_bench_rows(session) -> None:  # noqa: ANN001
    session.execute(delete(Customer).where(Customer.account_no.like(BENCH_PREFIX + "%")))
    session.commit()


@click.command("import")
@click.option("--customers", default=100_000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--keep", is_flag=True, help="Leave the imported bench customers in the database.")
@with_appcontext
def bench_import(customers: int, seed: int, keep: bool) -> None:
    """The customers import into the configured DATABASE_URL, in rows/s, against a bare bulk insert.

    For PostgreSQL: DATABASE_URL=postgresql://postgres@127.0.0.1/billpost_bench console bench import
    """
    from console.extensions import db

    _migrate()
    session = db()
    engine = session.get_bind()
    click.echo(f"database: {engine.url.render_as_string(hide_password=True)}")
    _delete_bench_rows(session)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "customers.csv"
        path.write_bytes(_bench_csv(customers, seed))
        click.echo(f"generated {customers} rows, {path.stat().st_size / 1e6:.1f} MB")
        data = path.read_bytes()
    settings = importer_settings(current_app)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        summary = run_import(session, "customers", data, Actor.cli(), False, settings, "bench.csv")
        session.commit()
        first, cpu = time.perf_counter() - started, time.process_time() - cpu
        click.echo(f"import (new rows):       {customers / first:>9,.0f} rows/s  ({first:.1f} s; {summary})")
        click.echo(f"  this process's CPU: {cpu:.1f} s ({customers / cpu:,.0f} rows per CPU second; "
                   f"load average {os.getloadavg()[0]:.1f})")

        started = time.perf_counter()
        summary = run_import(session, "customers", data, Actor.cli(), False, settings, "bench.csv")
        session.commit()
        again = time.perf_counter() - started
        click.echo(f"re-import (unchanged):   {customers / again:>9,.0f} rows/s  ({again:.1f} s; {summary})")

        # The floor: the same rows, already parsed, in one bare Core executemany.
        _delete_bench_rows(session)
        generator = DemoGenerator(seed, managers=[])
        rows = []
        for n in range(1, customers + 1):
            c, _p, _r = generator.customer(n)
            c.pop("id")
            c["account_no"] = f"{BENCH_PREFIX}{n:09d}"
            rows.append(c)
        started = time.perf_counter()
        for start in range(0, len(rows), 2000):
            session.execute(insert(Customer.__table__), rows[start : start + 2000])
        session.commit()
        floor = time.perf_counter() - started
        click.echo(f"bare bulk insert (floor): {customers / floor:>9,.0f} rows/s  ({floor:.1f} s)")
        click.echo(f"import / floor: {floor / first:.2f}")
    finally:
        if not keep:
            _delete_bench_rows(session)


@click.command("search")
@click.option("--customers", default=1_000_000, show_default=True, help="Seed this many first if fewer exist.")
@click.option("--repeat", default=15, show_default=True, help="Requests per query kind.")
@with_appcontext
def bench_search(customers: int, repeat: int) -> None:
    """Median server time of the customer search page (test client, a signed-in clerk)."""
    from console import create_app
    from console.staff.services import create_user

    _migrate()
    engine = current_app.extensions["billpost.engine"]
    with engine.connect() as connection:
        have = connection.scalar(select(func.count()).select_from(Customer.__table__))
    if have < customers:
        if have:
            raise click.ClickException(f"the database has {have} customers, fewer than {customers}: use an empty one")
        click.echo(f"seeding {customers} demo customers first ...")
        with engine.begin() as connection:
            seed_demo(connection, customers, 1)
    app = create_app({"WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "ENGINE": engine})
    password = secrets.token_urlsafe(16)
    with app.app_context():
        from console.extensions import db
        from console.models import User
        from console.passwords import hash_password

        session = db()
        user = session.scalar(select(User).where(User.username == "bench-search"))
        if user is None:
            create_user(session, "bench-search", password, ["clerk"], Actor.cli(), "bench")
        else:
            user.password_hash = hash_password(password)
        session.commit()
        sample = session.execute(
            select(Customer.account_no, Customer.name, Customer.phone, Customer.email)
            .where(Customer.email.is_not(None)).order_by(Customer.id).offset(have // 2).limit(1)
        ).one()
    client = app.test_client()
    client.post("/login", data={"username": "bench-search", "password": password})
    queries = {
        "account (exact)": {"q": sample.account_no},
        "account (prefix)": {"q": sample.account_no[:7]},
        "name (surname)": {"q": "王"},
        "name (two chars)": {"q": sample.name[:2]},
        "phone (prefix)": {"q": sample.phone[:7]},
        "e-mail (prefix)": {"q": sample.email.split("@")[0][:6]},
        "next page": {"q": "王", "kind": "name", "after": "3200500000"},
        "no match": {"q": "zzzz-nobody"},
    }
    every = []
    for label, params in queries.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get("/customers/", query_string=params, headers={"HX-Request": "true"})
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise click.ClickException(f"{label}: HTTP {response.status_code}")
        every += times
        click.echo(f"  {label:<18} median {statistics.median(times):6.1f} ms   max {max(times):6.1f} ms")
    click.echo(f"customer search over {max(have, customers):,} customers: median {statistics.median(every):.1f} ms")


