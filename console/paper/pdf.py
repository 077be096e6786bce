"""Bill PDFs: rendered once with xhtml2pdf from the bill document (the same template as the web page),
stored under instance/pdf/<period>/<bill_no>.pdf and reused for print, e-mail attachment and download.

Bill content is untrusted (a customer name can be `<img src=/etc/passwd>`): Jinja escapes it, and the
renderer may read only static/ and the CJK font folder — no network, no other file.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

from flask import current_app, has_app_context, render_template
from flask_babel import force_locale
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console import config as config_module
from console.models import Bill, Cycle

log = logging.getLogger(__name__)

STATIC_DIR = (config_module.PROJECT_ROOT / "static").resolve()
FONT_FAMILY = "billcjk"

_preload_lock = threading.Lock()
_preloaded: dict[str, object] = {}


def cjk_font_path() -> Path:
    """The embedded CJK TrueType font (PAPER_CJK_FONT; Debian's fonts-wqy-microhei by default)."""
    settings = current_app.config if has_app_context() else config_module.from_environment()
    return Path(settings["PAPER_CJK_FONT"]).resolve()


def resource_policy():  # noqa: ANN201
    """Local reads confined to static/ and the font folder; nothing remote at all."""
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    policy = _preloaded.get("policy")
    if policy is None:
        policy = ResourceAccessPolicy.server(
            base_dir=STATIC_DIR,
            extra_roots=(cjk_font_path().parent,),
            allow_remote=False,
            max_render_seconds=60,
        )
        _preloaded["policy"] = policy
    return policy


def link_callback(uri: str, _rel: str) -> str:
    """Map only static/ and the font file; everything else becomes an unreadable empty reference."""
    font = cjk_font_path()
    if uri == str(font):
        return uri
    for prefix in ("/static/", "static/"):
        if uri.startswith(prefix):
            candidate = (STATIC_DIR / uri[len(prefix) :]).resolve()
            if candidate.is_relative_to(STATIC_DIR) and candidate.is_file():
                return str(candidate)
    return ""


def preload_fonts() -> None:
    """Parse the CJK font once per process (ReportLab keeps it registered; xhtml2pdf reuses it)."""
    with _preload_lock:
        if _preloaded.get("fonts"):
            return
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont
        from xhtml2pdf import context as x_context

        name = f"{FONT_FAMILY}_00"
        path = cjk_font_path()
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(path)))
            digest = x_context._file_digest(str(path))
            if digest is not None:
                x_context._embedded_font_source[name] = digest
        _preloaded["fonts"] = True


def render_pdf_bytes(html: str) -> bytes:
    """HTML (from our own templates) to PDF bytes under the confined resource policy."""
    from xhtml2pdf import pisa

    preload_fonts()
    out = io.BytesIO()
    result = pisa.pisaDocument(
        html, dest=out, link_callback=link_callback, resource_policy=resource_policy(), encoding="utf-8"
    )
    if result.err:
        raise RuntimeError(f"PDF rendering failed with {result.err} error(s)")
    return out.getvalue()


# Which pages a bill prints as. A collective bill (later issue) may register a function returning
# its summary page then one page per point; each string is one part, started on a new page.
PAGE_SOURCES: dict[str, object] = {}


def _collective_pages(session: Session, bill: Bill) -> list[str]:
    from console.billing.document import collective_pages

    return collective_pages(session, bill)


PAGE_SOURCES["collective"] = _collective_pages  # summary page, then one page per service point (issue 4)


def bill_parts(session: Session, bill: Bill) -> list[str]:
    from console.billing.document import render_bill_html

    source = PAGE_SOURCES.get(bill.bill_type)
    if source is not None:
        return list(source(session, bill))  # type: ignore[operator]
    return [render_bill_html(session, bill, "pdf")]


_STYLE_BLOCK = re.compile(r"<style>.*?</style>", re.S)


def styles_once(parts: list[str]) -> list[str]:
    """The parts with each distinct <style> block kept only where it first appears. Every part is a
    whole bill document with its own stylesheet, and xhtml2pdf matches each element against every
    rule of the document: a collective bill's N copies made it N² (60 points: 33 s a PDF, 0.6 s
    with one copy). A repeated identical block changes nothing in the cascade."""
    seen: set[str] = set()
    out = []
    for part in parts:
        for block in _STYLE_BLOCK.findall(part):
            if block in seen:
                part = part.replace(block, "", 1)
            else:
                seen.add(block)
        out.append(part)
    return out


def bill_print_html(session: Session, bill: Bill) -> str:
    """The bill document wrapped in the print layout: A4, embedded font, bill number as barcode; the first
    page a letter for a window envelope (letterhead, addressee, registration code and QR code)."""
    from console.billing.document import print_context

    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        return render_template(
            "paper/print.html",
            bill=bill,
            parts=styles_once(bill_parts(session, bill)),
            font_path=str(cjk_font_path()),
            font_family=FONT_FAMILY,
            **print_context(session, bill),
        )


def address_overlay_pdf(name: str, address: str, postal_code: str) -> bytes:
    """One A4 page with only the envelope window filled: another recipient's addressee block on white,
    to lay over the first page of their copy (console.paper.batches.assemble_batch)."""
    from console.billing.document import company

    postal_code = "" if postal_code and postal_code in address else postal_code
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        html = render_template(
            "paper/address_overlay.html", company=company(current_app.config, english=False),
            addressee={"name": name, "address": address, "postal_code": postal_code},
            font_path=str(cjk_font_path()), font_family=FONT_FAMILY,
        )
    return render_pdf_bytes(html)


def pdf_root() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / "pdf"


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def bill_pdf_relpath(period: str, bill_no: str) -> str:
    return f"pdf/{_SAFE.sub('_', period)}/{_SAFE.sub('_', bill_no)}.pdf"


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: readers never see half a file; racing writers agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def bill_pdf(session: Session, bill: Bill) -> Path:
    """The bill's PDF file: rendered the first time, the stored file every time after. Flushes."""
    instance = Path(current_app.config["INSTANCE_PATH"])
    if bill.pdf_path:
        stored = instance / bill.pdf_path
        if stored.is_file():
            return stored
    period = session.get(Cycle, bill.cycle_id).period
    relpath = bill_pdf_relpath(period, bill.bill_no)
    path = instance / relpath
    if not path.is_file():  # another process may have rendered it already
        write_atomically(path, render_pdf_bytes(bill_print_html(session, bill)))
    if bill.pdf_path != relpath:
        bill.pdf_path = relpath
        session.flush()
    return path


def bill_pdf_if_possible(session: Session, bill: Bill) -> Path | None:
    """bill_pdf, or None when the PDF cannot be made (an xhtml2pdf error of any kind, a limit of the
    resource policy, the disk): logged with its traceback, for the callers that go on without it (the
    render job ahead of the e-mails). A database error is raised: the session is not usable after it."""
    try:
        return bill_pdf(session, bill)
    except SQLAlchemyError:
        raise
    except Exception:  # noqa: BLE001 - logged here; the caller decides what goes without the PDF
        log.exception("bill %s: its PDF could not be rendered", bill.bill_no)
        return None


def invalidate_bill_pdf(session: Session, bill: Bill) -> None:
    """For whoever changes a bill after it was rendered: the next bill_pdf call renders it again."""
    instance = Path(current_app.config["INSTANCE_PATH"])
    period = session.get(Cycle, bill.cycle_id).period
    for relpath in {bill.pdf_path, bill_pdf_relpath(period, bill.bill_no)} - {None}:
        (instance / relpath).unlink(missing_ok=True)
    bill.pdf_path = None
    session.flush()
