"""Dispatch by post or by hand, confirmation, returns -> work items, and the clerk screens."""

from __future__ import annotations

from sqlalchemy import func, select

from console.audit import Actor
from console.models import AuditEvent, ContactRecord, Delivery, WorkItem
from console.models.paper import PrintItem
from console.paper import batches, dispatch
from tests.confirming import ask, confirmed_post


def _printed_batch(app, db, make_customer, make_bill, make_paper_delivery, manager=None):  # noqa: ANN001, ANN202
    customer = make_customer(key_account=True, account_manager_id=manager.id if manager else None)
    bill = make_bill(customer)
    delivery = make_paper_delivery(bill, customer, copies=2)
    result = batches.gather_batches(db, "2026-11", Actor.cli())
    with app.app_context():
        batches.render_batch_now(db, result.batch_ids[0], Actor.cli())
    batches.mark_printed(db, result.batch_ids[0], Actor.cli())
    db.commit()
    item = db.scalar(select(PrintItem).where(PrintItem.delivery_id == delivery.id))
    return customer, bill, delivery, item


def test_returned_letter_opens_one_work_item_for_the_account_manager(
    app, db, cycle, make_user, make_customer, make_bill, make_paper_delivery
):
    manager = make_user("account_manager")
    clerk = make_user("clerk")
    customer, bill, delivery, item = _printed_batch(app, db, make_customer, make_bill, make_paper_delivery, manager)
    actor = Actor.of_user(clerk)
    dispatch.dispatch_by_post(db, item.id, "EMS1234567890", actor)
    db.commit()
    assert delivery.status == "sent" and item.tracking_no == "EMS1234567890"
    work = dispatch.record_returned(db, item.id, actor, "查无此人")
    db.commit()
    again = dispatch.record_returned(db, item.id, actor, "again")
    db.commit()
    assert again.id == work.id
    assert db.scalar(select(func.count(WorkItem.id)).where(WorkItem.delivery_id == delivery.id)) == 1
    assert (work.reason, work.assigned_role, work.assigned_user_id) == ("post_returned", "account_manager", manager.id)
    assert delivery.status == "failed" and item.status == "returned"
    contacts = list(db.scalars(select(ContactRecord).where(ContactRecord.customer_id == customer.id)
                               .order_by(ContactRecord.id)))
    assert [c.channel for c in contacts] == ["paper", "paper"]
    assert [c.code for c in contacts] == ["paper_posted", "paper_returned"]
    assert contacts[0].params == {"bill_no": bill.bill_no, "recipient": delivery.recipient_name,
                                  "tracking_no": "EMS1234567890"}
    assert contacts[1].params == {"bill_no": bill.bill_no, "address": delivery.address}
    assert contacts[1].note == "查无此人"
    assert all(c.bill_id == bill.id and c.actor_id == clerk.id for c in contacts)
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "print_item")))
    assert {"paper.dispatched_post", "paper.returned"} <= actions


def test_hand_delivery_confirmed_and_run_sheet(app, db, cycle, make_customer, make_bill, make_paper_delivery):
    customer, bill, delivery, item = _printed_batch(app, db, make_customer, make_bill, make_paper_delivery)
    dispatch.dispatch_by_hand(db, item.id, " 王  抄表员 ", Actor.cli())
    db.commit()
    sheet = dispatch.run_sheet(db, "王 抄表员", "2026-11")
    assert [line.bill_no for line in sheet] == [bill.bill_no] and sheet[0].item.copies == 2
    dispatch.confirm_delivered(db, item.id, Actor.cli(), "门卫签收")
    db.commit()
    assert (delivery.status, delivery.confirmed_by, item.status) == ("confirmed", "hand", "delivered")
    assert dispatch.run_sheet(db, "王 抄表员") == []
    assert db.scalar(select(func.count(ContactRecord.id)).where(ContactRecord.customer_id == customer.id)) == 2


def test_a_phone_rep_gets_the_return_when_there_is_no_account_manager(
    app, db, cycle, make_customer, make_bill, make_paper_delivery
):
    _c, _b, _d, item = _printed_batch(app, db, make_customer, make_bill, make_paper_delivery)
    dispatch.dispatch_by_hand(db, item.id, "李四", Actor.cli())
    work = dispatch.record_returned(db, item.id, Actor.cli())
    assert (work.assigned_role, work.assigned_user_id) == ("phone_rep", None)


def test_clerk_screens_gather_download_print_and_dispatch(
    app, client, db, cycle, login_as, make_customer, make_bill, make_paper_delivery, redis_conn
):
    login_as("clerk")
    customer = make_customer(key_account=True, postal_code="215000")
    bill = make_bill(customer)
    make_paper_delivery(bill, customer, copies=2)
    page = client.get("/paper/")
    assert page.status_code == 200 and "2026-11" in page.get_data(as_text=True)
    assert client.get("/paper/cycles/2026-11").status_code == 200
    response = client.post("/paper/cycles/2026-11/gather", data={"size": "500"})
    assert response.status_code == 302
    batch_id = db.scalar(select(PrintItem.batch_id))
    widget = client.get("/paper/cycles/2026-11/progress").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in widget  # polls while rendering
    with app.app_context():
        batches.render_batch_now(db, batch_id, Actor.cli())
    db.commit()
    widget = client.get("/paper/cycles/2026-11/progress").get_data(as_text=True)
    assert "every 2s" not in widget  # done: the widget stops polling
    with client.get(f"/paper/batches/{batch_id}/pdf") as pdf:
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert confirmed_post(client, f"/paper/batches/{batch_id}/printed").status_code == 302
    item = db.scalar(select(PrintItem))
    hx = {"HX-Request": "true"}
    bad = ask(client, f"/paper/items/{item.id}/post", {"tracking_no": ""})  # refused before it is confirmed
    assert bad.status_code == 422
    ok = confirmed_post(client, f"/paper/items/{item.id}/post", {"tracking_no": "EMS42"}, headers=hx)
    assert ok.status_code == 200 and f'id="print-item-{item.id}"' in ok.get_data(as_text=True)
    assert "EMS42" in ok.get_data(as_text=True)
    returned = confirmed_post(client, f"/paper/items/{item.id}/returned", {"note": "地址不详"}, headers=hx)
    assert returned.status_code == 200
    assert db.scalar(select(func.count(WorkItem.id))) == 1
    assert db.scalar(select(Delivery.status)) == "failed"
    assert client.get(f"/paper/batches/{batch_id}").status_code == 200


def test_clerk_hands_a_batch_to_a_meter_reader_and_prints_the_run_sheet(
    app, client, db, cycle, login_as, make_customer, make_bill, make_paper_delivery
):
    login_as("clerk")
    customer = make_customer(key_account=True)
    make_paper_delivery(make_bill(customer), customer)
    result = batches.gather_batches(db, "2026-11", Actor.cli())
    with app.app_context():
        batches.render_batch_now(db, result.batch_ids[0], Actor.cli())
    batches.mark_printed(db, result.batch_ids[0], Actor.cli())
    db.commit()
    assert confirmed_post(client, f"/paper/batches/{result.batch_ids[0]}/hand", {"deliverer": "张三"}).status_code == 302
    sheet = client.get("/paper/runsheet", query_string={"deliverer": "张三", "period": "2026-11"})
    assert sheet.status_code == 200 and customer.postal_address in sheet.get_data(as_text=True)
