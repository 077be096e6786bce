"""Retention removes only what it should: old raw inbound bytes, old sandbox mail, the nonces of
confirmations whose tokens have expired, old years' PDFs."""

from __future__ import annotations

import time
from datetime import date, timedelta

from sqlalchemy import func, select

from console.audit import Actor, record_audit, record_contact
from console.db import utcnow
from console.delivery.publish import publish_cycle
from console.models import AuditEvent, Bill, BillLine, ContactRecord, Delivery, Recipient
from console.models.mailin import InboundMessage, SandboxMessage
from console.models.staff import UsedConfirmation
from console.ops import retention
from tests.confirming import HX, ask, token_of
from tests.delivery.conftest import add_bill, new_customer


def _inbound(db, n: int, age_days: int, quarantined: bool = False, handled: bool = False) -> InboundMessage:  # noqa: ANN001
    now = utcnow()
    message = InboundMessage(
        sha256=f"{n:064x}", mail_from="<>", rcpt_tos=[f"bounces+t{n}@bounces.bills.test"],
        received_at=now - timedelta(days=age_days), size=5, raw=b"bytes", classification="report",
        quarantined=quarantined, handled_at=now if handled else None,
    )
    db.add(message)
    return message


def _sandbox(db, age_days: int) -> SandboxMessage:  # noqa: ANN001
    message = SandboxMessage(mail_from="a@b.test", rcpt_to="c@d.test", size=3, raw=b"abc", outcome="delivered",
                             received_at=utcnow() - timedelta(days=age_days))
    db.add(message)
    return message


def _counts(db) -> dict:  # noqa: ANN001
    return {model.__name__: db.scalar(select(func.count()).select_from(model))
            for model in (Bill, BillLine, Delivery, ContactRecord, AuditEvent)}


def test_old_rows_go_new_rows_stay_and_the_record_is_never_touched(app, db):
    customer = new_customer(db)
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    record_contact(db, customer.id, "email", "email_confirmed", Actor.system(), bill_id=bill.id)
    record_audit(db, Actor.system(), "test.retention", "bill", bill.id)
    old = _inbound(db, 1, 91)
    new = _inbound(db, 2, 89)
    old_open_quarantine = _inbound(db, 3, 200, quarantined=True)
    old_handled_quarantine = _inbound(db, 4, 200, quarantined=True, handled=True)
    old_sandbox, new_sandbox = _sandbox(db, 31), _sandbox(db, 29)
    db.commit()
    kept = _counts(db)
    ids = {name: m.id for name, m in [("old", old), ("new", new), ("open", old_open_quarantine),
                                       ("handled", old_handled_quarantine), ("old_sb", old_sandbox), ("new_sb", new_sandbox)]}

    counts = retention.purge_rows(db, utcnow(), app.config)
    db.commit()
    assert counts == {"inbound_raw_emptied": 2, "sandbox_deleted": 1, "confirmations_deleted": 0}
    db.expire_all()
    raw = dict(db.execute(select(InboundMessage.id, InboundMessage.raw)).all())
    assert raw[ids["old"]] == b"" and raw[ids["handled"]] == b""
    assert raw[ids["new"]] == b"bytes" and raw[ids["open"]] == b"bytes"  # a person has not read it yet
    assert db.get(InboundMessage, ids["old"]).classification == "report"  # the row (the evidence) stays
    remaining = set(db.scalars(select(SandboxMessage.id)))
    assert ids["new_sb"] in remaining and ids["old_sb"] not in remaining
    assert _counts(db) == kept
    # Running it again changes nothing.
    assert retention.purge_rows(db, utcnow(), app.config) == {"inbound_raw_emptied": 0, "sandbox_deleted": 0,
                                                             "confirmations_deleted": 0}


def test_the_periods_are_settings(app, db):
    message = _inbound(db, 10, 10)
    db.commit()
    app.config["RETAIN_INBOUND_DAYS"] = 5
    assert retention.purge_rows(db, utcnow(), app.config)["inbound_raw_emptied"] == 1
    db.expire_all()
    assert db.get(InboundMessage, message.id).raw == b""


def test_a_used_confirmation_goes_once_its_token_can_no_longer_be_valid(app, db, make_user):
    user = make_user("clerk")
    now = utcnow()
    lifetime = timedelta(minutes=app.config["CONFIRM_TOKEN_MINUTES"])
    ages = {"past": lifetime + retention.CONFIRMATION_MARGIN + timedelta(minutes=1),
            "margin": lifetime + retention.CONFIRMATION_MARGIN - timedelta(minutes=1),
            "fresh": timedelta(0)}
    for name, age in ages.items():
        db.add(UsedConfirmation(nonce=name, user_id=user.id, action="/x", used_at=now - age))
    db.commit()
    # The cutoff follows the tokens' lifetime: with a longer one, nothing is past it yet.
    longer = app.config | {"CONFIRM_TOKEN_MINUTES": app.config["CONFIRM_TOKEN_MINUTES"] + 2}
    assert retention.purge_rows(db, now, longer)["confirmations_deleted"] == 0
    assert retention.purge_rows(db, now, app.config)["confirmations_deleted"] == 1
    db.commit()
    assert set(db.scalars(select(UsedConfirmation.nonce))) == {"margin", "fresh"}


def test_a_token_whose_nonce_was_purged_is_still_refused(app, client, login_as, make_customer, db):
    """Past its lifetime the token's signature refuses it: the nonce's row is no longer needed."""
    login_as("clerk")
    customer = make_customer(recipients=[{"name": "李娜", "relation": "proxy", "channel": "email",
                                          "address": "lina@qq.com"}])
    recipient = db.scalar(select(Recipient).where(Recipient.customer_id == customer.id))
    url = f"/customers/{customer.id}/recipients/{recipient.id}/active"
    app.config["CONFIRM_TOKEN_MINUTES"] = 60  # long enough to use it
    token = token_of(ask(client, url, {"active": "0"}).get_data(as_text=True))
    assert client.post(url, data={"active": "0", "confirm_token": token}, headers=HX).status_code == 200
    db.expire_all()
    assert db.get(Recipient, recipient.id).active is False
    app.config["CONFIRM_TOKEN_MINUTES"] = 0  # now past its lifetime, and so its row
    time.sleep(1.1)
    later = utcnow() + retention.CONFIRMATION_MARGIN + timedelta(seconds=1)
    assert retention.purge_rows(db, later, app.config)["confirmations_deleted"] == 1
    db.commit()
    db.get(Recipient, recipient.id).active = True  # as if changed back since, so a replay would show
    db.commit()
    replay = client.post(url, data={"active": "0", "confirm_token": token}, headers=HX)
    assert replay.status_code == 422 and "过期" in replay.get_data(as_text=True)
    db.expire_all()
    assert db.get(Recipient, recipient.id).active is True


def test_pdfs_of_a_cycle_are_kept_until_the_next_year_ends(tmp_path):
    for period in ("2024-12", "2025-01", "2025-12", "2026-11"):
        folder = tmp_path / "pdf" / period
        folder.mkdir(parents=True)
        (folder / "B1.pdf").write_bytes(b"%PDF")
    (tmp_path / "pdf" / "not-a-period").mkdir()
    counts = retention.remove_old_pdfs(tmp_path, date(2026, 12, 2), years=1)
    assert counts == {"pdf_folders_removed": 1, "pdf_files_removed": 1}
    assert sorted(p.name for p in (tmp_path / "pdf").iterdir()) == ["2025-01", "2025-12", "2026-11", "not-a-period"]
    assert retention.remove_old_pdfs(tmp_path, date(2027, 1, 1), years=1)["pdf_folders_removed"] == 2


def test_the_daily_job_is_armed_once_a_day_through_the_outbox(app, redis_conn):
    from console.queues import get_queue

    assert retention.arm_retention(app, date(2026, 12, 2)) is True
    assert retention.arm_retention(app, date(2026, 12, 2)) is False  # another worker, the same day
    [job] = get_queue("default", app).get_jobs()
    assert job.id == "retention-2026-12-02" and job.func_name == "jobs.ops.retention_run"


def test_the_job_runs_on_a_worker(app, db, redis_conn):
    from rq import SimpleWorker

    from console.queues import get_queue

    _inbound(db, 20, 365)
    db.commit()
    retention.arm_retention(app)
    queue = get_queue("default", app)
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    db.expire_all()
    assert db.scalar(select(InboundMessage.raw).where(InboundMessage.sha256 == f"{20:064x}")) == b""
