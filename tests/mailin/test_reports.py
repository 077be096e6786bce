"""The RFC 3464 parser: the three real Postfix samples and the traps of email-dsn.md."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.delivery import reports
from console.delivery.reports import decode_xtext, parse_message, split_typed
from tests.mailin.conftest import sample


def _report(ds_body: str, headers_part: str | None = "Message-ID: <bill-9@bills.test>\r\nX-Bill-Id: 9\r\n",
            ds_type: str = "message/delivery-status", headers_type: str = "text/rfc822-headers",
            top: str = "") -> bytes:
    parts = [
        "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhuman text\r\n",
        f"--XX\r\nContent-Type: {ds_type}\r\n\r\n{ds_body}\r\n",
    ]
    if headers_part is not None:
        parts.append(f"--XX\r\nContent-Type: {headers_type}\r\n\r\n{headers_part}\r\n")
    return (
        "From: MAILER-DAEMON@mta.test\r\nTo: bounces+t1@bounces.bills.test\r\nSubject: report\r\n"
        f"{top}MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="XX"\r\n\r\n'
        + "".join(parts) + "--XX--\r\n"
    ).encode("utf-8")


def test_delivered_sample():
    parsed = parse_message(sample("delivered.eml"))
    assert parsed.kind == "report"
    assert parsed.envid == "bill-1001"
    assert parsed.reporting_mta == "mta.bills.test"
    assert parsed.arrival_date == datetime(2026, 11, 26, 19, 8, 15, tzinfo=UTC)
    assert parsed.original_message_id == "bill-1001@bills.test"
    assert parsed.original_headers == {"x-bill-id": "1001"}
    (block,) = parsed.recipients
    assert block.action == "delivered" and block.status == "2.0.0"
    assert block.final_recipient == "alice@customers.test"
    assert block.original_recipient == "alice@customers.test"  # written "rfc822;alice@..." without a space
    assert block.diagnostic == "X-Postfix; delivery via virtual: delivered to maildir"


def test_failed_sample():
    parsed = parse_message(sample("failed-unknown-user.eml"))
    assert parsed.kind == "report" and parsed.envid == "bill-2001"
    (block,) = parsed.recipients
    assert (block.action, block.status) == ("failed", "5.1.1")
    assert block.diagnostic == 'X-Postfix; unknown user: "nosuch@customers.test"'
    assert parsed.original_message_id == "bill-2001@bills.test"


def test_delayed_sample():
    parsed = parse_message(sample("delayed.eml"))
    (block,) = parsed.recipients
    assert (block.action, block.status) == ("delayed", "4.2.2")
    assert block.will_retry_until == datetime(2026, 11, 26, 19, 11, 41, tzinfo=UTC)
    assert parsed.kind == "report"  # Postfix marks its reports Auto-Submitted: auto-replied; still a report


def test_folded_diagnostic_code_is_unfolded():
    body = (
        "Reporting-MTA: dns; mta.test\r\n\r\n"
        "Final-Recipient: rfc822; bob@customers.test\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Remote-MTA: dns; mx.customers.test\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@customers.test>: Recipient address\r\n"
        "    rejected: User unknown in virtual mailbox\r\n"
        "\ttable\r\n"
    )
    for ds_type in ("message/delivery-status", "message/global-delivery-status"):
        (block,) = parse_message(_report(body, ds_type=ds_type)).recipients
        assert block.diagnostic == (
            "smtp; 550 5.1.1 <bob@customers.test>: Recipient address rejected: User unknown in virtual mailbox table"
        )
        assert block.remote_mta == "mx.customers.test"


@pytest.mark.parametrize("value", ["rfc822;a@b.test", "rfc822; a@b.test", "RFC822;  <a@b.test>", "a@b.test"])
def test_both_rfc822_spacings(value):
    assert split_typed(value)[1] == "a@b.test"
    body = f"Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: {value}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
    assert parse_message(_report(body)).recipients[0].final_recipient == "a@b.test"


def test_xtext_envid_is_decoded():
    assert decode_xtext("bill+2B4003") == "bill+4003"
    assert decode_xtext("a+3Db+zz") == "a=b+zz"  # an invalid escape stays as it is
    body = "Reporting-MTA: dns; m\r\nOriginal-Envelope-Id: bill+2B4003\r\n\r\n" \
           "Final-Recipient: rfc822; a@b.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
    assert parse_message(_report(body)).envid == "bill+4003"


def test_global_delivery_status_with_utf8_addresses():
    body = (
        "Reporting-MTA: dns; mta.test\r\nOriginal-Envelope-Id: env-77\r\n\r\n"
        "Final-Recipient: utf-8; 张三@例子.中国\r\n"
        "Original-Recipient: utf-8; \\x{5F20}\\x{4E09}@例子.中国\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 用户不存在\r\n"
    )
    raw = _report(body, ds_type="message/global-delivery-status",
                  headers_part="Message-ID: <g@bills.test>\r\nSubject: 电费账单\r\n",
                  headers_type="message/global-headers")
    parsed = parse_message(raw)
    assert parsed.kind == "report" and parsed.global_report
    (block,) = parsed.recipients
    assert block.final_recipient == "张三@例子.中国"
    assert block.original_recipient == "张三@例子.中国"
    assert block.diagnostic == "smtp; 550 用户不存在"
    assert parsed.original_message_id == "g@bills.test"
    assert parsed.envid == "env-77"


def test_multiple_recipients_relayed_expanded_delayed():
    body = (
        "Reporting-MTA: dns; mta.test\r\n\r\n"
        "Final-Recipient: rfc822; a@x.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
        "Remote-MTA: dns; mx.x.test\r\n\r\n"
        "Final-Recipient: rfc822; list@x.test\r\nAction: expanded\r\nStatus: 2.0.0\r\n\r\n"
        "Final-Recipient: rfc822; c@x.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
        "Will-Retry-Until: Fri, 27 Nov 2026 10:00:00 +0800\r\n\r\n"
        "Final-Recipient: rfc822; d@x.test\r\nAction: Failed (mailbox gone)\r\nStatus: 5.1.6 (gone)\r\n"
    )
    parsed = parse_message(_report(body))
    assert [b.action for b in parsed.recipients] == ["relayed", "expanded", "delayed", "failed"]
    assert [b.status for b in parsed.recipients] == ["2.0.0", "2.0.0", "4.4.1", "5.1.6"]
    assert parsed.recipients[2].will_retry_until == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert parsed.envid is None  # missing ENVID: None, not an error


def test_missing_headers_part_and_full_returned_message():
    body = "Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
    parsed = parse_message(_report(body, headers_part=None))
    assert parsed.kind == "report" and parsed.original_message_id is None
    full = "Message-ID: <full@bills.test>\r\nX-Bill-Id: 3\r\nSubject: x\r\n\r\nthe whole bill\r\n"
    parsed = parse_message(_report(body, headers_part=full, headers_type="message/rfc822"))
    assert parsed.original_message_id == "full@bills.test"
    assert parsed.original_headers["x-bill-id"] == "3"


def test_report_without_per_message_block():
    body = "Final-Recipient: rfc822; a@b.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
    parsed = parse_message(_report(body))
    assert parsed.kind == "report" and parsed.recipients[0].final_recipient == "a@b.test"


def test_invalid_status_and_action():
    body = "Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: exploded\r\nStatus: 9.9\r\n"
    parsed = parse_message(_report(body))
    assert parsed.kind == "malformed" and "Action" in parsed.reason
    assert parsed.recipients[0].status is None and parsed.recipients[0].raw_action == "exploded"
    parsed = parse_message(_report("Reporting-MTA: dns; m\r\n"))
    assert parsed.kind == "malformed" and "recipient" in parsed.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-replied\r\nSubject: Re: your bill\r\n", "Auto-Submitted"),
        ("X-Autoreply: yes\r\nSubject: Re: bill\r\n", "X-Autoreply"),
        ("Precedence: auto_reply\r\nSubject: bill\r\n", "Precedence"),
        ("Subject: Out of Office: back Monday\r\n", "subject"),
        ("Subject: =?utf-8?b?6Ieq5Yqo5Zue5aSN77ya5oiR5Zyo5LyR5YGH?=\r\n", "subject"),  # 自动回复：我在休假
        ("Subject: Automatic reply: bill\r\n", "subject"),
    ],
)
def test_auto_replies_are_not_reports(headers, reason):
    raw = f"From: someone@customers.test\r\nTo: bounces+t@b.test\r\n{headers}\r\nI am away.\r\n".encode()
    parsed = parse_message(raw)
    assert parsed.kind == "auto_reply" and reason in parsed.reason


def test_read_receipt_is_not_a_delivery_report():
    raw = (
        b"From: a@x.test\r\nSubject: Read: bill\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="Q"\r\n\r\n'
        b"--Q\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822; a@x.test\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--Q--\r\n"
    )
    assert parse_message(raw).kind == "auto_reply"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        None,
        b"\x00\x01\x02",
        b"\xff\xfe\xfa\xfb" * 1000,
        b"Subject: hello\r\n\r\nplain mail to the bounce address",
        b"Content-Type: multipart/report; boundary=\"unterminated\r\n\r\n--unterminated\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=Z\r\n\r\n--Z\r\n"
        b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64\r\n--Z",
        b"Content-Type: multipart/mixed; boundary=A\r\n\r\n" + b"--A\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n" * 3000,
        "Subject: \udcff\r\n\r\n".encode("utf-8", "surrogateescape"),
        b"Subject: =?gb2312?b?1cvGrLXnt9E=?=\r\nFrom: \xd5\xcb\xb5\xa5\r\n\r\n\xb5\xe7\xb7\xd1",
        b"Content-Type: message/delivery-status\r\n\r\n" + b"Action: failed\r\n" * 50000,
    ],
)
def test_hostile_inputs_never_raise(raw):
    parsed = parse_message(raw)
    assert parsed.kind in ("report", "auto_reply", "complaint", "malformed") and parsed.reason


def test_huge_message_is_parsed_from_its_beginning():
    raw = sample("failed-unknown-user.eml").replace(b"--7FD28170086.1795720121/mta.bills.test--", b"")
    raw += b"X" * (20 * 1024 * 1024)
    parsed = parse_message(raw)
    assert parsed.kind == "report" and parsed.truncated
    assert parsed.recipients[0].action == "failed"


def test_non_utf8_delivery_status_body():
    body = "Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: failed\r\nStatus: 5.0.0\r\n" \
           "Diagnostic-Code: smtp; 550 "
    raw = _report(body).replace(b"550 \r\n", b"550 \xd3\xc3\xbb\xa7\xb2\xbb\xb4\xe6\xd4\xda\r\n")
    (block,) = parse_message(raw).recipients
    assert block.action == "failed" and block.diagnostic.startswith("smtp; 550")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_fuzz_bytes_never_raise(raw):
    assert parse_message(raw).kind in ("report", "auto_reply", "complaint", "malformed")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_samples_never_raise(data):
    raw = bytearray(sample(data.draw(st.sampled_from(["delivered.eml", "failed-unknown-user.eml", "delayed.eml"]))))
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "dup"]))
        if op == "flip":
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 200))]
        else:
            raw[pos:pos] = raw[pos : pos + data.draw(st.integers(1, 200))]
        if not raw:
            break
    assert parse_message(bytes(raw)).kind in ("report", "auto_reply", "complaint", "malformed")


def test_field_text_is_capped_and_clean():
    body = "Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: failed\r\nStatus: 5.0.0\r\n" \
           "Diagnostic-Code: smtp; " + "x" * 100000 + "\r\n"
    (block,) = parse_message(_report(body)).recipients
    assert len(block.diagnostic) <= reports.MAX_FIELD


def test_non_standard_bounce_is_read_not_taken_for_an_auto_reply():
    """Bounce markers are looked at before auto-reply markers (bounces carry Auto-Submitted too); a
    clear failure notice without any code is a permanent failure, its key sentence the diagnostic."""
    raw = (
        b"From: MAILER-DAEMON@mx.customers.test\r\nSubject: failure notice\r\nAuto-Submitted: auto-replied\r\n\r\n"
        b"Hi. This is the qmail-send program. I'm afraid I wasn't able to deliver your message.\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.kind == "report" and parsed.evidence == "text" and parsed.family == "qmail"
    (block,) = parsed.recipients
    assert (block.action, block.status, block.source) == ("failed", None, "text")
    assert "wasn't able to deliver" in block.diagnostic


def test_base64_encoded_delivery_status():
    import base64

    body = "Reporting-MTA: dns; m\r\nOriginal-Envelope-Id: env-b64\r\n\r\n" \
           "Final-Recipient: rfc822; a@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    encoded = base64.encodebytes(body.encode()).decode().replace("\n", "\r\n")
    raw = _report(encoded).replace(
        b"Content-Type: message/delivery-status\r\n", b"Content-Type: message/delivery-status\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.kind == "report" and parsed.envid == "env-b64"
    assert parsed.recipients[0].action == "failed"
