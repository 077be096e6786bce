"""Translated labels for billing codes, added to the shared `label(kind, code)` template global."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from console.web.labels import LABELS

LABELS.setdefault("bill_type", {}).update({
    "regular": _l("Regular bill"),
    "collective": _l("Collective bill"),
    "non_metered": _l("Non-metered bill"),
    "adjustment": _l("Adjustment bill"),
    "installment": _l("Installment bill"),
    "final": _l("Final bill"),
})
LABELS.setdefault("ledger_kind", {}).update({
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
})
LABELS.setdefault("cycle_status", {}).update({
    "open": _l("Open"),
    "running": _l("Running"),
    "generated": _l("Generated"),
    "published": _l("Published"),
    "failed": _l("Failed"),
})
LABELS.setdefault("bill_status", {}).update({"generated": _l("Generated"), "published": _l("Published")})
LABELS.setdefault("band", {}).update({
    "tier1": _l("Tier 1"),
    "tier2": _l("Tier 2"),
    "tier3": _l("Tier 3"),
    "peak": _l("Peak"),
    "flat": _l("Flat"),
    "valley": _l("Valley"),
    "demand": _l("Demand charge"),
})
