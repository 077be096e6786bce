"""Headless Chromium against a live server: each role's inbox in both languages (screenshots under
test-artifacts/), and a work item taken through an address correction to a new, queued delivery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.models import Customer, Delivery, WorkItem
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff
from tests.conftest import PASSWORD
from tests.inboxes.conftest import build_item

pytestmark = pytest.mark.browser


def _seed(app) -> dict:  # noqa: ANN001
    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        users = {role: create_user(session, f"b_{role}", PASSWORD, [role], Actor.system(), display_name=f"{role}")
                 for role in ("phone_rep", "account_manager", "clerk", "admin")}
        ordinary = Customer(account_no="E2E000001", name="王小明", customer_type="residential", phone="13912345678",
                            email="wang.wrong@customers.test", wants_ebill=True, channel_email=True,
                            channel_portal=True, channel_paper=False)
        key = Customer(account_no="E2E000002", name="苏州精密机械有限公司", customer_type="industrial",
                       key_account=True, account_manager_id=users["account_manager"].id, phone="051265000000",
                       email="finance@precision.test", wants_ebill=True, channel_email=True, channel_paper=True,
                       postal_address="苏州市工业园区星湖街1号", collective_billing=True)
        nowhere = Customer(account_no="E2E000003", name="李无址", customer_type="residential", email=None,
                           channel_email=True, channel_paper=False, channel_portal=False)
        session.add_all([ordinary, key, nowhere])
        session.commit()
        rep_item = build_item(session, ordinary, age_minutes=90)
        key_item = build_item(session, key, age_minutes=30)
        build_item(session, nowhere, address="li@nowhere.test")
        return {"rep_item": rep_item.id, "key_item": key_item.id, "ordinary": ordinary.id}


def _sign_in(page, server, username: str) -> None:  # noqa: ANN001
    sign_in_staff(page, server, username)


EXPECT = {
    "phone_rep": ("/inbox/rep/", "table.queue"),
    "account_manager": ("/inbox/accounts/", "table.accounts"),
    "clerk": ("/inbox/clerk/", "table.unusable"),
    "admin": ("/inbox/admin/", "section.cycle"),
}


def test_each_role_signs_in_to_its_inbox_in_both_languages(live_server, browser):
    seeded = _seed(live_server.app)
    for role, (path, selector) in EXPECT.items():
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(20_000)
        _sign_in(page, live_server, f"b_{role}")
        page.wait_for_url(f"{live_server.url}{path}")
        page.wait_for_selector(selector)
        assert "中文" in page.content()
        screenshot(page, f"inbox-{role}-zh")
        page.click("button[name=lang][value=en]")
        page.wait_for_url(f"{live_server.url}{path}")
        page.wait_for_selector(selector)
        screenshot(page, f"inbox-{role}-en")
        html = page.content()
        if role == "phone_rep":
            assert f'data-item="{seeded["rep_item"]}"' in html and f'data-item="{seeded["key_item"]}"' not in html
            assert "Work items" in html
        if role == "account_manager":
            assert f'data-item="{seeded["key_item"]}"' in html and f'data-item="{seeded["rep_item"]}"' not in html
        if role == "clerk":
            assert "E2E000003" in html
        page.click("button[name=lang][value=zh]")  # leave the user's language as it was
        context.close()


def test_address_correction_from_the_inbox_to_a_new_delivery(live_server, browser_page):
    from redis import Redis

    from tests.conftest import TEST_REDIS_URL

    Redis.from_url(TEST_REDIS_URL).flushdb()
    seeded = _seed(live_server.app)
    page = browser_page
    _sign_in(page, live_server, "b_phone_rep")
    page.wait_for_url(f"{live_server.url}/inbox/rep/")
    page.click(f'tr[data-item="{seeded["rep_item"]}"] td a >> nth=0')
    page.wait_for_selector("#item")
    assert "Recipient address rejected" in page.content()
    page.click("button[name=claim]")
    page.wait_for_selector("#item .badge.status-claimed")
    page.check("input[name=outcome][value=reached]")
    page.fill("textarea[name=note]", "客户提供了新邮箱")
    page.click("form.call button[type=submit]")
    page.wait_for_selector("text=客户提供了新邮箱")
    page.fill("input[name=email]", "wang.right@customers.test")
    screenshot(page, "work-item-correction-zh")
    page.click("form.email button[type=submit]")  # asks in the page first
    page.click("#item [data-confirm-ok]")
    page.wait_for_selector("#item .badge.status-closed")
    screenshot(page, "work-item-corrected-zh")
    assert "wang.right@customers.test" in page.content()

    factory = live_server.app.extensions["billpost.session_factory"]
    with factory() as session:
        item = session.get(WorkItem, seeded["rep_item"])
        assert item.status == "closed" and item.close_reason == "address_corrected"
        new = session.scalar(select(Delivery).where(Delivery.bill_id == item.bill_id, Delivery.status == "queued"))
        assert new is not None and new.address == "wang.right@customers.test"
        assert session.get(Customer, seeded["ordinary"]).email == "wang.right@customers.test"
    from console.queues import get_queue

    jobs = get_queue("delivery", live_server.app).get_jobs()
    assert any(new.id in job.args[0] for job in jobs), "the resend was not handed to the delivery queue"
    Redis.from_url(TEST_REDIS_URL).flushdb()


def test_live_inbox_shows_a_new_item_without_reloading(live_server, browser_page):
    seeded = _seed(live_server.app)
    page = browser_page
    _sign_in(page, live_server, "b_phone_rep")
    page.wait_for_url(f"{live_server.url}/inbox/rep/")
    page.wait_for_selector(f'tr[data-item="{seeded["rep_item"]}"]')
    factory = live_server.app.extensions["billpost.session_factory"]
    with factory() as session:
        customer = session.get(Customer, seeded["ordinary"])
        fresh = build_item(session, customer, age_minutes=0)
    page.wait_for_selector(f'tr[data-item="{fresh.id}"]', timeout=15_000)  # the 5-second poll brings it


def test_dashboard_progress_moves_while_a_cycle_runs(live_server, browser_page):
    from datetime import date

    from console.models import Cycle
    from console.models import billing as billing_models

    chunk_model = getattr(billing_models, "CycleChunk", None)
    if chunk_model is None:
        pytest.skip("billing has no chunk table yet")
    factory = live_server.app.extensions["billpost.session_factory"]
    with factory() as session:
        create_user(session, "b_admin", PASSWORD, ["admin"], Actor.system())
        cycle = Cycle(period="2031-07", bill_date=date(2031, 7, 31), status="running")
        session.add(cycle)
        session.flush()
        for n in range(1, 5):
            session.add(chunk_model(cycle_id=cycle.id, chunk_no=n, first_customer_id=n, last_customer_id=n,
                                    customers=1, status="done" if n == 1 else "queued", job_id=f"b-2031-07-{n}"))
        session.commit()
        cycle_id = cycle.id
    page = browser_page
    _sign_in(page, live_server, "b_admin")
    page.wait_for_url(f"{live_server.url}/inbox/admin/")
    bar = f"#cycle-{cycle_id} .progress[role=progressbar]"
    assert page.get_attribute(bar, "aria-valuenow") == "25"
    with factory() as session:
        for chunk in session.scalars(select(chunk_model).where(chunk_model.cycle_id == cycle_id)):
            if chunk.chunk_no <= 3:
                chunk.status = "done"
        session.commit()
    page.wait_for_selector(f'{bar}[aria-valuenow="75"]', timeout=15_000)
    screenshot(page, "cycle-dashboard-running-zh")
    with factory() as session:
        for chunk in session.scalars(select(chunk_model).where(chunk_model.cycle_id == cycle_id)):
            chunk.status = "done"
        session.get(Cycle, cycle_id).status = "generated"
        session.commit()
    page.wait_for_selector(f'{bar}[aria-valuenow="100"]', timeout=15_000)
    assert page.get_attribute(f"#cycle-{cycle_id}", "hx-trigger") is None  # done: the polling stops
