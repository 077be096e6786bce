"""The clerk's irreversible paper steps ask first, in the page (console/web/confirm.py): marking a batch
printed, handing it to a deliverer, dispatching one bill, marking it delivered or returned. Each
confirmation names its figures; a POST without it, or with a used one, does nothing; the buttons of
steps that are no longer possible are not offered."""

from __future__ import annotations

from sqlalchemy import func, select

from console.audit import Actor
from console.models import AuditEvent, Bill, ContactRecord, WorkItem
from console.models.paper import PrintBatch, PrintItem
from console.paper import batches
from tests.confirming import HX, ask, token_of


def _ready_batch(app, db, make_customer, make_bill, make_paper_delivery, bills: int = 3):  # noqa: ANN001, ANN202
    for n in range(bills):
        customer = make_customer(key_account=True, postal_code="215000" if n else "215100")
        make_paper_delivery(make_bill(customer), customer, copies=2 if n == 0 else 1)
    result = batches.gather_batches(db, "2026-11", Actor.cli())
    with app.app_context():
        batches.render_batch_now(db, result.batch_ids[0], Actor.cli())
    db.commit()
    return db.get(PrintBatch, result.batch_ids[0])


def _count(db, model, *where) -> int:  # noqa: ANN001
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model).where(*where))


def test_marking_printed_names_the_batch_and_is_done_once(app, client, db, cycle, login_as, make_customer, make_bill,
                                                           make_paper_delivery):
    login_as("clerk")
    batch = _ready_batch(app, db, make_customer, make_bill, make_paper_delivery)
    url = f"/paper/batches/{batch.id}/printed"
    page = client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)
    assert f'hx-get="{url}/confirm"' in page and "标记为已打印…" in page
    box = ask(client, url).get_data(as_text=True)
    assert f"2026-11 第 {batch.batch_no} 批的 3 张账单（4 份，共 {batch.pages_count} 页）将记为已打印" in box
    assert "确认已打印" in box

    assert client.post(url).status_code == 303  # no confirmation: sent to the confirmation page
    db.expire_all()
    assert db.get(PrintBatch, batch.id).status == "ready"

    token = token_of(box)
    assert client.post(url, data={"confirm_token": token}).status_code == 302
    db.expire_all()
    printed_at = db.get(PrintBatch, batch.id).printed_at
    assert db.get(PrintBatch, batch.id).status == "printed" and printed_at
    again = client.post(url, data={"confirm_token": token}, headers=HX)
    assert again.status_code == 200 and "已处理" in again.get_data(as_text=True)
    assert _count(db, AuditEvent, AuditEvent.action == "paper.batch_printed") == 1
    assert db.get(PrintBatch, batch.id).printed_at == printed_at
    # printed: the button is gone, asking is refused
    assert f'{url}/confirm' not in client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)
    assert ask(client, url).status_code == 422


def test_handing_a_batch_to_a_deliverer_names_the_bills_and_the_person(app, client, db, cycle, login_as,
                                                                        make_customer, make_bill, make_paper_delivery):
    login_as("clerk")
    batch = _ready_batch(app, db, make_customer, make_bill, make_paper_delivery)
    hand = f"/paper/batches/{batch.id}/hand"
    assert f"{hand}/confirm" not in client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)  # not printed yet
    batches.mark_printed(db, batch.id, Actor.cli())
    db.commit()
    assert f'hx-get="{hand}/confirm"' in client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)

    assert ask(client, hand, {"deliverer": " "}).status_code == 422  # who? refused before asking
    box = ask(client, hand, {"deliverer": "张三"}).get_data(as_text=True)
    assert f"将把2026-11 第 {batch.batch_no} 批的 3 封纸质账单（4 份）交给 张三 投递" in box
    one_code = ask(client, hand, {"deliverer": "张三", "postal_code": "215100"}).get_data(as_text=True)
    assert "的 1 封纸质账单（2 份）" in one_code and "仅限邮政编码为 215100 的账单" in one_code

    bare = client.post(hand, data={"deliverer": "张三"}, headers=HX)
    assert bare.status_code == 422 and _count(db, PrintItem, PrintItem.status == "dispatched") == 0

    token = token_of(box)
    assert client.post(hand, data={"deliverer": "张三", "confirm_token": token}).status_code == 302
    assert _count(db, PrintItem, PrintItem.status == "dispatched") == 3
    contacts = _count(db, ContactRecord)
    again = client.post(hand, data={"deliverer": "张三", "confirm_token": token})
    assert again.status_code == 303 and _count(db, ContactRecord) == contacts  # nothing handed twice
    # nothing waits any more: the hand-over is not offered, and asking is refused
    assert f"{hand}/confirm" not in client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)
    assert ask(client, hand, {"deliverer": "张三"}).status_code == 422


def test_one_bills_steps_ask_and_only_the_possible_ones_are_offered(app, client, db, cycle, login_as, make_customer,
                                                                     make_bill, make_paper_delivery):
    login_as("clerk")
    batch = _ready_batch(app, db, make_customer, make_bill, make_paper_delivery, bills=1)
    item = db.scalar(select(PrintItem).where(PrintItem.batch_id == batch.id))
    page = client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)
    assert "/post/confirm" not in page and "/hand/confirm" not in page  # not printed: no dispatch yet
    assert ask(client, f"/paper/items/{item.id}/post", {"tracking_no": "EMS1"}).status_code == 422
    batches.mark_printed(db, batch.id, Actor.cli())
    db.commit()
    row = client.get(f"/paper/batches/{batch.id}").get_data(as_text=True)
    assert f"/paper/items/{item.id}/post/confirm" in row and f"/paper/items/{item.id}/returned/confirm" not in row

    post = f"/paper/items/{item.id}/post"
    box = ask(client, post, {"tracking_no": "EMS42"}).get_data(as_text=True)
    bill = db.get(Bill, item.bill_id)
    assert f"账单 {bill.bill_no} 将邮寄给" in box and "邮件单号 EMS42" in box
    assert client.post(post, data={"tracking_no": "EMS42"}, headers=HX).status_code == 422
    db.expire_all()
    assert db.get(PrintItem, item.id).status == "waiting"
    done = client.post(post, data={"tracking_no": "EMS42", "confirm_token": token_of(box)}, headers=HX)
    assert done.status_code == 200 and f"/paper/items/{item.id}/returned/confirm" in done.get_data(as_text=True)
    assert "/post/confirm" not in done.get_data(as_text=True)  # dispatched: only delivered / returned now

    returned = f"/paper/items/{item.id}/returned"
    box = ask(client, returned, {"note": "查无此人"}).get_data(as_text=True)
    assert "投递失败，并开立工作事项" in box and "备注：查无此人" in box
    assert client.post(returned, data={"note": "查无此人"}, headers=HX).status_code == 422
    assert _count(db, WorkItem) == 0
    token = token_of(box)
    assert client.post(returned, data={"note": "查无此人", "confirm_token": token}, headers=HX).status_code == 200
    again = client.post(returned, data={"note": "查无此人", "confirm_token": token}, headers=HX)
    assert again.status_code == 200 and "已处理" in again.get_data(as_text=True)
    assert _count(db, WorkItem) == 1 and db.get(PrintItem, item.id).status == "returned"
    # returned: no step is left for this bill
    assert ask(client, f"/paper/items/{item.id}/delivered").status_code == 422
