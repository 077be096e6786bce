"""The bill e-mail of a customer not yet registered carries the bill's registration code, the web address
and its QR code (issue 15); a registered customer's carries none."""

from __future__ import annotations

import email
import re
from email import policy as email_policy

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
    return customer, text, html


def test_the_mail_of_a_customer_not_yet_registered_carries_the_code_address_and_qr(app, db):
    customer, text, html = _mail(app, db, registered=False)
    (code,) = set(CODE.findall(text))
    url = registration_url(app.config, customer.account_no)
    assert url in text and code in html and 'class="registration"' in html and "data:image/png;base64," in html
    assert app.config["COMPANY_HOTLINE"] in html
    assert "late fee" not in text.split("----")[0]  # the Chinese part names charges in Chinese


def test_a_registered_customers_mail_has_no_code(app, db):
    _customer, text, html = _mail(app, db, registered=True)
    assert not CODE.search(text) and not CODE.search(html) and "/my/register" not in html
