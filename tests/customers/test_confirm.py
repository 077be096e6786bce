"""The customer page's irreversible edits ask first, in the page (console/web/confirm.py): deactivating a
bill recipient, stopping collective billing, removing a pin. And it offers nothing its save would
refuse: no paper for a residential customer, no collective billing to start for a non-key account."""

from __future__ import annotations

from sqlalchemy import func, select

from console.models import AuditEvent, Customer, Recipient
from console.models.billing import CollectivePin
from tests.confirming import HX, ask, confirmed_post, token_of


def _audits(db, customer, action: str) -> int:  # noqa: ANN001
    db.expire_all()
    return db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity_id == str(customer.id),
                                                            AuditEvent.entity_type == "customer",
                                                            AuditEvent.action == action))


def test_deactivating_a_paper_recipient_names_who_where_and_the_copies(client, login_as, make_customer, db):
    login_as("clerk")
    customer = make_customer(key_account=True, customer_type="commercial", recipients=[
        {"name": "财务部", "relation": "finance", "channel": "paper", "address": "苏州市工业园区星湖街 1 号", "copies": 3}])
    recipient = db.scalar(select(Recipient).where(Recipient.customer_id == customer.id))
    url = f"/customers/{customer.id}/recipients/{recipient.id}/active"
    box = ask(client, url, {"active": "0"}).get_data(as_text=True)
    assert f"从下一次发布起，财务部（纸质：苏州市工业园区星湖街 1 号）将不再收到 {customer.name} 的账单" in box
    assert "即每张账单少打印 3 份纸质账单" in box
    assert client.post(url, data={"active": "0"}, headers=HX).status_code == 422
    assert db.get(Recipient, recipient.id).active and _audits(db, customer, "recipient.deactivate") == 0
    token = token_of(box)
    assert client.post(url, data={"active": "0", "confirm_token": token}, headers=HX).status_code == 200
    assert client.post(url, data={"active": "0", "confirm_token": token}, headers=HX).status_code == 200
    assert _audits(db, customer, "recipient.deactivate") == 1
    # inactive: no deactivate button, reactivating stays one click (nothing leaves by it)
    section = client.get(f"/customers/{customer.id}/recipients").get_data(as_text=True)
    assert f"{url}/confirm" not in section and "重新启用" in section
    assert client.post(url, data={"active": "1"}, headers=HX).status_code == 200
    assert db.get(Recipient, recipient.id).active


def test_stopping_collective_billing_names_the_points_and_asks_once(client, login_as, make_customer, db):
    login_as("clerk")
    customer = make_customer(points=3, key_account=True, customer_type="industrial", collective_billing=True)
    url = f"/customers/{customer.id}/collective"
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f'hx-get="{url}/confirm"' in page and "停用集团账单…" in page
    box = ask(client, url, {"collective_billing": "0"}).get_data(as_text=True)
    assert f"{customer.name} 的 3 个用电点将重新各自单独出账" in box and "确认停用集团账单" in box
    assert client.post(url, data={"collective_billing": "0"}, headers=HX).status_code == 422
    db.expire_all()
    assert db.get(Customer, customer.id).collective_billing is True
    token = token_of(box)
    done = client.post(url, data={"collective_billing": "0", "confirm_token": token}, headers=HX)
    assert done.status_code == 200 and 'id="collective"' in done.get_data(as_text=True)
    again = client.post(url, data={"collective_billing": "0", "confirm_token": token}, headers=HX)
    assert "已处理" in again.get_data(as_text=True)
    db.expire_all()
    assert db.get(Customer, customer.id).collective_billing is False
    assert _audits(db, customer, "customer.collective_billing") == 1
    # off: starting it again needs no confirmation (nothing is billed until a cycle is generated)
    assert ask(client, url, {"collective_billing": "0"}).status_code == 422
    assert client.post(url, data={"collective_billing": "1"}, headers=HX).status_code == 200


def test_removing_a_pin_names_the_two_points(client, login_as, make_customer, db):
    login_as("account_manager")
    customer = make_customer(points=2, key_account=True, collective_billing=True)
    a, b = sorted(p.point_no for p in customer.service_points)
    client.post(f"/customers/{customer.id}/collective/pins", data={"point_a": a, "point_b": b, "kind": "together"})
    pin = db.scalar(select(CollectivePin).where(CollectivePin.customer_id == customer.id))
    url = f"/customers/{customer.id}/collective/pins/{pin.id}/delete"
    box = ask(client, url).get_data(as_text=True)
    assert f"{a} 与 {b} 不再固定为“合并出账”" in box
    pins = select(func.count(CollectivePin.id)).where(CollectivePin.customer_id == customer.id)
    assert client.post(url, headers=HX).status_code == 422 and db.scalar(pins) == 1
    assert confirmed_post(client, url, headers=HX).status_code == 200
    db.expire_all()
    assert db.scalar(pins) == 0


def test_no_button_that_can_only_fail(client, login_as, make_customer, db):
    login_as("clerk")
    home = make_customer()  # residential: paper is for key accounts only
    page = client.get(f"/customers/{home.id}/wishes/edit", headers=HX).get_data(as_text=True)
    assert 'value="email"' in page and 'name="channels" value="paper"' not in page and "目前仅大客户可选纸质账单" in page
    form = client.get(f"/customers/{home.id}/recipients/new", headers=HX).get_data(as_text=True)
    assert '<option value="email"' in form and '<option value="paper"' not in form
    collective = client.get(f"/customers/{home.id}/collective").get_data(as_text=True)
    assert "启用集团账单" not in collective and "/collective/confirm" not in collective
    # a key account is offered both
    key = make_customer(key_account=True, customer_type="commercial")
    assert 'name="channels" value="paper"' in client.get(f"/customers/{key.id}/wishes/edit", headers=HX).get_data(
        as_text=True)
    assert '<option value="paper"' in client.get(f"/customers/{key.id}/recipients/new", headers=HX).get_data(
        as_text=True)
    assert "启用集团账单" in client.get(f"/customers/{key.id}/collective").get_data(as_text=True)
    # a phone rep may not set the flag at all: no form for them
    client.post("/logout")
    login_as("phone_rep")
    assert "启用集团账单" not in client.get(f"/customers/{key.id}/collective").get_data(as_text=True)
