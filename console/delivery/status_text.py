"""What an SMTP enhanced status code means (RFC 3463, with the codes registered since in RFC 3886,
4468, 4954, 5248, 6531, 6710, 7293, 7372, 7505, 8617 and 8689): the one table of them, X.0.0 and
X.1.0 to X.7.30, for every screen that shows an outcome ("failed 5.1.1").

`status_meaning(code)` is the class and the meaning in the reader's language ("永久性失败：目标邮箱地址
不存在" / "permanent failure: bad destination mailbox address"), `status_text(code)` the code before
it. The English texts are the RFC's titles and the catalog ids; their Chinese is in this domain's
catalog (console/delivery/translations). A detail the table lacks is read as its subject's X.N.0.
"""

from __future__ import annotations

import re

from flask_babel import gettext


def N_(message: str) -> str:  # noqa: N802 - the marker name Babel extracts
    """Marks a string for the catalog; translated where it is shown."""
    return message


# subject.detail → meaning
MEANINGS = {
    "0.0": N_("other undefined status"),
    "1.0": N_("other address status"),
    "1.1": N_("bad destination mailbox address"),
    "1.2": N_("bad destination system address"),
    "1.3": N_("bad destination mailbox address syntax"),
    "1.4": N_("destination mailbox address ambiguous"),
    "1.5": N_("destination address valid"),
    "1.6": N_("destination mailbox has moved, no forwarding address"),
    "1.7": N_("bad sender's mailbox address syntax"),
    "1.8": N_("bad sender's system address"),
    "1.9": N_("message relayed to a non-compliant mailer"),
    "1.10": N_("recipient address has null MX"),
    "2.0": N_("other or undefined mailbox status"),
    "2.1": N_("mailbox disabled, not accepting messages"),
    "2.2": N_("mailbox full"),
    "2.3": N_("message length exceeds administrative limit"),
    "2.4": N_("mailing list expansion problem"),
    "3.0": N_("other or undefined mail system status"),
    "3.1": N_("mail system full"),
    "3.2": N_("system not accepting network messages"),
    "3.3": N_("system not capable of selected features"),
    "3.4": N_("message too big for system"),
    "3.5": N_("system incorrectly configured"),
    "3.6": N_("requested priority was changed"),
    "4.0": N_("other or undefined network or routing status"),
    "4.1": N_("no answer from host"),
    "4.2": N_("bad connection"),
    "4.3": N_("directory server failure"),
    "4.4": N_("unable to route"),
    "4.5": N_("mail system congestion"),
    "4.6": N_("routing loop detected"),
    "4.7": N_("delivery time expired"),
    "5.0": N_("other or undefined protocol status"),
    "5.1": N_("invalid command"),
    "5.2": N_("syntax error"),
    "5.3": N_("too many recipients"),
    "5.4": N_("invalid command arguments"),
    "5.5": N_("wrong protocol version"),
    "5.6": N_("authentication exchange line is too long"),
    "6.0": N_("other or undefined media error"),
    "6.1": N_("media not supported"),
    "6.2": N_("conversion required and prohibited"),
    "6.3": N_("conversion required but not supported"),
    "6.4": N_("conversion with loss performed"),
    "6.5": N_("conversion failed"),
    "6.6": N_("message content not available"),
    "6.7": N_("non-ASCII addresses not permitted for that sender or recipient"),
    "6.8": N_("UTF-8 string reply is required, but not permitted by the client"),
    "6.9": N_("UTF-8 header message cannot be transferred to one or more recipients"),
    "7.0": N_("other or undefined security status"),
    "7.1": N_("delivery not authorized, message refused"),
    "7.2": N_("mailing list expansion prohibited"),
    "7.3": N_("security conversion required but not possible"),
    "7.4": N_("security features not supported"),
    "7.5": N_("cryptographic failure"),
    "7.6": N_("cryptographic algorithm not supported"),
    "7.7": N_("message integrity failure"),
    "7.8": N_("authentication credentials invalid"),
    "7.9": N_("authentication mechanism is too weak"),
    "7.10": N_("encryption needed"),
    "7.11": N_("encryption required for requested authentication mechanism"),
    "7.12": N_("a password transition is needed"),
    "7.13": N_("user account disabled"),
    "7.14": N_("trust relationship required"),
    "7.15": N_("priority level is too low"),
    "7.16": N_("message is too big for the specified priority"),
    "7.17": N_("mailbox owner has changed"),
    "7.18": N_("domain owner has changed"),
    "7.19": N_("RRVS test cannot be completed"),
    "7.20": N_("no passing DKIM signature found"),
    "7.21": N_("no acceptable DKIM signature found"),
    "7.22": N_("no valid author-matched DKIM signature found"),
    "7.23": N_("SPF validation failed"),
    "7.24": N_("SPF validation error"),
    "7.25": N_("reverse DNS validation failed"),
    "7.26": N_("multiple authentication checks failed"),
    "7.27": N_("sender address has null MX"),
    "7.28": N_("mail flood detected"),
    "7.29": N_("ARC validation failure"),
    "7.30": N_("REQUIRETLS support required"),
}
CLASSES = {"2": N_("success"), "4": N_("temporary failure"), "5": N_("permanent failure")}
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
    """`5.1.1` → "permanent failure: bad destination mailbox address" in the reader's language; ""
    for something that is not an enhanced status code."""
    klass, meaning = meaning_msgid(code)
    if klass is None:
        return ""
    if meaning is None:
        return gettext(klass)
    return gettext("%(class)s: %(meaning)s", **{"class": gettext(klass), "meaning": gettext(meaning)})


def status_text(code: str | None) -> str:
    """`5.1.1 永久性失败：目标邮箱地址不存在` — the code and its meaning; the code alone if unknown."""
    code = (code or "").strip()
    meaning = status_meaning(code)
    return f"{code} {meaning}" if meaning else code
