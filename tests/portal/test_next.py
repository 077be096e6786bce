"""The e-mail's link to one bill lands on that bill after sign-in; `next` is same-origin only."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.portal.conftest import CUSTOMER_PASSWORD


def test_the_bill_link_comes_back_to_that_bill_after_sign_in(app, make_customer, make_account, make_bill):
    customer = make_customer()
    make_account(customer)
    bill = make_bill(customer)
    client = app.test_client()
    asked = client.get(f"/my/bills/{bill.id}")
    assert asked.status_code == 302
    login_url = asked.headers["Location"]
    assert urlparse(login_url).path == "/my/login" and f"next=/my/bills/{bill.id}" in login_url.replace("%2F", "/")
    form = client.get(login_url).get_data(as_text=True)
    assert f'name="next" value="/my/bills/{bill.id}"' in form
    done = client.post("/my/login", data={"username": customer.account_no, "password": CUSTOMER_PASSWORD,
                                          "next": f"/my/bills/{bill.id}"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/my/bills/{bill.id}")


@pytest.mark.parametrize("target", [
    "https://evil.test/my/bills/1", "//evil.test/my/bills/1", "/my/..//evil.test", "/my/../admin/", "/\\evil.test", "/admin/",
    "/my/login?next=/my/bills/1", "/my/bills/1\r\nSet-Cookie: x=1",
])
def test_a_next_elsewhere_lands_on_the_bill_list(app, make_customer, make_account, target):
    customer = make_customer()
    make_account(customer)
    done = app.test_client().post("/my/login", data={"username": customer.account_no, "password": CUSTOMER_PASSWORD,
                                                     "next": target})
    assert done.status_code == 302 and urlparse(done.headers["Location"]).path == "/my/bills"
