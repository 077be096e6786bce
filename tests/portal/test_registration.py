"""Registration that cannot be hijacked: account number plus a single-use, short-lived code sent to
the e-mail on file (through a real SMTP server) or printed on the bill; unknown accounts look alike."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from console.db import utcnow
from console.models import ContactRecord
from console.models.portal import BillRegistrationCode, PortalCode, WebAccount
from console.portal import services
from tests.portal.conftest import CUSTOMER_PASSWORD, sign_in

NEW_PASSWORD = "a sturdy passphrase 7"


def _ask(client, identifier: str):  # noqa: ANN001, ANN202
    return client.post("/my/register", data={"identifier": identifier})


def _complete(client, identifier: str, code: str, password: str = NEW_PASSWORD):  # noqa: ANN001, ANN202
    return client.post(
        "/my/register/complete",
        data={"identifier": identifier, "code": code, "password": password, "password2": password},
    )


def _body(response) -> str:  # noqa: ANN001
    """The page without its CSRF tokens (signed with the second they were made: two answers a second
    apart differ there and nowhere else)."""
    html = response.get_data(as_text=True)
    html = re.sub(r'(name="csrf_token" value=")[^"]*"', r'\1"', html)
    return re.sub(r'("X-CSRFToken": ")[^"]*"', r'\1"', html)


def test_code_by_email_registers_once_and_then_signs_in(client, db, make_customer, mail_inbox):
    customer = make_customer()
    response = _ask(client, customer.account_no)
    assert response.status_code == 200
    code = mail_inbox.code_for(customer.email)
    mail = mail_inbox.to(customer.email)[0]
    assert mail["From"] and "customer" not in mail["Subject"].lower()

    done = _complete(client, customer.account_no, code)
    assert done.status_code == 302 and done.headers["Location"].endswith("/my/login")
    account = db.scalar(select(WebAccount).where(WebAccount.customer_id == customer.id))
    assert account.username == customer.account_no
    assert account.password_hash.startswith("$argon2")
    # single use: the same code does not register again (nor anything else)
    again = _complete(client, customer.account_no, code, "another good one 99")
    assert again.status_code == 422
    assert sign_in(client, customer.account_no, NEW_PASSWORD).status_code == 302
    # the mail was a contact with the customer
    assert db.scalar(select(func.count()).select_from(ContactRecord).where(ContactRecord.customer_id == customer.id))


def test_codes_are_stored_only_as_digests(client, db, make_customer, mail_inbox):
    customer = make_customer()
    _ask(client, customer.account_no)
    code = mail_inbox.code_for(customer.email)
    row = db.scalar(select(PortalCode).where(PortalCode.customer_id == customer.id))
    assert code not in row.code_digest and len(row.code_digest) == 64


def test_unknown_and_known_accounts_get_the_same_answer(client, make_customer, mail_inbox):
    customer = make_customer()
    no_email = make_customer(email=None)
    answers = []
    for identifier in (customer.account_no, "T999999999", no_email.account_no):
        response = _ask(client, identifier)
        answers.append((response.status_code, _body(response).replace(identifier, "ID")))
    assert answers[0] == answers[1] == answers[2]
    mail_inbox.wait_for(customer.email)  # only the real one got a mail
    assert len(mail_inbox.messages) == 1
    # completing with a code for an unknown account fails exactly like a wrong code
    unknown = _complete(client, "T999999999", "123456")
    wrong = _complete(client, customer.account_no, "000000" if mail_inbox.code_for(customer.email) != "000000" else "111111")
    assert unknown.status_code == wrong.status_code == 422
    assert _body(unknown).replace("T999999999", "ID") == _body(wrong).replace(customer.account_no, "ID")


def test_expired_code_is_refused(app, client, db, make_customer, mail_inbox):
    customer = make_customer()
    _ask(client, customer.account_no)
    code = mail_inbox.code_for(customer.email)
    row = db.scalar(select(PortalCode).where(PortalCode.customer_id == customer.id))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert _complete(client, customer.account_no, code).status_code == 422
    assert db.scalar(select(WebAccount).where(WebAccount.customer_id == customer.id)) is None


def test_wrong_guesses_kill_the_code(app, client, db, make_customer, mail_inbox):
    app.config["PORTAL_CODE_ATTEMPTS"] = 3
    customer = make_customer()
    _ask(client, customer.account_no)
    code = mail_inbox.code_for(customer.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(3):
        assert _complete(client, customer.account_no, wrong).status_code == 422
    assert _complete(client, customer.account_no, code).status_code == 422  # the right one, too late


def test_a_new_code_replaces_the_old_one(client, make_customer, mail_inbox):
    customer = make_customer()
    _ask(client, customer.account_no)
    first = mail_inbox.code_for(customer.email)
    _ask(client, customer.account_no)
    second = mail_inbox.code_for(customer.email, 2)
    if first != second:
        assert _complete(client, customer.account_no, first).status_code == 422
    assert _complete(client, customer.account_no, second).status_code == 302


def test_one_web_account_per_customer(client, db, make_customer, make_account, mail_inbox):
    customer = make_customer()
    make_account(customer)
    response = _ask(client, customer.account_no)
    assert response.status_code == 200
    notice = mail_inbox.wait_for(customer.email)[0]
    assert re.search(r"\b\d{6}\b", notice.get_body(("plain",)).get_content()) is None  # no code
    assert _complete(client, customer.account_no, "123456").status_code == 422
    count = db.scalar(select(func.count()).select_from(WebAccount).where(WebAccount.customer_id == customer.id))
    assert count == 1


def test_registration_code_printed_on_the_bill(app, client, db, make_customer, make_bill):
    customer = make_customer(email=None)  # nothing on file: the bill is the proof
    bill = make_bill(customer)
    with app.app_context():
        code = services.registration_code_for_bill(db, bill)
        assert services.registration_code_for_bill(db, bill) == code  # printed again, same text
    db.commit()
    row = db.scalar(select(BillRegistrationCode).where(BillRegistrationCode.bill_id == bill.id))
    assert code.replace("-", "") not in row.code_digest
    other = make_customer(email=None)
    assert _complete(client, other.account_no, code).status_code == 422  # someone else's account
    assert _complete(client, customer.account_no, code.lower().replace("-", " ")).status_code == 302
    assert sign_in(client, customer.account_no, NEW_PASSWORD).status_code == 302
    client.post("/my/logout")
    db.query(WebAccount).filter(WebAccount.customer_id == customer.id).delete()
    db.commit()
    assert _complete(client, customer.account_no, code).status_code == 422  # single use


def test_id_card_number_as_user_name(client, db, make_customer, mail_inbox):
    customer = make_customer(id_number="32050219800101123X")
    _ask(client, "32050219800101123x")
    code = mail_inbox.code_for(customer.email)
    assert _complete(client, "32050219800101123X", code).status_code == 302
    assert sign_in(client, "32050219800101123X", NEW_PASSWORD).status_code == 302


def test_weak_password_is_refused_without_spending_the_code(client, make_customer, mail_inbox):
    customer = make_customer()
    _ask(client, customer.account_no)
    code = mail_inbox.code_for(customer.email)
    assert _complete(client, customer.account_no, code, "password").status_code == 422
    assert _complete(client, customer.account_no, code, "short").status_code == 422
    assert _complete(client, customer.account_no, code).status_code == 302


def test_password_reset_by_mailed_code_ends_sessions(app, client, make_customer, make_account, mail_inbox):
    customer = make_customer()
    make_account(customer)
    other_device = app.test_client()
    assert sign_in(other_device, customer.account_no).status_code == 302
    client.post("/my/reset", data={"identifier": customer.account_no})
    code = mail_inbox.code_for(customer.email)
    response = client.post(
        "/my/reset/complete",
        data={"identifier": customer.account_no, "code": code, "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert other_device.get("/my/bills").status_code == 302  # signed out everywhere
    assert sign_in(client, customer.account_no, CUSTOMER_PASSWORD).status_code == 401
    assert sign_in(client, customer.account_no, NEW_PASSWORD).status_code == 302


def test_reset_for_unknown_account_looks_the_same(client, make_customer, make_account, mail_inbox):
    customer = make_customer()
    make_account(customer)
    known = client.post("/my/reset", data={"identifier": customer.account_no})
    unknown = client.post("/my/reset", data={"identifier": "T888888888"})
    assert known.status_code == unknown.status_code == 200
    assert _body(known).replace(customer.account_no, "ID") == _body(unknown).replace("T888888888", "ID")
    mail_inbox.wait_for(customer.email)


@pytest.mark.parametrize(
    "app", [{"PORTAL_CODE_ACCOUNT_LIMIT": "2 per 60 seconds", "PORTAL_CODE_ADDRESS_LIMIT": "4 per 60 seconds"}],
    indirect=True,
)
def test_code_requests_and_guesses_are_throttled_alike_for_known_and_unknown(app, make_customer, mail_inbox):
    customer = make_customer()
    for identifier in (customer.account_no, "T666666666"):
        client = app.test_client()
        assert [_ask(client, identifier).status_code for _ in range(3)] == [200, 200, 429]
    guesser = app.test_client()
    codes = [_complete(guesser, f"T55555{i:04d}", "123456").status_code for i in range(5)]
    assert codes == [422, 422, 422, 422, 429]  # wrong codes over many accounts, one address
    assert len(mail_inbox.wait_for(customer.email, 2)) == 2
