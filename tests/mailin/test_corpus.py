"""The real-world bounce corpus (tests/data/bounces, 30+ mail systems): each message through the
parser (one test per family), then every message end to end over SMTP to the receiver, checked
against expected.csv — delivery, attempt, work item, contact history, quarantine."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from console.db import utcnow
from console.delivery import policy
from console.delivery.reports import parse_message
from console.models import ContactRecord, Delivery, DeliveryAttempt, WorkItem
from console.models.customers import Customer
from console.models.mailin import DeliveryEvent, InboundMessage
from tests.mailin.conftest import BOUNCE_DOMAIN, add_attempt
from tests.mailin.corpus import Case, cases, render

CASES = cases()
FAMILIES = sorted({case.family for case in CASES})
PARSED_KIND = {
    "auto": "auto_reply", "abandoned": "auto_reply", "challenge": "auto_reply", "complaint": "complaint",
    "junk": "malformed",
}


def _render(case: Case, attempt: DeliveryAttempt, address: str) -> tuple[bytes, str]:
    token = "lost-token-0" if case.setup == "badtoken" else attempt.token
    verp = f"bounces+{token}@{BOUNCE_DOMAIN}"
    raw = render(case.file, rcpt=address, verp=verp, token=token, envid=attempt.envid, message_id=attempt.message_id)
    return raw, verp


class _Fake:
    token, envid, message_id = "tok-x", "env-x", "<msg-x@bills.test>"


def test_corpus_size_and_families():
    assert len(CASES) >= 120 and len(FAMILIES) >= 30
    assert sum(case.hard for case in CASES) >= 60


@pytest.mark.parametrize("family", FAMILIES)
def test_parser_reads_every_message_of_the_family(family):
    for case in (c for c in CASES if c.family == family):
        raw, _ = _render(case, _Fake(), "c1@customers.test")
        parsed = parse_message(raw, "<>", BOUNCE_DOMAIN)
        assert parsed.kind == PARSED_KIND.get(case.kind, "report"), (case.file, parsed.reason)
        if parsed.kind == "auto_reply":
            assert parsed.auto_kind == {"abandoned": "abandoned", "challenge": "challenge"}.get(case.kind), case.file
        if parsed.kind != "report":
            continue
        block = parsed.recipients[0]
        if block.source != "rfc3464":
            assert block.action in ("failed", "delayed") or case.kind == "noconfirm", case.file  # text never confirms
        if case.kind in ("hard", "soft"):
            assert block.action == "failed", (case.file, block)
            temporary = (block.status or "").startswith("4")
            assert temporary == (case.kind == "soft" or case.setup == "attempt2"), (case.file, block.status)
        if case.kind == "delay":
            assert block.action == "delayed", (case.file, block)


def _check(cdb, case: Case, attempt: DeliveryAttempt, setup_contacts: int, inbound: InboundMessage) -> list[str]:
    problems = []
    delivery = cdb.get(Delivery, attempt.delivery_id)
    cdb.refresh(delivery)
    cdb.refresh(attempt)
    if delivery.status != case.delivery:
        problems.append(f"delivery {delivery.status} != {case.delivery}")
    if (attempt.outcome or "") != case.outcome:
        problems.append(f"outcome {attempt.outcome!r} != {case.outcome!r}")
    items = cdb.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery.id, WorkItem.status == "open")).all()
    reasons = sorted(item.reason for item in items)
    if reasons != ([case.work_item] if case.work_item else []):
        problems.append(f"work items {reasons} != {case.work_item!r}")
    said = " ".join(str(v) for v in (items[0].params or {}).values()) if items else ""
    if case.work_item and items and case.diagnostic and case.diagnostic.lower() not in said.lower():
        problems.append(f"work item lacks {case.diagnostic!r}: {items[0].params}")
    last = (items[0].details.get("attempts") or [{}])[-1] if items else {}
    if case.work_item == "email_failed" and items and not (last.get("diagnostic") or last.get("status")):
        problems.append("neither a diagnostic nor a status on the attempt")
    if case.work_item == "email_failed" and items and inbound.reason.startswith("text of a non-standard bounce"):
        if (items[0].params or {}).get("evidence") != "text":
            problems.append("work item does not say it was read from the text of a bounce")
    records = cdb.scalars(select(ContactRecord).where(ContactRecord.customer_id == delivery.customer_id)
                          .order_by(ContactRecord.id)).all()
    new = records[setup_contacts:]
    key = {"auto_reply": "auto_reply", "complaint": "complaint", "reopened": "reopened_from", "confirmed": "confirmed_by"}
    if case.contact and case.contact != "confirmed" or case.contact == "confirmed" and not case.setup:
        if not any(key[case.contact] in (r.details or {}) for r in new):
            problems.append(f"no {case.contact} contact record ({[r.code for r in new]})")
    elif not case.contact and new:
        problems.append(f"unexpected contact records {[r.code for r in new]}")
    if case.contact == "complaint":
        customer = cdb.get(Customer, delivery.customer_id)
        cdb.refresh(customer)
        if customer.email_review != "complaint":
            problems.append("e-mail channel not flagged for review")
    if case.contact in ("auto_reply", "complaint"):
        kinds = cdb.scalars(select(DeliveryEvent.kind).where(DeliveryEvent.delivery_id == delivery.id)).all()
        if case.contact not in kinds:
            problems.append(f"no {case.contact} event on the delivery")
    if inbound.quarantined != case.quarantined:
        problems.append(f"quarantined {inbound.quarantined} ({inbound.classification}: {inbound.reason})")
    return problems


def test_every_corpus_message_end_to_end_over_smtp(cdb, smtp_to, capsys):
    conn = smtp_to()
    problems: dict[str, list[str]] = {}
    figures = defaultdict(int)
    for case in CASES:
        attempt = add_attempt(cdb, None, attempt_no=2 if case.setup == "attempt2" else 1)
        address = attempt.delivery.address
        if case.setup in ("relayed", "delivered"):
            policy.confirm(cdb, attempt.delivery, case.setup, utcnow() - timedelta(minutes=5), attempt)
        cdb.commit()
        setup_contacts = len(cdb.scalars(select(ContactRecord.id).where(
            ContactRecord.customer_id == attempt.delivery.customer_id)).all())
        raw, verp = _render(case, attempt, address)
        assert conn.sendmail("", [verp], raw) == {}, case.file  # 250 to DATA, or smtplib raises
        cdb.rollback()
        inbound = cdb.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        found = _check(cdb, case, attempt, setup_contacts, inbound)
        if found:
            problems[case.file] = found
        delivery = cdb.get(Delivery, attempt.delivery_id)
        if case.hard:
            figures["hard"] += 1
            items = cdb.scalars(select(WorkItem).where(WorkItem.delivery_id == delivery.id)).all()
            cdb.refresh(attempt)
            if delivery.status == "failed" and items and (attempt.diagnostic or attempt.status_code):
                figures["hard_failed_with_item_and_diagnostic"] += 1
        if delivery.status == "confirmed" and case.delivery != "confirmed":
            figures["wrongly_confirmed"] += 1
        if delivery.status == "confirmed" and case.setup not in ("relayed", "delivered") and case.kind != "confirm":
            figures["wrongly_confirmed"] += 1
        figures["quarantined"] += inbound.quarantined
        figures["messages"] += 1
    share = figures["hard_failed_with_item_and_diagnostic"] / figures["hard"]
    with capsys.disabled():
        print(f"\ncorpus: {figures['messages']} messages in {len(FAMILIES)} families; hard bounces "
              f"{figures['hard_failed_with_item_and_diagnostic']}/{figures['hard']} ({share:.1%}) failed with a work item "
              f"and a diagnostic; wrongly confirmed {figures['wrongly_confirmed']}; quarantined {figures['quarantined']}")
    assert not problems, "\n".join(f"{name}: {'; '.join(p)}" for name, p in problems.items())
    assert share >= 0.97 and figures["wrongly_confirmed"] == 0
