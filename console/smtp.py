"""The one SMTP client set-up, for bill e-mails (console.delivery.sender) and the portal's own mails.

The relay is SMTP_HOST:SMTP_PORT; with no SMTP_HOST (the embedded demo) the mail sandbox on
127.0.0.1:SANDBOX_PORT. STARTTLS, when asked for, verifies the relay's certificate and name
(ssl.create_default_context), so credentials never go to an impostor.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping


def smtp_target(config: Mapping) -> tuple[str, int]:
    if config["SMTP_HOST"]:
        return config["SMTP_HOST"], int(config["SMTP_PORT"])
    return "127.0.0.1", int(config["SANDBOX_PORT"])


def connect(config: Mapping, timeout: float = 60) -> smtplib.SMTP:
    """An SMTP session after EHLO (and STARTTLS and AUTH when configured for the relay)."""
    host, port = smtp_target(config)
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo()
        if config["SMTP_HOST"] and config["SMTP_STARTTLS"]:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if config["SMTP_HOST"] and config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
    except BaseException:
        smtp.close()
        raise
    return smtp
