"""Who may get paper bills. The company's rule for now: key accounts only (PAPER_KEY_ACCOUNTS_ONLY)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from console.models import Customer

PAPER_REFUSED = _l("Paper bills are for key accounts only for now; choose e-mail or the web page.")


def paper_allowed(customer: Customer, key_accounts_only: bool = True) -> bool:
    return customer.key_account or not key_accounts_only


POSTAL_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@dataclass(frozen=True)
class PaperRecipient:
    """Who receives a paper copy of a customer's bills, where, and how many copies."""

    name: str
    address: str
    postal_code: str
    copies: int
    recipient_id: int | None  # None: the account holder at the customer's postal address

    @property
    def delivery_address(self) -> str:
        """The address a paper delivery records (and the envelope shows): a recipient's as written, the
        holder's postal address with the customer's postal code."""
        address = self.address.strip()
        if self.recipient_id is None and self.postal_code and self.postal_code not in address:
            address = f"{address} {self.postal_code}"
        return address[:300]


def postal_code_of(address: str, fallback: str | None = None) -> str:
    """The 6-digit postal code written in an address, else the fallback (the customer's)."""
    match = POSTAL_CODE.search(address or "")
    return match.group(1) if match else (fallback or "")


def paper_recipients(customer: Customer, key_accounts_only: bool = True) -> list[PaperRecipient]:
    """Who gets a paper copy of the customer's bills: the holder when the customer asked for paper,
    then the active recipients with the paper channel, each with its copies; nobody while the
    customer may not have paper (see PAPER_REFUSED). Publishing and follow-up both ask this."""
    if not paper_allowed(customer, key_accounts_only):
        return []
    found: list[PaperRecipient] = []
    seen: set[str] = set()
    for rec in customer.recipients:
        if rec.channel != "paper" or not rec.active or not (rec.address or "").strip() or rec.address in seen:
            continue
        seen.add(rec.address)
        found.append(
            PaperRecipient(rec.name, rec.address, postal_code_of(rec.address, customer.postal_code), rec.copies, rec.id)
        )
    if customer.channel_paper and (customer.postal_address or "").strip() and customer.postal_address not in seen:
        found.insert(
            0,
            PaperRecipient(customer.name, customer.postal_address, customer.postal_code or "", 1, None),
        )
    return found
