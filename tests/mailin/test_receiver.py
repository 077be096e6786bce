"""The SMTP receiver over real SMTP (smtplib → aiosmtpd on a free port) with a hostile corpus."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import func, select

from console import create_app
from console.db import make_engine
from console.delivery.mailin import LINE_LIMIT, start_receiver
from console.devtools.ports import free_port
from console.models import Delivery, WorkItem
from console.models.mailin import InboundMessage
from tests.mailin.conftest import BOUNCE_DOMAIN, add_attempt, report_for


def _send(conn: smtplib.SMTP, raw: bytes, rcpt: str, sender: str = "") -> tuple[int, bytes]:
    """MAIL/RCPT/DATA by hand, so every answer (also a refusal) is seen."""
    conn.ehlo_or_helo_if_needed()
    code, reply = conn.mail(sender)
    assert code == 250, reply
    code, reply = conn.rcpt(rcpt)
    if code != 250:
        conn.rset()
        return code, reply
    code, reply = conn.data(raw)
    return code, reply


def _status(cdb, attempt) -> str:  # noqa: ANN001
    cdb.rollback()  # a fresh snapshot: the receiver committed in another connection
    return cdb.get(Delivery, attempt.delivery_id).status


def _latest(cdb) -> InboundMessage:  # noqa: ANN001
    cdb.rollback()
    return cdb.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()


def test_good_reports_over_smtp_apply_after_commit(cdb, smtp_to):
    delivered, relayed, delayed, failed = (add_attempt(cdb) for _ in range(4))
    cdb.commit()
    conn = smtp_to()
    cases = [
        (delivered, "delivered", "2.0.0", "confirmed"),
        (relayed, "relayed", "2.0.0", "confirmed"),
        (delayed, "delayed", "4.4.7", "sent"),
        (failed, "failed", "5.1.1", "failed"),
    ]
    for attempt, action, status, _ in cases:
        raw = report_for(attempt, attempt.delivery.address, action, status, "smtp; 550\r\n folded text")
        code, _ = _send(conn, raw, f"bounces+{attempt.token}@{BOUNCE_DOMAIN}")
        assert code == 250
    for attempt, _, _, expected in cases:
        assert _status(cdb, attempt) == expected
    # relayed and delayed never count as failed: the only work item is the failed one
    cdb.rollback()
    items = cdb.scalars(select(WorkItem.delivery_id)).all()
    assert items == [failed.delivery_id]


def test_hostile_corpus_the_receiver_survives(cdb, smtp_to):
    bystander = add_attempt(cdb)
    cdb.commit()
    token_rcpt = f"bounces+{bystander.token}@{BOUNCE_DOMAIN}"
    unknown = type("A", (), {"token": "zz-unknown", "envid": "zz-env", "message_id": "<zz@nowhere>"})()
    corpus = {
        "unknown token, no ENVID": (report_for(unknown, "x@y.test", "failed", "5.1.1", envid=None),
                                    f"bounces+zz-unknown@{BOUNCE_DOMAIN}", "unmatched"),
        "broken MIME": (b'Content-Type: multipart/report; boundary="never\r\nSubject: x\r\n\r\n--nev\r\n\xff',
                        token_rcpt, "malformed"),
        "non-UTF-8": (b"Subject: \xb5\xe7\xb7\xd1\r\nFrom: \xd5\xcb\r\n\r\n\xb5\xe7\xb7\xd1\xd5\xcb\xb5\xa5\r\n",
                      token_rcpt, "malformed"),
        "auto-reply": ("Subject: 自动回复：休假中\r\nAuto-Submitted: auto-replied\r\n\r\n休假\r\n".encode(),
                       token_rcpt, "auto_reply"),
        "NUL bytes": (b"Subject: a\x00b\r\n\r\n\x00\x00\x00\r\n", token_rcpt, "malformed"),
        "empty": (b"\r\n", token_rcpt, "malformed"),
    }
    conn = smtp_to()
    for name, (raw, rcpt, expected) in corpus.items():
        code, reply = _send(conn, raw, rcpt)
        assert code == 250, (name, reply)
        message = _latest(cdb)
        assert message.classification == expected, name
        assert message.quarantined == (expected in ("unmatched", "malformed")), name
    # a line longer than RFC 5321's 998 octets (real bounces have them) is accepted; one past the
    # receiver's own limit gets a temporary 451 (the MTA keeps the message), never a permanent 5xx
    code, _ = _send(conn, b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n", token_rcpt)
    assert code == 250
    code, _ = _send(conn, b"Subject: x\r\n\r\n" + b"y" * (LINE_LIMIT + 10) + b"\r\n", token_rcpt)
    assert code == 451
    # other domains are refused
    code, _ = _send(conn, b"Subject: x\r\n\r\nhi\r\n", "postmaster@customers.test")
    assert code == 550
    # none of it changed the bystander, and the server still takes a real report
    assert _status(cdb, bystander) == "sent"
    code, _ = _send(conn, report_for(bystander, bystander.delivery.address), token_rcpt)
    assert code == 250 and _status(cdb, bystander) == "confirmed"


def test_twenty_megabyte_report_is_kept_bounded(cdb, smtp_to, committed_app):
    attempt = add_attempt(cdb)
    cdb.commit()
    filler = (b"Z" * 900 + b"\r\n") * (20 * 1024 * 1024 // 902)
    raw = report_for(attempt, "a@x.test", "failed", "5.2.2").replace(
        b"--BB--", b"--BB\r\nContent-Type: text/plain\r\n\r\n" + filler + b"--BB--"
    )
    assert len(raw) > 20 * 1024 * 1024
    code, _ = _send(smtp_to(), raw, f"bounces+{attempt.token}@{BOUNCE_DOMAIN}")
    assert code == 250
    message = _latest(cdb)
    assert message.size == len(raw) and message.truncated
    assert len(message.raw) == committed_app.config["MAILIN_KEEP_BYTES"]
    assert message.classification == "report" and _status(cdb, attempt) == "failed"


def test_over_the_size_limit_is_refused_with_552(committed_app):
    committed_app.config["MAILIN_MAX_BYTES"] = 256 * 1024
    small = start_receiver(committed_app, port=free_port())
    try:
        with smtplib.SMTP(small.host, small.port, timeout=30) as conn:
            code, _ = _send(conn, b"Subject: big\r\n\r\n" + (b"x" * 500 + b"\r\n") * 1000, f"bounces+a@{BOUNCE_DOMAIN}")
            assert code == 552
            code, _ = _send(conn, b"Subject: small\r\n\r\nhello\r\n", f"bounces+a@{BOUNCE_DOMAIN}")
            assert code == 250  # the server goes on
    finally:
        small.stop()


def test_database_down_answers_451_and_keeps_serving(tmp_path):
    broken = create_app({"TESTING": True, "ENGINE": make_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")})
    receiver = start_receiver(broken, port=free_port())
    try:
        with smtplib.SMTP(receiver.host, receiver.port, timeout=30) as conn:
            for _ in range(2):
                code, reply = _send(conn, b"Subject: x\r\n\r\nhi\r\n", f"bounces+a@{BOUNCE_DOMAIN}")
                assert code == 451, reply
            assert conn.noop()[0] == 250
    finally:
        receiver.stop()


@pytest.mark.parametrize("sender", ["", "MAILER-DAEMON@mta.test"])
def test_envelope_is_recorded(cdb, smtp_to, sender):
    code, _ = _send(smtp_to(), b"Subject: hi\r\n\r\nhello\r\n", f"bounces+q@{BOUNCE_DOMAIN}", sender)
    assert code == 250
    message = _latest(cdb)
    assert message.mail_from == (sender or "<>")
    assert message.rcpt_tos == [f"bounces+q@{BOUNCE_DOMAIN}"]
    assert cdb.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_same_report_on_parallel_connections_is_applied_once(cdb, receiver):
    from concurrent.futures import ThreadPoolExecutor

    attempt = add_attempt(cdb)
    cdb.commit()
    raw = report_for(attempt, "a@x.test", "delayed", "4.4.1", "smtp; 451 later")

    def send(_: int) -> int:
        with smtplib.SMTP(receiver.host, receiver.port, timeout=60) as conn:
            return _send(conn, raw, f"bounces+{attempt.token}@{BOUNCE_DOMAIN}")[0]

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(send, range(4)))
    assert set(codes) <= {250, 451} and 250 in codes
    assert send(5) == 250  # sent again later (a lost 250): accepted, recognised as the same message
    cdb.rollback()
    assert cdb.scalar(select(func.count()).select_from(InboundMessage)) == 1
    cdb.refresh(attempt)
    assert len(attempt.reports) == 1


def test_smtputf8_global_report_over_smtp(cdb, smtp_to):
    attempt = add_attempt(cdb, "张三@例子.中国")
    cdb.commit()
    t, e, m = attempt.token, attempt.envid, attempt.message_id
    raw = (
        f"From: MAILER-DAEMON@mta.test\r\nTo: bounces+{t}@{BOUNCE_DOMAIN}\r\nSubject: 投递失败\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="G"\r\n\r\n'
        "--G\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n<张三@例子.中国>: 用户不存在\r\n"
        "--G\r\nContent-Type: message/global-delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mta.test\r\nOriginal-Envelope-Id: {e}\r\n\r\n"
        "Final-Recipient: utf-8; 张三@例子.中国\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 用户不存在\r\n\r\n"
        f"--G\r\nContent-Type: message/global-headers\r\n\r\nMessage-ID: {m}\r\nSubject: 电费账单\r\n\r\n--G--\r\n"
    ).encode()
    conn = smtp_to()
    conn.ehlo()
    assert conn.has_extn("smtputf8")
    conn.sendmail("", [f"bounces+{attempt.token}@{BOUNCE_DOMAIN}"], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert _status(cdb, attempt) == "failed"
    item = cdb.scalars(select(WorkItem).where(WorkItem.delivery_id == attempt.delivery_id)).one()
    assert "用户不存在" in item.params["diagnostic"] + item.params.get("key_sentence", "")
