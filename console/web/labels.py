"""Translated labels for the codes stored in the database (roles, types, channels...)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
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
}


def label(kind: str, code: str | None) -> str:
    if code is None:
        return ""
    return str(LABELS.get(kind, {}).get(code, code))


def register(env) -> None:  # noqa: ANN001
    env.globals["label"] = label
    env.globals["role_label"] = lambda code: label("role", code)
