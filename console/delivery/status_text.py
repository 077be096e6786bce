"""What an RFC 3463 status means, for the person who reads the work item.

`status_meaning(code)` is a lazy string in the reader's language (a template global registered by
the delivery blueprint); `meaning_pair(code)` gives the Chinese and the English text for the
work item's stored summary (summaries are bilingual, as the rest of the console's are). The
Chinese comes from this domain's catalog (console/delivery/translations), so there is one text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from flask_babel import gettext


def N_(message: str) -> str:  # noqa: N802 - the marker name Babel extracts
    """Marks a string for the catalog; translated where it is shown."""
    return message

# subject.detail → meaning (RFC 3463 §3 and the codes real servers use most).
MEANINGS = {
    "1.0": N_("a problem with the recipient's address"),
    "1.1": N_("the mailbox does not exist"),
    "1.2": N_("the recipient's mail domain does not exist"),
    "1.3": N_("the recipient's address is malformed"),
    "1.4": N_("the address is ambiguous"),
    "1.6": N_("the mailbox has moved and has no forwarding address"),
    "1.10": N_("the mailbox does not exist"),
    "2.0": N_("a problem with the recipient's mailbox"),
    "2.1": N_("the mailbox is disabled and takes no mail"),
    "2.2": N_("the recipient's mailbox is full"),
    "2.3": N_("the message is larger than the mailbox accepts"),
    "2.4": N_("a mailing list expansion problem"),
    "3.0": N_("a problem with the receiving mail system"),
    "3.1": N_("the receiving mail system is full"),
    "3.2": N_("the receiving mail system does not take mail now"),
    "3.4": N_("the message is too big for the receiving system"),
    "4.0": N_("a network or routing problem"),
    "4.1": N_("the receiving server did not answer"),
    "4.2": N_("the connection to the receiving server was lost"),
    "4.3": N_("a directory server failure"),
    "4.4": N_("no route to the recipient's mail server"),
    "4.6": N_("a mail loop was detected"),
    "4.7": N_("the message was too long in the queue and expired"),
    "5.0": N_("a mail protocol problem"),
    "5.3": N_("too many recipients"),
    "6.0": N_("a problem with the message content"),
    "7.0": N_("refused by the receiving system's security or policy"),
    "7.1": N_("refused: the sender is not allowed to deliver there (policy or spam filter)"),
    "7.26": N_("refused: the message failed the receiving system's authentication checks"),
}
CLASSES = {"4": N_("temporary failure"), "5": N_("permanent failure"), "2": N_("success")}
STATUS_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


def _parts(code: str | None) -> tuple[str, str] | None:
    match = STATUS_RE.match((code or "").strip())
    if not match:
        return None
    return match.group(1), f"{int(match.group(2))}.{int(match.group(3))}"


def meaning_msgid(code: str | None) -> tuple[str | None, str | None]:
    """The English texts (catalog ids) for the class and the subject.detail of `code`."""
    parts = _parts(code)
    if parts is None:
        return None, None
    klass, detail = parts
    meaning = MEANINGS.get(detail) or MEANINGS.get(detail.split(".")[0] + ".0")
    return CLASSES.get(klass), meaning


def status_meaning(code: str | None) -> str:
    """`5.1.1` → "permanent failure: the mailbox does not exist" in the reader's language."""
    parts = _parts(code)
    if parts is None:
        return ""
    klass, detail = parts
    meaning = MEANINGS.get(detail) or MEANINGS.get(detail.split(".")[0] + ".0")
    head = gettext(CLASSES[klass]) if klass in CLASSES else ""
    return f"{head}: {gettext(meaning)}" if meaning is not None else head


@lru_cache(maxsize=1)
def _zh_catalog() -> dict[str, str]:
    from babel.messages.pofile import read_po

    path = Path(__file__).resolve().parent / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if isinstance(m.id, str) and m.string}


def meaning_pair(code: str | None) -> tuple[str, str] | None:
    """(Chinese, English) meaning of `code`, for a stored bilingual summary; None if unknown."""
    klass, meaning = meaning_msgid(code)
    if klass is None:
        return None
    zh = _zh_catalog()
    en = f"{klass}: {meaning}" if meaning else klass
    zh_text = zh.get(klass, klass) + (f"：{zh.get(meaning, meaning)}" if meaning else "")
    return zh_text, en
