"""Bill PDFs rendered ahead of the e-mails that attach them (console.delivery.queueing): a key account's
e-mail is sent only after its bill's render job on the `pdf` queue has stored the PDF, and the sender
then reads the file and never calls xhtml2pdf. Real Redis and RQ workers (SimpleWorker, burst), a real
SMTP server (aiosmtpd), the PDFs read back with pdftotext."""

from __future__ import annotations

import email
import logging
import shutil
import subprocess
from datetime import timedelta
from email import policy as email_policy
from pathlib import Path

import pytest
from sqlalchemy import select

from console import outbox
from console.audit import Actor
from console.db import utcnow
from console.delivery.publish import publish_and_queue, publish_cycle
from console.delivery.queueing import RENDER_JOB, SEND_JOB, queue_queued_sends, render_job_id
from console.delivery.sweeper import sweep
from console.models import Bill, Delivery, DeliveryAttempt
from console.paper import pdf as paper_pdf
from tests.delivery.conftest import add_bill, new_customer


def pdf_text(data: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils not installed")
    return subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


@pytest.fixture
def renders(monkeypatch):
    """The bills xhtml2pdf was asked to render (by their HTML), counted at our own entry point."""
    calls: list[str] = []
    real = paper_pdf.render_pdf_bytes

    def counting(html: str) -> bytes:
        calls.append(html)
        return real(html)

    monkeypatch.setattr(paper_pdf, "render_pdf_bytes", counting)
    return calls


@pytest.fixture
def mail_app(committed, own_redis, smtp_sink):
    committed.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port, SMTP_STARTTLS=False, SMTP_USER="")
    smtp_sink.messages.clear()
    return committed


def work(app, session, name: str) -> None:  # noqa: ANN001
    """Run every job waiting on queue `name`, in this process; the session's snapshot is let go first
    (SQLite: an open read transaction would keep the jobs from writing)."""
    from rq import SimpleWorker

    from console.queues import get_queue

    session.rollback()
    queue = get_queue(name, app)
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)
    session.expire_all()


def waiting(app, name: str) -> list[tuple[str, list]]:  # noqa: ANN001
    from console.queues import get_queue

    return [(job.func_name, job.args) for job in get_queue(name, app).jobs]


def mail_to(sink, address: str) -> list[email.message.EmailMessage]:  # noqa: ANN001
    return [email.message_from_bytes(raw, policy=email_policy.default) for _f, rcpts, raw in sink.messages
            if rcpts == [address]]


def attached_pdf(message) -> bytes | None:  # noqa: ANN001
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    return parts[0].get_content() if parts else None


def email_of(session, bill: Bill) -> Delivery:  # noqa: ANN001
    return session.scalars(select(Delivery).where(Delivery.bill_id == bill.id, Delivery.channel == "email")).one()


def test_which_emails_wait_for_their_pdf(app, db, make_customer):
    """Those whose customer attaches the PDF (a key account by default, or anyone who asked) and whose
    bill has none stored yet; every other one gets its send job at once. Both are marked enqueued."""
    plain = make_customer()
    key = make_customer(key_account=True)
    key_without = make_customer(key_account=True, attach_pdf=False)
    plain_with = make_customer(attach_pdf=True)
    key_rendered = make_customer(key_account=True)
    bills = {name: add_bill(db, c) for name, c in
             [("plain", plain), ("key", key), ("key_without", key_without), ("plain_with", plain_with),
              ("key_rendered", key_rendered)]}
    bills["key_rendered"].pdf_path = "pdf/2026-11/already.pdf"
    now = utcnow()
    publish_cycle(db, bills["plain"].cycle_id, Actor.cli(), now)
    mails = {name: email_of(db, bill).id for name, bill in bills.items()}

    assert queue_queued_sends(db, now, 100) == 2  # one send batch, one render job
    jobs = outbox.pending(db)
    sends = [j for j in jobs if j.func == SEND_JOB]
    renders_asked = [j for j in jobs if j.func == RENDER_JOB]
    assert [j.args for j in sends] == [([mails["plain"], mails["key_without"], mails["key_rendered"]],)]
    assert [(j.queue, j.args, j.job_id) for j in renders_asked] == [
        ("pdf", ([bills["key"].id, bills["plain_with"].id],), render_job_id([bills["key"].id, bills["plain_with"].id]))
    ]
    db.expire_all()
    assert {d.enqueued_at for d in db.scalars(select(Delivery).where(Delivery.id.in_(mails.values())))} == {now}


def test_a_key_accounts_email_goes_after_its_render_job_and_the_sender_only_reads_the_pdf(mail_app, smtp_sink, renders):
    app = mail_app
    session = app.extensions["billpost.session_factory"]()
    key = new_customer(session, key_account=True, name="重点客户甲")
    plain = new_customer(session)
    key_bill, plain_bill = add_bill(session, key), add_bill(session, plain)
    session.commit()
    with app.app_context():
        result = publish_and_queue(session, key_bill.cycle_id, Actor.cli(), utcnow(), app.config)
    session.commit()
    key_mail, plain_mail = email_of(session, key_bill), email_of(session, plain_bill)
    assert result["send_jobs"] == 2  # the plain one's send job, the key account's render job
    assert waiting(app, "delivery") == [(SEND_JOB, [[plain_mail.id]])]
    assert waiting(app, "pdf") == [(RENDER_JOB, [[key_bill.id]])]

    work(app, session, "delivery")  # the residential bill goes at once; the key account's waits
    assert session.get(Delivery, plain_mail.id).status == "sent"
    assert session.get(Delivery, key_mail.id).status == "queued"
    assert session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == key_mail.id)).all() == []
    assert renders == [] and mail_to(smtp_sink, key.email) == []
    assert attached_pdf(mail_to(smtp_sink, plain.email)[0]) is None

    work(app, session, "pdf")  # rendered and committed, and only then its send job queued
    assert len(renders) == 1 and session.get(Bill, key_bill.id).pdf_path
    assert waiting(app, "delivery") == [(SEND_JOB, [[key_mail.id]])]

    work(app, session, "delivery")
    assert session.get(Delivery, key_mail.id).status == "sent"
    assert len(renders) == 1  # the sender read the stored file: no xhtml2pdf in the send path
    [message] = mail_to(smtp_sink, key.email)
    data = attached_pdf(message)
    assert data == (Path(app.config["INSTANCE_PATH"]) / session.get(Bill, key_bill.id).pdf_path).read_bytes()
    text = pdf_text(data)
    assert key_bill.bill_no in text and "重点客户甲" in text
    session.close()


def test_redis_flushed_before_the_render_jobs_ran_the_sweeper_asks_again_and_everything_goes_out(
    mail_app, own_redis, smtp_sink, renders
):
    app = mail_app
    session = app.extensions["billpost.session_factory"]()
    keys = [new_customer(session, key_account=True) for _ in range(3)]
    plains = [new_customer(session) for _ in range(2)]
    bills = [add_bill(session, c) for c in keys + plains]
    session.commit()
    with app.app_context():
        publish_and_queue(session, bills[0].cycle_id, Actor.cli(), utcnow(), app.config)
    session.commit()
    assert waiting(app, "pdf") == [(RENDER_JOB, [[b.id for b in bills[:3]]])]
    own_redis.flushall()  # Redis restarted without persistence: the render job and the sends are gone

    config = dict(app.config, SEND_REENQUEUE_SECONDS=0)  # at once, not after ten minutes
    with app.app_context():
        counts = sweep(session, utcnow(), config)
    session.commit()
    assert counts["send_jobs"] == 2 and outbox.handed_over(session) == 2
    # the key accounts' e-mails are not sent without their PDF: the render job is asked for again
    assert waiting(app, "pdf") == [(RENDER_JOB, [[b.id for b in bills[:3]]])]
    assert waiting(app, "delivery") == [(SEND_JOB, [[email_of(session, b).id for b in bills[3:]]])]
    with app.app_context():
        sweep(session, utcnow(), config)
    session.commit()
    assert outbox.handed_over(session) == 0  # the same jobs are waiting: none queued twice

    work(app, session, "pdf")
    work(app, session, "delivery")
    deliveries = session.scalars(select(Delivery).where(Delivery.channel == "email")).all()
    assert {d.status for d in deliveries} == {"sent"} and len(deliveries) == 5
    attempts = session.scalars(select(DeliveryAttempt)).all()
    assert len(attempts) == 5 and {a.attempt_no for a in attempts} == {1}  # each sent once
    assert len(renders) == 3  # once per key account's bill, none by the sender
    for customer, bill in zip(keys, bills, strict=False):
        [message] = mail_to(smtp_sink, customer.email)
        assert bill.bill_no in pdf_text(attached_pdf(message))
    session.close()


def _failing_for(monkeypatch, bill_no: str) -> None:
    real = paper_pdf.render_pdf_bytes

    def render(html: str) -> bytes:
        if bill_no in html:
            raise RuntimeError("PDF rendering failed with 1 error(s)")
        return real(html)

    monkeypatch.setattr(paper_pdf, "render_pdf_bytes", render)


def test_a_pdf_that_cannot_be_rendered_holds_no_email_and_fails_its_job(mail_app, monkeypatch, caplog):
    """The other bills of the chunk are rendered and sent; the failing bill's e-mail is queued all
    the same, in a batch of its own, and the job fails after its commit, naming the bill."""
    from console.queues import get_queue

    app = mail_app
    session = app.extensions["billpost.session_factory"]()
    good, bad = new_customer(session, key_account=True), new_customer(session, key_account=True)
    good_bill, bad_bill = add_bill(session, good), add_bill(session, bad)
    session.commit()
    with app.app_context():
        publish_and_queue(session, good_bill.cycle_id, Actor.cli(), utcnow(), app.config)
    session.commit()
    _failing_for(monkeypatch, bad_bill.bill_no)
    with caplog.at_level(logging.ERROR, logger="console.paper.pdf"):
        work(app, session, "pdf")
    logged = [r for r in caplog.records if r.name == "console.paper.pdf"]
    assert [r.getMessage() for r in logged] == [f"bill {bad_bill.bill_no}: its PDF could not be rendered"]
    assert str(logged[0].exc_info[1]) == "PDF rendering failed with 1 error(s)"
    from rq.job import Job

    queue = get_queue("pdf", app)
    [job_id] = queue.failed_job_registry.get_job_ids()
    assert job_id == render_job_id([good_bill.id, bad_bill.id])
    job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    assert f"BillPdfFailed: bill PDF(s) could not be rendered: {bad_bill.bill_no}" in job.latest_result().exc_string
    assert session.get(Bill, good_bill.id).pdf_path and session.get(Bill, bad_bill.id).pdf_path is None
    assert waiting(app, "delivery") == [
        (SEND_JOB, [[email_of(session, good_bill).id]]), (SEND_JOB, [[email_of(session, bad_bill).id]])
    ]
    work(app, session, "delivery")
    assert email_of(session, good_bill).status == "sent"
    session.close()


def test_an_email_whose_pdf_cannot_be_rendered_goes_without_it(mail_app, smtp_sink, monkeypatch):
    app = mail_app
    session = app.extensions["billpost.session_factory"]()
    bad = new_customer(session, key_account=True)
    bill = add_bill(session, bad)
    session.commit()
    with app.app_context():
        publish_and_queue(session, bill.cycle_id, Actor.cli(), utcnow(), app.config)
    session.commit()
    _failing_for(monkeypatch, bill.bill_no)
    work(app, session, "pdf")
    work(app, session, "delivery")
    assert email_of(session, bill).status == "sent"
    [message] = mail_to(smtp_sink, bad.email)
    assert attached_pdf(message) is None
    session.close()


def test_a_bill_changed_after_its_render_is_rendered_again_before_its_resend(mail_app, smtp_sink, renders):
    """A resend of an unchanged bill (the policy's, after no confirmation) reads the stored PDF; a bill
    changed since (its PDF invalidated) sent again to a corrected address waits for a new render."""
    from console.delivery.corrections import resend_to_address

    app = mail_app
    session = app.extensions["billpost.session_factory"]()
    key = new_customer(session, key_account=True, postal_address="苏州市工业园区旧地址路1号")
    bill = add_bill(session, key)
    session.commit()
    with app.app_context():
        publish_and_queue(session, bill.cycle_id, Actor.cli(), utcnow(), app.config)
    session.commit()
    work(app, session, "pdf")
    work(app, session, "delivery")
    first = email_of(session, bill)
    assert first.status == "sent" and len(renders) == 1

    later = first.confirm_due_at + timedelta(seconds=1)  # no confirmation: the policy's one resend
    with app.app_context():
        assert sweep(session, later, app.config)["resend_queued"] == 1
    session.commit()
    assert waiting(app, "delivery") == [(SEND_JOB, [[first.id]])] and waiting(app, "pdf") == []
    work(app, session, "delivery")
    assert session.get(Delivery, first.id).attempts_made == 2 and len(renders) == 1
    assert all("旧地址" in pdf_text(attached_pdf(m)) for m in mail_to(smtp_sink, key.email))

    key.postal_address = "苏州市工业园区新地址路2号"
    with app.app_context():
        paper_pdf.invalidate_bill_pdf(session, session.get(Bill, bill.id))
        new = resend_to_address(session, session.get(Delivery, first.id), "corrected@customers.test", Actor.cli(),
                                utcnow(), 100)
    session.commit()
    assert waiting(app, "delivery") == [] and waiting(app, "pdf") == [(RENDER_JOB, [[bill.id]])]
    work(app, session, "pdf")
    work(app, session, "delivery")
    assert session.get(Delivery, new.id).status == "sent" and len(renders) == 2
    [message] = mail_to(smtp_sink, "corrected@customers.test")
    text = pdf_text(attached_pdf(message))
    assert "新地址" in text and "旧地址" not in text
    session.close()
