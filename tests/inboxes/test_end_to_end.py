"""The whole follow-up loop, in Chromium against a live server and the real Postfix on loopback:
a bill e-mail fails after acceptance → a work item (delivery's policy) → a phone rep corrects the
address in the browser → the resend goes through the delivery queue → Postfix delivers it → the
DSN comes back through mail-in → the new delivery is confirmed, and the item page shows it."""

from __future__ import annotations

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from console.audit import Actor
from console.db import utcnow
from console.models import Delivery, WorkItem
from tests.browser_fixtures import screenshot, wait_until
from tests.conftest import PASSWORD

# The delivery domain's loop (committed app + loopback Postfix + mail-in receiver) and its fixtures.
from tests.delivery.conftest import (  # noqa: F401
    add_bill,
    committed,
    loopback_postfix,
    mail_loop,
    new_customer,
    smtp_sink,
)

pytestmark = [pytest.mark.browser, pytest.mark.postfix]


def _wait(check, seconds: float = 20.0):  # noqa: ANN001, ANN202
    return wait_until(check, seconds)


def test_failed_email_to_confirmed_resend_through_the_browser(mail_loop, live_server, browser_page):  # noqa: F811
    from redis import Redis

    from console.delivery.publish import publish_cycle
    from console.delivery.sender import send_batch
    from console.queues import get_queue
    from console.staff.services import create_user
    from tests.conftest import TEST_REDIS_URL

    app = mail_loop
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    app.extensions["billpost.redis"] = redis
    factory = app.extensions["billpost.session_factory"]
    with app.app_context(), factory() as session:
        create_user(session, "e2e_rep", PASSWORD, ["phone_rep"], Actor.system(), display_name="王客服")
        customer = new_customer(session, email="fail-late@customers.test")
        bill = add_bill(session, customer)
        publish_cycle(session, bill.cycle_id, Actor.cli(), utcnow())
        session.commit()
        [failed_id] = session.scalars(select(Delivery.id).where(Delivery.bill_id == bill.id)).all()
        assert send_batch(session, [failed_id], app.config)["sent"] == 1
        bill_id, customer_id = bill.id, customer.id

    def item_opened():  # noqa: ANN202
        with factory() as s:
            return s.scalar(select(WorkItem).where(WorkItem.delivery_id == failed_id))

    item = _wait(item_opened)

    page = browser_page
    page.goto(f"{live_server.url}/login")
    page.fill("input[name=username]", "e2e_rep")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/inbox/rep/")
    page.click(f'tr[data-item="{item.id}"] td a >> nth=0')
    page.wait_for_selector("#item")
    assert "fail-late@customers.test" in page.content()
    page.fill("input[name=email]", "wang.fixed@customers.test")
    page.click("form.email button[type=submit]")  # asks in the page first
    page.click("#item [data-confirm-ok]")
    page.wait_for_selector("#item .badge.status-closed")

    with factory() as s:
        new = s.scalar(select(Delivery).where(Delivery.bill_id == bill_id, Delivery.id != failed_id))
        assert new.address == "wang.fixed@customers.test" and new.customer_id == customer_id
    queue = get_queue("delivery", app)
    assert queue.count >= 1, "the correction did not hand the resend to the delivery queue"
    SimpleWorker([queue], connection=redis, serializer=queue.serializer).work(burst=True)

    def confirmed():  # noqa: ANN202
        with factory() as s:
            d = s.get(Delivery, new.id)
            return d if d.status == "confirmed" else None

    done = _wait(confirmed)
    assert done.confirmed_by == "delivered"
    page.reload()
    page.wait_for_selector(f'tr[data-delivery="{new.id}"]')
    screenshot(page, "work-item-resend-confirmed-zh")
    row = page.inner_text(f'tr[data-delivery="{new.id}"]')
    assert "已确认" in row and "已送达" in row
    redis.flushdb()
