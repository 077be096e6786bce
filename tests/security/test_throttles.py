"""Throttles count the canonical key: the staff user name as sign-in normalises it, and client
addresses from behind a configured number of trusted proxies (ProxyFix, TRUSTED_PROXIES)."""

from __future__ import annotations

import pytest

from console.staff.services import normalize_username
from tests.conftest import PASSWORD

SPELLINGS = ["rep_t", "  rep_t  ", "rep_t\t", "\u3000rep_t", "ｒｅｐ＿ｔ", "rep_t\n", " rep_t", "rep_t ", "\trep_t\t",
             "ｒｅｐ_t", "rep_ｔ", "  ｒｅｐ＿ｔ\t"]


def test_every_spelling_that_signs_in_as_one_user_has_one_normal_form():
    assert {normalize_username(s) for s in SPELLINGS} == {"rep_t"}


def test_each_spelling_signs_in_as_the_same_user(app, make_user):
    make_user("phone_rep", username="rep_t")
    for spelling in ("  rep_t  ", "ｒｅｐ＿ｔ"):
        response = app.test_client().post("/login", data={"username": spelling, "password": PASSWORD})
        assert response.status_code == 302, spelling


def test_staff_throttle_counts_every_spelling_against_one_budget(app, make_user):
    """The limit is 10 failed guesses a minute per user name; respelling the name gets no fresh budget."""
    make_user("phone_rep", username="rep_t")
    codes = []
    for i, spelling in enumerate(SPELLINGS):
        client = app.test_client()
        codes.append(client.post("/login", data={"username": spelling, "password": "wrong"},
                                 environ_base={"REMOTE_ADDR": f"10.9.0.{i}"}).status_code)
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    right = app.test_client().post("/login", data={"username": "rep_t", "password": PASSWORD},
                                   environ_base={"REMOTE_ADDR": "10.9.1.1"})
    assert right.status_code == 429  # the lock holds for the real spelling too (and lifts after the window)


def test_without_trusted_proxies_forwarded_for_is_ignored(client):
    from flask import request

    seen = []
    client.application.before_request(lambda: seen.append(request.remote_addr))
    client.get("/login", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert seen == ["10.0.0.1"]


@pytest.mark.parametrize("app", [{"TRUSTED_PROXIES": 1}], indirect=True)
def test_behind_one_trusted_proxy_each_client_has_its_own_address_budget(app, make_user):
    """Behind a proxy every request comes from the proxy's address; without ProxyFix one per-address
    throttle would lock every user out at once. With TRUSTED_PROXIES=1 the client address counts."""
    proxy = {"REMOTE_ADDR": "10.0.0.254"}
    for i in range(61):  # the per-address limit is 60 a minute: one office behind one address
        user = f"nobody{i}"
        forwarded = {"X-Forwarded-For": f"198.51.100.{i % 3}"}
        app.test_client().post("/login", data={"username": user, "password": "x"}, headers=forwarded, environ_base=proxy)
    make_user("clerk", username="clerk_behind_proxy")
    response = app.test_client().post(
        "/login", data={"username": "clerk_behind_proxy", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.99"}, environ_base=proxy,
    )
    assert response.status_code == 302
