"""The security log of a real gunicorn process, started as the Procfile starts it: one JSON line per
sign-in, failed sign-in, refused authorization, password change, import and sign-out, each with
user, UTC time, client address and request id; CR/LF typed into a field stays escaped on its line;
an ID-card number typed as a user name is never written whole."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from console.audit import Actor
from console.devtools.ports import free_port
from console.staff.services import create_user
from tests.conftest import PASSWORD, TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
CANARY_ID = "320502199001017777"


def _procfile_web_command(port: int) -> list[str]:
    """The Procfile's web line, with the bind address filled in."""
    line = next(li for li in (ROOT / "Procfile").read_text().splitlines() if li.startswith("web:"))
    command = line.split(":", 1)[1].replace("${BIND:-127.0.0.1:8000}", f"127.0.0.1:{port}")
    return shlex.split(command)


class Browser:
    """Just enough of a browser: cookies, and the CSRF token of the last page read."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect()
        )
        self.token = ""

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict, files: dict | None = None) -> tuple[int, str]:
        fields = {"csrf_token": self.token} | fields
        if files:
            boundary = "----billpost-test-boundary"
            parts = []
            for name, value in fields.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
            for name, (filename, data) in files.items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: text/csv\r\n\r\n".encode() + data + b"\r\n"
                )
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            request = urllib.request.Request(self.base + path, data=body, method="POST")
            request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        else:
            request = urllib.request.Request(self.base + path, data=urllib.parse.urlencode(fields).encode(), method="POST")
        request.add_header("Referer", self.base + path)
        return self._open(request)

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        request.add_header("X-Forwarded-For", "203.0.113.9")  # not believed: TRUSTED_PROXIES is 0
        try:
            with self.opener.open(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        found = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if found:
            self.token = found.group(1)
        return status, text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


def _wait_until_serving(base: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("gunicorn exited early")
        try:
            urllib.request.urlopen(base + "/login", timeout=10).close()
            return
        except OSError:  # refused while binding, or timed out while the workers load the app
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start")


@pytest.fixture
def gunicorn(committed_app, tmp_path):
    port = free_port()
    env = dict(os.environ) | {
        "DATABASE_URL": committed_app.extensions["billpost.engine"].url.render_as_string(False),
        "REDIS_URL": TEST_REDIS_URL,
        "LOG_FORMAT": "json",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("TRUSTED_PROXIES", None)
    output = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        _procfile_web_command(port), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, process)
        yield base, tmp_path / "gunicorn.log"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


def _security_lines(log: Path) -> list[dict]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            record = json.loads(raw)
            if record.get("logger") == "billpost.security":
                lines.append(record)
    return lines


@pytest.mark.slow
def test_gunicorn_writes_one_security_line_per_event(committed_app, gunicorn):
    base, log = gunicorn
    factory = committed_app.extensions["billpost.session_factory"]
    with factory() as session:
        create_user(session, "sec_admin", PASSWORD, ["admin"], Actor.system())
        create_user(session, "sec_clerk", PASSWORD, ["clerk"], Actor.system())
        session.commit()

    browser = Browser(base)
    browser.get("/login")
    assert browser.post("/login", {"username": "x\r\nlogin user=sec_admin", "password": "wrong"})[0] == 401
    assert browser.post("/login", {"username": CANARY_ID, "password": "wrong"})[0] == 401
    assert browser.post("/login", {"username": "sec_clerk", "password": PASSWORD})[0] == 302
    assert browser.get("/admin/users")[0] == 403  # a clerk is refused the admin pages
    browser.get("/account/password")
    new_password = "another long passphrase 7"
    assert browser.post("/account/password", {"current": PASSWORD, "new": new_password})[0] == 302
    browser.get("/inbox/clerk/")
    assert browser.post("/logout", {})[0] == 302

    admin = Browser(base)
    admin.get("/login")
    assert admin.post("/login", {"username": "sec_admin", "password": PASSWORD})[0] == 302
    admin.get("/admin/imports")
    csv = (
        "account_no,name,customer_type,key_account,account_manager,id_number,phone,email,postal_address,"
        "postal_code,wants_ebill,channels,collective_billing\r\n"
        "SEC0000001,安全测试,residential,0,,,13812345678,,,,0,portal,0\r\n"
    ).encode("gbk")  # as Excel saves it on a Chinese Windows
    status, text = admin.post("/admin/imports", {"name": "customers"}, files={"file": ("客户.csv", csv)})
    assert status == 200, text
    token = re.search(r'action="(/admin/imports/[^"]+/confirm)"', text).group(1)
    assert admin.post(token, {})[0] == 200

    time.sleep(0.5)
    lines = _security_lines(log)
    events = [(line["event"], line["user"]) for line in lines]
    assert ("login_failed", "x\\r\\nlogin user=sec_admin") in events
    assert ("login", "sec_clerk") in events
    assert ("authorization_refused", "sec_clerk") in events
    assert ("password_changed", "sec_clerk") in events
    assert ("logout", "sec_clerk") in events
    assert ("login", "sec_admin") in events
    assert ("import", "sec_admin") in events
    assert [e for e, _u in events].count("password_changed") == 1  # one line per event
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
        assert line["addr"] == "127.0.0.1", line  # X-Forwarded-For is not believed without TRUSTED_PROXIES
        assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"] or ""), line
    whole = log.read_text(errors="replace")
    assert CANARY_ID not in whole
    assert "320502********7777" in whole
    assert "\nlogin user=sec_admin" not in whole  # the forged line never starts a line of its own
