"""The admin's irreversible user actions ask first, in the page (console/web/confirm.py): deactivating a
user (named, with the work items they hold) and setting a new password (typed into the box itself).
No "deactivate" for the admin's own account: set_active would refuse it."""

from __future__ import annotations

from sqlalchemy import func, select

from console.models import AuditEvent, User
from tests.confirming import ask, token_of
from tests.conftest import PASSWORD
from tests.inboxes.conftest import build_item


def test_deactivating_names_the_user_and_their_claimed_items(app, client, db, login_as, make_user, make_customer):
    admin = login_as("admin")
    rep = make_user("phone_rep", display_name="周客服")
    item = build_item(db, make_customer())
    item.status, item.claimed_by_id = "claimed", rep.id
    db.commit()
    page = client.get("/admin/users").get_data(as_text=True)
    assert f'hx-get="/admin/users/{rep.id}/deactivate/confirm"' in page
    assert f"/admin/users/{admin.id}/deactivate/confirm" not in page  # never for oneself
    url = f"/admin/users/{rep.id}/deactivate"
    box = ask(client, url).get_data(as_text=True)
    assert f"周客服（{rep.username}）将不能再登录" in box and "其正在处理的 1 个工作事项仍归其所有" in box
    assert client.post(url).status_code == 303
    db.expire_all()
    assert db.get(User, rep.id).active
    token = token_of(box)
    assert client.post(url, data={"confirm_token": token}).status_code == 303
    assert "已处理" in client.post(url, data={"confirm_token": token}, follow_redirects=True).get_data(as_text=True)
    db.expire_all()
    assert not db.get(User, rep.id).active
    assert db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "user.deactivate")) == 1


def test_a_new_password_is_typed_into_the_box_and_set_once(app, client, db, login_as, make_user):
    login_as("admin")
    clerk = make_user("clerk")
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'type="password"' not in page.split("new-user", 1)[0]  # no password field before asking
    url = f"/admin/users/{clerk.id}/password"
    box = ask(client, url).get_data(as_text=True)
    assert 'name="password" type="password"' in box and "其所有会话立即结束" in box
    token = token_of(box)
    assert client.post(url, data={"password": "violet kettle meadow 42", "confirm_token": token}).status_code == 303
    client.post(url, data={"password": "another lantern 77 pass", "confirm_token": token})  # a repeat: refused
    login = app.test_client().post("/login", data={"username": clerk.username, "password": "violet kettle meadow 42"})
    assert login.status_code == 302
    assert app.test_client().post("/login", data={"username": clerk.username, "password": PASSWORD}).status_code == 401
    assert db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "user.password_reset")) == 1
