"""The IMAP bounce-mailbox poller against a real Dovecot on loopback (a private instance per test)."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from console.delivery.mailin import _envelope_from_headers, poll_imap_once
from console.devtools.ports import free_port
from console.models import Delivery
from console.models.mailin import InboundMessage
from tests.mailin.conftest import BOUNCE_DOMAIN, add_attempt, report_for, wait_for

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
pytestmark = pytest.mark.skipif(
    DOVECOT is None and os.environ.get("BILLPOST_REQUIRE_ALL") != "1", reason="dovecot not installed"
)

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/home/%u/Maildir
first_valid_uid = {uid}
default_internal_user = {user}
default_login_user = {login_user}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
"""


@pytest.fixture
def dovecot():
    """A throw-away Dovecot serving one bounce mailbox (user `bounces`) on a free loopback port."""
    if DOVECOT is None:
        pytest.fail("dovecot is required (BILLPOST_REQUIRE_ALL=1): scripts/install --test installs dovecot-imapd")
    if os.geteuid() == 0:
        user = pwd.getpwnam("dovecot")
        login_user = "dovenull"
    else:  # an unprivileged run: everything as the current user
        user = pwd.getpwuid(os.geteuid())
        login_user = user.pw_name
    # Not under pytest's tmp_path: that is 0700 root, and Dovecot's own processes must read the files.
    top = Path(tempfile.mkdtemp(prefix="billpost-dovecot-"))
    top.chmod(0o755)
    root = top / "dovecot"
    for sub in ("run", "state", "home/bounces/Maildir"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    (root / "users").write_text("bounces:{PLAIN}secret-pass\n")
    conf = root / "dovecot.conf"
    conf.write_text(CONFIG.format(root=root, port=port, uid=user.pw_uid, gid=user.pw_gid, user=user.pw_name,
                                  login_user=login_user))
    if os.geteuid() == 0:
        for path in [root / "home", *(root / "home").rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def ready() -> bool:
        try:
            conn = imaplib.IMAP4("127.0.0.1", port, timeout=5)
        except OSError:
            return False
        try:
            conn.login("bounces", "secret-pass")
            conn.logout()
            return True
        except (OSError, imaplib.IMAP4.error):
            conn.shutdown()
            return False

    if not wait_for(ready, timeout=20, interval=0.2):
        process.terminate()
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        shutil.rmtree(top, ignore_errors=True)
        process.wait(timeout=10)
        pytest.fail(f"dovecot did not start: {log}")
    yield {"host": "127.0.0.1", "port": port, "user": "bounces", "password": "secret-pass"}
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    shutil.rmtree(top, ignore_errors=True)


def _append(box: dict, raw: bytes) -> None:
    with imaplib.IMAP4(box["host"], box["port"]) as conn:
        conn.login(box["user"], box["password"])
        typ, _ = conn.append("INBOX", "", imaplib.Time2Internaldate(time.time()), raw)
        assert typ == "OK"


def test_envelope_from_delivered_to():
    raw = (b"Return-Path: <>\r\nDelivered-To: bounces+tok1@b.test\r\nX-Original-To: bounces+tok1@b.test\r\n"
           b"To: x@y.test\r\n\r\nbody")
    assert _envelope_from_headers(raw) == ("<>", ["bounces+tok1@b.test"])


def test_imap_poller_feeds_the_intake_and_empties_the_mailbox(cdb, committed_app, dovecot):
    attempt = add_attempt(cdb)
    cdb.commit()
    report = report_for(attempt, "a@x.test", "failed", "5.1.1", "smtp; 550 5.1.1 no such user")
    _append(dovecot, f"Delivered-To: bounces+{attempt.token}@{BOUNCE_DOMAIN}\r\nReturn-Path: <>\r\n".encode() + report)
    _append(dovecot, b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n")
    _append(dovecot, b"\xff\xfe broken")
    committed_app.config.update(
        IMAP_HOST=dovecot["host"], IMAP_PORT=dovecot["port"], IMAP_SSL=False, IMAP_USER=dovecot["user"],
        IMAP_PASSWORD=dovecot["password"], IMAP_FOLDER="INBOX",
    )
    assert poll_imap_once(committed_app) == 3
    cdb.rollback()
    kinds = sorted(cdb.scalars(select(InboundMessage.classification)).all())
    assert kinds == ["auto_reply", "malformed", "report"]
    assert cdb.scalars(select(InboundMessage.source)).all() == ["imap"] * 3
    assert cdb.get(Delivery, attempt.delivery_id).status == "failed"
    # the mailbox is empty now; a second poll takes nothing and changes nothing
    assert poll_imap_once(committed_app) == 0
    with imaplib.IMAP4(dovecot["host"], dovecot["port"]) as conn:
        conn.login(dovecot["user"], dovecot["password"])
        assert conn.select("INBOX")[1] == [b"0"]
