"""End to end in headless Chromium (issue 15): a customer with no e-mail on file gets a paper bill, scans
its QR code (zbarimg on the printed page), lands on the registration page with the account number
filled in, types the code printed on the bill, registers and signs in."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from decimal import Decimal

import pytest

from console.db import utcnow
from console.models import Bill, BillLine, Customer, Cycle, ServicePoint
from console.paper.pdf import bill_pdf
from tests.browser_fixtures import screenshot

PASSWORD = "纸质账单上的注册码 works"
CODE = re.compile(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")


def _paper_bill(app, tmp_path):  # noqa: ANN001, ANN202
    """A published bill of a paper-only customer without e-mail, printed: (account no, bill no, PDF)."""
    session = app.extensions["billpost.session_factory"]()
    try:
        customer = Customer(
            account_no="3200077001", name="纸质账单客户", customer_type="commercial", email=None, key_account=True,
            postal_address="江苏省苏州市吴中区东吴北路7号", postal_code="215128", wants_ebill=False,
            channel_portal=False, channel_email=False, channel_paper=True,
        )
        session.add(customer)
        session.flush()
        point = ServicePoint(customer_id=customer.id, point_no="3200077001001", address=customer.postal_address,
                             meter_no="M77001", tariff_code="COM", read_day=5)
        cycle = Cycle(period="2026-11", bill_date=date(2026, 11, 30), status="published", published_at=utcnow())
        session.add_all([point, cycle])
        session.flush()
        bill = Bill(
            bill_no="202611-077001-01", cycle_id=cycle.id, customer_id=customer.id, service_point_id=point.id,
            unit_key=f"P{point.id}", bill_type="regular", template="commercial_regular", bill_date=cycle.bill_date,
            due_date=date(2026, 12, 10), previous_balance=Decimal("0.00"), payments_total=Decimal("0.00"),
            charges_total=Decimal("321.00"), current_balance=Decimal("321.00"), deposit_held=Decimal("0.00"),
            status="published", published_at=utcnow(),
            lines=[BillLine(position=1, kind="electricity", description="COM 2026-11", amount=Decimal("321.00"),
                            service_point_id=point.id)],
        )
        session.add(bill)
        session.commit()
        with app.app_context():
            path = bill_pdf(session, bill)
        session.commit()
        return customer.account_no, bill.bill_no, path
    finally:
        session.close()


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbar-tools not installed (scripts/install --test)")
def test_a_customer_without_email_registers_with_the_code_from_the_paper_bill(
    committed_app, live_server, browser_page, tmp_path
):
    committed_app.config["PORTAL_BASE_URL"] = live_server.url  # the address printed on the bill and in its QR
    account_no, bill_no, pdf = _paper_bill(committed_app, tmp_path)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    (code,) = set(CODE.findall(text))
    assert f"{live_server.url}/my/register" in text
    subprocess.run(["pdftoppm", "-r", "200", "-f", "1", "-l", "1", "-png", str(pdf), str(tmp_path / "page")], check=True)
    (image,) = tmp_path.glob("page*.png")
    (url,) = subprocess.run(["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
                            capture_output=True, text=True).stdout.split()

    page = browser_page
    page.goto(url)  # what the phone opens after scanning
    assert page.input_value("#identifier") == account_no
    page.fill("#code", code.lower().replace("-", " "))  # typed as people type it
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/my/login")
    screenshot(page, "portal-registered-with-bill-code")

    page.fill("#username", account_no)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/my/bills")
    assert bill_no in page.locator("#bill-list").inner_text()

    # the code worked once: a second registration with it fails
    page.click("#sign-out")
    page.goto(url)
    page.fill("#code", code)
    page.fill("#password", PASSWORD + "2")
    page.fill("#password2", PASSWORD + "2")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error")
