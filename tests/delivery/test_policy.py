"""Publishing, the confirmation policy and the sweeper, on the database alone (no SMTP)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from console.audit import Actor
from console.db import utcnow
from console.delivery.policy import apply_report, confirm_by_portal_open
from console.delivery.publish import publish_cycle
from console.delivery.sweeper import sweep
from console.models import Bill, ContactRecord, Cycle, Delivery, DeliveryAttempt, WorkItem
from tests.delivery.conftest import add_bill


def _sent_attempt(db, delivery, no=1, at=None):  # noqa: ANN001, ANN202
    at = at or utcnow()
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=no, token=f"t{delivery.id}-{no}", envid=f"t{delivery.id}-{no}",
        message_id=f"<t{delivery.id}-{no}@b.test>", dsn_requested=True, sent_at=at,
    )
    db.add(attempt)
    delivery.attempts_made = no
    delivery.status = "sent"
    delivery.confirm_due_at = at + timedelta(hours=24)
    db.flush()
    return attempt


def test_publish_writes_one_delivery_per_recipient_and_is_idempotent(db, make_customer):
    holder = make_customer(
        recipients=[
            {"name": "租户 Tenant", "relation": "tenant", "channel": "email", "address": "tenant@customers.test"},
            {"name": "Old", "relation": "other", "channel": "email", "address": "old@customers.test", "active": False},
            {"name": "房东", "relation": "landlord", "channel": "paper", "address": "北京路1号", "copies": 2},
        ]
    )
    key = make_customer(key_account=True, channel_paper=True, email="Bad Address <x@evil.test>")
    portal_only = make_customer(channel_email=False)
    bills = [add_bill(db, c) for c in (holder, key, portal_only)]
    result = publish_cycle(db, bills[0].cycle_id, Actor.cli(), utcnow())
    db.commit()
    assert result["bills_published"] == 3
    deliveries = db.scalars(select(Delivery).order_by(Delivery.id)).all()
    got = {(d.bill_id, d.channel, d.address, d.status, d.copies) for d in deliveries}
    assert (bills[0].id, "email", holder.email, "queued", 1) in got
    assert (bills[0].id, "email", "tenant@customers.test", "queued", 1) in got
    # paper only where allowed: the residential holder's paper recipient gets none
    assert not any(d.bill_id == bills[0].id and d.channel == "paper" for d in deliveries)
    assert any(d.bill_id == bills[1].id and d.channel == "paper" for d in deliveries)
    # a bad address is never sent: failed at once with a work item
    bad = [d for d in deliveries if d.bill_id == bills[1].id and d.channel == "email"]
    assert len(bad) == 1 and bad[0].status == "failed"
    assert db.scalars(select(WorkItem).where(WorkItem.delivery_id == bad[0].id)).one().reason == "email_failed"
    assert not any(d.bill_id == bills[2].id for d in deliveries)
    assert db.get(Cycle, bills[0].cycle_id).status == "published"
    assert db.get(Bill, bills[0].id).status == "published"
    again = publish_cycle(db, bills[0].cycle_id, Actor.cli(), utcnow())
    db.commit()
    assert again["email"] == again["paper"] == again["bills_published"] == 0
    assert db.scalar(select(func.count(Delivery.id))) == len(deliveries)


def _one_delivery(db, make_customer, **fields):  # noqa: ANN001, ANN202
    customer = make_customer(**fields)
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    db.commit()
    return db.scalars(select(Delivery).where(Delivery.bill_id == bill.id, Delivery.channel == "email")).one()


def test_delivered_confirms_and_writes_contact_record_once(db, make_customer):
    delivery = _one_delivery(db, make_customer)
    attempt = _sent_attempt(db, delivery)
    apply_report(db, attempt, "delivered", "2.0.0", "250 ok", utcnow(), "mx.customers.test")
    apply_report(db, attempt, "delivered", "2.0.0", "250 ok", utcnow())  # a duplicate report
    apply_report(db, attempt, "delayed", "4.4.1", "later", utcnow())  # out of order
    db.commit()
    assert (delivery.status, delivery.confirmed_by) == ("confirmed", "delivered")
    assert attempt.outcome == "delivered" and len(attempt.reports) == 3
    records = db.scalars(select(ContactRecord).where(ContactRecord.bill_id == delivery.bill_id)).all()
    assert len(records) == 1
    assert records[0].details["message_id"] == attempt.message_id
    assert records[0].details["confirmed_by"] == "delivered"
    assert records[0].details["address"] == delivery.address


def test_relayed_confirms_flagged_and_delayed_waits(db, make_customer):
    delivery = _one_delivery(db, make_customer)
    attempt = _sent_attempt(db, delivery)
    apply_report(db, attempt, "delayed", "4.4.1", "connection refused", utcnow())
    assert delivery.status == "sent"
    apply_report(db, attempt, "relayed", "2.0.0", None, utcnow())
    assert (delivery.status, delivery.confirmed_by) == ("confirmed", "relayed")


def test_permanent_failure_opens_work_item_for_account_manager(db, make_customer, make_user):
    manager = make_user("account_manager")
    delivery = _one_delivery(db, make_customer, key_account=True, account_manager_id=manager.id)
    attempt = _sent_attempt(db, delivery)
    apply_report(db, attempt, "failed", "5.1.1", "smtp; 550 5.1.1 <x>: unknown user", utcnow())
    apply_report(db, attempt, "failed", "5.1.1", "again", utcnow())
    db.commit()
    assert delivery.status == "failed" and delivery.attempts_made == 1
    item = db.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery.id)).one()
    assert (item.reason, item.assigned_role, item.assigned_user_id) == ("email_failed", "account_manager", manager.id)
    assert item.code == "email_failed" and item.params["status"] == "5.1.1" and "unknown user" in item.params["diagnostic"]
    assert item.details["attempts"][0]["diagnostic"].startswith("smtp; 550")


def test_temporary_failure_resends_once_then_escalates(db, make_customer):
    delivery = _one_delivery(db, make_customer)
    first = _sent_attempt(db, delivery)
    apply_report(db, first, "failed", "4.4.7", "expired", utcnow())
    assert delivery.status == "queued" and delivery.attempts_made == 1
    second = _sent_attempt(db, delivery, no=2)
    apply_report(db, second, "failed", "4.4.7", "expired again", utcnow())
    db.commit()
    assert delivery.status == "failed"
    item = db.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery.id)).one()
    assert item.assigned_role == "phone_rep" and len(item.details["attempts"]) == 2


def test_deadline_resend_once_then_work_item_and_portal_open(app, db, make_customer):
    delivery = _one_delivery(db, make_customer)
    _sent_attempt(db, delivery, at=utcnow() - timedelta(hours=25))
    db.commit()
    counts = sweep(db, utcnow(), app.config)
    assert counts["resend_queued"] == 1 and delivery.id in counts["to_send"]
    assert sweep(db, utcnow(), app.config)["resend_queued"] == 0
    _sent_attempt(db, delivery, no=2, at=utcnow() - timedelta(hours=25))
    counts = sweep(db, utcnow(), app.config)
    db.commit()
    assert counts["escalated"] == 1 and delivery.status == "failed"
    assert db.scalars(select(WorkItem.reason).where(WorkItem.delivery_id == delivery.id)).all() == [
        "email_unconfirmed"
    ]

    other = _one_delivery(db, make_customer)
    _sent_attempt(db, other)
    assert confirm_by_portal_open(db, other.bill_id, utcnow()) == 1
    assert confirm_by_portal_open(db, other.bill_id, utcnow()) == 0
    assert other.confirmed_by == "portal_open"


def test_cycle_report_shows_email_counts(app, db, make_customer, runner):
    delivery = _one_delivery(db, make_customer)
    attempt = _sent_attempt(db, delivery)
    apply_report(db, attempt, "relayed", "2.0.0", None, utcnow())
    failing = _one_delivery(db, make_customer)
    apply_report(db, _sent_attempt(db, failing), "failed", "5.1.1", "unknown", utcnow())
    db.commit()
    from console.delivery.counts import delivery_counts

    cycle_id = db.get(Bill, delivery.bill_id).cycle_id
    counts = delivery_counts(db, cycle_id)
    assert counts["sent"] == 2 and counts["confirmed"] == 1 and counts["confirmed_by"]["relayed"] == 1
    assert counts["failed"] == 1 and counts["escalated"] == 1 and counts["resent"] == 0
    import json

    result = runner.invoke(args=["cycle", "report", "2026-11", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["email"] == counts


def test_publishing_issues_the_registration_codes_so_sending_never_writes_them(app, db, make_customer):
    """The code printed on the bill of a customer with no web account is stored at publishing; the
    e-mail and the PDF then only read it (a send that wrote would wait for SQLite's write lock)."""
    from console.delivery.publish import publish_and_queue
    from console.models.portal import BillRegistrationCode, WebAccount
    from console.portal.services import registration_code_for_bill

    plain, registered = make_customer(), make_customer()
    db.add(WebAccount(customer_id=registered.id, username=registered.account_no, password_hash="x",
                      session_token="t"))
    bills = [add_bill(db, c) for c in (plain, registered)]
    result = publish_and_queue(db, bills[0].cycle_id, Actor.cli(), utcnow(), app.config)
    db.commit()
    assert result["registration_codes"] == 1
    rows = db.scalars(select(BillRegistrationCode)).all()
    assert [r.bill_id for r in rows] == [bills[0].id]
    with app.app_context():
        text = registration_code_for_bill(db, bills[0], app.config["SECRET_KEY"], days=90)
    assert not db.new and len(text) == 14
    again = publish_and_queue(db, bills[0].cycle_id, Actor.cli(), utcnow(), app.config)
    assert again["registration_codes"] == 0


def test_a_cycle_published_range_by_range_resumes_without_duplicates(app, db, make_customer, runner):
    """A million bills are published in parts, one transaction each; a run stopped halfway goes on
    where it stopped (the published bills and the unique delivery key say what is done)."""
    from console.delivery.publish import publish_and_queue, unpublished_ranges

    bills = [add_bill(db, make_customer()) for _ in range(5)]
    cycle_id = bills[0].cycle_id
    db.commit()
    ranges = unpublished_ranges(db, cycle_id, 2)
    assert len(ranges) == 3
    first = publish_and_queue(db, cycle_id, Actor.cli(), utcnow(), app.config, ranges[0])
    db.commit()
    assert first["bills_published"] == 2 and first["bills_left"] == 3
    assert db.get(Cycle, cycle_id).status == "generated"  # not yet: three bills to go
    # stopped here; the command run again publishes the rest, part by part
    result = runner.invoke(args=["delivery", "publish", db.get(Cycle, cycle_id).period, "--chunk-size", "2"])
    assert result.exit_code == 0, result.output
    assert "part 1/2" in result.output and "part 2/2" in result.output and "0 bills left" in result.output
    db.expire_all()
    assert db.get(Cycle, cycle_id).status == "published"
    per_bill = db.execute(select(Delivery.bill_id, func.count()).where(Delivery.channel == "email")
                          .group_by(Delivery.bill_id)).all()
    assert sorted(n for _b, n in per_bill) == [1] * 5  # each bill's e-mail once
    assert unpublished_ranges(db, cycle_id, 2) == []
