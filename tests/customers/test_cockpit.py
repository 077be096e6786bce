"""The customer page as the clerk's cockpit (issue 14): the customer's bills with their deliveries per
recipient, open work items, a contact history that names the bill and the recipient; contact details
edited on screen by admins (any customer) and account managers (their own accounts)."""

from __future__ import annotations

import re

from sqlalchemy import select

from console.audit import Actor, record_contact
from console.models import AuditEvent, ContactRecord, Customer, Delivery, WorkItem
from tests.delivery.conftest import add_bill

HX = {"HX-Request": "true"}


def _case(db, customer) -> dict:  # noqa: ANN001
    """Two bills, each e-mailed to the holder, the second failed and on an open item; a contact record
    on the first naming its delivery."""
    first, second = add_bill(db, customer, period="2026-10"), add_bill(db, customer, period="2026-11")
    ok = Delivery(bill_id=first.id, customer_id=customer.id, channel="email", address=customer.email,
                  recipient_name=customer.name, status="confirmed", confirmed_by="delivered")
    bad = Delivery(bill_id=second.id, customer_id=customer.id, channel="email", address=customer.email,
                   recipient_name="财务部 李会计", status="failed")
    db.add_all([ok, bad])
    db.flush()
    item = WorkItem(customer_id=customer.id, bill_id=second.id, delivery_id=bad.id, reason="email_failed",
                    status="open", assigned_role="phone_rep", code="email_failed", params={"address": customer.email},
                    details={"address": customer.email})
    db.add(item)
    db.flush()
    record_contact(db, customer.id, "email", "email_confirmed", Actor.system(), bill_id=first.id,
                   params={"confirmed_by": "delivered"}, details={"delivery_id": ok.id, "address": ok.address, "confirmed_by": "delivered"})
    db.commit()
    return {"first": first, "second": second, "ok": ok, "bad": bad, "item": item}


def test_the_customer_page_shows_bills_deliveries_items_and_a_history_naming_bill_and_recipient(
    client, login_as, make_customer, db
):
    login_as("phone_rep")
    customer = make_customer()
    case = _case(db, customer)
    html = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    bills = html[html.index('id="bills"'):]
    for bill in (case["first"], case["second"]):
        assert f'<a href="/billing/bills/{bill.id}">{bill.bill_no}</a>' in bills
    assert "2026-10" in bills and "2026-12-10" in bills and "86.45" in bills
    ok_row = re.search(rf'data-delivery="{case["ok"].id}"[^>]*>(.*?)</div>', bills, re.S).group(1)
    assert customer.name in ok_row and "已确认" in ok_row
    bad_row = re.search(rf'data-delivery="{case["bad"].id}"[^>]*>(.*?)</div>', bills, re.S).group(1)
    assert "财务部 李会计" in bad_row and "失败" in bad_row
    items = html[html.index('id="items"'):]
    assert f'href="/work-items/{case["item"].id}"' in items
    history = html[html.index('id="history"'):]
    assert f'<a href="/billing/bills/{case["first"].id}">{case["first"].bill_no}</a>' in history
    assert f"{customer.name} · {customer.email}" in history
    assert "电子账单已确认送达：投递报告" in history  # rendered from the confirmation's code and parameters
    assert f">{case['first'].id}<" not in history  # no internal bill id


def test_the_work_item_page_links_the_bill_and_the_customer_page(client, login_as, make_customer, db):
    login_as("phone_rep")
    customer = make_customer()
    case = _case(db, customer)
    html = client.get(f"/work-items/{case['item'].id}").get_data(as_text=True)
    assert f'href="/billing/bills/{case["second"].id}"' in html
    for anchor in ("bills", "items", "history"):
        assert f'href="/customers/{customer.id}#{anchor}"' in html


def _form(customer, **values) -> dict:  # noqa: ANN001
    return {"phone": customer.phone, "postal_address": customer.postal_address,
            "postal_code": customer.postal_code, "email": customer.email} | values


def test_an_admin_edits_the_contact_details_audited_and_in_the_history(
    client, login_as, make_customer, make_user, db
):
    admin = login_as("admin")
    manager = make_user("account_manager", display_name="周经理")
    customer = make_customer(key_account=True)
    edit = client.get(f"/customers/{customer.id}/contact/edit", headers=HX)
    assert edit.status_code == 200 and 'name="account_manager_id"' in edit.get_data(as_text=True)
    response = client.post(f"/customers/{customer.id}/contact", headers=HX, data=_form(
        customer, phone=" 0512-6500 1234 ", postal_address="苏州市工业园区  星湖街 88 号", postal_code="215021",
        email="New@Example.COM", account_manager_id=str(manager.id)))
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "customer-changed"
    body = response.get_data(as_text=True)
    assert 'id="contact"' in body and "周经理" in body
    db.expire_all()
    saved = db.get(Customer, customer.id)
    assert saved.phone == "0512-6500 1234" and saved.postal_address == "苏州市工业园区 星湖街 88 号"
    assert saved.postal_code == "215021" and saved.email == "New@example.com"
    assert saved.account_manager_id == manager.id
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "customer.contact_details"))
    assert event.actor_id == admin.id and event.after["account_manager_id"] == manager.id
    record = db.scalar(select(ContactRecord).where(ContactRecord.customer_id == customer.id))
    assert record.code == "contact_details"
    assert set(record.params["fields"]) == {"phone", "postal_address", "postal_code", "email", "account_manager_id"}
    history = client.get(f"/customers/{customer.id}/history", headers=HX).get_data(as_text=True)
    assert "联系方式已修改" in history and "邮政编码" in history


def test_bad_contact_details_are_refused_with_422_in_the_users_language(client, login_as, make_customer, db):
    login_as("admin", language="en")
    customer = make_customer()
    response = client.post(f"/customers/{customer.id}/contact", headers=HX,
                           data=_form(customer, phone="call me", postal_code="2150", email="not-an-address"))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'data-error="phone"' in body and 'data-error="postal_code"' in body and 'data-error="email"' in body
    assert "A postal code is 6 digits." in body and 'value="call me"' in body
    page = client.post(f"/customers/{customer.id}/contact", data=_form(customer, postal_code="x"))
    assert page.status_code == 422 and 'id="bills"' in page.get_data(as_text=True)  # the whole page, form in place
    db.expire_all()
    assert db.get(Customer, customer.id).postal_code == "215000"
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "customer.contact_details")) is None


def test_bad_contact_details_in_chinese(client, login_as, make_customer):
    login_as("admin")
    customer = make_customer()
    response = client.post(f"/customers/{customer.id}/contact", headers=HX, data=_form(customer, postal_code="1"))
    assert response.status_code == 422 and "邮政编码为 6 位数字。" in response.get_data(as_text=True)


def test_account_managers_edit_their_own_accounts_only_and_not_the_manager(
    client, login_as, make_customer, make_user, db
):
    me = login_as("account_manager")
    other = make_user("account_manager")
    mine = make_customer(key_account=True, account_manager_id=me.id)
    theirs = make_customer(key_account=True, account_manager_id=other.id)
    assert 'name="account_manager_id"' not in client.get(f"/customers/{mine.id}/contact/edit").get_data(as_text=True)
    response = client.post(f"/customers/{mine.id}/contact", headers=HX,
                           data=_form(mine, phone="13900001111", account_manager_id=str(other.id)))
    assert response.status_code == 200
    db.expire_all()
    assert db.get(Customer, mine.id).phone == "13900001111" and db.get(Customer, mine.id).account_manager_id == me.id
    assert client.get(f"/customers/{theirs.id}/contact/edit").status_code == 403
    assert client.post(f"/customers/{theirs.id}/contact", data=_form(theirs, phone="13900002222")).status_code == 403
    assert "edit-contact" not in client.get(f"/customers/{theirs.id}").get_data(as_text=True)
    assert client.post("/customers/999999/contact", data=_form(theirs)).status_code == 404


def test_clerks_and_phone_reps_do_not_edit_contact_details(client, login_as, make_customer):
    customer = make_customer()
    for role in ("clerk", "phone_rep"):
        login_as(role)
        assert "edit-contact" not in client.get(f"/customers/{customer.id}").get_data(as_text=True)
        assert client.get(f"/customers/{customer.id}/contact/edit").status_code == 403
        assert client.post(f"/customers/{customer.id}/contact", data=_form(customer)).status_code == 403
        client.post("/logout")


def test_the_cockpit_costs_the_same_queries_for_more_bills_and_contacts(client, login_as, make_customer, db, app):
    from sqlalchemy import event

    login_as("admin")
    engine = app.extensions["billpost.engine"]
    statements: list[str] = []

    def count(*args) -> None:  # noqa: ANN002
        statements.append(args[2])

    def page_cost(customer) -> int:  # noqa: ANN001
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(f"/customers/{customer.id}").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    small, big = make_customer(), make_customer()
    _case(db, small)
    for _ in range(4):
        _case(db, big)
    cost = page_cost(small)
    assert cost > 5 and page_cost(big) == cost
