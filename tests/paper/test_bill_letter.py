"""The paper bill as a letter (issue 15): the addressee block where a DL/C5 window envelope shows it,
the registration code of a customer not yet registered with the web address and a QR code that decodes
to it (zbarimg), the company's letterhead, hotline and payment details — checked with pdftotext."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from html import unescape

import pytest

from console.billing.document import registration_url
from console.models.portal import WebAccount
from console.paper.pdf import bill_pdf, invalidate_bill_pdf
from console.portal.services import PortalError, complete_registration

MM = 72 / 25.4  # PDF points per millimetre


def _words(path) -> list[tuple[float, float, float, float, str]]:  # noqa: ANN001
    """Every word on the first page with its box in millimetres (pdftotext -bbox)."""
    out = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(path), "-"], capture_output=True,
                         text=True, check=True).stdout
    found = []
    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', out):
        x0, y0, x1, y1 = (float(v) / MM for v in m.groups()[:4])
        found.append((x0, y0, x1, y1, unescape(m.group(5))))
    return found


def _in_window(words, text: str) -> bool:  # noqa: ANN001
    """DL/C5 window (DIN 5008 form B): 20 mm from the left, 45 mm from the top, 85 x 45 mm (a little slack)."""
    return any(18 <= x0 and x1 <= 107 and 43 <= y0 and y1 <= 92 for x0, y0, x1, y1, t in words if t == text)


@pytest.fixture
def letter(app, db, make_customer, make_bill):
    customer = make_customer(key_account=True, customer_type="commercial", name="苏州信封测试有限公司",
                             email=None, postal_address="江苏省苏州市姑苏区人民路88号", postal_code="215000",
                             account_no="3200088001")
    bill = make_bill(customer)
    with app.app_context():
        path = bill_pdf(db, bill)
    db.commit()
    return customer, bill, path


def test_golden_paper_bill_addressee_block_code_and_web_address(app, db, letter, pdf_text):
    customer, bill, path = letter
    text = pdf_text(path)
    config = app.config
    # the letterhead and the ways to pay, from configuration
    assert config["COMPANY_NAME"] in text and config["COMPANY_HOTLINE"] in text
    assert config["COMPANY_BANK_ACCOUNT"] in text and "微信支付" in text and "供电公司 · 纸质账单" not in text
    # the addressee block: postal code once, the address, the name
    assert text.count("215000") == 1 + config["COMPANY_ADDRESS"].count("215000")
    words = _words(path)
    for part in ("215000", "江苏省苏州市姑苏区人民路88号", customer.name):
        assert _in_window(words, part), part
    # the registration code and the web address, beside the window
    codes = re.findall(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", text)
    assert len(set(codes)) == 1
    assert config["PORTAL_BASE_URL"] + "/my/register" in text
    assert bill.bill_no in text and customer.account_no in text and "2026-12-15" in text


@pytest.mark.skipif(shutil.which("zbarimg") is None or shutil.which("pdftoppm") is None,
                    reason="zbar-tools / poppler-utils not installed (scripts/install --test)")
def test_the_qr_code_decodes_to_the_registration_address_with_the_account_number(app, letter, tmp_path):
    customer, _bill, path = letter
    subprocess.run(["pdftoppm", "-r", "200", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "page")],
                   check=True)
    (image,) = tmp_path.glob("page*.png")
    decoded = subprocess.run(["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
                             capture_output=True, text=True).stdout.split()
    assert decoded == [registration_url(app.config, customer.account_no)]
    assert decoded[0].endswith("/my/register/complete?identifier=3200088001")


def test_the_printed_code_registers_once_and_a_registered_customer_gets_no_code(app, db, letter, pdf_text):
    customer, bill, path = letter
    code = re.search(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", pdf_text(path)).group(0)
    from console.audit import Actor

    now = datetime.now(UTC)
    complete_registration(db, customer.account_no, code, "a long enough pass phrase", now, app.config["SECRET_KEY"],
                          Actor.system())
    db.commit()
    assert db.query(WebAccount).filter_by(customer_id=customer.id).count() == 1
    with pytest.raises(PortalError):  # single use
        complete_registration(db, customer.account_no, code, "another long pass phrase", now,
                              app.config["SECRET_KEY"], Actor.system())
    with app.app_context():
        invalidate_bill_pdf(db, bill)
        text = pdf_text(bill_pdf(db, bill))
    assert not re.search(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", text)
    assert "/my/register" not in text and app.config["COMPANY_HOTLINE"] in text


def test_a_copy_for_another_recipient_shows_their_address_in_the_window(
    app, db, cycle, make_customer, make_bill, make_paper_delivery, tmp_path
):
    from pypdf import PdfReader, PdfWriter

    from console.audit import Actor
    from console.paper import batches

    customer = make_customer(key_account=True, customer_type="commercial", name="苏州窗口测试有限公司",
                             postal_address="江苏省苏州市姑苏区人民路99号", postal_code="215000")
    bill = make_bill(customer)
    make_paper_delivery(bill, customer)
    make_paper_delivery(bill, customer, address="江苏省苏州市工业园区星湖街1号 215021", name="财务部王会计")
    result = batches.gather_batches(db, "2026-11", Actor.cli())
    with app.app_context():
        batch = batches.render_batch_now(db, result.batch_ids[0], Actor.cli())
        reader = PdfReader(batches.batch_file(batch))
    bill_pages = (len(reader.pages) - 1) // 2
    firsts = {}
    for n, start in enumerate((1, 1 + bill_pages)):
        one = tmp_path / f"copy{n}.pdf"
        writer = PdfWriter()
        writer.add_page(reader.pages[start])
        writer.write(one)
        firsts[n] = _words(one)
    holder = next(n for n in firsts if _in_window(firsts[n], "江苏省苏州市姑苏区人民路99号")
                  and not _in_window(firsts[n], "财务部王会计"))
    other = 1 - holder
    assert _in_window(firsts[other], "财务部王会计") and _in_window(firsts[other], "江苏省苏州市工业园区星湖街1号")
    assert _in_window(firsts[other], "215021")
