"""Collective billing with its date (issue 15): the customer page takes the date from which collective
billing applies (default today), and a cycle not yet generated applies it by its bill date."""

from __future__ import annotations

from datetime import date

import pytest

from console.audit import Actor
from console.billing import cycles


@pytest.mark.parametrize(("since", "bill_types"), [("2026-11-01", ["collective"]), ("2026-12-05", ["regular"] * 2)])
def test_a_cycle_not_yet_generated_applies_the_date_given_on_the_customer_page(
    client, login_as, coll, db, since, bill_types
):
    account = coll.account(points=2, collective_billing=False, collective_billing_since=None)
    for point in coll.points(account):
        coll.month(point, "2026-11-10")
    cycles.open_cycle(db, "2026-11", Actor.system(), bill_date=date(2026, 11, 30))  # opened, not yet run
    db.commit()
    login_as("account_manager")
    page = client.get(f"/customers/{account.id}").get_data(as_text=True)
    assert 'name="since"' in page and f'value="{date.today().isoformat()}"' in page  # default today
    response = client.post(f"/customers/{account.id}/collective", data={"collective_billing": "1", "since": since},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    db.expire_all()
    assert db.get(type(account), account.id).collective_billing_since == date.fromisoformat(since)
    assert sorted(b.bill_type for b in coll.run()) == bill_types


def test_a_date_that_is_not_one_is_refused(client, login_as, coll, db):
    account = coll.account(points=2, collective_billing=False, collective_billing_since=None)
    login_as("account_manager")
    response = client.post(f"/customers/{account.id}/collective", data={"collective_billing": "1", "since": "30.11."},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    db.expire_all()
    assert db.get(type(account), account.id).collective_billing is False
