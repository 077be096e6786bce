"""The portal's settings: app config first (tests set them there), then the environment, then defaults.

Documented in the README table.
"""

from __future__ import annotations

import os

from flask import current_app

DEFAULTS: dict[str, str] = {
    # Sign-in throttles; failed attempts only, the lock lifts when the window ends.
    "PORTAL_LOGIN_ACCOUNT_LIMIT": "5 per 15 minutes",
    "PORTAL_LOGIN_ADDRESS_LIMIT": "30 per 15 minutes",
    # Code requests and code checks (registration, password reset).
    "PORTAL_CODE_ACCOUNT_LIMIT": "5 per hour",
    "PORTAL_CODE_ADDRESS_LIMIT": "30 per hour",
    "PORTAL_CODE_MINUTES": "10",
    "PORTAL_CODE_ATTEMPTS": "5",
    "PORTAL_BILL_CODE_DAYS": "90",
    "PORTAL_PAGE_SIZE": "24",
}


def setting(name: str) -> str:
    value = current_app.config.get(name)
    if value is None or value == "":
        value = os.environ.get(name) or DEFAULTS[name]
    return str(value)


def int_setting(name: str) -> int:
    return int(setting(name))
