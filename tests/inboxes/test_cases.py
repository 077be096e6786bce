"""One case per customer and address: failures gather, one correction resends every bill (a fresh
round each), late good news closes the case; the "correction dies silently" regression."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.db import utcnow
from console.delivery.policy import apply_report
from console.delivery.publish import publish_cycle
from console.delivery.sender import send_batch
from console.inboxes import services
from console.models import Customer, Delivery, DeliveryAttempt, WorkItem
from console.models.delivery import WorkItemDelivery
from tests.delivery.conftest import add_bill, new_customer, smtp_sink  # noqa: F401 - the fixture


@pytest.fixture
def rep(make_user):  # noqa: ANN001, ANN201
    user = make_user("phone_rep")
    return services.Viewer.of(user)


def _config(app, port):  # noqa: ANN001, ANN202
    return dict(app.config) | {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False, "SMTP_USER": ""}


def _send(app, db, ids, port):  # noqa: ANN001, ANN202
    with app.app_context():
        return send_batch(db, list(ids), _config(app, port))


def _last_attempt(db, delivery_id):  # noqa: ANN001, ANN202
    return db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                      .order_by(DeliveryAttempt.attempt_no.desc())).first()


def _fail(db, delivery_id, status="5.1.1"):  # noqa: ANN001, ANN202
    apply_report(db, _last_attempt(db, delivery_id), "failed", status, "smtp; 550 5.1.1 User unknown", utcnow())
    db.commit()


def _items(db, customer_id):  # noqa: ANN001, ANN202
    return db.scalars(select(WorkItem).where(WorkItem.customer_id == customer_id).order_by(WorkItem.id)).all()


def _links(db, item_id):  # noqa: ANN001, ANN202
    return set(db.scalars(select(WorkItemDelivery.delivery_id).where(WorkItemDelivery.work_item_id == item_id)))


def _two_bills(app, db, smtp_sink, email="dead@customers.test"):  # noqa: ANN001, ANN202, F811
    customer = new_customer(db, email=email)
    first = add_bill(db, customer)
    add_bill(db, customer, cycle=None)
    publish_cycle(db, first.cycle_id, Actor.cli(), utcnow())
    db.commit()
    deliveries = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id).order_by(Delivery.id)).all()
    assert len(deliveries) == 2
    _send(app, db, [d.id for d in deliveries], smtp_sink.port)
    return customer, deliveries


def test_two_bills_to_one_dead_address_one_item_one_correction_both_resent_and_confirmed(
    app, db, smtp_sink, redis_conn, rep  # noqa: F811
):
    customer, deliveries = _two_bills(app, db, smtp_sink)
    for d in deliveries:
        _fail(db, d.id)
    [item] = _items(db, customer.id)
    assert _links(db, item.id) == {d.id for d in deliveries}
    assert item.case_key == "email:dead@customers.test" and item.status == "open"
    page = services.item_view(db, rep, item.id)
    assert {d.id for d in page["case_deliveries"]} == {d.id for d in deliveries}

    services.correct_email(db, rep, item.id, "alive@customers.test", Actor.system(), 200)
    db.commit()
    db.expire_all()
    assert db.get(WorkItem, item.id).status == "closed"
    assert db.get(Customer, customer.id).email == "alive@customers.test"
    new = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id, Delivery.status == "queued")).all()
    assert len(new) == 2 and {d.address for d in new} == {"alive@customers.test"}
    assert {d.bill_id for d in new} == {d.bill_id for d in deliveries}
    _send(app, db, [d.id for d in new], smtp_sink.port)
    for d in new:
        apply_report(db, _last_attempt(db, d.id), "delivered", "2.0.0", "250 ok", utcnow())
    db.commit()
    db.expire_all()
    assert {db.get(Delivery, d.id).status for d in new} == {"confirmed"}


def test_a_later_failure_to_the_same_address_joins_the_open_item(app, db, smtp_sink):  # noqa: F811
    customer, (one, two) = _two_bills(app, db, smtp_sink)
    _fail(db, one.id)
    [item] = _items(db, customer.id)
    _fail(db, two.id)
    assert [i.id for i in _items(db, customer.id)] == [item.id]
    assert _links(db, item.id) == {one.id, two.id}


def test_correcting_back_to_an_earlier_address_is_resent_and_tracked(app, db, smtp_sink, redis_conn, rep):  # noqa: F811
    """Regression: the earlier failed delivery to that address was re-queued with its attempts, so
    the sender failed it at once and no item appeared (the unique item per delivery was closed)."""
    customer = new_customer(db, email="old@customers.test")
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    db.commit()
    [old] = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id)).all()
    _send(app, db, [old.id], smtp_sink.port)
    _fail(db, old.id, status="4.4.7")  # temporary: the one resend
    _send(app, db, [old.id], smtp_sink.port)
    _fail(db, old.id)  # the resend fails for good
    db.expire_all()
    assert db.get(Delivery, old.id).attempts_made == 2
    [first] = _items(db, customer.id)
    new = services.correct_email(db, rep, first.id, "new@customers.test", Actor.system(), 200)
    db.commit()
    _send(app, db, [new.id], smtp_sink.port)
    _fail(db, new.id)
    second = [i for i in _items(db, customer.id) if i.status == "open"]
    assert len(second) == 1 and second[0].id != first.id
    back = services.correct_email(db, rep, second[0].id, "old@customers.test", Actor.system(), 200)
    db.commit()
    assert back.id == old.id and back.status == "queued" and back.attempt_base == 2
    counts = _send(app, db, [old.id], smtp_sink.port)
    assert counts["sent"] == 1, counts  # not failed at once
    db.expire_all()
    again = db.get(Delivery, old.id)
    assert again.status == "sent" and again.attempts_made == 3
    assert _last_attempt(db, old.id).attempt_no == 3
    _fail(db, old.id)  # it fails again: tracked on a new open item
    open_now = [i for i in _items(db, customer.id) if i.status == "open"]
    assert len(open_now) == 1 and old.id in _links(db, open_now[0].id)


def test_a_late_delivered_closes_the_case_or_tells_the_claimer(app, db, smtp_sink, make_user):  # noqa: F811
    customer, (one, two) = _two_bills(app, db, smtp_sink)
    _fail(db, one.id)
    _fail(db, two.id)
    [item] = _items(db, customer.id)
    late = _last_attempt(db, one.id)
    apply_report(db, late, "delivered", "2.0.0", "250 ok", utcnow())
    db.commit()
    db.expire_all()
    assert db.get(Delivery, one.id).status == "confirmed"
    assert db.get(WorkItem, item.id).status == "open"  # the other bill still failed
    rep = make_user("phone_rep")
    services.claim(db, services.Viewer.of(rep), item.id, Actor.of_user(rep))
    db.commit()
    apply_report(db, _last_attempt(db, two.id), "delivered", "2.0.0", "250 ok", utcnow())
    db.commit()
    db.expire_all()
    claimed = db.get(WorkItem, item.id)
    assert claimed.status == "claimed" and claimed.notice == "confirmed_later"
    mine = services.list_items(db, services.Viewer.of(rep), services.InboxQuery("phone_rep", status="mine"))
    assert [r["notice"] for r in mine.rows] == ["confirmed_later"]


def test_a_late_delivered_closes_an_unclaimed_case(app, db, smtp_sink):  # noqa: F811
    customer, (one, _two) = _two_bills(app, db, smtp_sink)
    _fail(db, one.id)
    [item] = _items(db, customer.id)
    apply_report(db, _last_attempt(db, one.id), "delivered", "2.0.0", "250 ok", utcnow())
    db.commit()
    db.expire_all()
    assert db.get(WorkItem, item.id).status == "closed"


def test_take_next_claims_the_most_urgent_and_search_finds_a_fragment_in_the_middle(
    sign_in, make_customer, make_item, make_user, db
):
    from tests.inboxes.conftest import HX

    plain = make_customer(name="苏州金桥电子有限公司", phone="13911112222")
    old_item = make_item(plain, age_minutes=600)
    newer = make_item(make_customer(name="王五"), age_minutes=5)
    client, rep = sign_in("phone_rep")
    html = client.get("/inbox/rep/?q=金桥", headers=HX).get_data(as_text=True)
    assert f'data-item="{old_item.id}"' in html and f'data-item="{newer.id}"' not in html
    assert f'data-item="{old_item.id}"' in client.get("/inbox/rep/?q=1391111", headers=HX).get_data(as_text=True)
    taken = client.post("/work-items/next/phone_rep")
    assert taken.status_code == 303 and taken.headers["Location"].endswith(f"/work-items/{old_item.id}")
    db.expire_all()
    assert db.get(WorkItem, old_item.id).claimed_by_id == rep.id
    other = services.take_next(db, services.Viewer.of(make_user("phone_rep")), "phone_rep", Actor.system())
    assert other.id == newer.id  # never the one already taken
    page = client.get(f"/work-items/{old_item.id}").get_data(as_text=True)
    assert "data-overdue=" in page and 'data-script="email_failed"' in page


def test_wrong_number_takes_the_right_one(sign_in, make_customer, make_item, db):
    customer = make_customer(phone="13900000000")
    item = make_item(customer)
    client, _ = sign_in("phone_rep")
    bad = client.post(f"/work-items/{item.id}/call", data={"outcome": "wrong_number", "phone": "call me"},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 422
    ok = client.post(f"/work-items/{item.id}/call", data={"outcome": "wrong_number", "phone": "0512-66668888"})
    assert ok.status_code == 303
    db.expire_all()
    assert db.get(Customer, customer.id).phone == "0512-66668888"


def test_inbox_list_json(app, make_customer, make_item):
    import json

    item = make_item(make_customer())
    result = app.test_cli_runner().invoke(args=["inbox", "list", "--role", "phone_rep", "--status", "open", "--json"])
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.output) if r["id"] == item.id]
    assert set(row) >= {"id", "account_no", "address", "reason", "status", "assigned_role", "assigned_user",
                        "age_hours", "due_by", "deliveries"}


def test_a_returned_letter_corrected_is_reprinted_in_the_next_batch(db, make_user):
    from console.models.paper import PrintItem
    from console.paper import batches, dispatch

    manager = make_user("account_manager")
    customer = new_customer(db, key_account=True, account_manager_id=manager.id, customer_type="commercial",
                            channel_paper=True, channel_email=False, wants_ebill=False)
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    db.commit()
    [paper] = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id, Delivery.channel == "paper")).all()
    period = "2026-11"
    batches.gather_batches(db, period, Actor.cli())
    db.commit()
    printed = db.scalar(select(PrintItem).where(PrintItem.delivery_id == paper.id))
    from console.models.paper import PrintBatch

    db.get(PrintBatch, printed.batch_id).status = "printed"
    db.commit()
    dispatch.dispatch_by_post(db, printed.id, "EMS123", Actor.cli())
    work = dispatch.record_returned(db, printed.id, Actor.cli(), "moved away")
    db.commit()
    assert work.reason == "post_returned" and paper.id in _links(db, work.id)
    viewer = services.Viewer.of(manager)
    [reprint] = services.correct_postal(db, viewer, work.id, "苏州市姑苏区人民路100号", "215001", Actor.of_user(manager))
    db.commit()
    assert reprint.channel == "paper" and reprint.status == "queued" and "人民路100号" in reprint.address
    assert db.get(Customer, customer.id).postal_code == "215001"
    again = batches.gather_batches(db, period, Actor.cli())
    db.commit()
    assert db.scalar(select(PrintItem).where(PrintItem.delivery_id == reprint.id)) is not None, again
