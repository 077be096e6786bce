"""The bill e-mail: Chinese first with an English part, text and HTML alternatives, the PDF attached
per customer setting, a unique Message-ID per attempt and a VERP envelope sender.

Headers are built with `email.headerregistry` objects under the SMTP policy, from values that have
passed `clean_header_text` (no control characters at all) and `console.emailaddress.parse_address` (one bare addr-spec,
checked by email-validator), so no customer data can add a header or a recipient.
"""

from __future__ import annotations

import re
import secrets
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any

from flask import render_template
from sqlalchemy.orm import Session

from console.models import Bill, Customer, Cycle, Delivery, DeliveryAttempt

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
TOKEN_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class _HeaderClassCache(HeaderRegistry):
    """The standard registry, but each header's class is made once: the stdlib builds a new class
    with type() for every header it parses (about 30 per bill e-mail), a fifth of the build time."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_SHORT_PLAIN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")  # printable ASCII words, single spaces


_PARSED_CONTENT_HEADERS: dict[tuple[str, str], tuple[str, Any]] = {}


class _MailPolicy(EmailPolicy):
    """The SMTP policy (CRLF; headers parsed, checked and folded by the header registry), made
    cheaper where that work is void: a short value of printable ASCII words (MIME-Version, the
    Message-ID, our X- headers) needs no encoding and no folding, and cannot hold a line break, so
    it is stored as given and written as is. Anything else (the Subject, the addresses, the Date,
    the Content- headers the MIME code reads back, long or non-ASCII values) takes the registry's
    path."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if (
            isinstance(value, str)
            and len(name) + 2 + len(value) <= 78
            and not name.lower().startswith("content-")  # read back often by the MIME code: parse once
            and _SHORT_PLAIN.match(value)
        ):
            return name, value
        if isinstance(value, str) and name.lower().startswith("content-") and "boundary" not in value and "name=" not in value:
            # The parts' Content-Type, -Transfer-Encoding and -Disposition repeat in every message:
            # parsed once each. A parsed header is immutable (a change replaces it), so one is shared.
            key = (name, value)
            parsed = _PARSED_CONTENT_HEADERS.get(key)
            if parsed is None:
                parsed = super().header_store_parse(name, value)
                if len(_PARSED_CONTENT_HEADERS) < 256:  # a handful in practice; bounded all the same
                    _PARSED_CONTENT_HEADERS[key] = parsed
            return parsed
        return super().header_store_parse(name, value)

    def _fold(self, name: str, value: Any, refold_binary: bool = False) -> str:
        # A parsed header whose value is short printable ASCII words is written as its value: what
        # the registry's folder makes of it too, without rebuilding its parse tree (a tenth of a
        # message's build). Parsing on store has checked it; anything else is folded as usual.
        if hasattr(value, "name") and not value.defects:
            text = str(value)
            if len(name) + 2 + len(text) <= 78 and _SHORT_PLAIN.match(text):
                return f"{name}: {text}{self.linesep}"
        return super()._fold(name, value, refold_binary)


MAIL_POLICY = _MailPolicy(linesep="\r\n", header_factory=_HeaderClassCache())


def clean_header_text(value: Any, limit: int = 200) -> str:
    """Text for a header (display name, subject part): control characters become one space."""
    return _CONTROL.sub(" ", str(value or "")).strip()[:limit]


def new_token(delivery_id: int, attempt_no: int) -> str:
    """The VERP token: [A-Za-z0-9-] only (xtext- and VERP-safe), unique and unguessable."""
    return f"d{delivery_id}-{attempt_no}-{secrets.token_hex(8)}"


def envelope_sender(token: str, bounce_domain: str) -> str:
    if not TOKEN_RE.match(token):
        raise ValueError("bad token")
    return f"bounces+{token}@{bounce_domain}"


def message_id_for(token: str, bounce_domain: str) -> str:
    return f"<{token}@{bounce_domain}>"


def xtext(value: str) -> str:
    """RFC 3461 xtext: '+', '=', controls and non-ASCII as +XX."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (43, 61):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def bill_text(bill: Bill, customer: Customer, portal_url: str, registration: dict | None = None) -> str:
    lines = [
        f"尊敬的 {clean_header_text(customer.name)}：",
        "",
        f"您的电费账单 {bill.bill_no} 已出账，明细如下：",
        "",
    ]
    from flask_babel import force_locale

    from console.billing.document import note
    from console.web.labels import LABELS, label

    with force_locale("zh"):  # the Chinese part names each charge by its Chinese label (and the file's note)
        for line in bill.lines:
            if line.kind in LABELS["ledger_kind"]:
                text = " ".join(part for part in (label("ledger_kind", line.kind), note(line)) if part)
            else:  # a kind without a label: its description as written
                text = line.description
            lines.append(f"  {_CONTROL.sub(' ', text)}  {line.amount:.2f} 元")
    lines += [
        "",
        f"本期应缴：{bill.current_balance:.2f} 元    缴费截止日：{bill.due_date.isoformat()}",
        f"在线查看账单：{portal_url}",
    ]
    if registration:  # not yet registered: the bill's single-use code (console.billing.document.registration)
        lines.append(f"注册码（仅限使用一次）：{registration['code']}  注册网址：{registration['url']}")
    lines += [
        "",
        "----",
        f"Dear customer, your electricity bill {bill.bill_no} is ready.",
        f"Amount due: CNY {bill.current_balance:.2f}, due by {bill.due_date.isoformat()}.",
        f"View it online: {portal_url}",
    ]
    if registration:
        lines.append(f"Registration code (single use): {registration['code']}  Register at: {registration['url']}")
    lines.append("")
    return "\n".join(lines)


def build_message(
    session: Session,
    delivery: Delivery,
    attempt: DeliveryAttempt,
    config: dict,
    with_html: bool = True,
) -> EmailMessage:
    """The e-mail of one attempt. Needs an app context (templates) for the HTML part."""
    bill = session.get(Bill, delivery.bill_id)
    customer = session.get(Customer, delivery.customer_id)
    cycle = session.get(Cycle, bill.cycle_id)
    portal_url = f"{config['PORTAL_BASE_URL'].rstrip('/')}/my/bills/{bill.id}"
    period = clean_header_text(cycle.period, 7)

    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = f"【电费账单】{period} 账单 {bill.bill_no} / Electricity bill {period}"
    msg["From"] = Address(display_name="电费账单 Billpost", addr_spec=config["MAIL_FROM"])
    msg["To"] = Address(display_name=clean_header_text(delivery.recipient_name), addr_spec=delivery.address)
    msg["Message-ID"] = attempt.message_id
    msg["Date"] = attempt.created_at
    msg["X-Billpost-Token"] = attempt.token
    msg["X-Billpost-Bill"] = bill.bill_no
    msg["Auto-Submitted"] = "auto-generated"
    # base64 for both parts: the message stays 7-bit (no 8BITMIME needed from the relay), and the
    # stdlib skips its trial encodings to choose.
    from console.billing import document

    way_in = document.registration(session, bill, customer, config, qr="part" if with_html else "none")
    msg.set_content(bill_text(bill, customer, portal_url, way_in), charset="utf-8", cte="base64")
    if with_html:
        from flask_babel import force_locale

        # Jobs have no request to pick a locale from: the bill document is in the default (Chinese).
        with force_locale(config.get("BABEL_DEFAULT_LOCALE") or "zh"):
            html = render_template(
                "delivery/email.html",
                bill=bill,
                customer=customer,
                portal_url=portal_url,
                bill_html=document.render_bill_html(session, bill, "email", way_in),
            )
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
        _add_images(msg.get_payload()[1], html, way_in, config)
    if customer.attaches_pdf:
        data = bill_pdf_bytes(session, bill)
        if data is not None:
            msg.add_attachment(data, maintype="application", subtype="pdf", filename=f"{bill.bill_no}.pdf")
    for part in msg.walk():
        if part.is_multipart():
            # "=_" cannot occur in base64, which every leaf part is: unique without scanning the text
            # (RFC 2045 §6.7), and short, so the Content-Type line needs no folding (both the stdlib's
            # work otherwise).
            part.set_boundary(f"=_{secrets.token_hex(12)}")
    return msg


def _add_images(html_part: EmailMessage, html: str, way_in: dict | None, config: dict) -> None:
    """The images the HTML names by Content-ID (console.billing.document.LOGO_CID, QR_CID), as parts
    of a multipart/related beside it."""
    from console.billing import document

    images = []
    if f"cid:{document.LOGO_CID}" in html:
        images.append((document.logo_png(config["COMPANY_LOGO"]), document.LOGO_CID))
    if way_in and way_in.get("qr_png") and f"cid:{document.QR_CID}" in html:
        images.append((way_in["qr_png"], document.QR_CID))
    for data, cid in images:
        html_part.add_related(data, maintype="image", subtype="png", cid=f"<{cid}>")


def bill_pdf_bytes(session: Session, bill: Bill) -> bytes | None:
    """The stored bill PDF (console.paper.pdf renders it the first time); None if it cannot be made
    (logged there): the e-mail then goes without it."""
    from console.paper.pdf import bill_pdf_if_possible

    path = bill_pdf_if_possible(session, bill)
    return path.read_bytes() if path is not None else None
