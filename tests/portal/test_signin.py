"""Sign-in protection: throttles per account and per address that lift by themselves, password rules,
a new session at sign-in, sessions ended by sign-out and password change, staff and customers apart."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select

from console.models.portal import WebAccount
from console.passwords import verify_password
from tests.conftest import PASSWORD
from tests.portal.conftest import CUSTOMER_PASSWORD, sign_in

WINDOW = 6  # seconds; production counts over 15 minutes (PORTAL_LOGIN_*_LIMIT)
FAST_LOCK = {
    "PORTAL_LOGIN_ACCOUNT_LIMIT": f"3 per {WINDOW} seconds",
    "PORTAL_LOGIN_ADDRESS_LIMIT": f"4 per {WINDOW} seconds",
}


def _wait_for_window_end(first_failure: float) -> None:
    """The window opened when the first failure was counted (before `first_failure`, the moment its
    answer came back); wait until it has surely closed."""
    time.sleep(max(0.0, first_failure + WINDOW + 0.3 - time.monotonic()))


@pytest.mark.parametrize("app", [FAST_LOCK], indirect=True)
def test_guessing_one_account_from_many_addresses_trips_the_account_throttle(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    client = app.test_client()
    codes = [sign_in(client, customer.account_no, "guess number 0", addr="10.0.0.0").status_code]
    started = time.monotonic()
    codes += [sign_in(client, customer.account_no, f"guess number {i}", addr=f"10.0.0.{i}").status_code for i in (1, 2)]
    assert codes == [401, 401, 401]
    # the right password from yet another address is refused while the lock holds ...
    locked = sign_in(app.test_client(), customer.account_no, addr="10.0.1.1")
    assert locked.status_code == 429
    assert "Too many attempts" in locked.get_data(as_text=True) or "尝试次数过多" in locked.get_data(as_text=True)
    # ... another account from the same addresses is not affected
    other = make_customer()
    make_account(other)
    assert sign_in(app.test_client(), other.account_no, addr="10.0.0.1").status_code == 302
    # and the lock lifts by itself
    _wait_for_window_end(started)
    assert sign_in(app.test_client(), customer.account_no, addr="10.0.1.1").status_code == 302


@pytest.mark.parametrize("app", [FAST_LOCK], indirect=True)
def test_one_address_trying_many_accounts_trips_the_address_throttle(app, make_customer, make_account):
    client = app.test_client()
    started = 0.0
    for i in range(4):
        assert sign_in(client, f"T77777{i:04d}", "whatever-password", addr="192.0.2.7").status_code == 401
        started = started or time.monotonic()
    victim = make_customer()
    make_account(victim)
    assert sign_in(client, victim.account_no, addr="192.0.2.7").status_code == 429
    assert sign_in(app.test_client(), victim.account_no, addr="192.0.2.8").status_code == 302
    _wait_for_window_end(started)
    assert sign_in(client, victim.account_no, addr="192.0.2.7").status_code == 302


@pytest.mark.parametrize("app", [FAST_LOCK], indirect=True)
def test_successful_sign_ins_do_not_count(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    for _ in range(6):
        client = app.test_client()
        assert sign_in(client, customer.account_no, addr="198.51.100.1").status_code == 302


def test_failures_and_sign_ins_are_logged_without_the_id_number(client, make_customer, make_account, caplog):
    customer = make_customer(id_number="320502198001011234")
    make_account(customer)
    with caplog.at_level(logging.INFO, logger="billpost.security"):
        sign_in(client, "320502198001011234", "wrong password 1")
        sign_in(client, "T0000\r\nforged line", "wrong password 1")
        sign_in(client, customer.account_no)
    text = caplog.text
    assert "portal_login_failed" in text and "portal_login " in text
    assert "320502198001011234" not in text and "320502********1234" in text
    assert "\nforged" not in text  # CR/LF never start a forged log line


def test_password_rules(db, app, customer_client):
    client, customer, account = customer_client()
    for weak in ("short1", "password", "12345678", "aaaaaaaaaa"):
        response = client.post("/my/account/password", data={"current": CUSTOMER_PASSWORD, "new": weak})
        assert response.status_code == 422, weak
    unicode64 = "电力账单密码安全" * 4 + "Ünïcödé-pässwörd-with-🙂-emoji-xyz"[:32]
    assert len(unicode64) == 64
    response = client.post("/my/account/password", data={"current": CUSTOMER_PASSWORD, "new": unicode64})
    assert response.status_code == 302
    db.expire_all()
    stored = db.get(WebAccount, account.id)
    assert stored.password_hash.startswith("$argon2id$")
    assert verify_password(stored.password_hash, unicode64)  # accepted unchanged, not truncated
    assert not verify_password(stored.password_hash, unicode64[:63])


def test_wrong_current_password_is_refused(customer_client):
    client, _customer, _account = customer_client()
    response = client.post("/my/account/password", data={"current": "not it at all", "new": "brand new secret 1"})
    assert response.status_code == 422


def test_a_new_session_at_sign_in(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    client = app.test_client()
    client.get("/my/login")
    client.post("/my/login", data={"username": customer.account_no, "password": "wrong one here"})
    before = client.get_cookie("session")
    assert sign_in(client, customer.account_no).status_code == 302
    after = client.get_cookie("session")
    assert after is not None and (before is None or before.value != after.value)
    if before is not None:  # the cookie from before sign-in is still anonymous
        planted = app.test_client()
        planted.set_cookie("session", before.value)
        assert planted.get("/my/bills").status_code == 302


def test_password_change_ends_other_sessions(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    laptop, phone = app.test_client(), app.test_client()
    for c in (laptop, phone):
        assert sign_in(c, customer.account_no).status_code == 302
    stolen = phone.get_cookie("session").value
    response = laptop.post("/my/account/password", data={"current": CUSTOMER_PASSWORD, "new": "a much better one 42"})
    assert response.status_code == 302
    assert laptop.get("/my/bills").status_code == 200
    assert phone.get("/my/bills").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/my/bills").status_code == 302


def test_cookie_captured_before_sign_out_no_longer_works(app, customer_client):
    client, _customer, _account = customer_client()
    stolen = client.get_cookie("session").value
    assert client.post("/my/logout").status_code == 302
    assert client.get("/my/bills").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/my/bills").status_code == 302


def test_customers_cannot_use_the_console(customer_client):
    customer_side, _customer, _account = customer_client()
    for url in ("/customers/", "/admin/", "/"):
        response = customer_side.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_staff_session_is_refused_on_portal_pages(client, login_as):
    login_as("clerk")
    response = client.get("/my/bills")
    assert response.status_code == 302 and response.headers["Location"].split("?")[0].endswith("/my/login")
    assert client.get("/my/settings").status_code == 302


def test_a_customer_cannot_sign_in_at_the_staff_page(client, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    response = client.post("/login", data={"username": customer.account_no, "password": CUSTOMER_PASSWORD})
    assert response.status_code == 401


def test_staff_password_does_not_open_a_customer_account(client, make_user, make_customer, make_account, db):
    customer = make_customer()
    make_account(customer)
    user = make_user("clerk", username=customer.account_no)
    assert sign_in(client, user.username, PASSWORD).status_code == 401
    assert db.scalar(select(WebAccount).where(WebAccount.username == customer.account_no)) is not None
