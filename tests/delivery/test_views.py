"""The deliveries admin page: figures per cycle, deliveries by status with their attempts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from console.audit import Actor
from console.db import utcnow
from console.delivery.policy import apply_report
from console.delivery.publish import publish_cycle
from console.models import Delivery, DeliveryAttempt
from tests.delivery.conftest import add_bill


def test_deliveries_page_shows_failures_with_diagnostics(client, db, login_as, make_customer):
    customer = make_customer(name="<b>王五</b>")
    bill = add_bill(db, customer)
    publish_cycle(db, bill.cycle_id, Actor.cli(), utcnow())
    delivery = db.scalars(select(Delivery).where(Delivery.bill_id == bill.id)).one()
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=1, token="v1", envid="v1", message_id="<v1@b.test>",
        sent_at=utcnow() - timedelta(minutes=5),
    )
    db.add(attempt)
    delivery.status, delivery.attempts_made = "sent", 1
    db.flush()
    apply_report(db, attempt, "failed", "5.1.1", "smtp; 550 <script>x</script> unknown user", utcnow())
    db.commit()
    login_as("admin")
    page = client.get("/delivery/deliveries")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "2026-11" in html and "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert "&lt;b&gt;王五&lt;/b&gt;" in html
    fragment = client.get("/delivery/deliveries?status=confirmed", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
