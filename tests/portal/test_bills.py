"""The customer's bills: only published ones, only their own (404 for any other id, walked from the
URL map), itemized by charge type, the PDF, the receipt on opening, headers, CSRF, masked IDs."""

from __future__ import annotations

import logging
import subprocess

import pytest
from flask import url_for
from sqlalchemy import func, select

from console.models import ContactRecord, Delivery
from console.models.portal import BillOpen
from tests.conftest import TEST_REDIS_URL
from tests.portal.conftest import CUSTOMER_PASSWORD, sign_in

CANARY_ID = "320502199001017777"
CANARY_MASKED = "320502********7777"


def _portal_rules(app):  # noqa: ANN001, ANN202
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("portal.")]


def _url(app, rule, **values) -> str:  # noqa: ANN001
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def test_isolation_matrix_every_bill_route_refuses_other_customers_ids(app, customer_client, make_customer, make_bill):
    """Every portal route taking a bill id answers 404 for another customer's bill, for an unpublished
    bill of one's own and for an id that does not exist; a new route without the check fails here."""
    client, me, _account = customer_client()
    mine = make_bill(me)
    my_draft = make_bill(me, period="2026-11", status="generated")
    others = [make_bill(make_customer()) for _ in range(2)]
    rules = [rule for rule in _portal_rules(app) if "bill_id" in rule.arguments]
    assert {rule.endpoint for rule in rules} >= {"portal.bill", "portal.bill_pdf"}
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            own = client.open(_url(app, rule, bill_id=mine.id), method=method)
            assert own.status_code == 200, (rule.endpoint, method)
            for foreign in [*others, my_draft]:
                response = client.open(_url(app, rule, bill_id=foreign.id), method=method)
                assert response.status_code == 404, (rule.endpoint, method, foreign.id)
                assert foreign.bill_no not in response.get_data(as_text=True)
            assert client.open(_url(app, rule, bill_id=10**9), method=method).status_code == 404


def test_every_non_public_portal_route_needs_a_signed_in_customer(app):
    from console.portal.routes import PUBLIC_ENDPOINTS

    anonymous = app.test_client()
    checked = 0
    for rule in _portal_rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = _url(app, rule, **{arg: 1 for arg in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = anonymous.open(url, method=method)
            if method == "GET" or rule.endpoint == "portal.logout":
                assert response.status_code == 302 and response.headers["Location"].split("?")[0].endswith("/my/login"), (
                    rule.endpoint
                )
            else:  # a form sent after the session ended: refused, its input kept to send again
                assert response.status_code == 401 and "重新提交" in response.get_data(as_text=True), rule.endpoint
            checked += 1
    assert checked >= 5


def test_only_published_bills_are_listed(customer_client, make_bill, make_customer):
    client, me, _account = customer_client()
    older = make_bill(me, period="2026-09")
    newer = make_bill(me, period="2026-10")
    draft = make_bill(me, period="2026-11", status="generated")
    someone_elses = make_bill(make_customer(), period="2026-10")
    page = client.get("/my/bills").get_data(as_text=True)
    assert older.bill_no in page and newer.bill_no in page
    assert page.index(newer.bill_no) < page.index(older.bill_no)  # newest first
    assert draft.bill_no not in page and someone_elses.bill_no not in page


def test_a_bill_appears_the_moment_it_is_published(db, customer_client, make_bill):
    client, me, _account = customer_client()
    bill = make_bill(me, status="generated")
    assert bill.bill_no not in client.get("/my/bills").get_data(as_text=True)
    bill.status = "published"
    db.commit()
    assert bill.bill_no in client.get("/my/bills").get_data(as_text=True)
    assert client.get(f"/my/bills/{bill.id}").status_code == 200


def test_list_pages(app, customer_client, make_bill):
    app.config["PORTAL_PAGE_SIZE"] = 2
    client, me, _account = customer_client()
    bills = [make_bill(me, period=f"2026-{m:02d}") for m in range(1, 6)]
    first = client.get("/my/bills").get_data(as_text=True)
    third = client.get("/my/bills?page=3").get_data(as_text=True)
    assert bills[4].bill_no in first and bills[0].bill_no not in first
    assert bills[0].bill_no in third and bills[4].bill_no not in third


def test_bill_is_itemized_by_charge_type(client, customer_client, make_bill):
    client, me, _account = customer_client()
    bill = make_bill(me)
    page = client.get(f"/my/bills/{bill.id}?lang=en").get_data(as_text=True)
    for label in ("Electricity", "Late fees", "Business-expansion fees", "Connection fees", "Adjustments",
                  "Installments", "Previous balance", "Payments", "Deposit held", "Current balance"):
        assert label in page, label
    for amount in ("176.49", "3.21", "200.00", "50.00", "-10.00", "80.00", "500.00", bill.due_date.isoformat()):
        assert amount in page, amount
    assert "1530" in page and "1842" in page  # the reads of the service point
    chinese = client.get(f"/my/bills/{bill.id}?lang=zh").get_data(as_text=True)
    assert "电费" in chinese and "缴费截止日" in chinese


def test_opening_a_bill_confirms_receipt_once_and_writes_a_contact_record(db, customer_client, make_bill):
    client, me, _account = customer_client()
    bill = make_bill(me)
    delivery = Delivery(
        bill_id=bill.id, customer_id=me.id, channel="email", address=me.email, recipient_name=me.name,
        status="sent", attempts_made=1,
    )
    db.add(delivery)
    db.commit()
    for _ in range(2):
        assert client.get(f"/my/bills/{bill.id}").status_code == 200
    db.expire_all()
    assert db.get(Delivery, delivery.id).status == "confirmed"
    assert db.get(Delivery, delivery.id).confirmed_by == "portal_open"
    portal_contacts = db.scalar(
        select(func.count()).select_from(ContactRecord).where(
            ContactRecord.bill_id == bill.id, ContactRecord.channel == "portal"
        )
    )
    assert portal_contacts == 1
    assert db.get(BillOpen, bill.id) is not None


def test_pdf_download(customer_client, make_bill, tmp_path):
    client, me, _account = customer_client()
    bill = make_bill(me)
    response = client.get(f"/my/bills/{bill.id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    pdf = tmp_path / "bill.pdf"
    pdf.write_bytes(response.get_data())
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert bill.bill_no in text
    again = client.get(f"/my/bills/{bill.id}/pdf")  # rendered once, the stored file after
    assert again.get_data() == response.get_data()


def test_security_headers_on_portal_pages(customer_client, make_bill):
    client, me, _account = customer_client()
    bill = make_bill(me)
    for url in ("/my/bills", f"/my/bills/{bill.id}", "/my/settings", "/my/account/password"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url
        assert "Cookie" in response.headers["Vary"], url
        assert "default-src 'self'" in response.headers["Content-Security-Policy"], url
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["Referrer-Policy"], url
    login_page = client.get("/my/login")
    assert login_page.headers["Cache-Control"] == "no-store"


def test_session_cookie_flags(app, make_customer, make_account):
    app.config["SESSION_COOKIE_SECURE"] = True  # as when served over TLS
    customer = make_customer()
    make_account(customer)
    client = app.test_client()
    response = sign_in(client, customer.account_no)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize("app", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_every_unsafe_portal_route_needs_a_csrf_token(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    client = app.test_client()
    page = client.get("/my/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/my/login", data={"username": customer.account_no, "password": CUSTOMER_PASSWORD,
                                          "csrf_token": token}).status_code == 302
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("portal."):
            continue
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            url = _url(app, rule, **{arg: 1 for arg in rule.arguments})
            for c in (client, app.test_client()):  # signed in and anonymous
                assert c.open(url, method=method, data={"username": "x"}).status_code == 400, (rule.endpoint, method)
            checked += 1
    assert checked >= 6
    assert client.get("/my/bills").status_code == 200  # still signed in: the refused sign-out did nothing


def test_get_changes_nothing(db, customer_client):
    client, _me, account = customer_client()
    token = account.session_token
    for url in ("/my/logout", "/my/register/complete", "/my/reset/complete"):
        client.get(url)
    db.expire_all()
    assert client.get("/my/bills").status_code == 200
    assert db.get(type(account), account.id).session_token == token


@pytest.mark.parametrize("app", [{"RATELIMIT_STORAGE_URI": TEST_REDIS_URL}], indirect=True)
def test_canary_id_number_never_appears_whole(app, db, customer_client, make_bill, redis_conn, caplog):
    client, me, _account = customer_client(id_number=CANARY_ID)
    bill = make_bill(me)
    with caplog.at_level(logging.INFO):
        pages = [
            client.get("/my/settings"), client.get("/my/bills"), client.get(f"/my/bills/{bill.id}"),
            client.get(f"/my/bills/{bill.id}/pdf"),
        ]
        anonymous = app.test_client()
        anonymous.post("/my/login", data={"username": CANARY_ID, "password": "wrong password 0"})
        anonymous.post("/my/register", data={"identifier": CANARY_ID})
    settings_page = pages[0].get_data(as_text=True)
    assert CANARY_MASKED in settings_page
    for response in pages:
        assert CANARY_ID.encode() not in response.get_data()
    pdf_text = subprocess.run(["pdftotext", "-", "-"], input=pages[3].get_data(), capture_output=True, check=True).stdout
    assert CANARY_ID.encode() not in pdf_text
    assert CANARY_ID not in caplog.text
    keys = 0
    for key in redis_conn.scan_iter():
        keys += 1
        assert CANARY_ID.encode() not in key
        if redis_conn.type(key) == b"string":
            assert CANARY_ID.encode() not in (redis_conn.get(key) or b"")
    assert keys > 0  # the throttles did count in Redis


def test_delivery_settings_are_shown(customer_client):
    client, me, _account = customer_client(
        recipients=[{"name": "房东王先生", "relation": "landlord", "channel": "email", "address": "landlord@x.test"}],
    )
    page = client.get("/my/settings?lang=en").get_data(as_text=True)
    assert me.email in page and "landlord@x.test" in page and "Landlord" in page and "E-mail" in page
