"""Factories for the inbox tests: a failed e-mail delivery of a bill, with its attempts and work item."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest

from console.db import utcnow
from console.models import Bill, Cycle, Delivery, DeliveryAttempt, WorkItem
from console.models.delivery import WORK_ITEM_EVENTS
from tests.conftest import PASSWORD

_n = itertools.count(1)


def build_item(session, customer, *, assigned_role=None, reason="email_failed", age_minutes=60,  # noqa: ANN001, ANN201
               recipient=None, address=None, status="open", period="2026-10"):
    """Cycle (shared by period) → bill → failed e-mail delivery with one bounced attempt → work item."""
    from sqlalchemy import select

    n = next(_n)
    cycle = session.scalar(select(Cycle).where(Cycle.period == period))
    if cycle is None:
        cycle = Cycle(period=period, bill_date=date(2026, 10, 31), status="published")
        session.add(cycle)
        session.flush()
    bill = Bill(
        bill_no=f"IB{n:08d}", cycle_id=cycle.id, customer_id=customer.id, unit_key=f"P{n}", bill_type="regular",
        template="residential_regular", bill_date=date(2026, 10, 31), due_date=date(2026, 11, 15),
        previous_balance=Decimal("0.00"), payments_total=Decimal("0.00"), charges_total=Decimal("88.50"),
        current_balance=Decimal("88.50"), deposit_held=Decimal("0.00"), status="published",
    )
    session.add(bill)
    session.flush()
    address = address or (recipient.address if recipient is not None else customer.email)
    sent = utcnow() - timedelta(minutes=age_minutes + 30)
    delivery = Delivery(
        bill_id=bill.id, customer_id=customer.id, recipient_id=recipient.id if recipient is not None else None,
        channel="email", address=address, recipient_name=recipient.name if recipient is not None else customer.name,
        status="failed", attempts_made=2,
    )
    session.add(delivery)
    session.flush()
    for attempt_no in (1, 2):
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id, attempt_no=attempt_no, token=f"tok{n}x{attempt_no}",
                envid=f"env{n}x{attempt_no}", message_id=f"<m{n}x{attempt_no}@bills.test>", sent_at=sent,
                smtp_response="250 2.0.0 Ok: queued", outcome="failed", status_code="5.1.1",
                diagnostic=f"smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown",
                reported_at=sent + timedelta(minutes=1),
            )
        )
    role = assigned_role or ("account_manager" if customer.key_account and customer.account_manager_id else "phone_rep")
    item = WorkItem(
        delivery_id=delivery.id, bill_id=bill.id, customer_id=customer.id, reason=reason, assigned_role=role,
        assigned_user_id=customer.account_manager_id if role == "account_manager" else None, status=status,
        code=reason if reason in WORK_ITEM_EVENTS else "legacy", params={"address": address, "status": "5.1.1"},
        details={"address": address, "attempts": []},
        created_at=utcnow() - timedelta(minutes=age_minutes),
    )
    session.add(item)
    session.commit()
    return item


@pytest.fixture
def make_item(db):
    def _make(customer, **kwargs):  # noqa: ANN001, ANN202
        return build_item(db, customer, **kwargs)

    return _make


@pytest.fixture
def sign_in(app, make_user):
    """A new test client signed in as a new user with `roles` → (client, user)."""

    def _sign_in(*roles: str, **fields):  # noqa: ANN202
        user = make_user(*roles, **fields)
        client = app.test_client()
        response = client.post("/login", data={"username": user.username, "password": PASSWORD})
        assert response.status_code == 302
        return client, user

    return _sign_in


HX = {"HX-Request": "true"}
