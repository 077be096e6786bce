"""Headless Chromium: a rep's inbox left open past the CSRF token's lifetime, and past the end of
the session, recovers without losing what the rep typed (console/web/expiry.py, static/session.js)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.models import ContactRecord, Customer
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff
from tests.conftest import PASSWORD
from tests.inboxes.conftest import build_item

pytestmark = pytest.mark.browser
TOKEN_SECONDS = 2
NOTE = "客户说下午再打来，邮箱是 wang.new@customers.test"


def _seed(app) -> int:  # noqa: ANN001
    with app.extensions["billpost.session_factory"]() as session:
        create_user(session, "x_rep", PASSWORD, ["phone_rep"], Actor.system())
        customer = Customer(account_no="EXP000001", name="王过期", customer_type="residential", phone="13912345678",
                            email="wang.old@customers.test", wants_ebill=True, channel_email=True,
                            channel_portal=True, channel_paper=False)
        session.add(customer)
        session.commit()
        return build_item(session, customer, age_minutes=90).id


def _sign_in(page, server) -> None:  # noqa: ANN001
    sign_in_staff(page, server, "x_rep")
    page.wait_for_url(f"{server.url}/inbox/rep/")


def _open_claimed_item(page, server, item_id: int) -> None:  # noqa: ANN001
    page.click(f'tr[data-item="{item_id}"] td a >> nth=0')
    page.wait_for_selector("#item")
    page.click("button[name=claim]")
    page.wait_for_selector("#item .badge.status-claimed")


def _notes(app, item_id: int) -> list[str]:  # noqa: ANN001
    with app.extensions["billpost.session_factory"]() as session:
        rows = session.scalars(select(ContactRecord)).all()
        return [r.note for r in rows if r.note and NOTE in r.note]


def test_an_expired_token_keeps_the_note_and_sends_it_again(live_server, browser_page):
    app = live_server.app
    item_id = _seed(app)
    page = browser_page
    _sign_in(page, live_server)
    _open_claimed_item(page, live_server, item_id)
    app.config["WTF_CSRF_TIME_LIMIT"] = TOKEN_SECONDS  # the page's token runs out while the rep types
    page.check("input[name=outcome][value=reached]")
    page.fill("textarea[name=note]", NOTE)
    time.sleep(TOKEN_SECONDS + 1.5)
    page.click("form.call button[type=submit]")
    notice = page.wait_for_selector("#session-notice [data-resubmit]")
    assert "页面打开时间过长" in page.inner_text("#session-notice")
    assert page.input_value("textarea[name=note]") == NOTE  # nothing lost
    assert not _notes(app, item_id)  # and nothing saved with the stale token
    screenshot(page, "expired-token-notice-zh")
    notice.click()
    page.wait_for_selector(f"text={NOTE[:8]}")
    assert page.inner_text("#session-notice").strip() == ""
    assert len(_notes(app, item_id)) == 1


def test_an_ended_session_keeps_the_note_until_the_rep_signs_in_again(live_server, browser):
    app = live_server.app
    item_id = _seed(app)
    context = browser.new_context(locale="zh-CN")
    inbox = context.new_page()
    inbox.set_default_timeout(20_000)
    _sign_in(inbox, live_server)
    _open_claimed_item(inbox, live_server, item_id)
    inbox.check("input[name=outcome][value=reached]")
    inbox.fill("textarea[name=note]", NOTE)

    # Meanwhile the session ends (signed out in another tab: the same as its expiry).
    other = context.new_page()
    other.goto(f"{live_server.url}/inbox/rep/")
    other.click("header .who button[type=submit]")
    other.wait_for_url(f"{live_server.url}/login")

    inbox.click("form.call button[type=submit]")
    notice = inbox.wait_for_selector("#session-notice [data-resubmit]")
    assert "登录已过期" in inbox.inner_text("#session-notice")
    notice.click()  # not signed in yet: told so, nothing sent
    inbox.wait_for_selector("#session-notice [data-still-signed-out]:not([hidden])")
    assert inbox.input_value("textarea[name=note]") == NOTE and not _notes(app, item_id)
    screenshot(inbox, "ended-session-notice-zh")

    _sign_in(other, live_server)  # sign in again in the other tab, as the notice says
    notice.click()
    inbox.wait_for_selector(f"text={NOTE[:8]}")
    assert len(_notes(app, item_id)) == 1
    context.close()
