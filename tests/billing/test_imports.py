"""Billing imports: all or nothing, line-numbered errors, idempotent re-imports, dry runs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.billing import importers
from console.csvimport import ImportFailed
from console.models.billing import Deposit, InstallmentPlan, LedgerEntry, MeterRead
from console.web.events import import_error_text

ACTOR = Actor.system()


def run(db, func_, text: str, dry_run: bool = False):  # noqa: ANN001, ANN201
    summary = func_(db, text.encode("utf-8"), ACTOR, dry_run, {})
    db.flush()
    return summary


def errors(db, func_, text: str) -> list[str]:  # noqa: ANN001
    with pytest.raises(ImportFailed) as failed:
        func_(db, text.encode("utf-8"), ACTOR, False, {})
    return [import_error_text(e) for e in failed.value.errors]  # outside a request: in English


def count(db, model) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(model))


def test_importers_are_registered_with_the_shared_registry():
    from console.imports import IMPORTERS

    assert {"reads", "charges", "payments", "deposits", "installments"} <= set(IMPORTERS)


def test_reads_import_is_idempotent_and_checks_registers(db, make_customer):
    customer = make_customer()
    point = customer.service_points[0]
    text = (
        "point_no,read_date,total_kwh,peak_kwh,valley_kwh,max_demand_kw\n"
        f"{point.point_no},2026-10-10,1000,400,300,\n"
        f"{point.point_no},2026-11-10,1500.5,600,400,12.5\n"
    )
    assert str(run(db, importers.import_reads, text, dry_run=True)).startswith("dry run")
    assert count(db, MeterRead) == 0
    summary = run(db, importers.import_reads, text)
    assert (summary.created, summary.updated, summary.unchanged) == (2, 0, 0)
    again = run(db, importers.import_reads, text)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    fixed = run(db, importers.import_reads, text.replace("1500.5", "1500.75"))
    assert (fixed.created, fixed.updated, fixed.unchanged) == (0, 1, 1)
    read = db.scalar(select(MeterRead).where(MeterRead.read_date == date(2026, 11, 10)))
    assert read.total_kwh == D("1500.75") and read.max_demand_kw == D("12.50")


def test_reads_bad_rows_are_all_reported_and_nothing_is_written(db, make_customer):
    point = make_customer().service_points[0]
    db.add(MeterRead(service_point_id=point.id, read_date=date(2026, 10, 10), total_kwh=D("1000")))
    db.flush()
    text = (
        "point_no,read_date,total_kwh,peak_kwh,valley_kwh,max_demand_kw,meter_change\n"
        f"{point.point_no},2026-11-10,900,,,,\n"  # below the previous reading
        f"{point.point_no},2026-11-11,12,,,,1\n"  # a meter change: allowed
        "NOPE,2026-11-10,10,,,,\n"
        f"{point.point_no},2026-13-01,abc,,,,\n"
        f"{point.point_no},2026-11-12,100,80,50,,\n"
        f"{point.point_no},2026-11-11,13,,,,1\n"
    )
    found = errors(db, importers.import_reads, text)
    assert "line 4: point_no: no service point NOPE" in found
    assert "line 5: read_date: not a date (YYYY-MM-DD)" in found
    assert "line 5: total_kwh: not a number" in found
    assert "line 6: peak_kwh: peak + valley is more than the total" in found
    assert any(e.startswith("line 7: read_date: a second read of this point on this date") for e in found)
    assert count(db, MeterRead) == 1
    # the below-previous check runs once the rows parse
    found = errors(db, importers.import_reads, "point_no,read_date,total_kwh\n"
                   f"{point.point_no},2026-11-10,900\n")
    assert found == ["line 2: total_kwh: reading 900.00 on 2026-11-10 is below the previous reading 1000.00 "
                     "(mark meter_change if the meter was changed)"]


def test_charges_import_signs_write_offs_and_resolves_the_point(db, make_customer):
    single = make_customer()
    several = make_customer(points=2)
    billing_point = several.service_points[1]
    billing_point.is_billing_point = True
    db.flush()
    text = (
        "account_no,point_no,charge_type,amount,date,description,for_period\n"
        f"{single.account_no},,inspection,80.00,2026-11-02,年检,\n"
        f"{several.account_no},,write_off,15.00,2026-11-03,核销,2026-09\n"
        f"{several.account_no},{several.service_points[0].point_no},adjustment,-3.50,2026-11-03,,2026-10\n"
    )
    assert run(db, importers.import_charges, text).created == 3
    assert run(db, importers.import_charges, text).unchanged == 3
    entries = {e.kind: e for e in db.scalars(select(LedgerEntry))}
    assert entries["inspection"].service_point_id == single.service_points[0].id
    assert (entries["write_off"].amount, entries["write_off"].service_point_id) == (D("-15.00"), billing_point.id)
    assert entries["write_off"].for_period == "2026-09"
    assert entries["adjustment"].amount == D("-3.50")


def test_charges_bad_rows(db, make_customer):
    several = make_customer(points=2)
    other = make_customer()
    text = (
        "account_no,point_no,charge_type,amount,date,description,for_period\n"
        f"{several.account_no},,inspection,10.00,2026-11-02,,\n"
        f"{several.account_no},{other.service_points[0].point_no},inspection,10.00,2026-11-02,,\n"
        f"{other.account_no},,parking,10.00,2026-11-02,,\n"
        f"{other.account_no},,connection,-1.00,2026-11-02,,2026-13\n"
        f"{other.account_no},,connection,1.001,2026-11-02,,\n"
        "NOBODY,,connection,1.00,2026-11-02,,\n"
    )
    found = errors(db, importers.import_charges, text)
    assert "line 2: point_no: the customer has 2 service points and no billing point: name one" in found
    assert f"line 3: point_no: service point {other.service_points[0].point_no} is not this customer's" in found
    assert any(e.startswith("line 4: charge_type: must be one of") for e in found)
    assert "line 5: amount: must be more than 0 (write-offs too: they are credited)" in found
    assert "line 5: for_period: not a period (YYYY-MM)" in found
    assert any(e.startswith("line 6: amount: more than 2 decimal places") for e in found)
    assert "line 7: account_no: no customer NOBODY" in found
    assert count(db, LedgerEntry) == 0


def test_payments_unique_reference_and_oldest_unpaid_bill_first(db, billing, make_customer):
    customer = make_customer(points=2)
    first, second = customer.service_points
    # the second point's bill is the older one: a payment without a point settles it first
    billing.entry(second, "inspection", "40.00", "2026-09-02")
    billing.run("2026-09")
    billing.entry(first, "inspection", "100.00", "2026-10-02")
    billing.run("2026-10")
    text = f"account_no,point_no,amount,paid_on,reference\n{customer.account_no},,70.00,2026-11-03,BANK-001\n"
    assert run(db, importers.import_payments, text).created == 1
    parts = {e.service_point_id: e.amount for e in db.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment"))}
    assert parts == {second.id: D("-40.00"), first.id: D("-30.00")}
    assert run(db, importers.import_payments, text).unchanged == 1
    found = errors(db, importers.import_payments, text.replace("70.00", "71.00"))
    assert found == ["line 2: reference: reference BANK-001 was already used for another payment"]
    found = errors(db, importers.import_payments, "account_no,amount,paid_on,reference\n"
                   f"{customer.account_no},0,2026-11-03,X1\n{customer.account_no},5,2026-11-03,X1\n")
    assert "line 2: amount: must be more than 0" in found
    assert "line 3: reference: used twice in the file (line 2)" in found


def test_deposits_and_installment_plans(db, make_customer):
    customer = make_customer()
    deposits = f"account_no,amount,received_on\n{customer.account_no},500.00,2020-01-06\n"
    assert run(db, importers.import_deposits, deposits).created == 1
    assert run(db, importers.import_deposits, deposits).unchanged == 1
    assert db.scalar(select(Deposit.amount)) == D("500.00")
    plans = f"account_no,total,installments,first_period\n{customer.account_no},1000.00,3,2026-10\n"
    assert run(db, importers.import_installments, plans).created == 1
    assert run(db, importers.import_installments, plans).unchanged == 1
    assert run(db, importers.import_installments, plans.replace(",3,", ",4,")).updated == 1
    plan = db.scalar(select(InstallmentPlan))
    assert (plan.installments, plan.service_point_id) == (4, customer.service_points[0].id)
    found = errors(db, importers.import_installments,
                   f"account_no,total,installments,first_period\n{customer.account_no},10,0,2026-1\n")
    assert "line 2: installments: must be between 1 and 120" in found
    assert "line 2: first_period: not a period (YYYY-MM)" in found


def test_import_command_line(runner, db, make_customer, tmp_path):
    point = make_customer().service_points[0]
    good = tmp_path / "reads.csv"
    good.write_text(f"point_no,read_date,total_kwh\n{point.point_no},2026-11-10,10\n", encoding="utf-8")
    result = runner.invoke(args=["import", "reads", str(good)])
    assert result.exit_code == 0 and "created 1" in result.output, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("point_no,read_date,total_kwh\nNOPE,2026-11-10,10\n", encoding="utf-8")
    result = runner.invoke(args=["import", "reads", str(bad)])
    assert result.exit_code == 1 and "第 2 行 · point_no：没有编号为 NOPE 的用电点" in result.output
