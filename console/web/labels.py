"""Translated labels for every code stored in the database (roles, types, channels, statuses, reasons…),
in one place: templates, exports and e-mails show a code through `label(kind, code)` in the reader's
language. The status vocabularies' keys are the enums of console/models."""

from __future__ import annotations

from flask import g, has_request_context
from flask_babel import lazy_gettext as _l

from console.billing.review import ReviewDetail, ReviewException
from console.models.billing import BillStatus, CycleStatus
from console.models.delivery import (
    AttemptOutcome,
    ConfirmedBy,
    DeliveryStatus,
    WorkItemNotice,
    WorkItemReason,
    WorkItemStatus,
)
from console.models.paper import BatchStatus, PrintItemStatus

LABELS = {
    # -- staff and the customer file
    "role": {
        "clerk": _l("Billing clerk"),
        "phone_rep": _l("Phone-service rep"),
        "account_manager": _l("Account manager"),
        "admin": _l("Administrator"),
    },
    "customer_type": {
        "residential": _l("Residential"),
        "commercial": _l("Commercial"),
        "industrial": _l("Industrial"),
    },
    "channel": {"portal": _l("Web page"), "email": _l("E-mail"), "paper": _l("Paper"), "phone": _l("Phone")},
    "relationship": {
        "holder": _l("Account holder"),
        "tenant": _l("Tenant"),
        "landlord": _l("Landlord"),
        "proxy": _l("Proxy"),
        "finance": _l("Finance department"),
        "other": _l("Other"),
    },
    "status": {"active": _l("Active"), "closed": _l("Closed")},
    # the fields a contact record or an audit event names (console/web/events.py)
    "contact_field": {
        "phone": _l("Phone"),
        "postal_address": _l("Postal address"),
        "postal_code": _l("Postal code"),
        "email": _l("E-mail"),
        "account_manager_id": _l("Account manager"),
        "wants_ebill": _l("Wants e-bills"),
        "channels": _l("Channels"),
        "attach_pdf": _l("PDF attached to e-mails"),
    },
    "audit_field": {
        "recipient_id": _l("Recipient"),
        "name": _l("Name"),
        "relationship": _l("Relationship"),
        "channel": _l("Channel"),
        "address": _l("Address"),
        "copies": _l("Copies"),
        "work_item_id": _l("Work item"),
        "collective_billing": _l("Collective billing"),
        "since": _l("Collective billing from"),
        "points": _l("Service points"),
        "kind": _l("Pin"),
        "status": _l("Status"),
        "close_reason": _l("Reason"),
        "note": _l("Note"),
        "outcome": _l("Outcome of the call"),
        "contact_record_id": _l("Contact record"),
        "customer_id": _l("Customer"),
        "bill_id": _l("Bill"),
        "roles": _l("Roles"),
        "active": _l("Active"),
        "period": _l("Period"),
        "file": _l("File"),
        "created": _l("Created"),
        "updated": _l("Updated"),
        "unchanged": _l("Unchanged"),
    },
    "pin_kind": {"together": _l("billed together"), "apart": _l("billed apart")},
    # -- billing
    "bill_type": {
        "regular": _l("Regular bill"),
        "collective": _l("Collective bill"),
        "non_metered": _l("Non-metered bill"),
        "adjustment": _l("Adjustment bill"),
        "installment": _l("Installment bill"),
        "final": _l("Final bill"),
    },
    "ledger_kind": {
        "previous_balance": _l("Previous balance"),
        "electricity": _l("Electricity"),
        "late_fee": _l("Late fee"),
        "business_expansion": _l("Business-expansion fee"),
        "connection": _l("Connection fee"),
        "inspection": _l("Inspection fee"),
        "installment": _l("Installment"),
        "adjustment": _l("Adjustment"),
        "write_off": _l("Write-off"),
        "payment": _l("Payment received"),
        "deposit_applied": _l("Deposit applied"),
    },
    # the customer web page's summary of a bill, a line per kind of charge
    "charge_summary": {
        "previous_balance": _l("Previous balance"),
        "payment": _l("Payments"),
        "electricity": _l("Electricity"),
        "late_fee": _l("Late fees"),
        "business_expansion": _l("Business-expansion fees"),
        "connection": _l("Connection fees"),
        "inspection": _l("Inspection fees"),
        "adjustment": _l("Adjustments"),
        "write_off": _l("Write-offs"),
        "installment": _l("Installments"),
        "deposit_applied": _l("Deposit applied"),
    },
    # payment channels listed on bills (COMPANY_PAYMENT_CHANNELS)
    "payment_channel": {
        "portal": _l("Online on the web page"),
        "wechat": _l("WeChat Pay"),
        "alipay": _l("Alipay"),
        "bank_debit": _l("Bank direct debit"),
        "bank_transfer": _l("Bank transfer"),
        "counter": _l("Service counters"),
    },
    "cycle_status": {
        CycleStatus.OPEN: _l("Open"),
        CycleStatus.RUNNING: _l("Running"),
        CycleStatus.GENERATED: _l("Generated"),
        CycleStatus.PUBLISHED: _l("Published"),
        CycleStatus.FAILED: _l("Failed"),
    },
    "bill_status": {BillStatus.GENERATED: _l("Generated"), BillStatus.PUBLISHED: _l("Published")},
    "band": {
        "tier1": _l("Tier 1"),
        "tier2": _l("Tier 2"),
        "tier3": _l("Tier 3"),
        "peak": _l("Peak"),
        "flat": _l("Flat"),
        "valley": _l("Valley"),
        "demand": _l("Demand charge"),
    },
    # -- delivery
    "delivery_status": {
        DeliveryStatus.QUEUED: _l("Waiting to be sent"),
        DeliveryStatus.SENT: _l("Sent, awaiting confirmation"),
        DeliveryStatus.CONFIRMED: _l("Confirmed"),
        DeliveryStatus.FAILED: _l("Failed"),
        DeliveryStatus.CANCELLED: _l("Cancelled"),
    },
    "confirmed_by": {
        ConfirmedBy.DELIVERED: _l("Delivery report"),
        ConfirmedBy.RELAYED: _l("Relayed (no further report)"),
        ConfirmedBy.EXPANDED: _l("Mailing list (expanded)"),
        ConfirmedBy.PORTAL_OPEN: _l("Opened on the web page"),
        ConfirmedBy.POST: _l("Post"),
    },
    "attempt_outcome": {
        AttemptOutcome.DELIVERED: _l("Delivered"),
        AttemptOutcome.RELAYED: _l("Relayed"),
        AttemptOutcome.DELAYED: _l("Delayed"),
        AttemptOutcome.FAILED: _l("Failed"),
        AttemptOutcome.EXPANDED: _l("Expanded"),
        AttemptOutcome.REFUSED: _l("Refused"),
    },
    "delivery_event": {
        "auto_reply": _l("Auto-reply received"),
        "complaint": _l("Complaint: reported as spam"),
        "reopened": _l("Bounced after a relayed confirmation: reopened"),
    },
    # an ARF complaint's feedback type (RFC 5965)
    "feedback_type": {
        "abuse": _l("spam or abuse"),
        "fraud": _l("fraud or phishing"),
        "virus": _l("virus"),
        "not-spam": _l("not spam after all"),
        "other": _l("other"),
    },
    "delivery_event_code": {
        "abandoned": _l("the address is no longer in use"),
        "challenge": _l("challenge-response"),
        "abuse": _l("abuse"),
        "relayed": _l("relayed"),
        "expanded": _l("expanded"),
    },
    "report_evidence": {
        "text": _l("read from the text of a non-standard bounce"),
        "dsn_fields": _l("read from DSN fields in the body of a broken report"),
    },
    "mailin_class": {
        "report": _l("Delivery report"),
        "auto_reply": _l("Auto-reply"),
        "complaint": _l("Complaint (reported as spam)"),
        "unmatched": _l("Report for no known e-mail"),
        "malformed": _l("Not a delivery report"),
    },
    "mailin_state": {
        "open": _l("Quarantine, not handled"),
        "handled": _l("Quarantine, handled"),
        "all": _l("Whole quarantine"),
        "received": _l("Everything received"),
    },
    "sandbox_outcome": {
        "delivered": _l("Delivered report"),
        "failed": _l("Failed report (5.1.1)"),
        "silent": _l("No answer"),
    },
    # -- paper
    "batch_status": {
        BatchStatus.RENDERING: _l("Rendering"),
        BatchStatus.READY: _l("Ready to print"),
        BatchStatus.PRINTED: _l("Printed"),
    },
    "print_status": {
        PrintItemStatus.WAITING: _l("Not dispatched"),
        PrintItemStatus.DISPATCHED: _l("Dispatched"),
        PrintItemStatus.DELIVERED: _l("Delivered"),
        PrintItemStatus.RETURNED: _l("Returned"),
    },
    # -- work items and the inboxes
    "reason": {
        WorkItemReason.EMAIL_FAILED: _l("E-mail failed"),
        WorkItemReason.EMAIL_UNCONFIRMED: _l("E-mail not confirmed"),
        WorkItemReason.POST_RETURNED: _l("Post returned"),
        WorkItemReason.EMAIL_ADDRESS_CHECK: _l("Confirm the e-mail address"),
    },
    "item_status": {
        WorkItemStatus.OPEN: _l("Waiting"),
        WorkItemStatus.CLAIMED: _l("In progress"),
        WorkItemStatus.CLOSED: _l("Item closed"),
    },
    "status_filter": {
        "open": _l("Waiting"),
        "mine": _l("Mine"),
        "claimed": _l("In progress"),
        "closed": _l("Closed items"),
    },
    "order": {"oldest": _l("Oldest first"), "newest": _l("Newest first")},
    "call_outcome": {"reached": _l("Reached"), "no_answer": _l("Nobody answered"), "wrong_number": _l("Wrong number")},
    "close_reason": {
        "address_corrected": _l("Address corrected and bill resent"),
        "switched_to_paper": _l("Switched to paper"),
        "merged": _l("Merged into the customer's open item for the same address"),
        "confirmed_later": _l("The bill was confirmed delivered after all"),
    },
    "notice": {WorkItemNotice.CONFIRMED_LATER: _l("Good news: a bill on this item was confirmed delivered after all.")},
    "bulk_action": {"claim": _l("Claim"), "reassign": _l("Reassign"), "close": _l("Close")},
    "audit_action": {
        "customer.email": _l("E-mail address corrected"),
        "customer.phone": _l("Phone number corrected"),
        "customer.postal_address": _l("Postal address corrected"),
        "customer.channels": _l("Delivery channels changed"),
        "customer.delivery_wishes": _l("Delivery wishes changed"),
        "customer.contact_details": _l("Contact details changed"),
        "customer.collective_billing": _l("Collective billing changed"),
        "customer.collective_pin": _l("Service points pinned for collective bills"),
        "customer.collective_pin_removed": _l("Collective-bill pin removed"),
        "recipient.add": _l("Bill recipient added"),
        "recipient.update": _l("Bill recipient changed"),
        "recipient.address": _l("Bill recipient's address corrected"),
        "recipient.reactivate": _l("Bill recipient reactivated"),
        "recipient.deactivate": _l("Bill recipient deactivated"),
        "portal.register": _l("Registered on the web page"),
        "portal.password": _l("Web page password changed"),
        "portal.password_reset": _l("Web page password reset"),
        "work_item.claim": _l("Claimed"),
        "work_item.release": _l("Released"),
        "work_item.call": _l("Call recorded"),
        "work_item.reassign": _l("Reassigned"),
        "work_item.close": _l("Item closed"),
    },
    "funnel": {
        "generated": _l("Generated"),
        "published": _l("Published"),
        "emailed": _l("E-mailed"),
        "confirmed": _l("Confirmed"),
        "resent": _l("Resent"),
        "escalated": _l("Escalated"),
        "printed": _l("Printed"),
        "dispatched": _l("Dispatched"),
    },
    # -- the review of a cycle before publishing (console/billing/review.py)
    "review_exception": {
        ReviewException.NON_POSITIVE_AMOUNT: _l("Zero or negative amount"),
        ReviewException.NO_WORKING_CHANNEL: _l("No working channel"),
        ReviewException.PAPER_WITHOUT_ADDRESS: _l("Paper wanted, no postal address"),
        ReviewException.DUE_DATE: _l("Due date outside the rules"),
        ReviewException.COLLECTIVE_SPLIT: _l("Collective account split over several bills"),
    },
    "review_detail": {
        ReviewDetail.EMAIL_WITHOUT_ADDRESS: _l("E-mail wanted, but no address on file"),
        ReviewDetail.PAPER_NOT_ALLOWED: _l("Paper wanted, but paper is for key accounts only"),
        ReviewDetail.HOLDER_WITHOUT_ADDRESS: _l("The account holder has no postal address"),
        ReviewDetail.NO_CHANNEL_CHOSEN: _l("No channel chosen"),
        ReviewDetail.RECIPIENT_WITHOUT_ADDRESS: _l("A paper recipient has no address"),
        ReviewDetail.DUE_BEFORE_ISSUE: _l("Due before it is issued"),
        ReviewDetail.ISSUED_BEFORE_READ: _l("Issued before its meter read"),
        ReviewDetail.TOO_LITTLE_TIME: _l("Less than the minimum time to pay"),
        ReviewDetail.NOT_THE_RULE: _l("Not the due date the rules give"),
    },
}


def label(kind: str, code: str | None) -> str:
    """The label of `code` in the reader's language (the code itself when it has none); memoized per
    request (a queue page asks for the same few labels fifty times)."""
    if code is None:
        return ""
    if not has_request_context():
        return str(LABELS.get(kind, {}).get(code, code))
    cache = g.setdefault("_labels", {})
    key = (kind, code)
    if key not in cache:
        cache[key] = str(LABELS.get(kind, {}).get(code, code))
    return cache[key]


def register(env) -> None:  # noqa: ANN001
    env.globals["label"] = label
    env.globals["inbox_label"] = label
    env.globals["role_label"] = lambda code: label("role", code)
