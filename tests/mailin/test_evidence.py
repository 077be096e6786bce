"""What the people see of non-standard evidence, and the rules of issue 19 point 4: reports must be
about the address we sent to; the receiver takes only trusted peers and a bounded number of them."""

from __future__ import annotations

import smtplib
import socket

import pytest
from sqlalchemy import select

from console.db import utcnow
from console.delivery.intake import mailbox, process_inbound
from console.delivery.mailin import peer_trusted, start_receiver, trusted_networks
from console.delivery.status_text import status_meaning, status_text
from console.devtools.ports import free_port
from console.models import ContactRecord, Delivery, WorkItem
from console.models.customers import Customer
from console.models.mailin import InboundMessage, InboundReportRecipient
from console.web.events import work_item_text
from tests.mailin.conftest import BOUNCE_DOMAIN, report_for, wait_for
from tests.mailin.corpus import render
from tests.rendering import en, zh


def _intake(db, attempt, raw: bytes, token: str | None = None):  # noqa: ANN001, ANN202
    result = process_inbound(db, raw, "<>", [f"bounces+{token or attempt.token}@{BOUNCE_DOMAIN}"], utcnow(),
                             bounce_domain=BOUNCE_DOMAIN)
    db.commit()
    return result


def _corpus(name: str, attempt) -> bytes:  # noqa: ANN001
    return render(name, rcpt=attempt.delivery.address, verp=f"bounces+{attempt.token}@{BOUNCE_DOMAIN}",
                  token=attempt.token, envid=attempt.envid, message_id=attempt.message_id)


def test_mailbox_comparison():
    assert mailbox("rfc822; <Zhang.San@Example.COM>") == "zhang.san@example.com"
    assert mailbox("张三 <a@xn--fsqu00a.xn--fiqs8s>") == "a@例子.中国"
    assert mailbox("utf-8; 张三@例子.中国") == "张三@例子.中国"


def test_meaning_of_a_status_in_both_languages(app):
    assert zh(app, status_text, "5.1.1") == "5.1.1 永久性失败：目标邮箱地址不存在"
    assert en(app, status_text, "5.1.1") == "5.1.1 permanent failure: bad destination mailbox address"
    assert en(app, status_meaning, "4.4.7") == "temporary failure: delivery time expired"
    assert en(app, status_meaning, "5.9.99") == "permanent failure"
    assert en(app, status_meaning, "5.7.123") == "permanent failure: other or undefined security status"
    assert en(app, status_meaning, "nonsense") == "" and en(app, status_text, "nonsense") == "nonsense"


def test_a_confirmation_about_another_address_is_quarantined(db, make_attempt):
    attempt = make_attempt("alice@customers.test")
    forged = report_for(attempt, "mallory@elsewhere.test", "delivered")  # the token and ENVID copied
    result = _intake(db, attempt, forged)
    assert result.classification == "unmatched" and result.quarantined and result.applied == []
    assert "mismatch" in result.reason
    db.refresh(attempt.delivery)
    assert attempt.delivery.status == "sent"
    row = db.scalars(select(InboundReportRecipient).where(InboundReportRecipient.inbound_id == result.inbound_id)).one()
    assert not row.applied and "mismatch" in row.note
    # the same report naming the address sent to, in another case and with a display form, confirms
    result = _intake(db, attempt, report_for(attempt, "<Alice@Customers.TEST>", "delivered", diagnostic="smtp; 250 ok"))
    assert result.applied == [(attempt.id, "delivered")]


def test_a_failure_naming_a_forwarding_hop_is_applied_and_flagged(app, db, make_attempt):
    attempt = make_attempt("alice@customers.test")
    raw = _corpus("rfc3464-postfix-10-forwarding-hop.eml", attempt)
    result = _intake(db, attempt, raw)
    assert result.applied == [(attempt.id, "failed")] and not result.quarantined
    db.refresh(attempt)
    assert attempt.reports[-1]["other_address"] == "old.name@forward.test"
    item = db.scalars(select(WorkItem).where(WorkItem.delivery_id == attempt.delivery_id)).one()
    assert item.details["other_address"] == "old.name@forward.test" == item.params["other_address"]
    assert "forwarding hop: old.name@forward.test" in en(app, work_item_text, item)
    assert "可能是转发：old.name@forward.test" in zh(app, work_item_text, item)


def test_text_never_confirms(db, make_attempt):
    attempt = make_attempt()
    raw = _corpus("broken-mime-04-delivered-not-confirming.eml", attempt)
    result = _intake(db, attempt, raw)
    assert result.classification == "report" and not result.quarantined
    db.refresh(attempt)
    db.refresh(attempt.delivery)
    assert attempt.delivery.status == "sent" and attempt.outcome is None
    assert attempt.reports[-1]["evidence"] == "dsn_fields"


def test_work_item_shows_the_meaning_in_the_readers_language(app, client, db, make_attempt, login_as):
    attempt = make_attempt()
    _intake(db, attempt, _corpus("qmail-01-no-mailbox.eml", attempt))
    item = db.scalars(select(WorkItem).where(WorkItem.delivery_id == attempt.delivery_id)).one()
    assert item.details["evidence"] == "text" and item.details["status"] == "5.1.1"
    assert item.code == "email_failed" and item.params["status"] == "5.1.1" and item.params["evidence"] == "text"
    assert "read from the text of a non-standard bounce" in en(app, work_item_text, item)
    login_as("admin")
    page = client.get(f"/work-items/{item.id}?lang=zh").get_data(as_text=True)
    assert "5.1.1 永久性失败：目标邮箱地址不存在" in page and "从非标准退信的文本中读取" in page
    page = client.get(f"/work-items/{item.id}?lang=en").get_data(as_text=True)
    assert "permanent failure: bad destination mailbox address" in page and "Sorry, no mailbox here by that name" in page
    rows = client.get("/delivery/deliveries?status=failed&lang=zh").get_data(as_text=True)
    assert "失败 · " in rows and "5.1.1 永久性失败：目标邮箱地址不存在" in rows  # the outcome, not "failed 5.1.1"
    assert " failed 5.1.1" not in rows


def test_complaint_is_visible_on_the_customer_and_delivery_pages(client, db, make_attempt, login_as):
    attempt = make_attempt()
    result = _intake(db, attempt, _corpus("arf-01-yahoo.eml", attempt))
    assert result.classification == "complaint" and not result.quarantined
    delivery = db.get(Delivery, attempt.delivery_id)
    customer = db.get(Customer, delivery.customer_id)
    db.refresh(customer)
    assert customer.email_review == "complaint" and delivery.status == "sent"
    record = db.scalars(select(ContactRecord).where(ContactRecord.customer_id == customer.id)).one()
    assert record.details["complaint"] == "abuse"
    login_as("admin")
    page = client.get(f"/customers/{customer.id}?lang=en").get_data(as_text=True)
    assert "E-mail channel to review" in page and "reported the bill e-mail as spam" in page
    rows = client.get("/delivery/deliveries?status=sent&lang=en").get_data(as_text=True)
    assert "Complaint: reported as spam" in rows


def test_auto_reply_is_recorded_and_abandoned_opens_a_low_priority_item(client, db, make_attempt, login_as):
    vacation, gone = make_attempt(), make_attempt()
    assert _intake(db, vacation, _corpus("auto-03-chinese-gbk.eml", vacation)).noticed == vacation.id
    assert _intake(db, gone, _corpus("auto-07-no-longer-in-use.eml", gone)).noticed == gone.id
    for attempt in (vacation, gone):
        db.refresh(attempt)
        assert attempt.outcome is None and attempt.reports[-1]["action"] == "auto_reply"
        assert db.get(Delivery, attempt.delivery_id).status == "sent"
    assert not db.scalars(select(WorkItem).where(WorkItem.delivery_id == vacation.delivery_id)).all()
    (item,) = db.scalars(select(WorkItem).where(WorkItem.delivery_id == gone.delivery_id)).all()
    assert item.reason == "email_address_check" and item.details["priority"] == "low"
    login_as("admin")
    rows = client.get("/delivery/deliveries?status=sent&lang=en").get_data(as_text=True)
    assert "Auto-reply received" in rows and "the address is no longer in use" in rows


def test_trusted_peers_parse_and_match():
    networks = trusted_networks("127.0.0.1/8, ::1 10.1.2.3")
    assert peer_trusted(("127.0.0.5", 4000), networks) and peer_trusted(("::1", 25, 0, 0), networks)
    assert peer_trusted(("::ffff:10.1.2.3", 25, 0, 0), networks)
    assert not peer_trusted(("192.0.2.1", 25), networks) and not peer_trusted(None, networks)


def _greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        return sock.recv(200)


def test_receiver_refuses_untrusted_peers(committed_app):
    committed_app.config["MAILIN_TRUSTED_PEERS"] = "10.0.0.0/8"  # the company MTA; this test is not it
    receiver = start_receiver(committed_app, port=free_port())
    try:
        assert _greeting(receiver.host, receiver.port).startswith(b"554 5.7.1")
        with pytest.raises(smtplib.SMTPException):
            with smtplib.SMTP(receiver.host, receiver.port, timeout=10) as conn:
                conn.sendmail("", [f"bounces+x@{BOUNCE_DOMAIN}"], b"Subject: forged\r\n\r\nx\r\n")
    finally:
        receiver.stop()


def test_receiver_caps_concurrent_connections(committed_app, cdb):
    committed_app.config["MAILIN_MAX_CONNECTIONS"] = 2
    receiver = start_receiver(committed_app, port=free_port())
    try:
        held = [smtplib.SMTP(receiver.host, receiver.port, timeout=10) for _ in range(2)]
        assert _greeting(receiver.host, receiver.port).startswith(b"421 4.7.0")
        held.pop().quit()
        assert wait_for(lambda: _greeting(receiver.host, receiver.port).startswith(b"220"), timeout=5)
        conn = held.pop()
        assert conn.sendmail("", [f"bounces+x@{BOUNCE_DOMAIN}"], b"Subject: hi\r\n\r\nhello\r\n") == {}
        conn.quit()
        cdb.rollback()
        assert cdb.scalars(select(InboundMessage.subject)).all() == ["hi"]
    finally:
        receiver.stop()
