"""The bill as a document: one context and one set of templates for the console, the web page,
the e-mail body and the PDF (paper), so every medium shows the same itemized bill.

Contract used by portal, delivery and paper: `render_bill_html(session, bill, medium)`.

The format follows customer type x bill type (`bill.template`, e.g. "industrial_final"): the
template is `bills/<customer type>.html` (which extends `bills/document.html`), and the bill type
switches its sections (a final bill settles the deposit, an adjustment bill names the period it
corrects, an installment bill shows the plan). Inline CSS only, tables only: xhtml2pdf renders the
pdf medium with no external resources; no JavaScript anywhere.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import current_app, render_template
from flask_babel import get_locale
from jinja2 import TemplateNotFound
from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.orm import Session

from console.config import PROJECT_ROOT
from console.models import Bill, Customer, ServicePoint
from console.models.billing import BillMessage, Cycle, Deposit, Tariff
from console.models.portal import BillRegistrationCode, WebAccount
from console.money import format_yuan

MEDIA = ("console", "web", "email", "pdf")
FEE_KINDS = ("business_expansion", "connection", "inspection")
ADJUSTMENT_KINDS = ("adjustment", "write_off")
# Lines whose description is the imported file's own note (shown); the others' descriptions are
# generation's codes ("late fee", "COM 2026-11") and the label alone names them, in the reader's language.
NOTE_KINDS = ("payment", "business_expansion", "connection", "inspection", "adjustment", "write_off")
# The document carries the registration code of a customer not yet registered in the e-mail; the
# paper/PDF print layout places it beside the addressee block itself (`print_context`).
REGISTRATION_MEDIA = ("email",)
# In the e-mail the logo and the QR code are parts of the message (multipart/related), named by
# Content-ID: Gmail and Outlook do not show images given as data: URIs. Every other medium embeds them.
LOGO_CID = "logo@billpost"
QR_CID = "registration-qr@billpost"


def yuan(value: Any) -> str:
    if value is None or value == "":
        return ""
    return format_yuan(Decimal(str(value)))


PREFETCH_KEY = "billpost.bill_documents"
TARIFF_NAMES_KEY = "billpost.tariff_names"


def prefetch_documents(session: Session, bills: list[Bill]) -> None:
    """Load the deposits, marketing messages, registered customers and stored registration codes of
    many bills in four queries, for a sender that renders a batch of bills (otherwise four queries per
    bill). Kept on the session until it closes."""
    ids = [b.id for b in bills]
    customer_ids = {b.customer_id for b in bills}
    deposits: dict[int, list] = {}
    for deposit in session.scalars(
        select(Deposit).where(Deposit.customer_id.in_(customer_ids)).order_by(Deposit.received_on)
    ) if customer_ids else []:
        deposits.setdefault(deposit.customer_id, []).append(deposit)
    messages: dict[int, list] = {}
    for message in session.scalars(
        select(BillMessage).where(BillMessage.bill_id.in_(ids)).order_by(BillMessage.position)
    ) if ids else []:
        messages.setdefault(message.bill_id, []).append(message)
    registered = set(session.scalars(
        select(WebAccount.customer_id).where(WebAccount.customer_id.in_(customer_ids))
    )) if customer_ids else set()
    coded = set(session.scalars(
        select(BillRegistrationCode.bill_id).where(BillRegistrationCode.bill_id.in_(ids))
    )) if ids else set()
    session.info[PREFETCH_KEY] = {"bills": set(ids), "deposits": deposits, "messages": messages,
                                  "registered": registered, "coded": coded}


def note(line: Any) -> str:
    """The line's description when it is the source file's note, else nothing."""
    return line.description if line.kind in NOTE_KINDS and line.description else ""


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@lru_cache(maxsize=8)
def logo_png(relpath: str) -> bytes:
    """The company logo (COMPANY_LOGO, a PNG under static/); empty when there is none."""
    path = (PROJECT_ROOT / "static" / relpath).resolve()
    if not path.is_relative_to(PROJECT_ROOT / "static") or not path.is_file():
        return b""
    return Path(path).read_bytes()


@lru_cache(maxsize=8)
def _logo_uri(relpath: str) -> str:
    data = logo_png(relpath)
    return _png_data_uri(data) if data else ""


def qr_png(text: str, box: int = 6) -> bytes:
    """A QR code of `text` as PNG bytes, medium error correction, a quiet zone, `box` pixels a module.
    The code comes from zxing-cpp (C++: 0.5 ms; the pure-Python `qrcode` package took 4 ms, the
    largest cost of a bill e-mail), the PNG from Pillow, drawn at one pixel a module, made 1-bit and
    then enlarged (enlarging first, then converting 36 times the pixels, took half the time)."""
    import zxingcpp
    from PIL import Image

    modules = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
        scale=1, add_quiet_zones=True
    )
    height, width = modules.shape[:2]
    image = Image.frombytes("L", (width, height), bytes(modules))
    out = io.BytesIO()
    image.convert("1").resize((width * box, height * box), Image.NEAREST).save(out, format="PNG")
    return out.getvalue()


def company(config: Mapping, english: bool, medium: str = "web") -> dict[str, Any]:
    """The company block of every bill, from configuration (README: COMPANY_*); in an e-mail the logo
    is the message's part LOGO_CID (console.delivery.message attaches it)."""
    logo = _logo_uri(config["COMPANY_LOGO"])
    return {
        "name": config["COMPANY_NAME_EN"] if english else config["COMPANY_NAME"],
        "hotline": config["COMPANY_HOTLINE"],
        "address": config["COMPANY_ADDRESS"],
        "logo": f"cid:{LOGO_CID}" if logo and medium == "email" else logo,
        "payment_channels": [c.strip() for c in config["COMPANY_PAYMENT_CHANNELS"].split(",") if c.strip()],
        "bank": config["COMPANY_BANK"],
        "bank_account": config["COMPANY_BANK_ACCOUNT"],
        "payee": config["COMPANY_NAME"],
        "portal_url": config["PORTAL_BASE_URL"].rstrip("/") + "/my/",
    }


def registration_url(config: Mapping, account_no: str) -> str:
    """The web page where the code printed on a bill is entered, with the account number filled in."""
    return config["PORTAL_BASE_URL"].rstrip("/") + "/my/register/complete?" + urlencode({"identifier": account_no})


def registration(
    session: Session, bill: Bill, customer: Customer, config: Mapping, qr: str = "inline"
) -> dict[str, Any] | None:
    """The way in for a customer not yet registered: the bill's single-use code, the address and its QR
    code (the address with the account number). `qr`: "inline", a data: URI in "qr" (web page, PDF);
    "part", the PNG in "qr_png" and "qr" naming the message's part QR_CID (e-mail); "none". None for
    a registered customer. Flushes (the code's digest, when publishing has not stored it)."""
    from console.portal.services import registration_code_for_bill

    prefetched = session.info.get(PREFETCH_KEY)
    if prefetched is not None and bill.id in prefetched["bills"]:
        registered, stored = customer.id in prefetched["registered"], bill.id in prefetched["coded"]
    else:
        registered, stored = session.scalar(select(exists().where(WebAccount.customer_id == customer.id))), None
    if registered:
        return None
    code = registration_code_for_bill(session, bill, config["SECRET_KEY"], days=int(config["PORTAL_BILL_CODE_DAYS"]),
                                      stored=stored)
    if prefetched is not None and bill.id in prefetched["bills"]:
        prefetched["coded"].add(bill.id)
    url = registration_url(config, customer.account_no)
    way_in = {"code": code, "url": url, "address": config["PORTAL_BASE_URL"].rstrip("/") + "/my/register", "qr": ""}
    if qr == "inline":
        way_in["qr"] = _png_data_uri(qr_png(url))
    elif qr == "part":
        way_in["qr"], way_in["qr_png"] = f"cid:{QR_CID}", qr_png(url)
    return way_in


def tariff_names(session: Session, english: bool) -> dict[str, str]:
    """Tariff code -> its name in the reader's language (the latest version's; tariffs are data).
    Asked once per session: a sender's batch renders hundreds of bills with the same names."""
    cached = session.info.setdefault(TARIFF_NAMES_KEY, {})
    if english not in cached:
        cached[english] = _tariff_names(session, english)
    return cached[english]


def _tariff_names(session: Session, english: bool) -> dict[str, str]:
    names: dict[str, str] = {}
    for code, name, name_en in session.execute(
        select(Tariff.code, Tariff.name, Tariff.name_en).order_by(Tariff.code, Tariff.effective_from)
    ):
        names[code] = (name_en or name) if english else name
    return names


# One bill's deposits and messages (the web page, the console), built once: building a statement and
# its cache key cost as much CPU as running it.
_DEPOSITS = (
    select(Deposit)
    .where(Deposit.customer_id == bindparam("customer_id"),
           or_(Deposit.applied_bill_id.is_(None), Deposit.applied_bill_id == bindparam("bill_id")))
    .order_by(Deposit.received_on)
)
_MESSAGES = select(BillMessage).where(BillMessage.bill_id == bindparam("bill_id")).order_by(BillMessage.position)


def bill_document(session: Session, bill: Bill) -> dict[str, Any]:
    customer = session.get(Customer, bill.customer_id)
    point = session.get(ServicePoint, bill.service_point_id) if bill.service_point_id else None
    cycle = session.get(Cycle, bill.cycle_id)
    lines = list(bill.lines)

    def of(*kinds: str) -> list:
        return [line for line in lines if line.kind in kinds]

    prefetched = session.info.get(PREFETCH_KEY)
    if prefetched is not None and bill.id in prefetched["bills"]:
        deposits = [d for d in prefetched["deposits"].get(bill.customer_id, [])
                    if d.applied_bill_id is None or d.applied_bill_id == bill.id]
        messages = prefetched["messages"].get(bill.id, [])
    else:
        deposits = session.scalars(_DEPOSITS, {"customer_id": bill.customer_id, "bill_id": bill.id}).all()
        messages = session.scalars(_MESSAGES, {"bill_id": bill.id}).all()
    adjusted_periods = sorted({(line.details or {}).get("for_period") for line in of(*ADJUSTMENT_KINDS)} - {None})
    customer_type, _, bill_type = bill.template.partition("_")
    return {
        "bill": bill,
        "customer": customer,
        "point": point,
        "cycle": cycle,
        "lines": lines,
        "customer_type": customer_type or customer.customer_type,
        "bill_type": bill_type or bill.bill_type,
        "previous": of("previous_balance"),
        "payments": of("payment"),
        "electricity": of("electricity"),
        "fees": of(*FEE_KINDS),
        "late_fees": of("late_fee"),
        "installments": of("installment"),
        "adjustments": of(*ADJUSTMENT_KINDS),
        "deposit_lines": of("deposit_applied"),
        "adjusted_periods": adjusted_periods,
        "deposits": deposits,
        "messages": messages,
        "yuan": yuan,
        "note": note,
    }


_ASK = object()  # registration not given: worked out here


def _context(session: Session, bill: Bill, medium: str, way_in: Any = _ASK) -> dict[str, Any]:
    """The document, the reader's language, the company and (e-mail and PDF of a customer not yet
    registered) the registration code; `way_in`: the registration the caller already has."""
    context = bill_document(session, bill)
    english = str(get_locale() or "zh").startswith("en")
    config = current_app.config
    context["english"] = english
    context["company"] = company(config, english, medium)
    names = tariff_names(session, english)
    context["tariff_name"] = lambda code: names.get(code, code or "")
    if medium not in REGISTRATION_MEDIA:
        way_in = None
    elif way_in is _ASK:
        way_in = registration(session, bill, context["customer"], config)
    context["registration"] = way_in
    return context


def collective_parts(session: Session, bill: Bill, lines: list) -> tuple[list[dict], list[tuple[str, Decimal]]]:
    """A collective bill's per-point parts (point, its lines, its subtotal; in line order) and its totals
    by charge type (in the order lines are itemized)."""
    from console.billing.generation import LINE_ORDER

    by_point: dict[int | None, list] = {}
    for line in lines:
        by_point.setdefault(line.service_point_id, []).append(line)
    ids = [pid for pid in by_point if pid is not None]
    points = {p.id: p for p in session.scalars(select(ServicePoint).where(ServicePoint.id.in_(ids)))} if ids else {}
    parts = []
    for point_id, point_lines in by_point.items():
        reads = [(line.details or {}).get("current_read", {}).get("date") for line in point_lines
                 if line.kind == "electricity" and line.details]
        parts.append({
            "point": points.get(point_id),
            "lines": point_lines,
            "electricity": [line for line in point_lines if line.kind == "electricity"],
            "others": [line for line in point_lines if line.kind != "electricity"],
            "read_date": max((r for r in reads if r), default=None),
            "total": sum((line.amount for line in point_lines), Decimal("0.00")),
        })
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.kind] = totals.get(line.kind, Decimal("0.00")) + line.amount
    order = {kind: i for i, kind in enumerate(("previous_balance", *LINE_ORDER))}
    return parts, sorted(totals.items(), key=lambda item: order.get(item[0], len(order)))


def print_context(session: Session, bill: Bill) -> dict[str, Any]:
    """What the print layout (templates/paper/print.html) puts around the bill: the company's letterhead,
    the addressee block for the envelope window, the registration code with its address and QR code."""
    config = current_app.config
    customer = session.get(Customer, bill.customer_id)
    english = str(get_locale() or "zh").startswith("en")
    address = customer.postal_address or ""
    postal_code = customer.postal_code or ""
    return {
        "company": company(config, english),
        "addressee": {"name": customer.name, "address": address,
                      # printed once: not again when the address already carries it
                      "postal_code": "" if postal_code and postal_code in address else postal_code},
        "registration": registration(session, bill, customer, config),
        "customer": customer,
    }


def _collective_html(session: Session, bill: Bill, medium: str, section: str | int, way_in: Any = _ASK) -> str:
    context = _context(session, bill, medium, way_in)
    context["parts"], context["kind_totals"] = collective_parts(session, bill, context["lines"])
    return render_template("bills/collective.html", medium=medium, section=section, **context)


def collective_pages(session: Session, bill: Bill) -> list[str]:
    """A collective bill on paper: the summary page, then one page per service point (the PDF's
    PAGE_SOURCES["collective"])."""
    pages = [_collective_html(session, bill, "pdf", "summary")]
    point_ids = list(dict.fromkeys(line.service_point_id for line in bill.lines))
    pages += [_collective_html(session, bill, "pdf", point_id) for point_id in point_ids]
    return pages


def render_bill_html(session: Session, bill: Bill, medium: str, way_in: Any = _ASK) -> str:
    """The bill's HTML for `medium`; needs an app context (templates, translations). `way_in`: the
    registration (console.billing.document.registration) when the caller has it already."""
    if medium not in MEDIA:
        raise ValueError(f"unknown medium {medium}")
    if bill.bill_type == "collective":  # a summary, then each service point's detail (issue 4)
        return _collective_html(session, bill, medium, "all", way_in)
    context = _context(session, bill, medium, way_in)
    try:
        return render_template(f"bills/{context['customer_type']}.html", medium=medium, **context)
    except TemplateNotFound:
        return render_template("bills/document.html", medium=medium, **context)
