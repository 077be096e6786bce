"""The quarantine and sandbox-mailbox pages: admin only, messages shown escaped, never as HTML."""

from __future__ import annotations

from console.db import utcnow
from console.delivery.intake import process_inbound
from console.models.mailin import InboundMessage, SandboxMessage
from tests.mailin.conftest import BOUNCE_DOMAIN

HOSTILE = (
    b"From: <script>alert(1)</script>@x.test\r\nSubject: <img src=x onerror=alert(2)>\r\n"
    b"Content-Type: text/html\r\n\r\n<html><body><script>alert(3)</script><b>bold</b></body></html>\r\n"
)


def _quarantined(db) -> int:  # noqa: ANN001
    result = process_inbound(db, HOSTILE, "<>", [f"bounces+zz@{BOUNCE_DOMAIN}"], utcnow(), bounce_domain=BOUNCE_DOMAIN)
    db.commit()
    return result.inbound_id


def test_admin_lists_and_reads_the_quarantine_escaped(client, db, login_as):
    message_id = _quarantined(db)
    login_as("admin")
    page = client.get("/delivery/quarantine")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "<img src=x" not in html
    detail = client.get(f"/delivery/quarantine/{message_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in detail
    assert "<script>alert" not in detail and "<b>bold</b>" not in detail


def test_filters_and_htmx_fragment(client, db, login_as):
    _quarantined(db)
    login_as("admin")
    fragment = client.get("/delivery/quarantine?state=open&classification=malformed", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and "onerror" in body
    empty = client.get("/delivery/quarantine?classification=unmatched", headers={"HX-Request": "true"})
    assert "onerror" not in empty.get_data(as_text=True)


def test_mark_handled_moves_it_out_of_the_open_list(client, db, login_as):
    message_id = _quarantined(db)
    admin = login_as("admin")
    response = client.post(f"/delivery/quarantine/{message_id}/handled", data={"note": "spam"})
    assert response.status_code == 302
    db.expire_all()
    message = db.get(InboundMessage, message_id)
    assert message.handled_by_id == admin.id and message.handled_note == "spam"
    assert "onerror" not in client.get("/delivery/quarantine?state=open").get_data(as_text=True)
    assert "onerror" in client.get("/delivery/quarantine?state=handled").get_data(as_text=True)
    assert client.post("/delivery/quarantine/999999/handled").status_code == 404


def test_other_roles_are_refused(client, db, login_as):
    message_id = _quarantined(db)
    login_as("phone_rep", "clerk", "account_manager")
    for url in ("/delivery/quarantine", f"/delivery/quarantine/{message_id}", "/delivery/sandbox"):
        assert client.get(url).status_code in (403, 404)


def test_sandbox_mailbox_lists_and_shows(client, db, login_as):
    kept = SandboxMessage(
        mail_from="bounces+t@bounces.bills.test", rcpt_to="alice@customers.test", envid="e1", notify="SUCCESS",
        ret="HDRS", subject="<b>账单</b>", message_id="<m@x>", size=len(HOSTILE), raw=HOSTILE, outcome="delivered",
    )
    db.add(kept)
    db.commit()
    login_as("admin")
    html = client.get("/delivery/sandbox").get_data(as_text=True)
    assert "alice@customers.test" in html and "&lt;b&gt;账单&lt;/b&gt;" in html
    detail = client.get(f"/delivery/sandbox/{kept.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(3)" in detail and "<script>alert" not in detail
    assert client.get("/delivery/sandbox/999999").status_code == 404


def test_admin_page_links_here(client, login_as):
    login_as("admin")
    html = client.get("/admin/").get_data(as_text=True)
    assert "/delivery/quarantine" in html and "/delivery/sandbox" in html


def test_sandbox_shows_the_message_as_the_customer_reads_it(client, db, login_as):
    """Subject decoded (RFC 2047), the base64 text part decoded, the HTML part in a sandboxed frame."""
    from email.message import EmailMessage
    from email.policy import SMTP

    message = EmailMessage(policy=SMTP)
    message["Subject"] = "2026年11月电费账单"
    message["From"] = "国网电费 <billing@bills.test>"
    message["To"] = "alice@customers.test"
    message.set_content("尊敬的客户：您本期电费为 128.50 元。", cte="base64")
    message.add_alternative("<p>尊敬的客户：<b>128.50 元</b></p><script>alert(4)</script>", subtype="html",
                            cte="base64")
    raw = message.as_bytes()
    assert b"=?utf-8?" in raw and "尊敬".encode() not in raw  # encoded on the wire, as the sender sends it
    kept = SandboxMessage(
        mail_from="bounces+t@bounces.bills.test", rcpt_to="alice@customers.test", envid="e2", notify="SUCCESS",
        ret="HDRS", subject=_raw_header(raw, "Subject"), message_id="<m2@x>", size=len(raw), raw=raw,
        outcome="delivered",
    )
    db.add(kept)
    db.commit()
    login_as("admin")
    listing = client.get("/delivery/sandbox").get_data(as_text=True)
    assert "2026年11月电费账单" in listing and "=?utf-8?" not in listing
    page = client.get(f"/delivery/sandbox/{kept.id}").get_data(as_text=True)
    assert "<h1>2026年11月电费账单</h1>" in page
    assert "尊敬的客户：您本期电费为 128.50 元。" in page  # the text part, decoded
    assert "<iframe" in page and " sandbox " in page and "&lt;b&gt;128.50 元&lt;/b&gt;" in page
    assert "<script>alert(4)" not in page


def test_sandbox_shows_the_messages_inline_images(client, db, login_as):
    """An image the HTML names by Content-ID (a multipart/related part) is shown, as a mail client shows it."""
    from email.message import EmailMessage
    from email.policy import SMTP

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    message = EmailMessage(policy=SMTP)
    message["Subject"] = "bill"
    message.set_content("text")
    message.add_alternative('<p><img src="cid:qr@x.test"></p>', subtype="html")
    message.get_payload()[1].add_related(png, maintype="image", subtype="png", cid="<qr@x.test>")
    raw = message.as_bytes()
    kept = SandboxMessage(mail_from="b@x.test", rcpt_to="a@x.test", envid="e3", notify="SUCCESS", ret="HDRS",
                          subject="bill", message_id="<m3@x>", size=len(raw), raw=raw, outcome="delivered")
    db.add(kept)
    db.commit()
    login_as("admin")
    page = client.get(f"/delivery/sandbox/{kept.id}").get_data(as_text=True)
    import re

    (frame,) = re.findall(r'srcdoc="([^"]*)"', page)
    assert "cid:qr@x.test" not in frame and "data:image/png;base64,iVBORw0KGgo" in frame


def _raw_header(raw: bytes, name: str) -> str:
    """A header as it stands on the wire (still RFC 2047 encoded), as the sandbox stores it."""
    import email
    from email import policy

    return str(email.message_from_bytes(raw, policy=policy.compat32)[name])
