"""`console bench inbox`: server time of the rep's inbox and of an item page with many open work items.

Seeds (Core bulk inserts) customers, a cycle, bills, failed e-mail deliveries with a bounced
attempt each, a contact record each and N open work items, in a scratch database of its own
(a temporary SQLite file unless --database-url names one, whose schema is dropped and rebuilt).
Then signs a phone rep in with Flask's test client and times each request in-process.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator
from datetime import date, timedelta

import click
from sqlalchemy import insert, text

BATCH = 5000
PASSWORD = "bench horse battery staple"


def _chunks(rows: Iterator[dict], size: int = BATCH) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _bulk(conn, table, rows: Iterator[dict]) -> None:  # noqa: ANN001
    for batch in _chunks(rows):
        conn.execute(insert(table), batch)


def seed(engine, items: int, rep_id: int, manager_id: int, key_share: float = 0.02,  # noqa: ANN001
         customers: int = 0) -> dict:
    from console.db import utcnow
    from console.models import Bill, ContactRecord, Customer, Cycle, Delivery, DeliveryAttempt, WorkItem
    from console.models.delivery import WorkItemDelivery

    rng = random.Random(42)
    now = utcnow()
    customers = max(1, items, customers)  # one open case per customer and address
    keys = int(customers * key_share)
    with engine.begin() as conn:
        conn.execute(insert(Cycle.__table__), [
            {"id": 1, "period": "2026-09", "bill_date": date(2026, 9, 30), "status": "published", "created_at": now},
            {"id": 2, "period": "2026-10", "bill_date": date(2026, 10, 31), "status": "published", "created_at": now},
        ])
        _bulk(conn, Customer.__table__, (
            {
                "id": c, "account_no": f"B{c:011d}", "name": f"基准客户{c}", "customer_type": "residential",
                "key_account": c <= keys, "account_manager_id": manager_id if c <= keys else None,
                "phone": f"139{c:08d}", "email": f"bench{c}@customers.test", "postal_address": f"苏州市人民路{c}号",
                "postal_code": "215000", "wants_ebill": True, "channel_portal": True, "channel_email": True,
                "channel_paper": False, "collective_billing": False, "status": "active",
                "created_at": now, "updated_at": now,
            }
            for c in range(1, customers + 1)
        ))
        _bulk(conn, Bill.__table__, (
            {
                "id": i, "bill_no": f"BB{i:010d}", "cycle_id": 1 + i % 2, "customer_id": 1 + i % customers,
                "unit_key": f"P{i}", "bill_type": "regular", "template": "residential_regular",
                "bill_date": date(2026, 10, 31), "due_date": date(2026, 11, 15), "previous_balance": 0,
                "payments_total": 0, "charges_total": 8850, "adjustments_total": 0, "deposit_applied": 0,
                "current_balance": 8850, "deposit_held": 0, "status": "published", "created_at": now,
            }
            for i in range(1, items + 1)
        ))
        _bulk(conn, Delivery.__table__, (
            {
                "id": i, "bill_id": i, "customer_id": 1 + i % customers, "recipient_id": None, "channel": "email",
                "address": f"bench{1 + i % customers}@customers.test", "recipient_name": f"基准客户{1 + i % customers}",
                "copies": 1, "status": "failed", "attempts_made": 2, "created_at": now, "send_errors": 0,
                "updated_at": now,
            }
            for i in range(1, items + 1)
        ))
        sent = now - timedelta(days=2)
        _bulk(conn, DeliveryAttempt.__table__, (
            {
                "id": i, "delivery_id": i, "attempt_no": 1, "token": f"bt{i}", "envid": f"be{i}",
                "message_id": f"<bm{i}@bills.test>", "dsn_requested": True, "sent_at": sent,
                "smtp_response": "250 2.0.0 Ok: queued", "outcome": "failed", "status_code": "5.1.1",
                "diagnostic": "smtp; 550 5.1.1 Recipient address rejected: User unknown", "reported_at": sent,
                "created_at": sent,
            }
            for i in range(1, items + 1)
        ))
        _bulk(conn, ContactRecord.__table__, (
            {
                "customer_id": c, "occurred_at": now - timedelta(days=40), "channel": "email",
                "code": "email_confirmed", "params": {"confirmed_by": "delivered"}, "actor_id": None,
                "bill_id": None, "details": None, "note": None,
            }
            for c in range(1, customers + 1)
        ))
        _bulk(conn, WorkItem.__table__, (
            {
                "id": i, "delivery_id": i, "bill_id": i, "customer_id": 1 + i % customers, "reason": "email_failed",
                "assigned_role": "account_manager" if 1 + i % customers <= keys else "phone_rep",
                "assigned_user_id": manager_id if 1 + i % customers <= keys else None, "claimed_by_id": None,
                "status": "open", "code": "email_failed",
                "params": {"address": f"bench{1 + i % customers}@customers.test", "status": "5.1.1"},
                "details": {"attempts": [], "address": f"bench{1 + i % customers}@customers.test"},
                "case_key": f"email:bench{1 + i % customers}@customers.test",
                "priority": 0 if 1 + i % customers <= keys else 1,
                "created_at": now - timedelta(minutes=rng.randint(0, 60 * 24 * 30), seconds=rng.randint(0, 59)),
            }
            for i in range(1, items + 1)
        ))
        _bulk(conn, WorkItemDelivery.__table__, (
            {"work_item_id": i, "delivery_id": i, "bill_id": i, "reason": "email_failed", "added_at": now}
            for i in range(1, items + 1)
        ))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            for table in ("customers", "bills", "deliveries", "delivery_attempts", "work_items", "contact_records",
                          "work_item_deliveries"):
                sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
                conn.execute(text(sql))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"customers": customers, "key_accounts": keys}


def _time(client, url: str, n: int, headers: dict | None = None) -> list[float]:  # noqa: ANN001
    for _ in range(3):  # warm-up
        client.get(url, headers=headers)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def _figures(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    return f"{name:<42} median {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ordered)})"


def run(items: int, database_url: str | None, requests: int, customers: int = 0) -> Iterator[str]:
    from console.audit import Actor
    from console.bench.scratch import scratch_app
    from console.staff.services import create_user

    app, folder = scratch_app("billpost-bench-inbox-", database_url, WTF_CSRF_ENABLED=False)
    engine = app.extensions["billpost.engine"]
    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        rep = create_user(session, "bench_rep", PASSWORD, ["phone_rep"], Actor.cli())
        manager = create_user(session, "bench_manager", PASSWORD, ["account_manager"], Actor.cli())
        session.commit()
        rep_id, manager_id = rep.id, manager.id
    started = time.perf_counter()
    shape = seed(engine, items, rep_id, manager_id, customers=customers)
    yield (f"database {engine.dialect.name}: seeded {items:,} open work items for {shape['customers']:,} customers "
           f"({shape['key_accounts']:,} key accounts) in {time.perf_counter() - started:.1f} s")

    client = app.test_client()
    assert client.post("/login", data={"username": "bench_rep", "password": PASSWORD}).status_code == 302
    from sqlalchemy import select

    from console.models import WorkItem

    with factory() as session:
        rep_items = session.scalars(
            select(WorkItem.id).where(WorkItem.assigned_role == "phone_rep").order_by(WorkItem.id)
        ).all()
    rng = random.Random(7)
    first = client.get("/inbox/rep/").get_data(as_text=True)
    import re

    next_link = re.search(r'rel="next" href="([^"]+)"', first)
    deep = next_link.group(1).replace("&amp;", "&") if next_link else "/inbox/rep/"
    yield _figures("rep inbox, page 1", _time(client, "/inbox/rep/", requests))
    yield _figures("rep inbox, htmx poll (fragment)", _time(client, "/inbox/rep/", requests, {"HX-Request": "true"}))
    yield _figures("rep inbox, page 2 (keyset)", _time(client, deep, requests))
    yield _figures("rep inbox, newest first", _time(client, "/inbox/rep/?order=newest", requests))
    yield _figures("rep inbox, filtered by reason", _time(client, "/inbox/rep/?reason=email_failed", requests))
    item_times = []
    for _ in range(requests):
        item_id = rng.choice(rep_items)
        start = time.perf_counter()
        response = client.get(f"/work-items/{item_id}")
        item_times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    yield _figures("item page (random items)", item_times)
    middle = [f"客户{rng.randint(1, shape['customers']):d}"[:-1] for _ in range(requests)]
    search_times = []
    for fragment in middle:  # a fragment from the middle of the name ("基准客户123456" → "客户12345")
        start = time.perf_counter()
        response = client.get(f"/inbox/rep/?q={fragment}", headers={"HX-Request": "true"})
        search_times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    yield _figures("rep inbox, search by a name fragment", search_times)
    from console.inboxes import services

    viewer = services.Viewer(rep_id, frozenset({"phone_rep"}))
    take_times = []
    with factory() as session:
        for _ in range(requests):  # each claim rolled back: the queue stays as seeded
            start = time.perf_counter()
            item = services.take_next(session, viewer, "phone_rep", Actor.cli())
            take_times.append((time.perf_counter() - start) * 1000)
            assert item is not None
            session.rollback()
    yield _figures("take next (claim the most urgent)", take_times)
    engine.dispose()


@click.command("inbox")
@click.option("--items", default=100_000, show_default=True, help="Open work items to seed.")
@click.option("--requests", default=200, show_default=True, help="Timed requests per page.")
@click.option("--customers", default=1_000_000, show_default=True, help="Customers to seed (at least --items).")
@click.option(
    "--database-url", default=None,
    help="A scratch database to seed (its schema is DROPPED and rebuilt); default: a temporary SQLite file.",
)
def bench_inbox(items: int, requests: int, database_url: str | None, customers: int) -> None:
    """Median and p95 server time of the rep's inbox page, take next, an item page and a search by a
    name fragment, with many open items over many customers."""
    for line in run(items, database_url, requests, customers):
        click.echo(line)
