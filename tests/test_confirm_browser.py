"""The in-page confirmation in headless Chromium against a live server (CSRF on, real commits): for
publishing a cycle, switching a customer to paper, stopping collective billing, deactivating a
recipient and marking a print batch printed, a person clicks the action, reads the figures, clicks
"取消" — the box goes, the database is as it was — then clicks again and confirms, and it is done.
Screenshots of the boxes go to test-artifacts/."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.models import Customer, Cycle, Delivery, Recipient, WorkItem
from console.models.paper import PrintBatch
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff
from tests.conftest import PASSWORD
from tests.delivery.conftest import add_bill, new_customer
from tests.inboxes.conftest import build_item

pytestmark = pytest.mark.browser


def _factory(app):  # noqa: ANN001, ANN202
    return app.extensions["billpost.session_factory"]


def _cancel_then_confirm(page, opener: str, scope: str, unchanged, done_selector: str | None = None) -> str:  # noqa: ANN001
    """Click `opener`, read the box in `scope`, cancel (the box goes, `unchanged()` holds), click again and
    confirm. Returns the box's text."""
    page.click(opener)
    box = page.wait_for_selector(f"{scope} [data-confirm]")
    text = box.inner_text()
    page.click(f"{scope} [data-confirm-cancel]")
    page.wait_for_selector(f"{scope} [data-confirm]", state="detached")
    assert unchanged(), "cancel changed something"
    page.click(opener)
    page.wait_for_selector(f"{scope} [data-confirm]")
    page.click(f"{scope} [data-confirm-ok]")
    if done_selector:
        page.wait_for_selector(done_selector)
    return text


def test_publishing_asks_with_the_recipients_and_cancel_changes_nothing(live_server, browser_page):
    app = live_server.app
    with _factory(app)() as session:
        create_user(session, "pub_admin", PASSWORD, ["admin"], Actor.system(), display_name="发布管理员")
        for n in range(3):
            add_bill(session, new_customer(session, email=f"cb{n}@customers.test"))
        session.commit()

    def unpublished() -> bool:
        with _factory(app)() as s:
            return (s.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "generated"
                    and s.scalar(select(func.count(Delivery.id))) == 0)

    page = browser_page
    sign_in_staff(page, live_server, "pub_admin")
    page.wait_for_url(f"{live_server.url}/inbox/admin/")
    page.goto(f"{live_server.url}/billing/cycles/2026-11/review")
    page.click("form.publish button")
    page.wait_for_selector("#review-publish [data-confirm]")
    screenshot(page, "confirm-publish-zh")
    page.click("#review-publish [data-confirm-cancel]")
    page.wait_for_selector("#review-publish [data-confirm]", state="detached")
    assert unpublished()
    text = _cancel_then_confirm(page, "form.publish button", "#review-publish", unpublished)
    assert "将向 3 个收件人发送电子账单（共 3 封邮件）" in text and "此操作无法撤销" in text
    page.wait_for_url(f"{live_server.url}/billing/cycles/2026-11")
    with _factory(app)() as s:
        assert s.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "published"
        assert s.scalar(select(func.count(Delivery.id))) == 3


def test_the_customer_page_and_the_work_item_ask_before_stopping_deactivating_and_switching(
    live_server, browser_page
):
    app = live_server.app
    with _factory(app)() as session:
        manager = create_user(session, "conf_am", PASSWORD, ["account_manager"], Actor.system(),
                              display_name="客户经理甲")
        key = new_customer(session, name="苏州精密机械有限公司", customer_type="industrial", key_account=True,
                           account_manager_id=manager.id, collective_billing=True,
                           collective_billing_since=date(2026, 1, 1))
        session.add(Recipient(customer_id=key.id, name="财务部李娜", relation="finance", channel="email",
                              address="lina@precision.test"))
        session.commit()
        item = build_item(session, key, assigned_role="account_manager")
        key_id, item_id = key.id, item.id

    def customer() -> Customer:
        with _factory(app)() as s:
            c = s.get(Customer, key_id)
            s.expunge(c)
            return c

    def recipient_active() -> bool:
        with _factory(app)() as s:
            return s.scalar(select(Recipient.active).where(Recipient.customer_id == key_id))

    page = browser_page
    sign_in_staff(page, live_server, "conf_am")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/customers/{key_id}")

    text = _cancel_then_confirm(page, "form.stop-collective button", "#collective",
                                lambda: customer().collective_billing is True, "form.start-collective")
    assert "苏州精密机械有限公司 的 1 个用电点将重新各自单独出账" in text
    assert customer().collective_billing is False

    page.click("#recipients form.deactivate button")
    page.wait_for_selector("#recipients [data-confirm]")
    screenshot(page, "confirm-deactivate-recipient-zh")
    page.click("#recipients [data-confirm-cancel]")
    text = _cancel_then_confirm(page, "#recipients form.deactivate button", "#recipients", recipient_active,
                                "#recipients form.reactivate")
    assert "财务部李娜（电子邮件：lina@precision.test）将不再收到 苏州精密机械有限公司 的账单" in text
    assert recipient_active() is False

    page.goto(f"{live_server.url}/work-items/{item_id}")

    def still_email() -> bool:
        c = customer()
        with _factory(app)() as s:
            open_item = s.get(WorkItem, item_id).status != "closed"
        return c.channel_paper is False and c.channel_email is True and open_item

    text = _cancel_then_confirm(page, "form.paper button", "#item", still_email, "#item .badge.status-closed")
    assert "从现在起 苏州精密机械有限公司 收纸质账单，不再收电子邮件账单" in text
    c = customer()
    assert c.channel_paper is True and c.channel_email is False
    with _factory(app)() as s:
        assert s.scalar(select(func.count(Delivery.id)).where(Delivery.customer_id == key_id,
                                                              Delivery.channel == "paper")) == 1


def test_marking_a_print_batch_printed_asks_first(live_server, browser_page):
    from console.paper import batches

    app = live_server.app
    with app.app_context(), _factory(app)() as session:
        create_user(session, "conf_clerk", PASSWORD, ["clerk"], Actor.system(), display_name="打印员")
        for n in range(2):
            customer = new_customer(session, key_account=True, customer_type="commercial")
            bill = add_bill(session, customer)
            session.add(Delivery(bill_id=bill.id, customer_id=customer.id, channel="paper",
                                 address=customer.postal_address, recipient_name=customer.name, copies=1 + n,
                                 status="queued", attempts_made=0, send_errors=0))
        session.commit()
        result = batches.gather_batches(session, "2026-11", Actor.cli())
        batches.render_batch_now(session, result.batch_ids[0], Actor.cli())
        session.commit()
        batch_id = result.batch_ids[0]

    def status() -> str:
        with _factory(app)() as s:
            return s.get(PrintBatch, batch_id).status

    page = browser_page
    sign_in_staff(page, live_server, "conf_clerk")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/paper/batches/{batch_id}")
    page.click("form.mark-printed button")
    page.wait_for_selector("[data-confirm]")
    screenshot(page, "confirm-mark-printed-zh")
    page.click("[data-confirm-cancel]")
    text = _cancel_then_confirm(page, "form.mark-printed button", "main", lambda: status() == "ready",
                                "form.hand-batch")
    assert "2026-11 第 1 批的 2 张账单（3 份" in text
    assert status() == "printed"

    # then the batch goes to a deliverer, asked with the name typed before
    page.fill("form.hand-batch input[name=deliverer]", "张三")
    text = _cancel_then_confirm(page, "form.hand-batch button", ".hand-batch", lambda: status() == "printed")
    assert "将把2026-11 第 1 批的 2 封纸质账单（3 份）交给 张三 投递" in text
    page.wait_for_selector("text=张三")
    with _factory(app)() as s:
        from console.models.paper import PrintItem

        assert s.scalar(select(func.count(PrintItem.id)).where(PrintItem.deliverer == "张三")) == 2
