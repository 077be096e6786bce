"""`console mailin` (the Procfile's mailin line) as a real process: receives, hands to the intake, stops cleanly."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from console.config import PROJECT_ROOT
from console.devtools.ports import free_port
from console.models.mailin import InboundMessage, SandboxMessage
from tests.mailin.conftest import BOUNCE_DOMAIN, add_attempt, report_for, wait_for


def _console() -> list[str]:
    """The `console` entry point (the installed script may be missing in a development venv)."""
    script = Path(sys.executable).with_name("console")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from console.cli import main; main()"]


def _wait_port(port: int) -> bool:
    def ok() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as conn:
                return conn.noop()[0] == 250
        except OSError:
            return False

    return wait_for(ok, timeout=30, interval=0.2)


def test_console_mailin_runs_receiver_and_sandbox(cdb, committed_app, tmp_path):
    attempt = add_attempt(cdb)
    cdb.commit()
    mailin_port, sandbox_port = free_port(), free_port()
    env = dict(
        os.environ, DATABASE_URL=committed_app.extensions["billpost.engine"].url.render_as_string(False), BILLPOST_INSTANCE=str(tmp_path), SMTP_HOST="",
        MAILIN_PORT=str(mailin_port), SANDBOX_PORT=str(sandbox_port), BOUNCE_DOMAIN=BOUNCE_DOMAIN,
        REDIS_URL="redis://127.0.0.1:6379/4",
    )
    process = subprocess.Popen([*_console(), "mailin"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = ""
    try:
        assert _wait_port(mailin_port) and _wait_port(sandbox_port)
        with smtplib.SMTP("127.0.0.1", mailin_port, timeout=30) as conn:
            conn.sendmail("", [f"bounces+{attempt.token}@{BOUNCE_DOMAIN}"], report_for(attempt, attempt.delivery.address))
        with smtplib.SMTP("127.0.0.1", sandbox_port, timeout=30) as conn:
            assert conn.ehlo()[0] == 250 and conn.has_extn("dsn")
            conn.sendmail("billing@bills.test", ["someone@customers.test"], b"Subject: hi\r\n\r\nhello\r\n")
        assert wait_for(lambda: cdb.rollback() or cdb.scalar(select(func.count()).select_from(SandboxMessage)) == 1)
        cdb.rollback()
        assert cdb.scalars(select(InboundMessage.classification)).all() == ["report"]
    except BaseException:
        process.send_signal(signal.SIGTERM)
        print(process.communicate(timeout=30)[0].decode())  # shown by pytest on failure
        raise
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "mail-in: stopped" in output


def test_bench_mailin_prints_its_figures(committed_app):
    result = committed_app.test_cli_runner().invoke(args=["bench", "mailin", "--reports", "3", "--connections", "2"])
    assert result.exit_code == 0, result.output
    assert "3 deliveries confirmed" in result.output and "reports/s" in result.output
    assert "3 text bounces (qmail)" in result.output and "0 deliveries confirmed, 3 failed" in result.output
    assert "CPU" in result.output and "ms per report" in result.output
    assert "one 20 MB message" in result.output
