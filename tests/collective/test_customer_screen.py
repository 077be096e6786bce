"""The customer screen: collective billing only for key accounts; pins set by the account manager, audited."""

from __future__ import annotations

from sqlalchemy import select

from console.models import AuditEvent
from console.models.billing import CollectivePin
from tests.confirming import confirmed_post


def events(db, customer, action):  # noqa: ANN001, ANN201
    return db.scalars(select(AuditEvent).where(AuditEvent.entity_type == "customer",
                                               AuditEvent.entity_id == str(customer.id),
                                               AuditEvent.action == action)).all()


def test_screen_refuses_collective_billing_for_a_non_key_account(client, login_as, make_customer, db):
    login_as("clerk")
    customer = make_customer(key_account=False)
    response = client.post(f"/customers/{customer.id}/collective", data={"collective_billing": "1"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "Collective billing is only for key accounts." in response.get_data(as_text=True) or \
        "仅限大客户" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(type(customer), customer.id).collective_billing is False
    assert not events(db, customer, "customer.collective_billing")


def test_screen_sets_collective_billing_for_a_key_account_with_its_date_audited(client, login_as, make_customer,
                                                                                db):
    user = login_as("account_manager")
    customer = make_customer(key_account=True, account_manager_id=None)
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert 'id="collective"' in page
    response = client.post(f"/customers/{customer.id}/collective", data={"collective_billing": "1"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "customer-changed"
    db.expire_all()
    fresh = db.get(type(customer), customer.id)
    assert fresh.collective_billing is True and fresh.collective_billing_since is not None
    (event,) = events(db, customer, "customer.collective_billing")
    assert event.actor_id == user.id and event.after["collective_billing"] is True
    # off again: the date goes too
    confirmed_post(client, f"/customers/{customer.id}/collective", {"collective_billing": "0"})
    db.expire_all()
    assert db.get(type(customer), customer.id).collective_billing_since is None


def test_pins_set_and_removed_by_the_account_manager_are_audited(client, login_as, make_customer, db):
    user = login_as("account_manager")
    customer = make_customer(points=3, key_account=True, collective_billing=True)
    a, b, _c = sorted(p.point_no for p in customer.service_points)
    response = client.post(f"/customers/{customer.id}/collective/pins",
                           data={"point_a": b, "point_b": a, "kind": "apart"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and a in response.get_data(as_text=True)
    (pin,) = db.scalars(select(CollectivePin).where(CollectivePin.customer_id == customer.id)).all()
    assert pin.kind == "apart" and pin.point_a_id < pin.point_b_id and pin.created_by_id == user.id
    # the same pair pinned together replaces the pin
    client.post(f"/customers/{customer.id}/collective/pins", data={"point_a": a, "point_b": b, "kind": "together"})
    db.expire_all()
    (pin,) = db.scalars(select(CollectivePin).where(CollectivePin.customer_id == customer.id)).all()
    assert pin.kind == "together"
    set_events = events(db, customer, "customer.collective_pin")
    assert [e.after for e in set_events] == [{"points": [a, b], "kind": "apart"}, {"points": [a, b], "kind": "together"}]
    assert all(e.actor_id == user.id for e in set_events)
    confirmed_post(client, f"/customers/{customer.id}/collective/pins/{pin.id}/delete")
    assert db.scalars(select(CollectivePin).where(CollectivePin.customer_id == customer.id)).all() == []
    (removed,) = events(db, customer, "customer.collective_pin_removed")
    assert removed.before == {"points": [a, b], "kind": "together"}


def test_bad_pins_are_refused_and_clerks_cannot_pin(client, login_as, make_customer, make_user, db):
    login_as("account_manager")
    customer = make_customer(points=2, key_account=True, collective_billing=True)
    other = make_customer(points=1, key_account=True)
    a = customer.service_points[0].point_no
    for data in ({"point_a": a, "point_b": a, "kind": "apart"},
                 {"point_a": a, "point_b": other.service_points[0].point_no, "kind": "apart"},
                 {"point_a": a, "point_b": customer.service_points[1].point_no, "kind": "sideways"}):
        response = client.post(f"/customers/{customer.id}/collective/pins", data=data, headers={"HX-Request": "true"})
        assert response.status_code == 422
    assert db.scalars(select(CollectivePin)).all() == []
    client.post("/logout")
    login_as("clerk")
    response = client.post(f"/customers/{customer.id}/collective/pins",
                           data={"point_a": a, "point_b": customer.service_points[1].point_no, "kind": "apart"})
    assert response.status_code == 403
