"""The collective bill as a document: console, web, e-mail and PDF (summary page, then a page per point)."""

from __future__ import annotations

import subprocess

import pytest

from console.billing.document import render_bill_html


@pytest.fixture
def collective_bill(coll):
    account = coll.account(points=3, name="苏州集团用电有限公司")
    p0, p1, p2 = coll.points(account)
    coll.read(p0, "2026-10-08", "5000", peak="2000", valley="1500")
    coll.read(p0, "2026-11-08", "6000", peak="2400", valley="1750")
    coll.entry(p0, "inspection", "80.00", "2026-11-09")
    coll.read(p1, "2026-10-10", "1000", peak="400", valley="300")
    coll.read(p1, "2026-11-10", "1500", peak="600", valley="400")
    coll.entry(p1, "payment", "-100.00", "2026-11-05", reference="PAY-9")
    coll.entry(p2, "connection", "500.00", "2026-11-03")
    (bill,) = coll.run()
    return bill, (p0, p1, p2)


@pytest.mark.parametrize("medium", ["console", "web", "email", "pdf"])
def test_every_medium_shows_the_summary_then_each_point(app, db, collective_bill, medium):
    bill, points = collective_bill
    with app.test_request_context():
        html = render_bill_html(db, bill, medium)
    assert "<script" not in html and 'src="http' not in html  # no external resources
    assert "bill-collective" in html and bill.bill_no in html and "2026-12-10" in html
    assert "1,577.68" in html  # the amount due
    assert "725.99" in html and "371.69" in html and "500.00" in html and "805.99" in html  # p0 = 725.99 + 80
    positions = [html.index(f"Service point detail · {p.point_no}") if "Service point detail" in html
                 else html.index(p.point_no, html.index("point-detail")) for p in points]
    assert positions == sorted(positions)
    assert html.index("by-point") < positions[0]  # the summary comes first


def test_pdf_prints_a_summary_page_then_one_page_per_point(app, db, collective_bill, tmp_path):
    from console.paper.pdf import bill_pdf

    bill, points = collective_bill
    with app.app_context():
        path = bill_pdf(db, bill)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = [page for page in text.split("\f") if page.strip()]
    # the summary (after the letter's letterhead and addressee block) may take two pages
    details = [page for page in pages if "用电点明细" in page or "Service point detail" in page]
    assert len(details) == len(points) and pages[-len(points):] == details
    pages = ["".join(pages[: len(pages) - len(points)])] + details
    assert "苏州集团用电有限公司" in pages[0] and "1,577.68" in pages[0] and "2026-12-10" in pages[0]
    for point in points:
        assert point.point_no in pages[0]  # the per-point summary
    for page, point, amount in zip(pages[1:], points, ["805.99", "271.69", "500.00"], strict=True):
        assert point.point_no in page and amount in page


def test_the_print_layout_carries_each_stylesheet_once(app, db, collective_bill):
    """Each part of a collective bill is a bill document with its own <style>; xhtml2pdf matches every
    element against every rule, so copies made the PDF's time grow with the square of the points."""
    from console.paper.pdf import bill_print_html, styles_once

    bill, points = collective_bill
    with app.app_context():
        html = bill_print_html(db, bill)
    assert html.count("<style>") == 2  # the print layout's and the bill document's
    assert html.count(".bill .point-detail") == 1
    assert all(point.point_no in html for point in points)
    assert styles_once(["<style>a</style>x", "<style>a</style>y<style>b</style>"]) == [
        "<style>a</style>x", "y<style>b</style>"]
