"""Fixtures of the operations tests: a plain SMTP server without DSN, and the delivery tests'
loopback Postfix (the documented relay configuration, deploy/postfix/)."""

from __future__ import annotations

import pytest

from tests.delivery.conftest import committed, loopback_postfix, smtp_sink  # noqa: F401 - fixtures


class PlainRelay:
    """aiosmtpd as it comes: no DSN, no PIPELINING; takes every message and never reports."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def plain_relay():
    from aiosmtpd.controller import Controller

    from console.devtools.ports import free_port

    relay = PlainRelay()
    relay.port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port)
    controller.start()
    yield relay
    controller.stop()
