"""The issue-14 walks in headless Chromium against a live server (screenshots under test-artifacts/):
two bills to one dead address → one item → one correction → both resent and confirmed by real DSNs
from the loopback Postfix; "wrong number" → the phone updated; a returned letter → the postal address
corrected → reprinted in the next batch → dispatched; the inbox search by a fragment in the middle of
a name; the customer page as the cockpit, its contact details edited in place."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.db import utcnow
from console.models import Customer, Delivery, WorkItem
from console.models.delivery import WorkItemDelivery
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff, wait_until
from tests.conftest import PASSWORD
from tests.delivery.conftest import (  # noqa: F401 - the delivery domain's loop and its fixtures
    add_bill,
    committed,
    loopback_postfix,
    mail_loop,
    new_customer,
    smtp_sink,
)
from tests.inboxes.conftest import build_item

pytestmark = pytest.mark.browser


def _wait(check, seconds: float = 30.0):  # noqa: ANN001, ANN202
    return wait_until(check, seconds)


def _sign_in(page, server, username: str) -> None:  # noqa: ANN001
    sign_in_staff(page, server, username)
    page.wait_for_load_state()


def _factory(app):  # noqa: ANN001, ANN202
    return app.extensions["billpost.session_factory"]


@pytest.mark.postfix
def test_two_bills_to_one_dead_address_one_correction_both_resent_and_confirmed(
    mail_loop, live_server, browser_page  # noqa: F811
):
    from redis import Redis
    from rq import SimpleWorker

    from console.delivery.publish import publish_cycle
    from console.delivery.sender import send_batch
    from console.queues import get_queue
    from tests.conftest import TEST_REDIS_URL

    app = mail_loop
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    app.extensions["billpost.redis"] = redis
    factory = _factory(app)
    with app.app_context(), factory() as session:
        create_user(session, "case_rep", PASSWORD, ["phone_rep"], Actor.system(), display_name="王客服")
        customer = new_customer(session, email="fail-case@customers.test")
        first, second = add_bill(session, customer), add_bill(session, customer)
        publish_cycle(session, first.cycle_id, Actor.cli(), utcnow())
        session.commit()
        failed = session.scalars(select(Delivery.id).where(Delivery.customer_id == customer.id)).all()
        assert len(failed) == 2
        assert send_batch(session, list(failed), app.config)["sent"] == 2
        customer_id, bills = customer.id, {first.id: first.bill_no, second.id: second.bill_no}

    def one_case():  # noqa: ANN202
        with factory() as s:
            items = s.scalars(select(WorkItem).where(WorkItem.customer_id == customer_id)).all()
            links = set(s.scalars(select(WorkItemDelivery.delivery_id)))
            return items if links >= set(failed) else None

    [item] = _wait(one_case)  # both failures on one item

    page = browser_page
    _sign_in(page, live_server, "case_rep")
    page.goto(f"{live_server.url}/work-items/{item.id}")
    case = page.inner_text("#case")
    assert all(number in case for number in bills.values())
    page.fill("form.email input[name=email]", "alive-case@customers.test")
    screenshot(page, "case-two-bills-correction-zh")
    page.click("form.email button[type=submit]")  # asks in the page first (console/web/confirm.py)
    page.click("#item [data-confirm-ok]")
    page.wait_for_selector("#item .badge.status-closed")

    with factory() as s:
        resent = s.scalars(select(Delivery).where(Delivery.customer_id == customer_id,
                                                  Delivery.address == "alive-case@customers.test")).all()
        assert {d.bill_id for d in resent} == set(bills)  # one correction, both bills resent
    queue = get_queue("delivery", app)
    assert queue.count >= 1
    SimpleWorker([queue], connection=redis, serializer=queue.serializer).work(burst=True)

    def all_confirmed():  # noqa: ANN202
        with factory() as s:
            rows = [s.get(Delivery, d.id) for d in resent]
            return rows if all(r.status == "confirmed" for r in rows) else None

    assert {r.confirmed_by for r in _wait(all_confirmed)} == {"delivered"}  # the real DSN from Postfix
    page.goto(f"{live_server.url}/customers/{customer_id}")
    for d in resent:
        assert page.get_attribute(f'#bills [data-delivery="{d.id}"]', "data-status") == "confirmed"
    assert page.locator('#items [data-item]').count() == 0
    screenshot(page, "case-customer-page-confirmed-zh")
    redis.flushdb()


def test_wrong_number_updates_the_phone(live_server, browser_page):
    factory = _factory(live_server.app)
    with factory() as session:
        create_user(session, "wn_rep", PASSWORD, ["phone_rep"], Actor.system(), display_name="李客服")
        customer = new_customer(session, phone="13900000000")
        session.commit()
        item = build_item(session, customer)
        item_id, customer_id = item.id, customer.id
    page = browser_page
    _sign_in(page, live_server, "wn_rep")
    page.goto(f"{live_server.url}/work-items/{item_id}")
    page.check("input[name=outcome][value=wrong_number]")
    page.fill("form.call input[name=phone]", "0512-66668888")
    page.click("form.call button[type=submit]")
    page.wait_for_selector("#item .contacts >> text=0512-66668888")
    with factory() as session:
        assert session.get(Customer, customer_id).phone == "0512-66668888"
    page.goto(f"{live_server.url}/customers/{customer_id}")
    assert page.inner_text("#contact [data-field=phone]") == "0512-66668888"
    assert "号码" in page.inner_text("#history")  # the call outcome, rendered from its code
    screenshot(page, "wrong-number-customer-page-zh")


def test_returned_letter_corrected_reprinted_in_the_next_batch_and_dispatched(live_server, browser_page):
    from console.delivery.publish import publish_cycle
    from console.models.paper import PrintBatch, PrintItem
    from console.paper import batches, dispatch

    factory = _factory(live_server.app)
    with factory() as session:
        manager = create_user(session, "rl_am", PASSWORD, ["account_manager"], Actor.system(), display_name="周经理")
        customer = new_customer(session, key_account=True, account_manager_id=manager.id, customer_type="commercial",
                                channel_paper=True, channel_email=False, wants_ebill=False)
        bill = add_bill(session, customer)
        publish_cycle(session, bill.cycle_id, Actor.cli(), utcnow())
        session.commit()
        paper = session.scalar(select(Delivery).where(Delivery.customer_id == customer.id, Delivery.channel == "paper"))
        batches.gather_batches(session, "2026-11", Actor.cli())
        session.commit()
        printed = session.scalar(select(PrintItem).where(PrintItem.delivery_id == paper.id))
        session.get(PrintBatch, printed.batch_id).status = "printed"
        session.commit()
        dispatch.dispatch_by_post(session, printed.id, "EMS123", Actor.cli())
        work = dispatch.record_returned(session, printed.id, Actor.cli(), "查无此人")
        session.commit()
        item_id, customer_id, bill_id = work.id, customer.id, bill.id

    page = browser_page
    _sign_in(page, live_server, "rl_am")
    page.goto(f"{live_server.url}/work-items/{item_id}")
    page.fill("form.postal input[name=postal_address]", "苏州市姑苏区人民路100号")
    page.fill("form.postal input[name=postal_code]", "215001")
    page.click("form.postal button[type=submit]")
    page.click("#item [data-confirm-ok]")
    page.wait_for_selector("#item .badge.status-closed")
    screenshot(page, "returned-letter-corrected-zh")

    with factory() as session:
        assert session.get(Customer, customer_id).postal_code == "215001"
        reprint = session.scalar(select(Delivery).where(Delivery.bill_id == bill_id, Delivery.channel == "paper",
                                                        Delivery.status == "queued"))
        assert reprint is not None and "人民路100号" in reprint.address
        reprinted_to = reprint.address
        batches.gather_batches(session, "2026-11", Actor.cli())  # the next batch
        session.commit()
        again = session.scalar(select(PrintItem).where(PrintItem.delivery_id == reprint.id))
        assert again is not None and again.batch_id != printed.batch_id
        session.get(PrintBatch, again.batch_id).status = "printed"
        session.commit()
        dispatch.dispatch_by_post(session, again.id, "EMS456", Actor.cli())
        session.commit()
        assert session.get(PrintItem, again.id).status == "dispatched"
    page.goto(f"{live_server.url}/customers/{customer_id}")
    assert "人民路100号" in page.inner_text("#contact [data-field=postal]")
    returned = page.inner_text("#history")
    assert f"· {reprinted_to}" in returned and f"/billing/bills/{bill_id}" in page.inner_html("#history")


def test_inbox_search_by_a_fragment_in_the_middle_of_a_name(live_server, browser_page):
    factory = _factory(live_server.app)
    with factory() as session:
        create_user(session, "sr_rep", PASSWORD, ["phone_rep"], Actor.system())
        wanted = new_customer(session, name="苏州金桥电子有限公司")
        other = new_customer(session, name="无锡华光机械厂")
        session.commit()
        hit, miss = build_item(session, wanted).id, build_item(session, other).id
        wanted_id = wanted.id
    page = browser_page
    _sign_in(page, live_server, "sr_rep")
    page.goto(f"{live_server.url}/inbox/rep/")
    page.wait_for_selector(f'tr[data-item="{miss}"]')
    page.fill("form.filters input[name=q]", "金桥")
    page.press("form.filters input[name=q]", "Enter")
    page.wait_for_selector(f'tr[data-item="{miss}"]', state="detached")
    assert page.locator(f'tr[data-item="{hit}"]').count() == 1
    assert "q=" in page.url
    screenshot(page, "inbox-search-fragment-zh")
    page.goto(f"{live_server.url}/customers/?q=金桥电子")  # the customer search too, when no name starts with it
    page.click(f'#results a[href="/customers/{wanted_id}"]')
    page.wait_for_url(f"**/customers/{wanted_id}")


def test_customer_page_cockpit_and_contact_details_edited_in_place(live_server, browser_page, browser):
    factory = _factory(live_server.app)
    with factory() as session:
        create_user(session, "ck_clerk", PASSWORD, ["clerk"], Actor.system())
        create_user(session, "ck_admin", PASSWORD, ["admin"], Actor.system())
        customer = new_customer(session, phone="13911110000")
        session.commit()
        item = build_item(session, customer)
        customer_id, item_id, bill_id = customer.id, item.id, item.bill_id

    clerk_context = browser.new_context(locale="zh-CN")
    clerk = clerk_context.new_page()
    clerk.set_default_timeout(20_000)
    _sign_in(clerk, live_server, "ck_clerk")
    clerk.goto(f"{live_server.url}/customers/{customer_id}")
    assert clerk.locator(f'#bills tr[data-bill="{bill_id}"] a').count() == 1
    assert clerk.get_attribute(f'#bills tr[data-bill="{bill_id}"] [data-delivery]', "data-status") == "failed"
    assert clerk.locator(f'#items [data-item="{item_id}"]').count() == 1
    assert clerk.locator("#contact a.edit-contact").count() == 0  # contact details: admins and account managers
    screenshot(clerk, "customer-cockpit-clerk-zh")
    clerk.click(f'#bills tr[data-bill="{bill_id}"] a')
    clerk.wait_for_url(f"**/billing/bills/{bill_id}")
    clerk_context.close()

    page = browser_page
    _sign_in(page, live_server, "ck_admin")
    page.goto(f"{live_server.url}/customers/{customer_id}")
    page.click("#contact a.edit-contact")
    page.wait_for_selector("form.contact")
    page.fill("form.contact input[name=phone]", "0512-65001234")
    page.fill("form.contact input[name=postal_code]", "2150")
    page.click("form.contact button[type=submit]")
    page.wait_for_selector('[data-error="postal_code"]')  # 422: the form again, in place, in Chinese
    assert "邮政编码为 6 位数字。" in page.inner_text("#contact")
    page.fill("form.contact input[name=postal_code]", "215021")
    page.click("form.contact button[type=submit]")
    page.wait_for_selector("#contact [data-field=phone] >> text=0512-65001234")
    page.wait_for_selector("#history >> text=联系方式已修改")  # the history refreshed beside it
    screenshot(page, "customer-contact-edited-zh")
    with factory() as session:
        saved = session.get(Customer, customer_id)
        assert saved.phone == "0512-65001234" and saved.postal_code == "215021"
    page.click(f'#items [data-item="{item_id}"] a')
    page.wait_for_url(f"**/work-items/{item_id}")


def test_a_late_delivered_closes_the_case_or_tells_the_claimer(live_server, browser_page):
    from console.delivery.policy import apply_report
    from console.models import DeliveryAttempt

    factory = _factory(live_server.app)
    with factory() as session:
        create_user(session, "ld_rep", PASSWORD, ["phone_rep"], Actor.system())
        quiet, busy = new_customer(session), new_customer(session)
        session.commit()
        unclaimed, claimed = build_item(session, quiet), build_item(session, busy)
        ids = {"unclaimed": unclaimed.id, "claimed": claimed.id, "quiet": quiet.id}
        deliveries = {unclaimed.id: unclaimed.delivery_id, claimed.id: claimed.delivery_id}

    page = browser_page
    _sign_in(page, live_server, "ld_rep")
    page.goto(f"{live_server.url}/work-items/{ids['claimed']}")
    page.click("button[name=claim]")
    page.wait_for_selector("#item .badge.status-claimed")

    with factory() as session:  # the late reports: the bills arrived after all
        for delivery_id in deliveries.values():
            attempt = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                                      .order_by(DeliveryAttempt.attempt_no.desc())).first()
            apply_report(session, attempt, "delivered", "2.0.0", "smtp; 250 2.0.0 Ok", utcnow())
        session.commit()
        assert session.get(WorkItem, ids["unclaimed"]).status == "closed"
        assert session.get(WorkItem, ids["claimed"]).status == "claimed"

    page.reload()
    page.wait_for_selector('#item [data-notice="confirmed_later"]')  # told on the item
    page.goto(f"{live_server.url}/inbox/rep/?status=mine")
    page.wait_for_selector(f'tr[data-item="{ids["claimed"]}"] [data-notice="confirmed_later"]')  # and in the inbox
    screenshot(page, "late-delivered-notice-zh")
    page.goto(f"{live_server.url}/customers/{ids['quiet']}")
    assert page.locator("#items [data-item]").count() == 0
    delivery = deliveries[ids["unclaimed"]]
    assert page.get_attribute(f'#bills [data-delivery="{delivery}"]', "data-status") == "confirmed"
    assert "已确认" in page.inner_text("#history")  # the contact record of the confirmation


@pytest.mark.postfix
def test_correcting_back_to_an_earlier_address_is_resent_and_tracked(
    mail_loop, live_server, browser_page  # noqa: F811
):
    """The silent failure of issue 14: the bill's old failed delivery to that address is queued again in
    a fresh round (attempt_base), really sent, and its new failure opens a new case."""
    from redis import Redis
    from rq import SimpleWorker

    from console.delivery.publish import publish_cycle
    from console.delivery.sender import send_batch
    from console.models import DeliveryAttempt
    from console.queues import get_queue
    from tests.conftest import TEST_REDIS_URL

    app = mail_loop
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    app.extensions["billpost.redis"] = redis
    factory = _factory(app)
    with app.app_context(), factory() as session:
        create_user(session, "back_rep", PASSWORD, ["phone_rep"], Actor.system())
        customer = new_customer(session, email="fail-first@customers.test")
        bill = add_bill(session, customer)
        publish_cycle(session, bill.cycle_id, Actor.cli(), utcnow())
        session.commit()
        [first] = session.scalars(select(Delivery.id).where(Delivery.bill_id == bill.id)).all()
        assert send_batch(session, [first], app.config)["sent"] == 1
        customer_id = customer.id
    queue = get_queue("delivery", app)

    def open_case():  # noqa: ANN202
        with factory() as s:
            return s.scalar(select(WorkItem).where(WorkItem.customer_id == customer_id,
                                                   WorkItem.status.in_(("open", "claimed"))))

    def correct(item_id: int, address: str) -> None:
        page.goto(f"{live_server.url}/work-items/{item_id}")
        page.fill("form.email input[name=email]", address)
        page.click("form.email button[type=submit]")
        page.click("#item [data-confirm-ok]")
        page.wait_for_selector("#item .badge.status-closed")
        SimpleWorker([queue], connection=redis, serializer=queue.serializer).work(burst=True)

    page = browser_page
    _sign_in(page, live_server, "back_rep")
    one = _wait(open_case)
    correct(one.id, "fail-second@customers.test")
    two = _wait(lambda: (item := open_case()) and item.id != one.id and item)
    assert two.case_key == "email:fail-second@customers.test"
    correct(two.id, "fail-first@customers.test")  # back to the first address

    def failed_again():  # noqa: ANN202
        with factory() as s:
            d = s.get(Delivery, first)
            return d if d.status == "failed" and d.attempts_made > d.attempt_base else None

    again = _wait(failed_again)
    assert again.attempt_base == 1 and again.attempts_made == 2  # a fresh round, numbered on
    three = _wait(lambda: (item := open_case()) and item.id not in (one.id, two.id) and item)
    with factory() as s:
        assert first in set(s.scalars(select(WorkItemDelivery.delivery_id)
                                      .where(WorkItemDelivery.work_item_id == three.id)))
        numbers = s.scalars(select(DeliveryAttempt.attempt_no).where(DeliveryAttempt.delivery_id == first)).all()
        assert sorted(numbers) == [1, 2]
    page.goto(f"{live_server.url}/customers/{customer_id}")
    assert page.locator(f'#items [data-item="{three.id}"]').count() == 1
    redis.flushdb()
