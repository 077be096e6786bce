"""The admin's cycle dashboard: progress that polls only while a cycle runs, failed chunks and failed
jobs with a retry (real Redis, jobs run by SimpleWorker)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from console.models import AuditEvent, Cycle
from console.models import billing as billing_models
from tests.inboxes.conftest import HX

CycleChunk = getattr(billing_models, "CycleChunk", None)


def _cycle_with_chunks(db, statuses: list[str], status: str = "running", period: str = "2031-05") -> Cycle:  # noqa: ANN001
    cycle = Cycle(period=period, bill_date=date(2031, 5, 31), status=status)
    db.add(cycle)
    db.flush()
    for n, chunk_status in enumerate(statuses, start=1):
        db.add(CycleChunk(cycle_id=cycle.id, chunk_no=n, first_customer_id=n * 10, last_customer_id=n * 10 + 9,
                          customers=10, status=chunk_status, job_id=f"billing-{period}-{n}",
                          error="Traceback...\nValueError: meter read missing" if chunk_status == "failed" else None))
    db.commit()
    return cycle


@pytest.mark.skipif(CycleChunk is None, reason="billing has no chunk table yet")
def test_progress_polls_while_running_and_stops_when_done(sign_in, db):
    cycle = _cycle_with_chunks(db, ["done", "done", "queued", "running"])
    client, _ = sign_in("admin")
    running = client.get(f"/inbox/admin/cycles/{cycle.id}", headers=HX).get_data(as_text=True)
    assert 'hx-trigger="every' in running and 'aria-valuenow="50"' in running
    for chunk in db.scalars(select(CycleChunk).where(CycleChunk.cycle_id == cycle.id)):
        chunk.status = "done"
    db.get(Cycle, cycle.id).status = "generated"
    db.commit()
    done = client.get(f"/inbox/admin/cycles/{cycle.id}", headers=HX).get_data(as_text=True)
    assert 'hx-trigger' not in done and 'aria-valuenow="100"' in done


@pytest.mark.skipif(CycleChunk is None, reason="billing has no chunk table yet")
def test_failed_chunks_show_their_error_and_can_be_retried(app, sign_in, db, redis_conn):
    cycle = _cycle_with_chunks(db, ["done", "failed"], status="failed", period="2031-06")
    client, _ = sign_in("admin")
    page = client.get("/inbox/admin/").get_data(as_text=True)
    assert "ValueError: meter read missing" in page and f"/inbox/admin/cycles/{cycle.id}/retry" in page
    response = client.post(f"/inbox/admin/cycles/{cycle.id}/retry", headers=HX)
    assert response.status_code == 200
    db.expire_all()
    statuses = sorted(db.scalars(select(CycleChunk.status).where(CycleChunk.cycle_id == cycle.id)))
    assert statuses == ["done", "queued"]
    from console.queues import get_queue

    assert "billing-2031-06-2" in get_queue("billing", app).job_ids


def test_failed_job_is_listed_with_its_error_and_retried(app, sign_in, redis_conn, db):
    from console.queues import get_queue

    queue = get_queue("default", app)
    job = queue.enqueue("jobs.context.ping")  # missing argument: fails with a TypeError
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    client, _ = sign_in("admin")
    listing = client.get("/inbox/admin/jobs", headers=HX).get_data(as_text=True)
    assert f'data-job="{job.id}"' in listing and "TypeError" in listing
    retry = client.post(f"/inbox/admin/jobs/default/{job.id}/retry", headers=HX)
    assert retry.status_code == 200 and f'data-job="{job.id}"' not in retry.get_data(as_text=True)
    assert job.id in queue.job_ids
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "job.retry")) is not None
    assert client.post("/inbox/admin/jobs/default/nope/retry", headers=HX).status_code == 404


def test_keyset_pages_over_http(sign_in, make_customer, make_item):
    customer = make_customer()
    items = [make_item(customer, age_minutes=500 - i) for i in range(55)]
    client, _ = sign_in("phone_rep")
    first = client.get("/inbox/rep/").get_data(as_text=True)
    ids = [int(x) for x in re.findall(r'data-item="(\d+)"', first)]
    assert ids == [i.id for i in items[:50]]
    link = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(link, headers=HX).get_data(as_text=True)
    assert [int(x) for x in re.findall(r'data-item="(\d+)"', second)] == [i.id for i in items[50:]]
    assert 'rel="next"' not in second and 'rel="prev"' in second
