"""Bill PDFs: real xhtml2pdf output checked with pdftotext and pdffonts."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from flask_babel import force_locale, gettext
from xhtml2pdf.config.resources import ResourceAccessError

from console.paper.pdf import bill_pdf, render_pdf_bytes, resource_policy

# Audit hooks cannot be removed: this one records only while a test switches it on.
_WATCH: list[tuple[str, str]] = []
_watching = {"on": False}


def _hook(event: str, args: tuple) -> None:
    if not _watching["on"]:
        return
    if event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _WATCH.append((event, repr(args)[:200]))
    elif event == "open" and args and isinstance(args[0], str | bytes):
        _WATCH.append((event, str(args[0])))


sys.addaudithook(_hook)


def test_bill_pdf_has_chinese_text_embedded_font_amounts_and_due_date(app, db, make_customer, make_bill, pdf_text):
    customer = make_customer(key_account=True, name="苏州测试电器有限公司")
    bill = make_bill(customer)
    with app.app_context():
        path = bill_pdf(db, bill)
        with force_locale("zh"):
            title = gettext("Electricity bill")
    text = pdf_text(path)
    assert title != "Electricity bill" and title in text  # the Chinese label, really drawn
    assert "账单号" in text  # the print layout's own label
    assert "苏州测试电器有限公司" in text and customer.account_no in text
    assert "1,234.56" in text and "12.30" in text and "1,246.86" in text
    assert "2026-12-15" in text or "2026年12月15日" in text
    assert bill.bill_no in text  # human-readable line of the barcode and the footer
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    cjk = [line for line in fonts.splitlines() if "WenQuanYi" in line]
    assert cjk and all(line.split()[-5] == "yes" for line in cjk), fonts  # emb column


def test_each_bill_is_rendered_once_and_the_file_reused(app, db, make_customer, make_bill):
    bill = make_bill(make_customer(key_account=True))
    with app.app_context():
        first = bill_pdf(db, bill)
        stamp = first.stat().st_mtime_ns
        db.commit()
        assert bill.pdf_path and first.name == f"{bill.bill_no}.pdf" and "2026-11" in str(first)
        again = bill_pdf(db, bill)
        # Another process that rendered it but has not committed: the file on disk is found and reused.
        bill.pdf_path = None
        third = bill_pdf(db, bill)
    assert again == first == third and first.stat().st_mtime_ns == stamp
    assert not list(first.parent.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["<img src=http://169.254.169.254/>", "<img src=/etc/passwd>"])
def test_hostile_customer_name_renders_literally_without_file_or_network_access(
    app, db, make_customer, make_bill, pdf_text, name
):
    bill = make_bill(make_customer(key_account=True, name=name))
    with app.app_context():
        bill_pdf  # noqa: B018
        from console.paper.pdf import bill_print_html, preload_fonts

        preload_fonts()
        html = bill_print_html(db, bill)
        _WATCH.clear()
        _watching["on"] = True
        start = time.perf_counter()
        try:
            data = render_pdf_bytes(html)
        finally:
            _watching["on"] = False
        took = time.perf_counter() - start
    assert took < 5
    assert not [e for e in _WATCH if e[0] != "open"], _WATCH  # no socket, no DNS, no URL
    opened = [path for event, path in _WATCH if event == "open"]
    assert not [p for p in opened if "passwd" in p or "169.254" in p], opened
    out = app.config["INSTANCE_PATH"] + "/hostile.pdf"
    with open(out, "wb") as handle:
        handle.write(data)
    assert name in pdf_text(out)


def test_raw_hostile_markup_is_refused_by_the_resource_policy(app):
    policy = resource_policy()
    for path in ("/etc/passwd", "/work/main/console/config.py"):
        with pytest.raises(ResourceAccessError):
            policy.check_path(path)
    with pytest.raises(ResourceAccessError):
        policy.check_url("http://169.254.169.254/latest/meta-data/")
    with app.app_context():
        _WATCH.clear()
        _watching["on"] = True
        try:
            data = render_pdf_bytes('<p>x</p><img src="/etc/passwd"><img src="http://169.254.169.254/">')
        finally:
            _watching["on"] = False
    assert data.startswith(b"%PDF") and b"root:" not in data
    assert not [e for e in _WATCH if e[0] != "open" or "passwd" in e[1]], _WATCH


def test_a_bill_in_parts_starts_each_part_on_a_new_page(app, db, make_customer, make_bill, monkeypatch, pdf_text):
    """The seam for collective bills: summary page, then one page per point."""
    from pypdf import PdfReader

    from console.paper import pdf as paper_pdf

    bill = make_bill(make_customer(key_account=True))
    bill.bill_type = "collective"
    db.commit()
    monkeypatch.setitem(paper_pdf.PAGE_SOURCES, "collective",
                        lambda _s, b: ["<h2>汇总</h2>", "<h2>用电点 一</h2>", "<h2>用电点 二</h2>"])
    with app.app_context():
        path = bill_pdf(db, bill)
    assert len(PdfReader(path).pages) == 3
    pages = pdf_text(path).split("\f")
    assert "汇总" in pages[0] and "用电点 一" in pages[1] and "用电点 二" in pages[2]


def test_bill_pdfs_rendered_ahead_by_chunked_jobs_on_the_pdf_queue(app, db, make_customer, make_bill, redis_conn):
    from rq import SimpleWorker

    from console import outbox
    from console.models import Bill
    from console.paper import batches
    from console.queues import get_queue

    ids = [make_bill(make_customer(key_account=True)).id for _ in range(3)]
    with app.app_context():
        queue = get_queue("pdf")
        assert batches.queue_bill_pdfs(db, ids, chunk_size=2) == 2
        db.commit()
        assert outbox.handed_over(db) == 2
        SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    db.expire_all()
    assert all(db.get(Bill, i).pdf_path for i in ids)
