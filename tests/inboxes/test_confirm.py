"""A work item's irreversible actions ask first, in the page (console/web/confirm.py): switching the
customer to paper, sending the bills again to a corrected address, reprinting them, closing the item.
Each confirmation names its figures; without it, or with a used one, nothing happens; the page offers
no action its service would refuse (paper for a residential customer, another person's item)."""

from __future__ import annotations

from sqlalchemy import func, select

from console.models import Bill, Customer, Delivery, WorkItem
from tests.confirming import HX, ask, confirmed_post, token_of


def _deliveries(db, bill_id: int, channel: str) -> int:  # noqa: ANN001
    db.expire_all()
    return db.scalar(select(func.count(Delivery.id)).where(Delivery.bill_id == bill_id, Delivery.channel == channel))


def test_switching_to_paper_names_the_customer_the_bill_and_the_copies(sign_in, make_customer, make_item, db):
    client, manager = sign_in("account_manager")
    key = make_customer(key_account=True, account_manager_id=manager.id, customer_type="commercial",
                        postal_address="苏州市姑苏区干将路 8 号", postal_code="215005",
                        recipients=[{"name": "财务部", "relation": "finance", "channel": "paper",
                                     "address": "苏州市工业园区星湖街 1 号", "copies": 2}])
    item = make_item(key)
    bill_no = db.get(Bill, item.bill_id).bill_no
    url = f"/work-items/{item.id}/paper"
    page = client.get(f"/work-items/{item.id}").get_data(as_text=True)
    assert f'hx-get="{url}/confirm"' in page
    box = ask(client, url).get_data(as_text=True)
    assert f"从现在起 {key.name} 收纸质账单，不再收电子邮件账单" in box
    assert f"账单 {bill_no} 将排入打印：3 份，寄往 苏州市姑苏区干将路 8 号 215005; 苏州市工业园区星湖街 1 号" in box
    assert "事项随即关闭" in box and "确认改为纸质账单" in box

    assert client.post(url, headers=HX).status_code == 422
    assert _deliveries(db, item.bill_id, "paper") == 0 and db.get(Customer, key.id).channel_paper is False
    token = token_of(box)
    assert client.post(url, data={"confirm_token": token}, headers=HX).status_code == 200
    again = client.post(url, data={"confirm_token": token}, headers=HX)
    assert again.status_code == 200 and "已处理" in again.get_data(as_text=True)
    assert _deliveries(db, item.bill_id, "paper") == 2  # the holder and the finance department, once
    assert db.get(WorkItem, item.id).close_reason == "switched_to_paper"


def test_switching_to_paper_is_not_offered_when_it_can_only_fail(sign_in, make_customer, make_item, db):
    client, _rep = sign_in("phone_rep")
    home = make_item(make_customer())  # residential: paper is for key accounts only
    page = client.get(f"/work-items/{home.id}").get_data(as_text=True)
    assert "/paper/confirm" not in page and "将客户改为纸质账单" not in page
    refused = ask(client, f"/work-items/{home.id}/paper")
    assert refused.status_code == 422 and "目前仅大客户可选纸质账单" in refused.get_data(as_text=True)
    no_address = make_item(make_customer(key_account=True, customer_type="industrial", postal_address=None))
    assert "/paper/confirm" not in client.get(f"/work-items/{no_address.id}").get_data(as_text=True)


def test_correcting_an_address_names_the_bills_sent_again(sign_in, make_customer, make_item, db, redis_conn):
    customer = make_customer(email="wrong@customers.test")
    first = make_item(customer)
    client, _rep = sign_in("phone_rep")
    url = f"/work-items/{first.id}/email"
    box = ask(client, url, {"email": "right@customers.test"}).get_data(as_text=True)
    assert "客户档案中的 wrong@customers.test 将改为 right@customers.test" in box
    assert "此事项的 1 张账单将重新发送到 right@customers.test" in box
    assert ask(client, url, {"email": "wrong@customers.test"}).status_code == 422  # the same address
    assert client.post(url, data={"email": "right@customers.test"}, headers=HX).status_code == 422
    assert db.get(Customer, customer.id).email == "wrong@customers.test"
    token = token_of(box)
    assert client.post(url, data={"email": "right@customers.test", "confirm_token": token},
                       headers=HX).status_code == 200
    client.post(url, data={"email": "right@customers.test", "confirm_token": token}, headers=HX)
    assert _deliveries(db, first.bill_id, "email") == 2  # the failed one and one resend, not two


def test_reprinting_to_a_corrected_postal_address_names_the_bills(sign_in, make_customer, make_item, db):
    customer = make_customer(key_account=True, customer_type="commercial")
    item = make_item(customer, address=customer.postal_address)
    delivery = db.get(Delivery, item.delivery_id)
    delivery.channel = "paper"
    db.commit()
    client, _rep = sign_in("phone_rep")
    url = f"/work-items/{item.id}/postal"
    values = {"postal_address": "苏州市姑苏区人民路 100 号", "postal_code": "215001"}
    box = ask(client, url, values).get_data(as_text=True)
    assert "邮寄地址将改为 苏州市姑苏区人民路 100 号，邮政编码 215001" in box
    assert "此事项的 1 张账单将在下一打印批次中重新打印" in box
    assert ask(client, url, values | {"postal_code": "12"}).status_code == 422
    assert client.post(url, data=values, headers=HX).status_code == 422
    assert confirmed_post(client, url, values, headers=HX).status_code == 200
    assert _deliveries(db, item.bill_id, "paper") == 2


def test_closing_names_the_reason_and_what_is_no_longer_followed(sign_in, make_customer, make_item, db):
    customer = make_customer()
    item = make_item(customer)
    client, _rep = sign_in("phone_rep")
    url = f"/work-items/{item.id}/close"
    box = ask(client, url, {"reason": "客户到营业厅缴费"}).get_data(as_text=True)
    assert f"{customer.name} 的工作事项 #{item.id} 将关闭，原因：客户到营业厅缴费" in box
    assert f"其中 1 个失败的投递（{customer.email}）不再跟进" in box
    assert client.post(url, data={"reason": "客户到营业厅缴费"}, headers=HX).status_code == 422
    db.expire_all()
    assert db.get(WorkItem, item.id).status == "open"
    assert confirmed_post(client, url, {"reason": "客户到营业厅缴费"}, headers=HX).status_code == 200
    db.expire_all()
    assert db.get(WorkItem, item.id).status == "closed"


def test_someone_elses_item_offers_no_action_but_an_admin_may_reassign(sign_in, make_customer, make_item, db):
    item = make_item(make_customer())
    holder, _ = sign_in("phone_rep")
    holder.post(f"/work-items/{item.id}/claim", headers=HX)
    other, _ = sign_in("phone_rep")
    page = other.get(f"/work-items/{item.id}").get_data(as_text=True)
    assert "/close/confirm" not in page and "form method=\"post\" class=\"action call\"" not in page
    assert "action reassign" not in page  # reassigning would be refused: someone else has it
    assert ask(other, f"/work-items/{item.id}/close", {"reason": "x"}).status_code == 422
    admin, _ = sign_in("admin")
    assert "action reassign" in admin.get(f"/work-items/{item.id}").get_data(as_text=True)


def test_closing_several_items_at_once_asks_first_and_names_them(sign_in, make_customer, make_item, db):
    items = [make_item(make_customer()) for _ in range(2)]
    taken = make_item(make_customer())
    holder, _ = sign_in("phone_rep")
    holder.post(f"/work-items/{taken.id}/claim", headers=HX)
    client, _ = sign_in("phone_rep")
    queue = {"Referer": "http://localhost/inbox/rep/"}
    data = {"action": "close", "reason": "批量处理", "item": [str(i.id) for i in items] + [str(taken.id)]}
    sent = client.post("/work-items/bulk", data=data, headers=queue)  # the queue's plain form: asked first
    assert sent.status_code == 303 and "/work-items/bulk/confirm?" in sent.headers["Location"]
    page = client.get(sent.headers["Location"], headers=queue).get_data(as_text=True)
    assert "<html" in page and "将关闭 2 个工作事项，原因：批量处理" in page and "1 个所选事项保持不变" in page
    assert 'href="/inbox/rep/" data-confirm-cancel' in page
    db.expire_all()
    assert {db.get(WorkItem, i.id).status for i in items} == {"open"}
    done = client.post("/work-items/bulk", data={"action": "close", "reason": "批量处理", "confirm_back": "/inbox/rep/",
                                                 "item": [str(i.id) for i in items], "confirm_token": token_of(page)})
    assert done.status_code == 303 and done.headers["Location"].endswith("/inbox/rep/")
    db.expire_all()
    assert {db.get(WorkItem, i.id).status for i in items} == {"closed"} and db.get(WorkItem, taken.id).status == "claimed"
    # claiming several needs no confirmation: nothing leaves and nothing is lost by it
    more = make_item(make_customer())
    assert client.post("/work-items/bulk", data={"action": "claim", "item": [str(more.id)]}).status_code == 303
    db.expire_all()
    assert db.get(WorkItem, more.id).status == "claimed"
