"""The customer CSV the console exports imports back unchanged (issue 15): every import column, booleans
as 1/0, the account manager by user name, the collective-billing date; the masked ID number stands for
the customer's own."""

from __future__ import annotations

from datetime import date

from console.audit import Actor
from console.imports import run_import
from console.models import Customer
from tests.customers.conftest import CANARY_ID, CUSTOMER_HEADER, csv_bytes, customer_line

SETTINGS = {"PAPER_KEY_ACCOUNTS_ONLY": True}


def _import(db, data: bytes):  # noqa: ANN001, ANN202
    summary = run_import(db, "customers", data, Actor.cli(), False, SETTINGS, "customers.csv")
    db.commit()
    return summary


def test_the_exported_csv_imports_back_unchanged(client, login_as, db, make_user):
    manager = make_user("account_manager", username="roundtrip-manager")
    header = CUSTOMER_HEADER + ",collective_billing_since"
    lines = [
        customer_line("3209000001") + ",",
        customer_line("3209000002", name="苏州往返测试有限公司", customer_type="industrial", key_account="1",
                      account_manager=manager.username, id_number="", email="", channels="portal;paper",
                      wants_ebill="1", collective_billing="1") + ",2026-11-15",
        customer_line("3209000003", id_number="", email="", channels="portal", wants_ebill="0") + ",",
    ]
    assert _import(db, csv_bytes(header, lines)).created == 3
    login_as("clerk")
    exported = client.get("/customers/export.csv", query_string={"q": "320900000"}).get_data(as_text=True)
    first_line = exported.lstrip("\ufeff").splitlines()[0]
    assert first_line == header
    assert CANARY_ID not in exported and "320502********1234" in exported
    assert ",1,portal;paper,1,2026-11-15" in exported and "True" not in exported and "False" not in exported
    summary = _import(db, exported.encode("utf-8"))
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 3)
    db.expire_all()
    assert db.query(Customer).filter_by(account_no="3209000001").one().id_number == CANARY_ID


def test_a_masked_id_number_is_refused_unless_it_is_the_customers_own(db):
    _import(db, csv_bytes(CUSTOMER_HEADER, [customer_line("3209000011")]))
    from console.csvimport import ImportFailed

    try:
        _import(db, csv_bytes(CUSTOMER_HEADER, [customer_line("3209000012", id_number="320502********1234")]))
    except ImportFailed as failed:
        assert any(e.column == "id_number" for e in failed.errors)
    else:
        raise AssertionError("a masked ID number of nobody's was accepted")


def test_the_import_takes_the_date_collective_billing_applies_from(db):
    header = CUSTOMER_HEADER + ",collective_billing_since"
    key = dict(customer_type="commercial", key_account="1", id_number="", collective_billing="1")
    _import(db, csv_bytes(header, [customer_line("3209000021", **key) + ",2026-11-01",
                                   customer_line("3209000022", **key) + ","]))
    db.expire_all()
    given = db.query(Customer).filter_by(account_no="3209000021").one()
    default = db.query(Customer).filter_by(account_no="3209000022").one()
    assert given.collective_billing_since == date(2026, 11, 1) and default.collective_billing_since == date.today()
    # a later file moves the date; without the column the date stays
    summary = _import(db, csv_bytes(header, [customer_line("3209000021", **key) + ",2026-10-01"]))
    assert summary.updated == 1
    assert _import(db, csv_bytes(CUSTOMER_HEADER, [customer_line("3209000021", **key)])).unchanged == 1
    db.expire_all()
    assert db.query(Customer).filter_by(account_no="3209000021").one().collective_billing_since == date(2026, 10, 1)
