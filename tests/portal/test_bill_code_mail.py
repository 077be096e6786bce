"""The bill e-mail of a customer not yet registered carries the bill's registration code, the web address
and its QR code (issue 15); a registered customer's carries none."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
from email import policy as email_policy

import pytest

from console.audit import Actor
from console.billing.document import registration_url
from console.db import utcnow
from console.delivery.message import build_message
from console.delivery.publish import publish_cycle
from console.models import Delivery, DeliveryAttempt
from console.models.portal import WebAccount
from tests.delivery.conftest import add_bill, new_customer

CODE = re.compile(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")


def _mail(app, db, registered: bool):  # noqa: ANN001, ANN202
    customer = new_customer(db)
    if registered:
        db.add(WebAccount(customer_id=customer.id, username=customer.account_no, password_hash="x",
                          session_token="t" * 32, created_at=utcnow(), password_changed_at=utcnow()))
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    db.commit()
    delivery = db.query(Delivery).filter_by(bill_id=bill.id, channel="email").first()
    attempt = DeliveryAttempt(delivery_id=delivery.id, attempt_no=1, token=f"t{bill.id}", envid=f"t{bill.id}",
                              message_id=f"<t{bill.id}@b.test>")
    db.add(attempt)
    db.flush()
    with app.app_context():
        message = email.message_from_bytes(build_message(db, delivery, attempt, app.config).as_bytes(),
                                           policy=email_policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return customer, text, html, message


def _related_images(message) -> dict[str, bytes]:  # noqa: ANN001
    """The message's inline images by Content-ID, from the multipart/related around its HTML part."""
    (related,) = [part for part in message.walk() if part.get_content_type() == "multipart/related"]
    assert related.get_payload()[0].get_content_type() == "text/html"  # the root part comes first
    return {part["Content-ID"].strip("<>"): part.get_content() for part in related.iter_parts()
            if part.get_content_maintype() == "image"}


def test_the_mail_of_a_customer_not_yet_registered_carries_the_code_address_and_qr(app, db):
    customer, text, html, message = _mail(app, db, registered=False)
    (code,) = set(CODE.findall(text))
    url = registration_url(app.config, customer.account_no)
    assert url in text and code in html and 'class="registration"' in html
    # Images are parts of the message named by Content-ID, never data: URIs (Gmail and Outlook drop those).
    assert "data:image" not in html and 'src="cid:registration-qr@billpost"' in html
    images = _related_images(message)
    assert images["registration-qr@billpost"].startswith(b"\x89PNG")
    assert 'src="cid:logo@billpost"' in html and images["logo@billpost"].startswith(b"\x89PNG")
    assert app.config["COMPANY_HOTLINE"] in html
    assert "late fee" not in text.split("----")[0]  # the Chinese part names charges in Chinese


def test_a_registered_customers_mail_has_no_code(app, db):
    _customer, text, html, message = _mail(app, db, registered=True)
    assert not CODE.search(text) and not CODE.search(html) and "/my/register" not in html
    assert set(_related_images(message)) == {"logo@billpost"}  # no QR part either


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbar-tools not installed (scripts/install --test)")
def test_the_mails_qr_part_scans_to_the_registration_address(app, db, tmp_path):
    """What a phone's camera reads off the e-mail's QR image: the registration page for this account."""
    customer, _text, _html, message = _mail(app, db, registered=False)
    image = tmp_path / "qr.png"
    image.write_bytes(_related_images(message)["registration-qr@billpost"])
    decoded = subprocess.run(["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert decoded == registration_url(app.config, customer.account_no)
