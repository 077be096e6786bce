"""Who may get paper bills. The company's rule for now: key accounts only (PAPER_KEY_ACCOUNTS_ONLY)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from console.models import Customer

PAPER_REFUSED = _l("Paper bills are for key accounts only for now; choose e-mail or the web page.")


def paper_allowed(customer: Customer, key_accounts_only: bool = True) -> bool:
    return customer.key_account or not key_accounts_only
