"""The portal's own mails (registration and reset codes), sent with smtplib after the commit.

Sent on a short-lived thread so the page answers at once, and as fast for unknown accounts (which
send nothing) as for known ones, through the one SMTP client set-up (console.smtp).
"""

from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from flask_babel import gettext as _

from console.portal.services import Outgoing
from console.smtp import connect

log = logging.getLogger("billpost.portal.mail")


def build_message(outgoing: Outgoing, minutes: int) -> EmailMessage:
    """The mail in the current locale (needs an app and request context for translations)."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = outgoing.to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].rpartition("@")[2] or "billpost.local")
    login_url = config["PORTAL_BASE_URL"].rstrip("/") + "/my/login"
    if outgoing.kind == "already_registered":
        message["Subject"] = _("Your web account")
        body = _(
            "Someone asked to register a web account for your electricity account, which already has one. "
            "If it was you, sign in or reset your password at %(url)s. If not, you can ignore this mail.",
            url=login_url,
        )
    elif outgoing.purpose == "register":
        message["Subject"] = _("Your registration code")
        body = _(
            "Your registration code for the electricity bill web page is %(code)s. It works once, "
            "for %(minutes)s minutes. Never tell it to anyone, including our staff.",
            code=outgoing.code, minutes=minutes,
        )
    else:
        message["Subject"] = _("Your password reset code")
        body = _(
            "Your password reset code for the electricity bill web page is %(code)s. It works once, "
            "for %(minutes)s minutes. If you did not ask for it, you can ignore this mail.",
            code=outgoing.code, minutes=minutes,
        )
    message.set_content(body)
    return message


def send_message(config: dict, message: EmailMessage) -> None:
    with connect(config, timeout=30) as smtp:
        smtp.send_message(message)


def send_in_background(message: EmailMessage) -> threading.Thread:
    config = dict(current_app.config)

    def _send() -> None:
        try:
            send_message(config, message)
        except (OSError, smtplib.SMTPException):
            log.exception("portal mail to the relay failed")

    thread = threading.Thread(target=_send, name="portal-mail", daemon=True)
    thread.start()
    return thread
