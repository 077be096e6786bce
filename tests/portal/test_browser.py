"""End to end in headless Chromium: register with the code from the mail server, sign in, list,
open a bill, download its PDF."""

from __future__ import annotations

import subprocess
from datetime import date
from decimal import Decimal

import pytest

from console.db import utcnow
from console.models import Bill, BillLine, Customer, Cycle, ServicePoint
from tests.browser_fixtures import screenshot
from tests.portal.conftest import default_lines

PASSWORD = "我的新密码 is long enough"


def _seed(app) -> tuple[Customer, Bill]:  # noqa: ANN001
    session = app.extensions["billpost.session_factory"]()
    try:
        customer = Customer(
            account_no="E2E000000001", name="浏览器测试客户", customer_type="residential",
            email="e2e-customer@customers.test", id_number="320502199001018888", wants_ebill=True,
            channel_portal=True, channel_email=True, channel_paper=False,
        )
        session.add(customer)
        session.flush()
        point = ServicePoint(
            customer_id=customer.id, point_no="E2EP0001", address="苏州市姑苏区人民路1号", meter_no="E2EM0001",
            tariff_code="RES", read_day=12,
        )
        cycle = Cycle(period="2026-10", bill_date=date(2026, 10, 28), status="published", published_at=utcnow())
        session.add_all([point, cycle])
        session.flush()
        lines = default_lines(point.id)
        bill = Bill(
            bill_no="E2E-B-0001", cycle_id=cycle.id, customer_id=customer.id, service_point_id=point.id,
            unit_key=f"P{point.id}", bill_type="regular", template="residential_regular",
            bill_date=cycle.bill_date, due_date=date(2026, 11, 12), previous_balance=Decimal("120.00"),
            payments_total=Decimal("120.00"), charges_total=Decimal("499.70"), current_balance=Decimal("499.70"),
            deposit_held=Decimal("0.00"), status="published", published_at=utcnow(),
            lines=[
                BillLine(position=i, kind=line["kind"], description=line["description"],
                         amount=Decimal(line["amount"]), service_point_id=line.get("service_point_id"),
                         details=line.get("details"))
                for i, line in enumerate(lines, start=1)
            ],
        )
        session.add(bill)
        session.commit()
        return customer, bill
    finally:
        session.close()


@pytest.mark.browser
def test_register_sign_in_open_and_download(committed_app, live_server, smtp_server, browser_page, tmp_path):
    committed_app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    customer, bill = _seed(committed_app)
    page = browser_page

    page.goto(f"{live_server.url}/my/register")
    assert "注册" in page.title()
    page.fill("#identifier", customer.account_no)
    page.click("button[type=submit]")
    page.wait_for_selector("#code-sent")
    code = smtp_server.code_for(customer.email)
    page.fill("#code", code)
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/my/login")
    screenshot(page, "portal-registered")

    page.fill("#username", customer.account_no)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/my/bills")
    assert page.locator("#bill-list").inner_text().count(bill.bill_no) == 1
    screenshot(page, "portal-bill-list")

    page.click(f"text={bill.bill_no}")
    page.wait_for_selector("#charges-by-type")
    body = page.inner_text("body")
    assert "499.70" in body and "缴费截止日" in body and "2026-11-12" in body
    assert customer.id_number not in page.content()
    screenshot(page, "portal-bill")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    screenshot(page, "portal-bill-mobile")
    assert page.evaluate("document.documentElement.scrollWidth") <= 420

    with page.expect_download() as download_info:
        page.click("#pdf-link")
    pdf = tmp_path / "bill.pdf"
    download_info.value.save_as(pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert bill.bill_no in text

    page.click("text=账单送达设置")
    page.wait_for_selector("#delivery-settings")
    assert page.inner_text("#masked-id") == "320502********8888"
    assert customer.id_number not in page.content()
    screenshot(page, "portal-settings")

    page.goto(f"{live_server.url}/my/bills/{bill.id}")
    page.click("text=English")
    page.wait_for_selector("text=Charges by type")
    page.click("#sign-out")
    page.wait_for_url("**/my/login")
    page.goto(f"{live_server.url}/my/bills/{bill.id}")
    assert page.url.split("?")[0].endswith("/my/login")  # with the bill to come back to after sign-in
