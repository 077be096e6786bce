"""An expired CSRF token or session on a plain form: the page comes back with the values (passwords
asked for again, never echoed) and a message in the user's language; htmx gets a notice instead."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD

FORM = {"username": "new_clerk", "display_name": "新来的 <b>文员</b>", "roles": ["clerk", "phone_rep"],
        "password": "a secret never echoed 9", "csrf_token": "stale-token"}


@pytest.mark.parametrize("app", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_a_plain_form_with_an_expired_token_comes_back_with_its_values(app, client, make_user):
    user = make_user("admin")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": user.username, "password": PASSWORD, "csrf_token": token}).status_code == 302
    response = client.post("/admin/users", data=FORM)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "表单打开时间过长" in html
    assert '<form method="post" action="/admin/users">' in html
    assert '<input type="hidden" name="username" value="new_clerk">' in html
    assert 'value="新来的 &lt;b&gt;文员&lt;/b&gt;"' in html  # escaped, never markup
    assert html.count('name="roles"') == 2
    assert "a secret never echoed" not in html and '<input type="password" name="password"' in html
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert fresh != "stale-token"
    # sending the page again (with the password typed again) does what the first post meant to
    again = client.post("/admin/users", data=FORM | {"csrf_token": fresh})
    assert again.status_code == 303


@pytest.mark.parametrize("app", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_htmx_with_an_expired_token_gets_a_notice_retargeted(app, client, make_user):
    user = make_user("admin")
    client.post("/login", data={"username": user.username, "password": PASSWORD,
                                "csrf_token": re.search(r'value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)})
    response = client.post("/admin/users?lang=en", data=FORM, headers={"HX-Request": "true", "X-CSRFToken": "old"})
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#session-notice" and response.headers["X-Billpost-Resubmit"] == "1"
    assert "This page was open too long" in response.get_data(as_text=True)
    answer = client.get("/session/token").get_json()
    assert answer["signed_in"] is True and answer["token"]


def test_a_plain_form_sent_after_the_session_ended_keeps_its_values(client):
    response = client.post("/admin/users", data=FORM)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "登录已过期" in html and 'value="new_clerk"' in html and 'target="_blank"' in html
    htmx = client.post("/admin/users", data=FORM, headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Retarget"] == "#session-notice"
    assert "HX-Redirect" not in htmx.headers  # never navigates away from what was typed
    assert client.get("/session/token").get_json()["signed_in"] is False
