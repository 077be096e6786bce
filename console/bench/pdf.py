"""`console bench pdf`: bills rendered per second per worker through the pipeline (template, print
layout, xhtml2pdf, stored file, bill row updated) against bare xhtml2pdf on the same HTML in the same run."""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import click

CHUNK = 25


def _seed(session, bills: int, collective: int) -> tuple[list[int], list[int]]:  # noqa: ANN001
    from console.models import Bill, BillLine, Customer, Cycle, ServicePoint

    cycle = Cycle(period="2099-01", bill_date=date(2099, 1, 31), status="published")
    session.add(cycle)
    session.flush()
    single, multi = [], []
    def electricity(sp_no: str) -> dict:
        return {
            "previous_read": {"date": "2098-12-10", "total_kwh": "10234"},
            "current_read": {"date": "2099-01-10", "total_kwh": "10734"},
            "consumption_kwh": "500", "tariff": "COM",
            "breakdown": [
                {"band": "peak", "quantity": "320", "unit": "kWh", "rate": "0.9500", "amount": "304.00"},
                {"band": "valley", "quantity": "180", "unit": "kWh", "rate": "0.3500", "amount": "63.00"},
            ],
        }

    for n in range(bills + collective):
        is_multi = n >= bills
        points = 6 if is_multi else 1
        customer = Customer(account_no=f"BENCH{n:07d}", name=f"苏州测试电器有限公司{n}", customer_type="commercial",
                            key_account=True, postal_address=f"苏州市工业园区星湖街{n}号", postal_code="215000")
        session.add(customer)
        session.flush()
        sps = []
        for p in range(points):
            sp = ServicePoint(customer_id=customer.id, point_no=f"BP{n:07d}{p:02d}", address=f"星湖街{n}号{p + 1}栋",
                              meter_no=f"BM{n:07d}{p:02d}", tariff_code="COM", read_day=10 + p)
            session.add(sp)
            sps.append(sp)
        session.flush()
        bill = Bill(bill_no=f"B2099{n:08d}", cycle_id=cycle.id, customer_id=customer.id,
                    service_point_id=None if is_multi else sps[0].id,
                    unit_key=f"G{n}" if is_multi else f"P{sps[0].id}",
                    bill_type="collective" if is_multi else "regular", template="commercial_regular",
                    bill_date=date(2099, 1, 31), due_date=date(2099, 2, 15), previous_balance=Decimal("120.50"),
                    payments_total=Decimal("120.50"), charges_total=Decimal("0.00"), current_balance=Decimal("0.00"),
                    deposit_held=Decimal("0.00"))
        bill.lines.append(BillLine(position=1, kind="previous_balance", description="上期余额", amount=Decimal("120.50")))
        bill.lines.append(BillLine(position=2, kind="payment", description="银行代扣", amount=Decimal("-120.50"),
                                   details={"entry_date": "2099-01-05", "reference": "BANK0001"}))
        position = 2
        for sp in sps:
            position += 1
            bill.lines.append(BillLine(position=position, kind="electricity", service_point_id=sp.id,
                                       description=f"{sp.point_no} 电费", amount=Decimal("367.00"),
                                       details=electricity(sp.point_no)))
            position += 1
            bill.lines.append(BillLine(position=position, kind="business_expansion", service_point_id=sp.id,
                                       description=f"{sp.point_no} 业务扩展费", amount=Decimal("50.00"),
                                       details={"entry_date": "2099-01-08"}))
        session.add(bill)
        session.flush()
        (multi if is_multi else single).append(bill.id)
    session.commit()
    return single, multi


def _bare_one(html: str) -> tuple[float, int]:
    from pypdf import PdfReader
    from xhtml2pdf import pisa

    from console.paper.pdf import resource_policy

    start = time.perf_counter()
    out = io.BytesIO()
    result = pisa.pisaDocument(html, dest=out, resource_policy=resource_policy(), encoding="utf-8")
    took = time.perf_counter() - start
    if result.err:
        raise RuntimeError("bare render failed")
    return took, len(PdfReader(io.BytesIO(out.getvalue())).pages)


def _interleaved(factory, ids: list[int], htmls: dict[int, str]) -> tuple[float, float, int]:  # noqa: ANN001
    """As the pdf job does it (a session per chunk of 25 bills, bill_pdf each, commit), with the bare
    render of the same bill's HTML right before each one, so both see the same machine load."""
    from sqlalchemy import select

    from console.models import Bill
    from console.paper.pdf import bill_pdf

    bare = pipe = 0.0
    pages = 0
    for first in range(0, len(ids), CHUNK):
        start = time.perf_counter()
        session = factory()
        chunk = list(session.scalars(select(Bill).where(Bill.id.in_(ids[first : first + CHUNK]))))
        pipe += time.perf_counter() - start
        for bill in chunk:
            took, got = _bare_one(htmls[bill.id])
            bare, pages = bare + took, pages + got
            start = time.perf_counter()
            bill_pdf(session, bill)
            pipe += time.perf_counter() - start
        start = time.perf_counter()
        session.commit()
        session.close()
        pipe += time.perf_counter() - start
    return bare, pipe, pages


@click.command("pdf")
@click.option("--bills", default=500, show_default=True, help="Single-point bills to render.")
@click.option("--collective", default=None, type=int, help="Multi-point (6 points) bills; default bills/10.")
@click.option("--keep", is_flag=True, help="Keep the scratch folder (database and PDFs) to look at.")
def bench_pdf(bills: int, collective: int | None, keep: bool) -> None:
    """Bills/s per worker: pipeline vs bare xhtml2pdf on the same HTML (scratch SQLite, one process)."""
    from sqlalchemy import select

    from console import create_app
    from console.db import Base, make_engine
    from console.models import Bill
    from console.paper.pdf import bill_pdf, bill_print_html, preload_fonts

    collective = max(1, bills // 10) if collective is None else collective
    folder = Path(tempfile.mkdtemp(prefix="billpost-bench-pdf-"))
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    Base.metadata.create_all(engine)
    app = create_app({"ENGINE": engine, "INSTANCE_PATH": str(folder), "TESTING": True})
    factory = app.extensions["billpost.session_factory"]
    with app.app_context():
        with factory() as session:
            single, multi = _seed(session, bills, collective)
        click.echo(f"scratch {folder}: {len(single)} single-point bills, {len(multi)} collective-style (6 points)")
        t0 = time.perf_counter()
        preload_fonts()
        click.echo(f"font preload (once per process): {time.perf_counter() - t0:.2f} s")
        with factory() as session:
            htmls = {b.id: bill_print_html(session, b) for b in session.scalars(select(Bill))}
        for _ in range(3):  # warm-up, both sides benefit
            _bare_one(htmls[single[0]])
        for label, ids in (("single", single), ("collective", multi)):
            if not ids:
                continue
            bare_s, pipe_s, pages = _interleaved(factory, ids, htmls)
            bare_rate, pipe_rate = len(ids) / bare_s, len(ids) / pipe_s
            click.echo(
                f"{label:10s}: bare xhtml2pdf {bare_rate:6.2f} bills/s ({pages / bare_s:.2f} pages/s, "
                f"{pages / len(ids):.1f} pages/bill) | pipeline {pipe_rate:6.2f} bills/s | "
                f"ratio {100 * pipe_rate / bare_rate:.0f}% (target >= 85%)"
            )
        with factory() as session:
            all_bills = list(session.scalars(select(Bill)))
            mtimes = {b.id: bill_pdf(session, b).stat().st_mtime_ns for b in all_bills}
            start = time.perf_counter()
            again = {b.id: bill_pdf(session, b).stat().st_mtime_ns for b in all_bills}
            took = time.perf_counter() - start
        rerendered = sum(1 for i in mtimes if mtimes[i] != again[i])
        click.echo(
            f"second call : {len(all_bills) / took:,.0f} bills/s from the stored files, {rerendered} re-rendered "
            f"(each bill rendered once; print, e-mail and download reuse the file)"
        )
    engine.dispose()
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
