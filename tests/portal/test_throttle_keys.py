"""The customer page's sign-in throttle counts per customer, whatever identifier was typed: the
account number and the ID-card number of one customer share one budget; an unknown identifier has a
key of its own, and the answer never tells which."""

from __future__ import annotations

import pytest

from console.portal import services
from tests.portal.conftest import sign_in

LOCK = {"PORTAL_LOGIN_ACCOUNT_LIMIT": "4 per 60 seconds", "PORTAL_LOGIN_ADDRESS_LIMIT": "100 per 60 seconds"}
ID_NUMBER = "320502199001011234"


def _customer_with_id(app, db, make_customer, make_account):  # noqa: ANN001, ANN202
    customer = make_customer(id_number=ID_NUMBER)
    account = make_account(customer)
    account.id_digest = services.id_digest(app.config["SECRET_KEY"], ID_NUMBER)
    db.commit()
    return customer


def test_account_number_and_id_number_share_one_key(app, db, make_customer, make_account):
    customer = _customer_with_id(app, db, make_customer, make_account)
    secret = app.config["SECRET_KEY"]
    keys = {services.throttle_key(db, secret, typed) for typed in
            (customer.account_no, f" {customer.account_no} ", ID_NUMBER, ID_NUMBER.lower(), "3205 0219 9001 0112 34")}
    assert len(keys) == 1
    unknown = services.throttle_key(db, secret, "T999999999")
    assert unknown not in keys and unknown == services.throttle_key(db, secret, " t999999999 ")
    assert customer.account_no not in next(iter(keys)) and ID_NUMBER not in next(iter(keys))


@pytest.mark.parametrize("app", [LOCK], indirect=True)
def test_alternating_identifiers_get_no_fresh_budget(app, db, make_customer, make_account):
    customer = _customer_with_id(app, db, make_customer, make_account)
    typed = [customer.account_no, ID_NUMBER, customer.account_no, ID_NUMBER]
    codes = [sign_in(app.test_client(), t, "wrong guess 1", addr=f"10.1.0.{i}").status_code for i, t in enumerate(typed)]
    assert codes == [401, 401, 401, 401]
    assert sign_in(app.test_client(), ID_NUMBER, addr="10.1.1.1").status_code == 429
    assert sign_in(app.test_client(), customer.account_no, addr="10.1.1.2").status_code == 429


@pytest.mark.parametrize("app", [LOCK], indirect=True)
def test_unknown_identifiers_answer_like_known_ones(app, db, make_customer, make_account):
    _customer_with_id(app, db, make_customer, make_account)
    unknown = [sign_in(app.test_client(), "T888888888", "wrong guess", addr=f"10.2.0.{i}") for i in range(5)]
    assert [r.status_code for r in unknown] == [401, 401, 401, 401, 429]
