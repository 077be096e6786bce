"""The one SMTP client set-up (console.smtp): STARTTLS verifies the relay's certificate."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller

from console.devtools.ports import free_port
from console.smtp import connect, smtp_target


class _Accept:
    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        return "250 OK"


@pytest.fixture
def starttls_relay(tmp_path):
    """A relay offering STARTTLS with a self-signed certificate (an impostor, as far as we know)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(_Accept(), hostname="127.0.0.1", port=port, tls_context=context)
    controller.start()
    yield port
    controller.stop()


def _config(**values) -> dict:  # noqa: ANN003
    base = {"SMTP_HOST": "", "SMTP_PORT": 25, "SMTP_STARTTLS": False, "SMTP_USER": "", "SMTP_PASSWORD": "",
            "SANDBOX_PORT": 2525}
    return base | values


def test_no_relay_means_the_demo_sandbox():
    assert smtp_target(_config(SANDBOX_PORT=2600)) == ("127.0.0.1", 2600)
    assert smtp_target(_config(SMTP_HOST="relay.example", SMTP_PORT=587)) == ("relay.example", 587)


def test_starttls_refuses_a_relay_whose_certificate_cannot_be_verified(starttls_relay):
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(_config(SMTP_HOST="127.0.0.1", SMTP_PORT=starttls_relay, SMTP_STARTTLS=True,
                        SMTP_USER="billing", SMTP_PASSWORD="secret"))


def test_without_starttls_the_same_relay_takes_the_session(starttls_relay):
    smtp = connect(_config(SMTP_HOST="127.0.0.1", SMTP_PORT=starttls_relay))
    try:
        assert smtp.has_extn("starttls")
    finally:
        smtp.quit()
