"""Live while mail goes out, in Chromium (issue 16): an admin reviews and publishes a cycle; a real
`console worker` sends through the loopback Postfix, whose DSNs come back through mail-in; the cycle
page and the dashboard show the e-mails move from queued to confirmed, failed and escalated without
a reload, and stop polling once nothing is queued or awaiting confirmation."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.models import Cycle
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff, wait_until
from tests.conftest import PASSWORD, TEST_REDIS_URL
from tests.delivery.conftest import WorkerProcess, add_bill, new_customer

pytestmark = [pytest.mark.browser, pytest.mark.postfix]

DELIVERED, RELAYED, FAILING = 12, 3, 2


def _figure(page, cycle_id: int, name: str) -> str:  # noqa: ANN001
    return page.inner_text(f'#sending-{cycle_id} [data-figure="{name}"]').strip()


def test_the_sending_moves_on_the_cycle_page_and_the_dashboard_without_a_reload(
    mail_loop, live_server, browser, loopback_postfix
):
    from redis import Redis

    app = mail_loop
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    app.extensions["billpost.redis"] = redis
    factory = app.extensions["billpost.session_factory"]
    with app.app_context(), factory() as session:
        create_user(session, "live_admin", PASSWORD, ["admin"], Actor.system(), display_name="李管理员")
        addresses = ([f"ok{n}@customers.test" for n in range(DELIVERED)] + [f"r{n}@relay.test" for n in range(RELAYED)]
                     + [f"fail{n}@customers.test" for n in range(FAILING)])
        for address in addresses:
            add_bill(session, new_customer(session, email=address))
        session.commit()
        cycle = session.scalar(select(Cycle).where(Cycle.period == "2026-11"))
        cycle_id, total = cycle.id, len(addresses)

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    sign_in_staff(page, live_server, "live_admin")
    page.wait_for_url(f"{live_server.url}/inbox/admin/")

    # review, then publish confirmed in the page
    page.goto(f"{live_server.url}/billing/cycles/2026-11")
    page.click('a[href="/billing/cycles/2026-11/review"].button')
    page.wait_for_url(f"{live_server.url}/billing/cycles/2026-11/review")
    assert page.inner_text('[data-figure="emails"]') == str(total)
    page.click("form.publish button")  # asks in the page (console/web/confirm.py)
    assert "此操作无法撤销" in page.inner_text("#review-publish [data-confirm]")
    page.click("#review-publish [data-confirm-ok]")
    page.wait_for_url(f"{live_server.url}/billing/cycles/2026-11")
    assert _figure(page, cycle_id, "queued") == str(total) and _figure(page, cycle_id, "confirmed") == "0"
    assert page.get_attribute(f"#sending-{cycle_id}", "hx-trigger") == "every 3s"
    page.evaluate("window.__sameDocument = true")

    dashboard = context.new_page()
    dashboard.goto(f"{live_server.url}/inbox/admin/")
    dashboard.evaluate("window.__sameDocument = true")
    assert dashboard.get_attribute(f"#cycle-{cycle_id}", "hx-trigger") == "every 3s"

    worker = WorkerProcess(app, loopback_postfix.port)
    try:
        seen = set()

        def settled() -> bool:
            worker.check_alive()
            figures = {name: _figure(page, cycle_id, name) for name in ("queued", "awaiting", "confirmed", "failed")}
            seen.add(tuple(figures.values()))
            return figures == {"queued": "0", "awaiting": "0", "confirmed": str(DELIVERED + RELAYED),
                               "failed": str(FAILING)}

        wait_until(settled, 90)
        screenshot(page, "cycle-sending-done-zh")
    finally:
        worker.stop()

    assert len(seen) >= 2  # the figures moved, poll by poll
    assert page.evaluate("window.__sameDocument") is True  # ... in the same page: no reload
    assert _figure(page, cycle_id, "escalated") == str(FAILING) and _figure(page, cycle_id, "sent") == str(total)
    assert page.locator(f"#sending-{cycle_id} svg polyline.confirmed").count() == 1
    # nothing queued or awaiting confirmation any more: the fragment came back without its trigger
    assert page.get_attribute(f"#sending-{cycle_id}", "hx-trigger") is None
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/sending" in request.url else None)
    time.sleep(4)
    assert polls == []

    wait_until(lambda: dashboard.get_attribute(f"#cycle-{cycle_id}", "hx-trigger") is None, 20)
    card = f"#cycle-{cycle_id} #sending-{cycle_id}"
    assert dashboard.inner_text(f'{card} [data-figure="confirmed"]') == str(DELIVERED + RELAYED)
    assert dashboard.evaluate("window.__sameDocument") is True
    context.close()
