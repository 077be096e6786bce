"""Translated labels for the codes the inboxes show (reasons, statuses, call outcomes, funnel steps)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
    "reason": {
        "email_failed": _l("E-mail failed"),
        "email_unconfirmed": _l("E-mail not confirmed"),
        "post_returned": _l("Post returned"),
    },
    "item_status": {"open": _l("Waiting"), "claimed": _l("In progress"), "closed": _l("Item closed")},
    "status_filter": {
        "open": _l("Waiting"),
        "mine": _l("Mine"),
        "claimed": _l("In progress"),
        "closed": _l("Closed items"),
    },
    "order": {"oldest": _l("Oldest first"), "newest": _l("Newest first")},
    "call_outcome": {"reached": _l("Reached"), "no_answer": _l("Nobody answered"), "wrong_number": _l("Wrong number")},
    "delivery_status": {
        "queued": _l("Queued"),
        "sent": _l("Sent, awaiting confirmation"),
        "confirmed": _l("Confirmed"),
        "failed": _l("Failed"),
        "cancelled": _l("Cancelled"),
    },
    "confirmed_by": {
        "delivered": _l("Delivered"),
        "relayed": _l("Relayed"),
        "portal_open": _l("Opened on the web"),
        "post": _l("Posted"),
    },
    "attempt_outcome": {
        "delivered": _l("Delivered"),
        "relayed": _l("Relayed"),
        "delayed": _l("Delayed"),
        "failed": _l("Failed"),
        "expanded": _l("Expanded"),
        "refused": _l("Refused"),
    },
    "close_reason": {
        "address_corrected": _l("Address corrected and bill resent"),
        "switched_to_paper": _l("Switched to paper"),
    },
    "cycle_status": {
        "open": _l("Open"),
        "running": _l("Running"),
        "generated": _l("Generated"),
        "published": _l("Published"),
        "failed": _l("Failed"),
    },
    "bill_status": {"generated": _l("Generated"), "published": _l("Published")},
    "audit_action": {
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
}


def inbox_label(kind: str, code: str | None) -> str:
    """The label in the request's language; memoized per request (a queue page asks for the same few
    labels fifty times)."""
    if code is None:
        return ""
    try:
        from flask import g

        cache = g.setdefault("_inbox_labels", {})
    except RuntimeError:  # outside a request
        return str(LABELS.get(kind, {}).get(code, code))
    key = (kind, code)
    if key not in cache:
        cache[key] = str(LABELS.get(kind, {}).get(code, code))
    return cache[key]
