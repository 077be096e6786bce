"""Cycle jobs through a real Redis: fan-out per chunk, progress in the database, failures retried,
concurrent runs of a chunk, the report and the export."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import date
from decimal import Decimal as D

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from console.audit import Actor
from console.billing import cycles
from console.billing.generation import generate_chunk
from console.billing.tariffs import seed_sample_tariffs
from console.models import Customer, ServicePoint
from console.models.billing import Bill, LedgerEntry, MeterRead
from console.queues import get_queue
from tests.billing.conftest import SETTINGS


def _customers(db, make_customer, n: int) -> list[Customer]:
    made = []
    for i in range(n):
        customer = make_customer(customer_type=("residential", "commercial", "industrial")[i % 3])
        point = db.scalar(select(ServicePoint).where(ServicePoint.customer_id == customer.id))
        db.add_all([
            MeterRead(service_point_id=point.id, read_date=date(2026, 10, 10), total_kwh=D("100")),
            MeterRead(service_point_id=point.id, read_date=date(2026, 11, 10), total_kwh=D("250")),
        ])
        made.append(customer)
    db.commit()
    return made


def _work(app, redis_conn) -> None:  # noqa: ANN001
    queue = get_queue("billing", app)
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)


def _run(app, db, period: str, chunk_size: int = 2):  # noqa: ANN001, ANN202
    chunks = cycles.start_run(db, period, Actor.system(), chunk_size)
    db.commit()  # the chunk jobs reach the queue with the commit (console.outbox)
    return chunks


def test_cycle_fans_out_one_job_per_chunk_and_finishes(app, db, redis_conn, tariffs, make_customer):
    made = _customers(db, make_customer, 5)
    cycles.open_cycle(db, "2026-11", Actor.system())
    chunks = _run(app, db, "2026-11")
    assert len(chunks) == 3  # 5 customers in chunks of 2
    assert get_queue("billing", app).count == 3
    assert {c.job_id for c in chunks} == {"billing-2026-11-1", "billing-2026-11-2", "billing-2026-11-3"}
    _work(app, redis_conn)
    db.expire_all()
    report = cycles.cycle_report(db, "2026-11")
    assert report["status"] == "generated" and report["bills"] == 5
    assert report["chunks"] == {"chunks_total": 3, "chunks_done": 3, "chunks_failed": 0, "chunks_waiting": 0}
    assert {b.customer_id for b in db.scalars(select(Bill))} == {c.id for c in made}

    # running the cycle again enqueues nothing and makes no bill
    assert _run(app, db, "2026-11") == []
    _work(app, redis_conn)
    assert db.scalar(select(func.count()).select_from(Bill)) == 5


def test_a_failed_chunk_is_recorded_retried_and_reported(app, db, redis_conn, tariffs, make_customer):
    made = _customers(db, make_customer, 4)
    broken = db.scalar(select(ServicePoint).where(ServicePoint.customer_id == made[3].id))
    broken.tariff_code = "NO-SUCH-TARIFF"
    db.commit()
    cycles.open_cycle(db, "2026-11", Actor.system())
    _run(app, db, "2026-11")
    _work(app, redis_conn)  # the job fails, is retried twice by RQ, fails again
    db.expire_all()
    report = cycles.cycle_report(db, "2026-11")
    assert report["status"] == "failed" and report["bills"] == 2
    (failed,) = report["failed_chunks"]
    assert failed["chunk_no"] == 2 and failed["attempts"] == 3
    assert "no tariff NO-SUCH-TARIFF" in failed["error"][0]

    broken.tariff_code = "RES"
    db.commit()
    chunks = _run(app, db, "2026-11")
    assert [c.chunk_no for c in chunks] == [2]
    _work(app, redis_conn)
    db.expire_all()
    report = cycles.cycle_report(db, "2026-11")
    assert report["status"] == "generated" and report["bills"] == 4 and report["failed_chunks"] == []


def test_cycle_run_wait_prints_progress_and_report_json(app, runner, db, redis_conn, tariffs, make_customer):
    _customers(db, make_customer, 3)
    result = runner.invoke(args=["cycle", "open", "2026-11"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["cycle", "run", "2026-11", "--wait"])
    assert result.exit_code == 0, result.output
    assert "chunks 1/1 done" in result.output and "3 bills" in result.output
    assert "1 chunks to do, 1 jobs enqueued" in result.output
    # rq 3 calls the success handler with more arguments: the job must end finished, not failed.
    queue = get_queue("billing", app)
    assert queue.finished_job_registry.get_job_ids() == ["billing-2026-11-1"]
    assert queue.failed_job_registry.get_job_ids() == []
    report = json.loads(runner.invoke(args=["cycle", "report", "2026-11", "--json"]).output)
    assert report["bills"] == 3 and report["bills_by_type"] == {"regular": 3}


def test_the_cycle_report_carries_the_delivery_domains_e_mail_counts(db, tariffs):
    cycles.open_cycle(db, "2026-11", Actor.system())
    report = cycles.cycle_report(db, "2026-11")
    assert report["email"]["deliveries"] == 0 and report["email"]["confirmed_by"]["delivered"] == 0


def test_a_chunk_whose_worker_died_is_queued_again_by_the_sweepers_question(app, db, redis_conn, tariffs,
                                                                             make_customer):
    """kill -9 mid-generation leaves RQ's job `started` on a worker that no longer beats, and the
    chunk `queued` in the database: asking again replaces the dead job; a live one is left alone."""
    from rq.job import Job, JobStatus

    from console import outbox

    _customers(db, make_customer, 3)
    cycles.open_cycle(db, "2026-11", Actor.system())
    (chunk,) = _run(app, db, "2026-11", chunk_size=10)
    queue = get_queue("billing", app)
    assert queue.job_ids == [chunk.job_id]
    assert cycles.queue_unfinished_chunks(db) == 1
    db.commit()
    assert outbox.handed_over(db) == 0  # still waiting in Redis: not queued twice

    job = Job.fetch(chunk.job_id, connection=redis_conn, serializer=queue.serializer)
    queue.remove(job)
    job.worker_name = "killed-worker"  # its key expired with its heartbeat
    job.set_status(JobStatus.STARTED)
    job.save()
    cycles.queue_unfinished_chunks(db)
    db.commit()
    assert outbox.handed_over(db) == 1
    assert queue.job_ids == [chunk.job_id]
    _work(app, redis_conn)
    db.expire_all()
    assert cycles.cycle_report(db, "2026-11")["bills"] == 3


def test_two_concurrent_runs_of_a_chunk_give_one_bill_per_point(committed_app):
    factory = committed_app.extensions["billpost.session_factory"]
    with factory() as session:
        seed_sample_tariffs(session)
        ids = []
        for i in range(30):
            customer = Customer(account_no=f"CC{i:06d}", name=f"并发{i}", customer_type="residential")
            session.add(customer)
            session.flush()
            point = ServicePoint(customer_id=customer.id, point_no=f"CCP{i:06d}", address="x", meter_no=f"CCM{i}",
                                 tariff_code="RES", read_day=10)
            session.add(point)
            session.flush()
            session.add_all([
                MeterRead(service_point_id=point.id, read_date=date(2026, 10, 10), total_kwh=D("0")),
                MeterRead(service_point_id=point.id, read_date=date(2026, 11, 10), total_kwh=D("100")),
                LedgerEntry(customer_id=customer.id, service_point_id=point.id, kind="inspection",
                            amount=D("5.00"), entry_date=date(2026, 11, 1), natural_key=f"cc:{i}"),
            ])
            ids.append(customer.id)
        cycle = cycles.open_cycle(session, "2026-11", Actor.system())
        session.commit()
        cycle_id = cycle.id

    barrier = threading.Barrier(2)
    outcomes = []

    def run() -> None:
        with factory() as session:
            barrier.wait()
            try:
                outcomes.append(generate_chunk(session, cycle_id, min(ids), max(ids), SETTINGS))
                session.commit()
            except Exception as exc:  # noqa: BLE001 - the loser of the race fails on the unique key
                session.rollback()
                outcomes.append(repr(exc)[:300])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with factory() as session:
        per_point = session.execute(
            select(Bill.service_point_id, func.count()).where(Bill.cycle_id == cycle_id).group_by(Bill.service_point_id)
        ).all()
        assert len(per_point) == 30, outcomes
        assert {n for _p, n in per_point} == {1}
        billed = session.execute(select(LedgerEntry.bill_id).where(LedgerEntry.natural_key.like("cc:%"))).scalars()
        assert None not in set(billed)
        # a rerun of the chunk after the race adds nothing
        assert generate_chunk(session, cycle_id, min(ids), max(ids), SETTINGS) == 0
    assert 30 in outcomes


@pytest.fixture
def generated(db, billing, make_customer):
    customer = make_customer(customer_type="commercial", name="=HYPERLINK(\"x\")", id_number="110101199003071234")
    point = billing.point(customer)
    billing.read(point, "2026-10-10", "0")
    billing.read(point, "2026-11-10", "100")
    billing.entry(point, "inspection", "30.00", "2026-11-02")
    (bill,) = billing.run("2026-11")
    return bill


def test_export_json_has_every_bill_with_lines_due_date_type_and_totals(runner, generated):
    result = runner.invoke(args=["bills", "export", "2026-11", "--format", "json"])
    assert result.exit_code == 0, result.output
    (bill,) = json.loads(result.output)
    assert bill["bill_no"] == generated.bill_no and bill["due_date"] == "2026-12-10"
    assert bill["bill_type"] == "regular" and bill["current_balance"] == "94.18"  # 100 x 0.6418 = 64.18 + 30
    assert [(line["kind"], line["amount"]) for line in bill["lines"]] == [("electricity", "64.18"),
                                                                        ("inspection", "30.00")]
    assert "110101199003071234" not in result.output


def test_export_csv_is_one_row_per_line_with_safe_cells(runner, generated, tmp_path):
    out = tmp_path / "bills.csv"
    result = runner.invoke(args=["bills", "export", "2026-11", "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["line_kind"] for r in rows] == ["electricity", "inspection"]
    assert rows[0]["customer_name"].startswith("'=")  # a formula is neutralised
    assert rows[0]["due_date"] == "2026-12-10" and rows[1]["line_amount"] == "30.00"
    assert "110101199003071234" not in out.read_text(encoding="utf-8")


def test_export_of_an_unknown_cycle_fails_cleanly(runner, db):
    result = runner.invoke(args=["bills", "export", "2030-01"])
    assert result.exit_code != 0 and "2030-01" in result.output and "账期" in result.output


def test_publish_hands_the_generated_cycle_to_delivery(runner, db, redis_conn, generated):
    cycle = cycles.get_cycle(db, "2026-11")
    cycle.status = "generated"
    db.commit()
    result = runner.invoke(args=["cycle", "publish", "2026-11"])
    assert result.exit_code == 0, result.output
    db.expire_all()
    assert db.get(Bill, generated.id).status == "published"
    assert cycles.get_cycle(db, "2026-11").status == "published"


def test_customers_added_after_a_run_get_chunks_of_their_own(app, db, redis_conn, tariffs, make_customer):
    _customers(db, make_customer, 2)
    cycles.open_cycle(db, "2026-11", Actor.system())
    _run(app, db, "2026-11")
    _work(app, redis_conn)
    _customers(db, make_customer, 1)
    chunks = _run(app, db, "2026-11")
    assert [c.chunk_no for c in chunks] == [2]
    _work(app, redis_conn)
    db.expire_all()
    assert cycles.cycle_report(db, "2026-11")["bills"] == 3
