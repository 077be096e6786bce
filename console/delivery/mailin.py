"""The mail-in receiver: an SMTP server (aiosmtpd) for the bounce domain, feeding the intake.

- Accepts connections only from MAILIN_TRUSTED_PEERS (default loopback; in production the
  company's MTA that owns the bounce domain): any other peer gets `554` and is disconnected. At most
  MAILIN_MAX_CONNECTIONS at once (`421` to the next, which the sending MTA retries).
- Accepts recipients at BOUNCE_DOMAIN only (550 for any other); at most 100 recipients.
- Lines over 998 octets (RFC 5321's limit, broken by some real bounces) are accepted up to
  LINE_LIMIT; a longer line gets `451` (the sender retries, maybe wrapped), never a permanent 5xx.
- `handle_DATA` runs the intake in a worker thread, in a fresh session, and commits; it answers
  `250` only after the commit, `451` on any internal error (the sending MTA retries later), and
  the server itself never stops on a bad message. Messages over MAILIN_MAX_BYTES get `552`.
- `console mailin` runs it (the Procfile's `mailin` line), plus the demo sandbox when SMTP_HOST is
  empty, plus the IMAP poller with `--imap`.
- `start_receiver(app, host, port)` / `Receiver.stop()` run it in a thread (tests, benches).
- `poll_imap_once(app)`: the optional IMAP bounce mailbox (IMAP_*), through the same intake; the
  envelope recipient comes from Delivered-To / X-Original-To; messages are deleted once committed.
"""

from __future__ import annotations

import asyncio
import imaplib
import ipaddress
import logging
import re
import signal
import threading
from typing import Any

import click
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from console.db import sqlite_write_transactions, utcnow

log = logging.getLogger("billpost.mailin")

MAX_RECIPIENTS = 100
LINE_LIMIT = 1024 * 1024  # octets of one line accepted in DATA (the intake parses the first MB)




# SQLite has one writer at a time: intakes take the write lock at BEGIN (see console.db) and, in
# this process, take turns. (PostgreSQL: in parallel.)
_SQLITE_TURNS = threading.Lock()


def run_intake(app: Flask, raw: bytes, mail_from: str, rcpt_tos: list[str], source: str = "smtp"):  # noqa: ANN201
    """One received message through the intake in its own session, committed."""
    if app.extensions["billpost.engine"].dialect.name == "sqlite":
        with _SQLITE_TURNS, sqlite_write_transactions():
            return _run_intake(app, raw, mail_from, rcpt_tos, source)
    return _run_intake(app, raw, mail_from, rcpt_tos, source)


def _run_intake(app: Flask, raw: bytes, mail_from: str, rcpt_tos: list[str], source: str):  # noqa: ANN202
    try:
        # Duplicates (a lost 250, the same message over two connections) are rare: the unique
        # SHA-256 refuses the second copy's INSERT, and once more, looking first, finds it stored.
        return _run_intake_once(app, raw, mail_from, rcpt_tos, source, look_for_duplicate=source != "smtp")
    except IntegrityError:
        return _run_intake_once(app, raw, mail_from, rcpt_tos, source, look_for_duplicate=True)


def _run_intake_once(app: Flask, raw: bytes, mail_from: str, rcpt_tos: list[str], source: str, look_for_duplicate: bool):  # noqa: ANN202
    from console.delivery.intake import process_inbound

    with app.app_context():
        session = app.extensions["billpost.session_factory"]()
        try:
            result = process_inbound(
                session,
                raw,
                mail_from,
                rcpt_tos,
                utcnow(),
                bounce_domain=app.config["BOUNCE_DOMAIN"],
                keep_bytes=app.config["MAILIN_KEEP_BYTES"],
                source=source,
                look_for_duplicate=look_for_duplicate,
            )
            session.commit()
            return result
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


class BounceHandler:
    """aiosmtpd handler for the bounce domain."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.bounce_domain = app.config["BOUNCE_DOMAIN"].strip().lower()

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:  # noqa: ANN001
        domain = address.rpartition("@")[2].strip().lower()
        if domain != self.bounce_domain:
            return "550 5.1.1 Not a bounce address here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                None, run_intake, self.app, raw, envelope.mail_from or "<>", list(envelope.rcpt_tos)
            )
        except Exception:  # noqa: BLE001 - never crash the server; the sender retries on 451
            log.exception("mailin: intake failed; answering 451")
            return "451 4.3.0 Temporary failure, please try again later"
        log.info("mailin: message %s %s (%s)", result.inbound_id, result.classification, result.reason)
        return f"250 2.0.0 OK: queued as {result.inbound_id}"


def trusted_networks(value: str | list | tuple | None) -> list:
    """MAILIN_TRUSTED_PEERS: addresses or networks, comma- or space-separated (`127.0.0.1/8, ::1`)."""
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    networks = []
    for item in value or ():
        item = str(item).strip()
        if item:
            networks.append(ipaddress.ip_network(item, strict=False))
    return networks


def peer_trusted(peer: object, networks: list) -> bool:
    host = peer[0] if isinstance(peer, tuple | list) and peer else peer
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class BounceSMTP(SMTP):
    """aiosmtpd's server with the receiver's limits: trusted peers, a connection cap, long lines."""

    line_length_limit = LINE_LIMIT

    def __init__(self, handler, *args, limits: dict | None = None, **kwargs) -> None:  # noqa: ANN001
        super().__init__(handler, *args, **kwargs)
        self.limits = limits if limits is not None else {"active": 0, "max": 0, "networks": []}

    async def _handle_client(self) -> None:
        peer = self.session.peer if self.session is not None else None
        if not peer_trusted(peer, self.limits["networks"]):
            log.warning("mailin: connection from untrusted peer %s refused", peer)
            await self.push("554 5.7.1 Not a trusted peer for this bounce domain")
            self.transport.close()
            return
        if self.limits["max"] and self.limits["active"] >= self.limits["max"]:
            await self.push("421 4.7.0 Too many connections, try again later")
            self.transport.close()
            return
        self.limits["active"] += 1
        try:
            await super()._handle_client()
        finally:
            self.limits["active"] -= 1

    async def push(self, status: str) -> None:
        if status.startswith("500 Line too long"):
            # Past LINE_LIMIT: temporary, so the sending MTA keeps the message (and may wrap it).
            status = "451 4.5.3 Line too long for this receiver; please retry"
        await super().push(status)


class BounceController(Controller):
    def __init__(self, handler, *, limits: dict, **kwargs) -> None:  # noqa: ANN001
        self.limits = limits
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        return BounceSMTP(self.handler, limits=self.limits, **self.SMTP_kwargs)


class Receiver:
    """A running aiosmtpd controller (in its own thread) and where it listens."""

    def __init__(self, controller: Controller, host: str, port: int) -> None:
        self.controller = controller
        self.host = host
        self.port = port

    def stop(self) -> None:
        self.controller.stop()


def start_receiver(app: Flask, host: str | None = None, port: int | None = None) -> Receiver:
    """Start the receiver in a thread (MAILIN_HOST:MAILIN_PORT unless given)."""
    host = host or app.config["MAILIN_HOST"]
    port = app.config["MAILIN_PORT"] if port is None else port
    limits = {
        "active": 0,
        "max": int(app.config["MAILIN_MAX_CONNECTIONS"] or 0),
        "networks": trusted_networks(app.config["MAILIN_TRUSTED_PEERS"]),
    }
    controller = BounceController(
        BounceHandler(app),
        limits=limits,
        hostname=host,
        port=port,
        data_size_limit=app.config["MAILIN_MAX_BYTES"],
        enable_SMTPUTF8=True,
        ident="Billpost mail-in",
        timeout=120,
    )
    controller.start()
    return Receiver(controller, host, port)


# ---------------------------------------------------------------- IMAP bounce mailbox (optional)

ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def _envelope_from_headers(raw: bytes) -> tuple[str, list[str]]:
    """An IMAP message has no SMTP envelope: take it from the headers the mailbox's MTA added."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:65536].decode("utf-8", "replace")
    head = re.sub(r"\r?\n[ \t]+", " ", head)
    fields: dict[str, list[str]] = {}
    for line in head.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip().lower(), []).append(value.strip())
    rcpts: list[str] = []
    for name in ENVELOPE_HEADERS:
        for value in fields.get(name.lower(), []):
            for address in re.findall(r"[^\s<>,;:\"]+@[^\s<>,;:\"]+", value):
                if "+" in address.partition("@")[0] and address not in rcpts:
                    rcpts.append(address)
    mail_from = (fields.get("return-path") or ["<>"])[0] or "<>"
    return mail_from[:320], rcpts[:MAX_RECIPIENTS]


def poll_imap_once(app: Flask, limit: int = 500) -> int:
    """Fetch every message of IMAP_FOLDER, feed it to the intake, delete it once committed."""
    config = app.config
    cls = imaplib.IMAP4_SSL if config["IMAP_SSL"] else imaplib.IMAP4
    keep = config["MAILIN_KEEP_BYTES"]
    done = 0
    with cls(config["IMAP_HOST"], config["IMAP_PORT"]) as conn:
        conn.login(config["IMAP_USER"], config["IMAP_PASSWORD"])
        typ, _ = conn.select(config["IMAP_FOLDER"])
        if typ != "OK":
            raise RuntimeError(f"IMAP folder {config.get('IMAP_FOLDER')!r} cannot be selected")
        typ, data = conn.uid("SEARCH", None, "UNDELETED")
        for uid in (data[0] or b"").split()[:limit]:
            # A huge message is fetched only up to what the intake keeps.
            typ, fetched = conn.uid("FETCH", uid, f"(BODY.PEEK[]<0.{keep}>)")
            raw = next((item[1] for item in fetched or [] if isinstance(item, tuple)), None)
            if typ != "OK" or raw is None:
                continue
            mail_from, rcpts = _envelope_from_headers(raw)
            run_intake(app, raw, mail_from, rcpts, source="imap")
            conn.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            done += 1
        conn.expunge()
    return done


def poll_forever(app: Flask, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            count = poll_imap_once(app)
            if count:
                log.info("mailin: %d message(s) taken from IMAP", count)
        except Exception:  # noqa: BLE001 - a mailbox outage must not end the process; retried next round
            log.exception("mailin: IMAP poll failed")
        stop.wait(app.config["IMAP_POLL_SECONDS"])


@click.command("mailin")
@click.option("--imap", is_flag=True, help="Also poll the IMAP bounce mailbox (IMAP_HOST, IMAP_USER, ...).")
@click.option("--no-sandbox", is_flag=True, help="Do not start the demo mail sandbox even if SMTP_HOST is empty.")
@with_appcontext
def mailin_command(imap: bool, no_sandbox: bool) -> None:
    """The inbound SMTP receiver for delivery reports (and the demo sandbox when SMTP_HOST is empty)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = current_app._get_current_object()
    if imap and not app.config.get("IMAP_HOST"):
        raise click.UsageError("--imap needs IMAP_HOST (and IMAP_USER, IMAP_PASSWORD)")
    stop = threading.Event()

    def _stop(*_args: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stoppers: list[Any] = [stop.set]
    try:
        receiver = start_receiver(app)
        stoppers.append(receiver.stop)
        click.echo(f"mail-in: receiving reports for @{app.config['BOUNCE_DOMAIN']} on {receiver.host}:{receiver.port}")
        if not app.config.get("SMTP_HOST") and not no_sandbox:
            from console.devtools.sandbox import start_sandbox

            sandbox = start_sandbox(app)
            stoppers.append(sandbox.stop)
            click.echo(f"mail-in: demo mail sandbox on {sandbox.host}:{sandbox.port} (never relays)")
        if imap:
            thread = threading.Thread(target=poll_forever, args=(app, stop), name="imap-poller", daemon=True)
            thread.start()
            click.echo(f"mail-in: polling IMAP {app.config['IMAP_HOST']} folder {app.config['IMAP_FOLDER']}")
        while not stop.wait(1):
            pass
    finally:
        for stopper in reversed(stoppers):
            stopper()
        click.echo("mail-in: stopped")
