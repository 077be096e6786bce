"""The bill as a document: one context and one set of templates for the console, the web page,
the e-mail body and the PDF (paper), so every medium shows the same itemized bill.

Contract used by portal, delivery and paper: `render_bill_html(session, bill, medium)`.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy.orm import Session

from console.models import Bill, Customer, ServicePoint

MEDIA = ("console", "web", "email", "pdf")


def bill_document(session: Session, bill: Bill) -> dict[str, Any]:
    customer = session.get(Customer, bill.customer_id)
    point = session.get(ServicePoint, bill.service_point_id) if bill.service_point_id else None
    return {"bill": bill, "customer": customer, "point": point, "lines": list(bill.lines)}


def render_bill_html(session: Session, bill: Bill, medium: str) -> str:
    """The bill's HTML for `medium`; needs an app context (templates, translations)."""
    if medium not in MEDIA:
        raise ValueError(f"unknown medium {medium}")
    return render_template("bills/document.html", medium=medium, **bill_document(session, bill))
