"""The customer file screens: search, the customer page, in-place edits (audited, in the history)."""

from __future__ import annotations

import re

from sqlalchemy import select

from console.customers.services import mask_id_number, parse_id_number, search_customers
from console.models import AuditEvent, ContactRecord, Customer, Recipient
from tests.confirming import confirmed_post
from tests.customers.conftest import CANARY_ID

HX = {"HX-Request": "true"}


def _accounts(html: str) -> list[str]:
    return re.findall(r'<a href="/customers/\d+">([^<]+)</a>', html)


def test_mask_id_number():
    assert mask_id_number(CANARY_ID) == "320502********1234"
    assert mask_id_number("320502900101123") == "320502*****1123"
    assert mask_id_number(None) == "" and mask_id_number("") == ""
    assert mask_id_number("1234") == "**34"
    assert parse_id_number(CANARY_ID) == CANARY_ID


def test_search_each_kind(db, make_customer):
    a = make_customer(account_no="3201000001", name="王伟", phone="13812340001", email="wang.wei@qq.com")
    b = make_customer(account_no="3201000002", name="王芳", phone="05126123456", email="fang@163.com")
    c = make_customer(account_no="3202000003", name="李娜", phone="13912340003", email="lina@163.com")
    ids = lambda page: [c.id for c in page.rows]  # noqa: E731
    assert ids(search_customers(db, "32010")) == [a.id, b.id]
    assert search_customers(db, "32010").kind == "account"
    assert ids(search_customers(db, "3201000002")) == [b.id]
    assert ids(search_customers(db, "王")) == [a.id, b.id]
    assert search_customers(db, "王").kind == "name"
    assert ids(search_customers(db, "138123")) == [a.id]
    assert search_customers(db, "138123").kind == "phone"
    assert ids(search_customers(db, "0512612")) == [b.id]
    assert ids(search_customers(db, "fang@")) == [b.id]
    assert ids(search_customers(db, "WANG.w", kind="email")) == [a.id]
    assert ids(search_customers(db, "lina")) == [c.id]  # auto: letters try name, then e-mail, then account
    assert search_customers(db, "lina").kind == "email"
    assert ids(search_customers(db, "lina", kind="name")) == []
    assert ids(search_customers(db, "100%")) == [] and ids(search_customers(db, "_")) == []


def test_search_pages_by_keyset(db, make_customer):
    made = [make_customer(account_no=f"3203{n:06d}", name=f"赵{n}") for n in range(25)]
    first = search_customers(db, "赵", page_size=10)
    assert [c.id for c in first.rows] == [c.id for c in made[:10]] and first.next_after == made[9].account_no
    second = search_customers(db, "赵", kind=first.kind, after=first.next_after, page_size=10)
    third = search_customers(db, "赵", kind=first.kind, after=second.next_after, page_size=10)
    assert [c.id for c in second.rows + third.rows] == [c.id for c in made[10:]]
    assert third.next_after is None


def test_search_page_and_htmx_fragment(client, login_as, make_customer):
    login_as("clerk")
    make_customer(account_no="3204000001", name="周杰")
    page = client.get("/customers/?q=周")
    fragment = client.get("/customers/?q=周", headers=HX)
    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    assert _accounts(fragment.get_data(as_text=True)) == ["3204000001"]
    assert 'id="results"' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]
    for query in ("3204000001", "周杰"):
        assert _accounts(client.get("/customers/", query_string={"q": query}, headers=HX).get_data(as_text=True)) == [
            "3204000001"
        ]


def test_account_manager_sees_own_key_accounts_marked(client, login_as, make_customer):
    manager = login_as("account_manager")
    mine = make_customer(account_no="3205000001", name="恒信公司", key_account=True, customer_type="industrial",
                         account_manager_id=manager.id)
    make_customer(account_no="3205000002", name="恒信分公司", key_account=True, customer_type="industrial")
    html = client.get("/customers/?q=恒信", headers=HX).get_data(as_text=True)
    assert html.count('class="badge mine"') == 1
    assert 'class="badge mine"' in client.get(f"/customers/{mine.id}").get_data(as_text=True)


def test_customer_page_masks_the_id_number_everywhere(client, login_as, make_customer):
    login_as("phone_rep")
    customer = make_customer(id_number=CANARY_ID, recipients=[
        {"name": "李娜", "relation": "tenant", "channel": "email", "address": "lina@qq.com"}])
    html = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert CANARY_ID not in html and "320502********1234" in html
    assert "李娜" in html and "lina@qq.com" in html
    assert CANARY_ID not in client.get(f"/customers/{customer.id}.json").get_data(as_text=True)
    export = client.get("/customers/export.csv", query_string={"q": customer.account_no}).get_data(as_text=True)
    assert customer.account_no in export and "320502********1234" in export and CANARY_ID not in export


def test_editing_delivery_wishes_is_audited_and_in_the_contact_history(client, login_as, make_customer, db):
    user = login_as("clerk")
    customer = make_customer(wants_ebill=False, channel_portal=True, channel_email=False)
    response = client.post(
        f"/customers/{customer.id}/wishes",
        data={"wants_ebill": "1", "channels": ["portal", "email"], "email": "New.Mail@QQ.com", "attach_pdf": "1"},
        headers=HX,
    )
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "customer-changed"
    assert 'id="wishes"' in response.get_data(as_text=True)
    db.expire_all()
    saved = db.get(Customer, customer.id)
    assert saved.wants_ebill and saved.channels == ["portal", "email"] and saved.email == "New.Mail@qq.com"
    assert saved.attach_pdf is True
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "customer.delivery_wishes",
                                               AuditEvent.entity_id == str(customer.id)))
    assert event.actor_id == user.id
    assert event.before["wants_ebill"] is False and event.after["wants_ebill"] is True
    assert event.before["channels"] == ["portal"] and event.after["channels"] == ["portal", "email"]
    contact = db.scalar(select(ContactRecord).where(ContactRecord.customer_id == customer.id))
    assert contact.actor_id == user.id and contact.code == "delivery_wishes"
    assert contact.params == {"fields": ["wants_ebill", "channels", "email", "attach_pdf"]}
    history = client.get(f"/customers/{customer.id}/history", headers=HX).get_data(as_text=True)
    assert "投递意愿已修改" in history  # rendered from the code in the reader's language, not stored text
    assert "customer.delivery_wishes" in client.get(f"/customers/{customer.id}/audit", headers=HX).get_data(as_text=True)


def test_invalid_email_gives_422_with_the_form_and_changes_nothing(client, login_as, make_customer, db):
    login_as("clerk")
    customer = make_customer()
    response = client.post(f"/customers/{customer.id}/wishes",
                           data={"wants_ebill": "1", "channels": ["email"], "email": "not@an@address"}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<form" in html and "not@an@address" in html and "<html" not in html
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.entity_type == "customer",
                                                 AuditEvent.entity_id == str(customer.id))) is None
    full = client.post(f"/customers/{customer.id}/wishes", data={"channels": ["email"], "email": "bad"})
    assert full.status_code == 422 and "<html" in full.get_data(as_text=True)


def test_paper_channel_refused_for_a_non_key_account(client, login_as, make_customer, db):
    login_as("clerk")
    customer = make_customer()
    response = client.post(f"/customers/{customer.id}/wishes?lang=en",
                           data={"wants_ebill": "1", "channels": ["portal", "paper"], "email": ""}, headers=HX)
    assert response.status_code == 422 and "key accounts only" in response.get_data(as_text=True)
    key = make_customer(key_account=True, customer_type="industrial")
    ok = client.post(f"/customers/{key.id}/wishes", data={"wants_ebill": "1", "channels": ["portal", "paper"]},
                     headers=HX)
    assert ok.status_code == 200


def test_recipients_add_edit_deactivate_each_audited_and_in_history(client, login_as, make_customer, db):
    login_as("account_manager")
    customer = make_customer()
    added = client.post(f"/customers/{customer.id}/recipients", headers=HX, data={
        "name": "李娜", "relationship": "proxy", "channel": "email", "address": "lina@qq.com", "copies": "1"})
    assert added.status_code == 200 and added.headers["HX-Retarget"] == "#recipients"
    recipient = db.scalar(select(Recipient).where(Recipient.customer_id == customer.id))
    assert recipient.relation == "proxy"
    bad = client.post(f"/customers/{customer.id}/recipients/{recipient.id}", headers=HX, data={
        "name": "李娜", "relationship": "proxy", "channel": "email", "address": "lina@", "copies": "1"})
    assert bad.status_code == 422 and 'id="recipient-form"' in bad.get_data(as_text=True)
    edited = client.post(f"/customers/{customer.id}/recipients/{recipient.id}", headers=HX, data={
        "name": "李娜", "relationship": "proxy", "channel": "email", "address": "lina@163.com", "copies": "2"})
    assert edited.status_code == 200
    off = confirmed_post(client, f"/customers/{customer.id}/recipients/{recipient.id}/active", {"active": "0"}, headers=HX)
    assert off.status_code == 200
    db.expire_all()
    recipient = db.get(Recipient, recipient.id)
    assert recipient.address == "lina@163.com" and recipient.copies == 2 and not recipient.active
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "customer",
                                                        AuditEvent.entity_id == str(customer.id))
                         .order_by(AuditEvent.id)).all()
    assert actions == ["recipient.add", "recipient.update", "recipient.deactivate"]
    update = db.scalar(select(AuditEvent).where(AuditEvent.action == "recipient.update"))
    assert update.before["address"] == "lina@qq.com" and update.after["address"] == "lina@163.com"
    records = db.scalars(select(ContactRecord).where(ContactRecord.customer_id == customer.id)
                         .order_by(ContactRecord.id)).all()
    assert [r.code for r in records] == ["recipient_added", "recipient_changed", "recipient_deactivated"]
    assert all(r.params == {"name": "李娜"} for r in records)


def test_a_recipient_of_another_customer_is_not_found(client, login_as, make_customer):
    login_as("clerk")
    one = make_customer(recipients=[{"name": "x", "relation": "tenant", "channel": "email", "address": "x@qq.com"}])
    other = make_customer()
    rid = one.recipients[0].id if one.recipients else None
    from sqlalchemy.orm import object_session

    if rid is None:
        rid = object_session(one).scalar(select(Recipient.id).where(Recipient.customer_id == one.id))
    assert client.get(f"/customers/{other.id}/recipients/{rid}/edit").status_code == 404
    assert client.get("/customers/999999").status_code == 404


def test_search_finds_a_fragment_in_the_middle_of_a_name_when_no_name_starts_with_it(db, make_customer):
    made = [make_customer(account_no=f"3205{n:06d}", name=f"苏州金桥电子{n}厂") for n in range(3)]
    starts = make_customer(account_no="3206000001", name="金桥物流")
    page = search_customers(db, "金桥")
    assert [c.id for c in page.rows] == [starts.id] and page.kind == "name"  # a prefix wins, as before
    page = search_customers(db, "桥电子")
    assert [c.id for c in page.rows] == [c.id for c in made] and page.kind == "name_part"
    first = search_customers(db, "桥电子", kind="name_part", page_size=2)
    rest = search_customers(db, "桥电子", kind="name_part", after=first.next_after, page_size=2)
    assert [c.id for c in first.rows + rest.rows] == [c.id for c in made] and rest.next_after is None
    assert search_customers(db, "桥%").rows == [] and search_customers(db, "电_").rows == []
