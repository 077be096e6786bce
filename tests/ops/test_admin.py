"""The admin's own tools: users (create, deactivate, reset a password, roles), tariffs (list, view, load)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from io import BytesIO

import pytest
from sqlalchemy import select

from console.models import AuditEvent, User
from console.models.billing import LedgerEntry, Tariff
from tests.confirming import ask, confirmed_post
from tests.conftest import PASSWORD
from tests.delivery.conftest import add_bill, new_customer

NEW_PASSWORD = "violet kettle meadow 42"


def _actions(db, user_id) -> list[str]:  # noqa: ANN001
    return list(db.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "user",
                                                          AuditEvent.entity_id == str(user_id)).order_by(AuditEvent.id)))


def _signed_in_client(app, user):  # noqa: ANN001, ANN202
    other = app.test_client()
    assert other.post("/login", data={"username": user.username, "password": PASSWORD}).status_code == 302
    assert other.get("/account/password").status_code == 200
    return other


def test_deactivating_a_user_ends_their_sessions_and_is_audited(app, client, db, login_as, make_user):
    login_as("admin")
    rep = make_user("phone_rep")
    theirs = _signed_in_client(app, rep)
    response = confirmed_post(client, f"/admin/users/{rep.id}/deactivate")
    assert response.status_code == 303
    assert theirs.get("/account/password").status_code == 302  # signed out
    assert app.test_client().post("/login", data={"username": rep.username, "password": PASSWORD}).status_code == 401
    client.post(f"/admin/users/{rep.id}/activate")
    db.expire_all()
    assert db.get(User, rep.id).active
    assert _actions(db, rep.id) == ["user.create", "user.deactivate", "user.activate"]


def test_an_admin_cannot_deactivate_themselves_or_drop_their_own_admin_role(client, db, login_as):
    admin = login_as("admin")
    refused = ask(client, f"/admin/users/{admin.id}/deactivate")  # not even offered (tests/test_confirm.py)
    assert refused.status_code == 422 and "不能停用自己的账户" in refused.get_data(as_text=True)
    client.post(f"/admin/users/{admin.id}/roles", data={"roles": ["clerk"]})
    db.expire_all()
    assert db.get(User, admin.id).active and db.get(User, admin.id).has_role("admin")


def test_resetting_a_password_ends_the_sessions_and_the_new_one_works(app, client, db, login_as, make_user):
    login_as("admin")
    clerk = make_user("clerk")
    theirs = _signed_in_client(app, clerk)
    weak = confirmed_post(client, f"/admin/users/{clerk.id}/password", {"password": "123"}, follow_redirects=True)
    assert theirs.get("/account/password").status_code == 200  # a refused password changes nothing
    assert "error" in weak.get_data(as_text=True)
    confirmed_post(client, f"/admin/users/{clerk.id}/password", {"password": NEW_PASSWORD})
    assert theirs.get("/account/password").status_code == 302
    fresh = app.test_client()
    assert fresh.post("/login", data={"username": clerk.username, "password": NEW_PASSWORD}).status_code == 302
    assert "user.password_reset" in _actions(db, clerk.id)


def test_creating_a_user_and_changing_roles_are_audited(client, db, login_as):
    login_as("admin")
    client.post("/admin/users", data={"username": "zhao.lei", "display_name": "赵磊", "password": NEW_PASSWORD,
                                      "roles": ["clerk"]})
    user = db.scalar(select(User).where(User.username == "zhao.lei"))
    client.post(f"/admin/users/{user.id}/roles", data={"roles": ["clerk", "phone_rep"]})
    db.expire_all()
    assert db.get(User, user.id).roles == {"clerk", "phone_rep"}
    assert _actions(db, user.id) == ["user.create", "user.roles"]


def test_user_screens_are_the_admins_only(client, login_as, make_user):
    login_as("clerk")
    other = make_user("phone_rep")
    assert client.post(f"/admin/users/{other.id}/deactivate").status_code == 403
    assert ask(client, f"/admin/users/{other.id}/deactivate").status_code == 403
    assert client.get("/admin/tariffs").status_code == 403


# ---- tariffs ------------------------------------------------------------------------------------


def _file(**fields) -> tuple[BytesIO, str]:  # noqa: ANN003
    item = {"code": "RES", "name": "居民阶梯电价 2027", "kind": "tiered",
            "rates": {"tiers": [["230", "0.5383"], ["170", "0.5883"], [None, "0.8383"]]}} | fields
    return BytesIO(json.dumps(item, ensure_ascii=False).encode()), "tariff.json"


def _billed_read(db, on: date) -> None:  # noqa: ANN001
    """An electricity entry on a bill, read on `on`, for a point with tariff RES."""
    customer = new_customer(db)
    bill = add_bill(db, customer)
    db.add(LedgerEntry(customer_id=customer.id, service_point_id=customer.service_points[0].id, kind="electricity",
                       amount=Decimal("10.00"), entry_date=on, natural_key=f"elec:test:{on}", bill_id=bill.id,
                       details={"tariff": "RES", "tariff_from": "2020-01-01"}))
    db.commit()


def test_a_new_version_is_loaded_from_a_file_validated_and_audited(client, db, login_as):
    login_as("admin")
    response = client.post("/admin/tariffs", data={"file": _file(), "effective_from": "2027-01-01"},
                           content_type="multipart/form-data")
    assert response.status_code == 303
    tariff = db.scalar(select(Tariff).where(Tariff.code == "RES", Tariff.effective_from == date(2027, 1, 1)))
    assert tariff.rates["tiers"][0] == ["230", "0.5383"] and not tariff.sample
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "0.8383" in page and "2027-01-01" in page
    assert db.scalar(select(AuditEvent.action).where(AuditEvent.entity_type == "tariff")) == "tariff.load"
    assert "RES" in client.get("/admin/tariffs").get_data(as_text=True)


@pytest.mark.parametrize(("fields", "words"), [
    ({"kind": "flat"}, "未知类型 flat"),
    ({"rates": {"tiers": [["230", "0.5"], ["170", "0.6"]]}}, "最后一档没有上限"),
    ({"rates": {"tiers": [[None, "-1"]]}}, "不是金额"),
    ({"kind": "time_of_use", "rates": {"peak": "1.0", "flat": "0.6"}}, "电价与类型不符"),
    ({"code": ""}, "电价代码缺失"),
])
def test_a_bad_file_is_refused_with_its_reason(client, db, login_as, fields, words):
    login_as("admin")
    before = db.scalar(select(Tariff.id).order_by(Tariff.id.desc()))
    response = client.post("/admin/tariffs", data={"file": _file(**fields), "effective_from": "2027-01-01"},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert words in response.get_data(as_text=True)
    assert db.scalar(select(Tariff.id).order_by(Tariff.id.desc())) == before


def test_a_version_used_by_bills_is_never_changed(client, db, login_as):
    login_as("admin")
    _billed_read(db, date(2026, 11, 12))
    earlier = client.post("/admin/tariffs", data={"file": _file(), "effective_from": "2026-11-12"},
                          content_type="multipart/form-data")
    assert earlier.status_code == 422 and "2026-11-12" in earlier.get_data(as_text=True)
    first = client.post("/admin/tariffs", data={"file": _file(), "effective_from": "2026-11-13"},
                        content_type="multipart/form-data")
    assert first.status_code == 303
    again = client.post("/admin/tariffs", data={"file": _file(name="另一个"), "effective_from": "2026-11-13"},
                        content_type="multipart/form-data")
    assert again.status_code == 422 and "版本不可修改" in again.get_data(as_text=True)


def test_the_admin_page_links_users_tariffs_and_the_queue_status(client, login_as):
    login_as("admin")
    page = client.get("/admin/").get_data(as_text=True)
    assert "/admin/users" in page and "/admin/tariffs" in page and "/inbox/admin/" in page
