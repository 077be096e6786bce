"""The demo mail sandbox (embedded default only: SMTP_HOST empty). It never relays anywhere.

An SMTP server on SANDBOX_PORT that advertises DSN and accepts RET/ENVID/NOTIFY/ORCPT (a small
aiosmtpd subclass: stock aiosmtpd answers 555 to them), keeps every message it receives for the
admin's "sandbox mailbox" page, and answers like a real mail system would: an RFC 3464 report
(multipart/report with message/delivery-status and text/rfc822-headers, built with the email
package) sent through the same intake as real reports —

- `failed` (5.1.1, with a Diagnostic-Code) for addresses matching SANDBOX_FAIL_PATTERN,
- nothing at all for addresses matching SANDBOX_SILENT_PATTERN (so the resend/work-item path shows),
- `delivered` for every other address,

each only as far as the message's NOTIFY asks (RFC 3461: no NOTIFY means failures only), and
only when the envelope sender is at BOUNCE_DOMAIN (a report to anyone else would have to be relayed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from flask import Flask

from console.db import utcnow
from console.delivery.mailin import run_intake
from console.delivery.reports import decode_xtext, split_typed
from console.devtools.ports import free_port

log = logging.getLogger("billpost.sandbox")

SANDBOX_HOST = "sandbox.billpost.test"
KEEP_BYTES = 512 * 1024  # of each message, for the mailbox page
DSN_PARAMS = ("RET", "ENVID", "NOTIFY", "ORCPT")
NOTIFY_WORDS = {"NEVER", "SUCCESS", "FAILURE", "DELAY"}
REPORT_TRIES = 5


@dataclass
class Recipient:
    address: str
    notify: set[str] = field(default_factory=set)
    orcpt: str | None = None


class DSNSMTP(SMTP):
    """aiosmtpd that offers DSN and accepts its parameters (values kept with their original case)."""

    def _getparams(self, params):  # noqa: ANN001, ANN202
        result = super()._getparams(params)
        if result is not None:
            for name in DSN_PARAMS:
                result.pop(name, None)
        return result

    async def smtp_MAIL(self, arg):  # noqa: ANN001, ANN201
        if self.session is not None:
            self.session.raw_mail_arg = arg or ""
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):  # noqa: ANN001, ANN201
        if self.session is not None:
            self.session.raw_rcpt_arg = arg or ""
        await super().smtp_RCPT(arg)


class DSNController(Controller):
    def factory(self):  # noqa: ANN201
        return DSNSMTP(self.handler, **self.SMTP_kwargs)


def raw_params(arg: str) -> dict[str, str]:
    """`FROM:<a> RET=HDRS ENVID=bill-1` → {"RET": "HDRS", "ENVID": "bill-1"} (values as sent)."""
    out: dict[str, str] = {}
    _, _, rest = (arg or "").partition(">")
    for word in rest.split():
        name, _, value = word.partition("=")
        out[name.upper()] = value
    return out


def outcome_for(address: str, fail_pattern: str, silent_pattern: str) -> str:
    if silent_pattern and re.search(silent_pattern, address, re.IGNORECASE):
        return "silent"
    if fail_pattern and re.search(fail_pattern, address, re.IGNORECASE):
        return "failed"
    return "delivered"


def header_block(raw: bytes, limit: int = 64 * 1024) -> str:
    """The header section of a message, as text."""
    head = re.split(rb"\r?\n\r?\n", raw[:limit], maxsplit=1)[0]
    return head.decode("utf-8", "replace").replace("\r\n", "\n").strip() + "\n"


def build_report(
    *,
    mail_from: str,
    envid: str | None,
    arrival: datetime,
    blocks: list[dict],
    original_headers: str,
    reporting_mta: str = SANDBOX_HOST,
) -> bytes:
    """A real RFC 3464 report. `blocks`: dicts with final_recipient, original_recipient (typed,
    e.g. "rfc822;a@b") or None, action, status, diagnostic, remote_mta (or None)."""
    failed = any(b["action"] == "failed" for b in blocks)
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender" if failed else "Successful Mail Delivery Report"
    report["Date"] = format_datetime(utcnow())
    report["Message-ID"] = make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"
    lines = [f"This is the demo mail sandbox at host {reporting_mta}. It never relays mail.", ""]
    for b in blocks:
        lines.append(f"<{b['final_recipient']}>: {b['action']} ({b['diagnostic']})")
    report.attach(MIMEText("\n".join(lines) + "\n", "plain", "utf-8"))

    status_part = Message()
    status_part.set_type("message/delivery-status")
    del status_part["MIME-Version"]
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    if envid:
        per_message["Original-Envelope-Id"] = envid
    per_message["Arrival-Date"] = format_datetime(arrival)
    per_blocks = [per_message]
    for b in blocks:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {b['final_recipient']}"
        if b.get("original_recipient"):
            block["Original-Recipient"] = b["original_recipient"]
        block["Action"] = b["action"]
        block["Status"] = b["status"]
        if b.get("remote_mta"):
            block["Remote-MTA"] = f"dns; {b['remote_mta']}"
        block["Diagnostic-Code"] = b["diagnostic"]
        per_blocks.append(block)
    status_part.set_payload(per_blocks)
    report.attach(status_part)

    charset = "us-ascii" if original_headers.isascii() else "utf-8"
    headers_part = MIMEText(original_headers, "rfc822-headers", charset)
    report.attach(headers_part)
    return report.as_bytes(policy=report.policy.clone(linesep="\r\n"))  # the wire format: CRLF


class SandboxHandler:
    def __init__(self, app: Flask, report_delay: float = 0.3) -> None:
        self.app = app
        self.report_delay = report_delay
        self.bounce_domain = app.config["BOUNCE_DOMAIN"].strip().lower()
        self.fail_pattern = app.config["SANDBOX_FAIL_PATTERN"]
        self.silent_pattern = app.config["SANDBOX_SILENT_PATTERN"]
        self.pending: set[asyncio.Task] = set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001, ANN201
        params = raw_params(getattr(session, "raw_mail_arg", ""))
        ret = params.get("RET", "").upper()
        if ret and ret not in ("HDRS", "FULL"):
            return "501 5.5.4 Bad RET parameter"
        envid = params.get("ENVID")
        if envid is not None and (not envid or len(envid) > 100):
            return "501 5.5.4 Bad ENVID parameter"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.dsn_ret = ret or None
        envelope.dsn_envid = decode_xtext(envid) if envid else None
        envelope.dsn_rcpts = []
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        params = raw_params(getattr(session, "raw_rcpt_arg", ""))
        notify = {w.strip().upper() for w in params.get("NOTIFY", "").split(",") if w.strip()}
        if notify and (not notify <= NOTIFY_WORDS or ("NEVER" in notify and len(notify) > 1)):
            return "501 5.5.4 Bad NOTIFY parameter"
        orcpt = params.get("ORCPT")
        if len(envelope.rcpt_tos) >= 100:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.dsn_rcpts.append(Recipient(address, notify or {"FAILURE"}, orcpt))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            plan = await loop.run_in_executor(None, self._store, raw, envelope)
        except Exception:  # noqa: BLE001
            log.exception("sandbox: could not store the message")
            return "451 4.3.0 Temporary failure, please try again later"
        if plan:
            task = asyncio.ensure_future(self._report_later(plan))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        return "250 2.0.0 OK: kept in the sandbox"

    def _store(self, raw: bytes, envelope) -> list[tuple[bytes, str, list[str]]]:  # noqa: ANN001
        from email.parser import BytesHeaderParser

        from console.models.mailin import SandboxMessage

        headers = BytesHeaderParser().parsebytes(raw[:65536])
        subject = str(headers.get("Subject", ""))[:300] or None
        message_id = str(headers.get("Message-ID", ""))[:300] or None
        arrival = utcnow()
        rcpts: list[Recipient] = getattr(envelope, "dsn_rcpts", None) or [
            Recipient(a, {"FAILURE"}) for a in envelope.rcpt_tos
        ]
        with self.app.app_context():
            session = self.app.extensions["billpost.session_factory"]()
            try:
                for rcpt in rcpts:
                    session.add(
                        SandboxMessage(
                            mail_from=(envelope.mail_from or "<>")[:320],
                            rcpt_to=rcpt.address[:320],
                            envid=getattr(envelope, "dsn_envid", None),
                            notify=",".join(sorted(rcpt.notify))[:64],
                            ret=getattr(envelope, "dsn_ret", None),
                            orcpt=(rcpt.orcpt or None) and rcpt.orcpt[:320],
                            subject=subject,
                            message_id=message_id,
                            size=len(raw),
                            raw=raw[:KEEP_BYTES],
                            outcome=outcome_for(rcpt.address, self.fail_pattern, self.silent_pattern),
                            received_at=arrival,
                        )
                    )
                session.commit()
            finally:
                session.close()
        return self._plan_reports(raw, envelope, rcpts, arrival)

    def _plan_reports(self, raw: bytes, envelope, rcpts: list[Recipient], arrival: datetime):  # noqa: ANN001, ANN202
        mail_from = envelope.mail_from or ""
        if mail_from.rpartition("@")[2].lower() != self.bounce_domain:
            return []  # a report could only reach this sender by relaying: never
        by_action: dict[str, list[dict]] = {}
        for rcpt in rcpts:
            outcome = outcome_for(rcpt.address, self.fail_pattern, self.silent_pattern)
            if outcome == "silent":
                continue
            if outcome == "delivered" and "SUCCESS" not in rcpt.notify:
                continue
            if outcome == "failed" and "FAILURE" not in rcpt.notify:
                continue
            original = None
            if rcpt.orcpt:
                kind, address = split_typed(rcpt.orcpt)
                original = f"{kind or 'rfc822'};{address}" if address else None
            if outcome == "failed":
                block = {
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnostic": f"smtp; 550 5.1.1 <{rcpt.address}>: Recipient address rejected: "
                    "User unknown in the demo mail sandbox (matches SANDBOX_FAIL_PATTERN)",
                    "remote_mta": SANDBOX_HOST,
                }
            else:
                block = {
                    "action": "delivered",
                    "status": "2.0.0",
                    "diagnostic": "X-Sandbox; delivered to the demo sandbox mailbox",
                    "remote_mta": None,
                }
            block |= {"final_recipient": rcpt.address, "original_recipient": original}
            by_action.setdefault(outcome, []).append(block)
        headers = header_block(raw)
        plans = []
        for blocks in by_action.values():
            report = build_report(
                mail_from=mail_from,
                envid=getattr(envelope, "dsn_envid", None),
                arrival=arrival,
                blocks=blocks,
                original_headers=headers,
            )
            plans.append((report, "<>", [mail_from]))
        return plans

    async def _report_later(self, plan: list[tuple[bytes, str, list[str]]]) -> None:
        """Hand each report to the intake; like an MTA after a 4xx, try again a few times."""
        await asyncio.sleep(self.report_delay)
        loop = asyncio.get_running_loop()
        for raw, mail_from, rcpts in plan:
            for attempt in range(REPORT_TRIES):
                try:
                    await loop.run_in_executor(None, run_intake, self.app, raw, mail_from, rcpts, "sandbox")
                    break
                except Exception:  # noqa: BLE001 - a demo report lost is logged, never crashes the sandbox
                    if attempt == REPORT_TRIES - 1:
                        log.exception("sandbox: report not taken by the intake")
                    else:
                        await asyncio.sleep(0.5 * (attempt + 1))


class Sandbox:
    def __init__(self, controller: Controller, handler: SandboxHandler, host: str, port: int) -> None:
        self.controller = controller
        self.handler = handler
        self.host = host
        self.port = port

    def stop(self) -> None:
        self.controller.stop()


def start_sandbox(
    app: Flask, host: str = "127.0.0.1", port: int | None = None, report_delay: float = 0.3
) -> Sandbox:
    """Start the sandbox in a thread; port 0 picks a free one (tests)."""
    port = app.config["SANDBOX_PORT"] if port is None else port
    if port == 0:
        port = free_port(host)
    handler = SandboxHandler(app, report_delay)
    controller = DSNController(
        handler,
        hostname=host,
        port=port,
        data_size_limit=app.config["MAILIN_MAX_BYTES"],
        enable_SMTPUTF8=True,
        ident="Billpost demo mail sandbox",
        server_hostname=SANDBOX_HOST,
    )
    controller.start()
    return Sandbox(controller, handler, host, port)
