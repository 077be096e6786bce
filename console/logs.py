"""The one logging set-up of every Billpost process (web under gunicorn, worker, mail-in, commands).

`init_app(app)` (called by create_app) puts one handler on the root logger, writing to the
process's stderr — which is what gunicorn, honcho and systemd collect — as plain text, or as one
JSON object a line when `LOG_FORMAT=json`. Every line of a web request carries its request id
(taken from a sane `X-Request-ID` a proxy sent, else made here, and sent back in the response).
Every line of a job run by an RQ worker carries the job's id (`job_id`). Each message has CR/LF
escaped, ID-card numbers and e-mail addresses masked (`c***@example.cn`: the domain is kept, the
mailbox never, so a batch's addresses are never in a log) before it is written, whatever logger
wrote it. Calling it again (another create_app in the same process) changes nothing but the format.

The security log is the `billpost.security` logger (see console.audit.log_security_event).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request

SECURITY_LOGGER = "billpost.security"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# 18-digit ID-card numbers (last character may be X) and old 15-digit ones, not inside longer digit runs.
# Not inside a longer run of letters and digits: a request id's hex may hold 15 digits in a row.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})([0-9]{8})([0-9]{3}[0-9Xx])(?![0-9A-Za-z])"
                        r"|(?<![0-9A-Za-z])([0-9]{6})([0-9]{5})([0-9]{4})(?![0-9A-Za-z])")


def escape(text: object) -> str:
    """One line: backslash, CR and LF written as escapes (a forged "\\n... login user=admin" stays on its line)."""
    return str(text).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9])[A-Za-z0-9._%+=-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")


def mask_emails(text: str) -> str:
    """Every e-mail address in `text` shown as its first character, `***` and its domain."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def mask(text: str) -> str:
    return mask_emails(mask_id_numbers(text))


def current_job_id() -> str | None:
    """The RQ job this process is running, if any (set by RQ in the job's work horse)."""
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # noqa: BLE001 - outside a job (or no rq connection): none
        return None
    return job.id if job is not None else None


def mask_id_numbers(text: str) -> str:
    """Every ID-card-number-shaped run of digits in `text` shown as `320502********1234`."""

    def _mask(match: re.Match) -> str:
        if match.group(1):
            return match.group(1) + "*" * 8 + match.group(3)[-4:]
        return match.group(4) + "*" * 5 + match.group(6)

    return _ID_NUMBER.sub(_mask, text)


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    return g.get("request_id")


class _ContextFilter(logging.Filter):
    """Adds `request_id` and `job_id` to every record and makes its message safe: one line, no whole
    ID numbers or e-mail addresses."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        record.job_id = current_job_id()
        message = mask(record.getMessage().replace("\r", "\\r").replace("\n", "\\n"))
        record.msg, record.args = message, None
        return True


def _utc_time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = record.request_id if record.job_id is None else f"job {record.job_id}"
        line = f"{_utc_time(record)} {record.levelname} {record.name} [{context}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line; security events carry their fields (event, user, addr, detail) too."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": record.request_id if record.request_id != "-" else None,
            "job_id": record.job_id,
            "message": record.getMessage(),
        }
        fields = getattr(record, "security", None)
        if isinstance(fields, dict):
            # the request id is ours (random hex), never personal data: not masked
            data.update({k: mask(str(v)) if v is not None and k != "request_id" else v for k, v in fields.items()})
        if record.exc_info:
            data["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it; gunicorn keeps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _our_handler() -> logging.Handler | None:
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_billpost", False):
            return handler
    return None


# Libraries that warn about what is not wrong: xhtml2pdf about every CSS property it does not
# implement ("Ignoring CSS properties"), once per bill rendered — thousands of lines in a print run.
QUIET_LIBRARIES = ("xhtml2pdf", "xhtml2pdf.tags", "xhtml2pdf.parser", "xhtml2pdf.w3c")


def configure(log_format: str = "text", level: str = "INFO") -> logging.Handler:
    """The process's one handler on the root logger; idempotent."""
    handler = _our_handler()
    if handler is None:
        handler = _StderrHandler()
        handler._billpost = True  # type: ignore[attr-defined]
        handler.addFilter(_ContextFilter())
        root = logging.getLogger()
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.WARNING:
            root.setLevel(logging.WARNING)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.getLogger("billpost").setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    return handler


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _send_request_id(response):  # noqa: ANN001, ANN202
    if g.get("request_id"):
        response.headers["X-Request-ID"] = g.request_id
    return response


def init_app(app: Flask) -> None:
    configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    app.before_request(_assign_request_id)
    app.after_request(_send_request_id)
