"""Fixtures of the customer-file tests: CSV files in any encoding, an admin client."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from console.models import AuditEvent, ContactRecord, Customer, Recipient, ServicePoint

CUSTOMER_HEADER = (
    "account_no,name,customer_type,key_account,account_manager,id_number,phone,email,"
    "postal_address,postal_code,wants_ebill,channels,collective_billing"
)
# A valid 18-digit ID number (check digit computed) that must never appear whole in a page.
CANARY_ID = "320502199001011234"


def csv_bytes(header: str, lines: list[str], encoding: str = "utf-8") -> bytes:
    text = "\r\n".join([header, *lines]) + "\r\n"
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode(encoding)


def customer_line(account_no: str = "3200000001", **values: str) -> str:
    row = {
        "account_no": account_no, "name": "张伟", "customer_type": "residential", "key_account": "0",
        "account_manager": "", "id_number": CANARY_ID, "phone": "13812345678", "email": "zhang.wei@163.com",
        "postal_address": "江苏省苏州市姑苏区人民路1号", "postal_code": "215000", "wants_ebill": "1",
        "channels": "portal;email", "collective_billing": "0",
    } | values
    return ",".join(row[c] for c in CUSTOMER_HEADER.split(","))


@pytest.fixture
def counts(db):
    """Row counts of the customer-file tables: to prove that a failed import wrote nothing."""

    def _counts() -> dict[str, int]:
        return {
            model.__tablename__: db.scalar(select(func.count()).select_from(model))
            for model in (Customer, ServicePoint, Recipient, AuditEvent, ContactRecord)
        }

    return _counts


@pytest.fixture
def write_file(tmp_path):
    def _write(data: bytes, name: str = "file.csv") -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    return _write
