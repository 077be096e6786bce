"""A customer choosing a common or breached password is told why, in Chinese first."""

from __future__ import annotations

from tests.portal.conftest import CUSTOMER_PASSWORD, sign_in


def test_a_customer_sees_the_reason_in_chinese(app, make_customer, make_account):
    customer = make_customer()
    make_account(customer)
    client = app.test_client()
    assert sign_in(client, customer.account_no).status_code == 302
    response = client.post("/my/account/password", data={"current": CUSTOMER_PASSWORD, "new": "zaq12wsx"})
    assert response.status_code == 422
    assert "该密码出现在常用密码或已泄露密码列表中" in response.get_data(as_text=True)
