"""The one rule for an e-mail address the console accepts: what the sender can put in an envelope.

Used by the customer file (imports and screens), the inbox's corrections and publishing.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
# A bare addr-spec only: anything that could start a display name, a comment, a route or a second
# address (`a@x.org)<b@evil>`, `a@x.org, b@evil`, `"a" <b@evil>`) is refused outright.
_FORBIDDEN = re.compile(r"[\s<>()\[\],;:\"\\]")


class InvalidAddress(ValueError):
    pass


def parse_address(raw: str) -> str:
    """One e-mail address, strictly: a bare addr-spec, ASCII local part, valid domain; normalized."""
    value = (raw or "").strip()
    if not value or len(value) > 254:
        raise InvalidAddress("empty or too long address")
    if _FORBIDDEN.search(value) or _CONTROL.search(value) or value.count("@") != 1:
        raise InvalidAddress(f"not a single plain address: {value[:80]!r}")
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False, test_environment=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return result.ascii_email or result.normalized
