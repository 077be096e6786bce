"""The intake: store, classify, match (token, then ENVID, then Message-ID), apply or quarantine."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from console.audit import Actor
from console.db import utcnow
from console.delivery.intake import mark_handled, process_inbound, quarantine_query, verp_tokens
from console.models import ContactRecord, Delivery, DeliveryAttempt, WorkItem
from console.models.mailin import InboundMessage, InboundReportRecipient
from tests.mailin.conftest import BOUNCE_DOMAIN, report_for, sample


def _rcpt(token: str) -> list[str]:
    return [f"bounces+{token}@{BOUNCE_DOMAIN}"]


def _intake(db, raw, rcpts, **kw):  # noqa: ANN001, ANN202
    result = process_inbound(db, raw, "<>", rcpts, utcnow(), bounce_domain=BOUNCE_DOMAIN, **kw)
    db.commit()
    return result


def test_verp_tokens():
    assert verp_tokens(["bounces+abc-1@b.test", "<bounces+x@B.TEST>", "other@b.test"], "b.test") == ["abc-1", "x"]
    assert verp_tokens(["bounces+abc@elsewhere.test"], "b.test") == []


def test_delivered_report_matched_by_token_confirms(db, make_attempt):
    attempt = make_attempt("alice@customers.test")
    result = _intake(db, report_for(attempt, "alice@customers.test"), _rcpt(attempt.token))
    assert result.classification == "report" and not result.quarantined
    assert result.applied == [(attempt.id, "delivered")]
    delivery = db.get(Delivery, attempt.delivery_id)
    db.refresh(delivery)
    assert delivery.status == "confirmed" and delivery.confirmed_by == "delivered"
    row = db.scalars(select(InboundReportRecipient).where(InboundReportRecipient.inbound_id == result.inbound_id)).one()
    assert row.matched_by == "token" and row.applied and row.attempt_id == attempt.id
    assert db.scalar(select(func.count()).select_from(ContactRecord).where(
        ContactRecord.customer_id == delivery.customer_id)) == 1


def test_matched_by_envid_then_message_id(db, make_attempt):
    a1 = make_attempt("x@customers.test")
    r1 = _intake(db, report_for(a1, "x@customers.test"), [f"bounces+unknown@{BOUNCE_DOMAIN}"])
    assert r1.applied == [(a1.id, "delivered")]
    assert db.scalars(select(InboundReportRecipient.matched_by).where(
        InboundReportRecipient.inbound_id == r1.inbound_id)).one() == "envid"
    a2 = make_attempt("y@customers.test")
    r2 = _intake(db, report_for(a2, "y@customers.test", envid=None), [f"postmaster@{BOUNCE_DOMAIN}"])
    assert r2.applied == [(a2.id, "delivered")]
    assert db.scalars(select(InboundReportRecipient.matched_by).where(
        InboundReportRecipient.inbound_id == r2.inbound_id)).one() == "message_id"


def test_failed_report_opens_work_item_with_diagnostic(db, make_attempt):
    attempt = make_attempt("gone@customers.test")
    diag = "smtp; 550 5.1.1 <gone@customers.test>: Recipient address\r\n rejected: User unknown"
    _intake(db, report_for(attempt, "gone@customers.test", "failed", "5.1.1", diag), _rcpt(attempt.token))
    delivery = db.get(Delivery, attempt.delivery_id)
    db.refresh(delivery)
    assert delivery.status == "failed"
    item = db.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery.id)).one()
    assert "Recipient address rejected: User unknown" in item.params["diagnostic"]
    db.refresh(attempt)
    assert attempt.outcome == "failed" and attempt.status_code == "5.1.1"


def test_relayed_and_delayed_never_count_as_failed(db, make_attempt):
    relayed = make_attempt("r@x.test")
    _intake(db, report_for(relayed, "r@x.test", "relayed", "2.0.0", "smtp; 250 ok"), _rcpt(relayed.token))
    delayed = make_attempt()
    _intake(db, report_for(delayed, "d@x.test", "delayed", "4.4.1", "smtp; 451 try later"), _rcpt(delayed.token))
    d_relayed, d_delayed = db.get(Delivery, relayed.delivery_id), db.get(Delivery, delayed.delivery_id)
    db.refresh(d_relayed)
    db.refresh(d_delayed)
    assert (d_relayed.status, d_relayed.confirmed_by) == ("confirmed", "relayed")
    assert d_delayed.status == "sent"  # the wait goes on
    assert db.scalar(select(func.count()).select_from(WorkItem).where(
        WorkItem.delivery_id.in_([d_relayed.id, d_delayed.id]))) == 0


def test_unknown_token_is_quarantined_and_changes_nothing(db, make_attempt):
    bystander = make_attempt()
    fake = DeliveryAttempt(token="nosuch", envid="nosuch-env", message_id="<nosuch@x>", attempt_no=1, delivery_id=0)
    raw = report_for(fake, "who@x.test", "failed", "5.1.1")
    result = _intake(db, raw, _rcpt("nosuch"))
    assert result.classification == "unmatched" and result.quarantined and result.applied == []
    delivery = db.get(Delivery, bystander.delivery_id)
    db.refresh(delivery)
    assert delivery.status == "sent"
    assert db.get(InboundMessage, result.inbound_id) in db.scalars(quarantine_query()).all()


def test_redelivered_message_is_applied_once(db, make_attempt):
    attempt = make_attempt()
    raw = report_for(attempt, "a@x.test", "delayed", "4.2.2", "x; full")
    first = _intake(db, raw, _rcpt(attempt.token))
    second = _intake(db, raw, _rcpt(attempt.token))
    assert second.duplicate and second.inbound_id == first.inbound_id
    db.refresh(attempt)
    assert len(attempt.reports) == 1
    assert db.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.id == first.inbound_id)) == 1


def test_auto_reply_is_kept_not_applied(db, make_attempt):
    attempt = make_attempt()
    raw = (
        f"From: {attempt.delivery.address}\r\nTo: bounces+{attempt.token}@{BOUNCE_DOMAIN}\r\n"
        "Subject: 自动回复: 电费账单\r\nAuto-Submitted: auto-replied\r\n\r\n我在休假。\r\n"
    ).encode()
    result = _intake(db, raw, _rcpt(attempt.token))
    assert result.classification == "auto_reply" and not result.quarantined
    db.refresh(attempt)
    assert attempt.outcome is None


def test_malformed_goes_to_quarantine_and_admin_marks_handled(db, make_user):
    result = _intake(db, b"\xff\xfe not a mail at all", [f"bounces+x@{BOUNCE_DOMAIN}"])
    assert result.classification == "malformed" and result.quarantined
    admin = make_user("admin")
    mark_handled(db, result.inbound_id, Actor.of_user(admin), "junk")
    db.commit()
    message = db.get(InboundMessage, result.inbound_id)
    assert message.handled_at is not None and message.handled_note == "junk"
    assert message not in db.scalars(quarantine_query(state="open")).all()
    assert message in db.scalars(quarantine_query(state="handled")).all()


def test_real_samples_match_by_envid(db, make_attempt):
    attempt = make_attempt("alice@customers.test")
    attempt.envid = "bill-1001"
    db.commit()
    result = _intake(db, sample("delivered.eml"), ["bounces+1001@bills.test"])
    assert result.applied == [(attempt.id, "delivered")]


def test_size_cap_keeps_a_bounded_copy(db, make_attempt):
    attempt = make_attempt()
    raw = report_for(attempt, attempt.delivery.address).replace(b"--BB--", b"--BB\r\nContent-Type: text/plain\r\n\r\n"
                                                   + b"A" * (3 * 1024 * 1024) + b"\r\n--BB--")
    result = _intake(db, raw, _rcpt(attempt.token), keep_bytes=64 * 1024)
    message = db.get(InboundMessage, result.inbound_id)
    assert message.size == len(raw) and message.truncated and len(message.raw) == 64 * 1024
    assert result.applied == [(attempt.id, "delivered")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(raw=st.binary(max_size=2000), rcpt=st.text(max_size=40))
def test_fuzz_intake_never_raises(db, raw, rcpt):
    result = process_inbound(db, raw, "<>", [rcpt], utcnow(), bounce_domain=BOUNCE_DOMAIN)
    assert result.classification in ("report", "auto_reply", "complaint", "unmatched", "malformed")
    db.rollback()
