"""Portal fixtures: a real SMTP server (aiosmtpd, in a thread) for the codes, bill and account factories."""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from datetime import date
from decimal import Decimal
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from console.devtools.ports import free_port
from console.models import Bill, BillLine, Cycle
from console.models.portal import WebAccount
from console.passwords import hash_password

CUSTOMER_PASSWORD = "电费账单 long enough"
_numbers = itertools.count(1)




class Inbox:
    """What the test SMTP server received; `wait_for` polls until a mail to `to` arrives."""

    def __init__(self) -> None:
        self.messages: list = []
        self._lock = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 (aiosmtpd's name)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
            self._lock.notify_all()
        return "250 OK"

    def wait_for(self, to: str, count: int = 1, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [m for rcpts, m in self.messages if to in rcpts]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no mail to {to} within {timeout}s")
                self._lock.wait(remaining)

    def to(self, address: str) -> list:
        with self._lock:
            return [m for rcpts, m in self.messages if address in rcpts]

    def code_for(self, to: str, count: int = 1) -> str:
        body = self.wait_for(to, count)[count - 1].get_body(("plain",)).get_content()
        return re.search(r"\b(\d{6})\b", body).group(1)


@pytest.fixture
def smtp_server():
    """A real SMTP server process-thread on a free port (aiosmtpd's Controller)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture
def mail_inbox(app, smtp_server):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    return smtp_server


@pytest.fixture
def make_bill(db):
    """A bill with lines of every charge type; published unless status= says otherwise."""

    def _make(customer, period: str = "2026-10", status: str = "published", lines: list[dict] | None = None, **fields):  # noqa: ANN001, ANN202
        cycle = db.scalar(select(Cycle).where(Cycle.period == period))
        if cycle is None:
            year, month = (int(x) for x in period.split("-"))
            cycle = Cycle(period=period, bill_date=date(year, month, 28), status="published")
            db.add(cycle)
            db.flush()
        point = customer.service_points[0] if customer.service_points else None
        n = next(_numbers)
        if lines is None:
            lines = default_lines(point.id if point else None)
        charges = sum((Decimal(line["amount"]) for line in lines if line["kind"] not in ("previous_balance", "payment")), Decimal("0.00"))
        values = dict(
            bill_no=f"PB{n:08d}{secrets.token_hex(2)}",
            cycle_id=cycle.id,
            customer_id=customer.id,
            service_point_id=point.id if point else None,
            unit_key=f"P{point.id if point else n}-{n}",
            bill_type="regular",
            template=f"{customer.customer_type}_regular",
            bill_date=cycle.bill_date,
            due_date=date(cycle.bill_date.year + (cycle.bill_date.month == 12), cycle.bill_date.month % 12 + 1, 12),
            previous_balance=Decimal("120.00"),
            payments_total=Decimal("120.00"),
            charges_total=charges,
            current_balance=sum((Decimal(line["amount"]) for line in lines), Decimal("0.00")),
            deposit_held=Decimal("500.00"),
            status=status,
        ) | fields
        if status == "published" and "published_at" not in fields:
            from console.db import utcnow

            values["published_at"] = utcnow()
        bill = Bill(**values)
        bill.lines = [
            BillLine(position=i, kind=line["kind"], description=line["description"], amount=Decimal(line["amount"]),
                     service_point_id=line.get("service_point_id"), details=line.get("details"))
            for i, line in enumerate(lines, start=1)
        ]
        db.add(bill)
        db.commit()
        return bill

    return _make


def default_lines(point_id: int | None) -> list[dict]:
    return [
        {"kind": "previous_balance", "description": "上期余额 Previous balance", "amount": "120.00"},
        {"kind": "payment", "description": "已缴 Payment 2026-10-05", "amount": "-120.00"},
        {"kind": "electricity", "description": "电费 Electricity 1530→1842 kWh", "amount": "176.49",
         "service_point_id": point_id,
         "details": {"previous_read": "1530", "current_read": "1842", "kwh": "312",
                     "tiers": [{"tier": 1, "kwh": "230", "rate": "0.5283", "amount": "121.51"},
                               {"tier": 2, "kwh": "82", "rate": "0.5783", "amount": "47.42"}]}},
        {"kind": "late_fee", "description": "违约金 Late fee", "amount": "3.21", "service_point_id": point_id},
        {"kind": "business_expansion", "description": "业扩费 Business expansion", "amount": "200.00"},
        {"kind": "connection", "description": "接电费 Connection fee", "amount": "50.00"},
        {"kind": "adjustment", "description": "调整 Adjustment", "amount": "-10.00"},
        {"kind": "installment", "description": "分期 Installment 2/6", "amount": "80.00"},
    ]


@pytest.fixture
def make_account(db):
    """A web account for `customer` with CUSTOMER_PASSWORD (hash reused: argon2 is slow on purpose)."""
    hashed = hash_password(CUSTOMER_PASSWORD)

    def _make(customer) -> WebAccount:  # noqa: ANN001
        account = WebAccount(
            customer_id=customer.id, username=customer.account_no, password_hash=hashed,
            session_token=secrets.token_hex(16),
        )
        db.add(account)
        db.commit()
        return account

    return _make


def sign_in(client, username: str, password: str = CUSTOMER_PASSWORD, addr: str | None = None):  # noqa: ANN001, ANN201
    environ = {"REMOTE_ADDR": addr} if addr else {}
    return client.post("/my/login", data={"username": username, "password": password}, environ_base=environ)


@pytest.fixture
def customer_client(app, make_customer, make_account):
    """A signed-in customer's test client: returns (client, customer, account)."""

    def _make(**fields):  # noqa: ANN202
        customer = make_customer(**fields)
        account = make_account(customer)
        client = app.test_client()
        response = sign_in(client, customer.account_no)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client, customer, account

    return _make
