"""Sending a batch of e-mail deliveries over one persistent SMTP connection.

1. **Claim** the batch: one conditional UPDATE (still `queued`, no live claim) sets `claimed_by`
   (this run) and `claimed_until` (a lease, DELIVERY_LEASE_SECONDS, renewed while the batch runs);
   deliveries another sender holds are skipped.
2. **Attempt rows** — token, ENVID, Message-ID — for every claimed delivery, COMMITTED before any
   SMTP. An unsent attempt left by a crash or a temporary error is reused (same Message-ID).
3. Per delivery: the SMTP transaction (MAIL FROM with RET/ENVID, RCPT TO with NOTIFY/ORCPT when the
   server offers DSN; recorded as dsn_requested otherwise; MAIL, RCPT and DATA pipelined when it
   offers PIPELINING), then COMMIT sent_at, the server's reply
   and confirm_due_at = sent_at + CONFIRM_AFTER.

The at-least-once window is the one message in flight: a worker killed after the server took a
message but before step 3's commit leaves that attempt without sent_at; when its claim runs out the
sweeper queues the delivery again and the next sender reuses that attempt, so that one message can
arrive twice — with the same Message-ID — and no other (every other delivery of the batch is either
recorded as sent or was never handed to the server). A recipient refused with 5xx is a permanent
failure at once (work item, no resend); a 4xx or a lost connection leaves the delivery queued,
retried after a back-off; a lost connection, or any other failure of the batch, also releases the
rest of the batch's claims and fails the job (RQ retries it and sends them).
"""

from __future__ import annotations

import logging
import re
import smtplib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import NoReturn

from flask import Flask, current_app, has_app_context
from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from console.billing.document import prefetch_documents
from console.db import utcnow
from console.delivery.build_ahead import BuildAhead
from console.delivery.message import build_message, envelope_sender, message_id_for, new_token, xtext
from console.delivery.policy import MAX_ATTEMPTS, apply_report, lock_for_write, open_work_item, transition
from console.models import Bill, Customer, Cycle, Delivery, DeliveryAttempt, ServicePoint
from console.models.delivery import DeliveryStatus
from console.smtp import connect

log = logging.getLogger(__name__)

RETRY_BACKOFF = (60, 300, 900, 1800, 3600)  # seconds after a temporary error, then hourly
# Seconds before each new try of a `sent` record whose database connection was lost (_execute_autocommit).
SENT_RECORD_RETRIES = (0.2, 1.0, 3.0)
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()[:2000]


def enhanced_status(code: int, text: str) -> str:
    match = _ENHANCED.search(text or "")
    if match:
        return match.group(1)
    return f"{str(code)[0]}.0.0"


class ConnectionLost(Exception):
    pass


Reply = tuple[str, int, bytes]  # the stage that answered last (MAIL, RCPT or DATA), its code and text
Ready = tuple[Delivery, DeliveryAttempt, bytes]  # a message to send, with its delivery and attempt


def stepwise_transaction(
    smtp: smtplib.SMTP,
    sender: str,
    mail_options: list[str],
    rcpt: str,
    rcpt_options: list[str],
    message: bytes,
) -> Reply:
    """MAIL, RCPT, DATA one after the other, each waiting for its reply."""
    code, text = smtp.mail(sender, mail_options)
    if code != 250:
        return "MAIL", code, text
    code, text = smtp.rcpt(rcpt, rcpt_options)
    if code not in (250, 251):
        return "RCPT", code, text
    try:
        code, text = smtp.data(message)
    except smtplib.SMTPDataError as exc:
        code, text = exc.smtp_code, exc.smtp_error
    return "DATA", code, text


def envelope_commands(sender: str, mail_options: list[str], rcpt: str, rcpt_options: list[str]) -> bytes:
    """MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING); their replies are read after."""
    commands = (
        f"MAIL FROM:{smtplib.quoteaddr(sender)}{_options(mail_options)}\r\n"
        f"RCPT TO:{smtplib.quoteaddr(rcpt)}{_options(rcpt_options)}\r\n"
        "DATA\r\n"
    )
    if commands.count("\n") != 3 or commands.count("\r") != 3:
        raise ValueError("a line break in an envelope value")  # parse_address and xtext rule it out
    return commands.encode("ascii")


def envelope_refusal(smtp: smtplib.SMTP) -> Reply | None:
    """Read the three replies to `envelope_commands`: None when the server waits for the content
    (354), else the refusal."""
    (mail_code, mail_text), (rcpt_code, rcpt_text), (data_code, data_text) = (smtp.getreply() for _ in range(3))
    if data_code == 354 and (mail_code != 250 or rcpt_code not in (250, 251)):
        # A server must refuse DATA when no recipient was accepted; if one does not, end the
        # message at once: it has no recipient to go to.
        smtp.send(b".\r\n")
        smtp.getreply()
    if mail_code != 250:
        return "MAIL", mail_code, mail_text
    if rcpt_code not in (250, 251):
        return "RCPT", rcpt_code, rcpt_text
    if data_code != 354:
        return "DATA", data_code, data_text
    return None


def _options(options: list[str]) -> str:
    return "".join(f" {option}" for option in options)


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA content as smtplib.SMTP.data sends bytes: leading dots doubled, the final dot line.
    (The message is built under the SMTP policy: its lines already end in CRLF.)"""
    data = re.sub(rb"(?m)^\.", b"..", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def load_batch(session: Session, ids: list[int]) -> tuple[list[Delivery], list]:
    """The deliveries (in the order of `ids`) with their bills (and lines), customers, cycles and
    points, in few queries: the message builder then finds them in the session's identity map. The
    identity map holds objects weakly: keep the second list for the length of the batch."""
    deliveries = session.scalars(
        select(Delivery).where(Delivery.id.in_(ids)).execution_options(populate_existing=True)
    ).all()
    bill_ids = {d.bill_id for d in deliveries}
    bills = session.scalars(select(Bill).where(Bill.id.in_(bill_ids)).options(selectinload(Bill.lines))).all()
    loaded: list = [*deliveries, *bills]
    loaded += session.scalars(select(Customer).where(Customer.id.in_({d.customer_id for d in deliveries}))).all()
    loaded += session.scalars(select(Cycle).where(Cycle.id.in_({b.cycle_id for b in bills}))).all()
    points = {b.service_point_id for b in bills if b.service_point_id}
    if points:
        loaded += session.scalars(select(ServicePoint).where(ServicePoint.id.in_(points))).all()
    prefetch_documents(session, bills)  # deposits and marketing messages of the whole batch
    by_id = {d.id: d for d in deliveries}
    return [by_id[i] for i in ids if i in by_id], loaded


class Sender:
    """One SMTP connection for a batch; `send_batch` is the whole job."""

    def __init__(
        self,
        session: Session,
        config: dict,
        now: Callable[[], datetime] = utcnow,
        connection_factory: Callable[[dict], smtplib.SMTP] = connect,
    ) -> None:
        self.session = session
        self.config = config
        self.now = now
        self.connection_factory = connection_factory
        self.smtp: smtplib.SMTP | None = None
        self.dsn = False
        self.pipelining = False
        self.awaiting_content = False  # a 354 was read and the content has not gone out yet
        self.autocommit: Connection | None = None  # see _record_sent
        self.lease = timedelta(seconds=int(config["DELIVERY_LEASE_SECONDS"]))
        self.claim_id = uuid.uuid4().hex
        self.renewed_at: datetime | None = None
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.loaded: list = []
        self.counts = {"sent": 0, "refused": 0, "temporary": 0, "skipped": 0}

    # -- connection ------------------------------------------------------------------------------
    def _connection(self) -> smtplib.SMTP:
        if self.smtp is None:
            self.smtp = self.connection_factory(self.config)
            self.dsn = bool(self.smtp.has_extn("dsn"))
            self.pipelining = bool(self.smtp.has_extn("pipelining"))
        return self.smtp

    def close(self) -> None:
        if self.autocommit is not None:
            self.autocommit.close()
            self.autocommit = None
        if self.smtp is not None:
            if self.awaiting_content:
                # Stopped between a 354 and the content (a failed build, say): a QUIT would be read
                # as content; dropping the connection discards the unfinished message.
                self.smtp.close()
            else:
                try:
                    self.smtp.quit()
                except (smtplib.SMTPException, OSError):
                    self.smtp.close()
            self.smtp = None
            self.awaiting_content = False

    # -- claims ----------------------------------------------------------------------------------
    def claim(self, ids: list[int]) -> list[int]:
        """Claim the still-queued, unclaimed deliveries among `ids` for this run (commits)."""
        now = self.now()
        claimed: set[int] = set()
        for start in range(0, len(ids), 1000):
            claimed |= set(
                self.session.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(ids[start : start + 1000]),
                        Delivery.channel == "email",
                        Delivery.status == DeliveryStatus.QUEUED,
                        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
                    )
                    .values(claimed_until=now + self.lease, claimed_by=self.claim_id)
                    .returning(Delivery.id)
                    .execution_options(synchronize_session=False)
                ).scalars()
            )
        self.session.commit()
        self.renewed_at = now
        return [i for i in ids if i in claimed]

    def renewal_due(self) -> bool:
        return self.renewed_at is None or self.now() - self.renewed_at >= self.lease / 3

    def renew(self, remaining: list[int]) -> set[int]:
        """Extend the lease on what is left (a third of it has gone); returns what is still ours."""
        now = self.now()
        ours = set(
            self.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(remaining), Delivery.claimed_by == self.claim_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(claimed_until=now + self.lease)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        ) if remaining else set()
        self.session.commit()
        self.renewed_at = now
        return ours

    def release(self, ids: list[int]) -> None:
        """Give back claims this run will not use (a lost connection: the job's retry takes them)."""
        if ids:
            self.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.claimed_by == self.claim_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(claimed_until=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
            self.session.commit()

    # -- preparation -----------------------------------------------------------------------------
    def load(self, ids: list[int], with_documents: bool = True) -> list[Delivery]:
        """The deliveries; with what their messages are built from unless the builder thread builds."""
        if not with_documents:
            self.loaded = self.session.scalars(
                select(Delivery).where(Delivery.id.in_(ids)).execution_options(populate_existing=True)
            ).all()
            found = {d.id: d for d in self.loaded}
            return [found[i] for i in ids if i in found]
        deliveries, self.loaded = load_batch(self.session, ids)
        return deliveries

    def prepare(self, deliveries: list[Delivery]) -> dict[int, DeliveryAttempt]:
        """The attempt of each delivery (the unsent one left over, else a new one); commits."""
        ids = [d.id for d in deliveries]
        pending = {
            a.delivery_id: a
            for a in self.session.scalars(
                select(DeliveryAttempt).where(
                    DeliveryAttempt.delivery_id.in_(ids),
                    DeliveryAttempt.sent_at.is_(None),
                    DeliveryAttempt.outcome.is_(None),
                )
            )
        }
        attempts: dict[int, DeliveryAttempt] = {}
        bounce_domain = self.config["BOUNCE_DOMAIN"]
        now = self.now()
        for delivery in deliveries:
            attempt = pending.get(delivery.id)
            if attempt is not None and attempt.attempt_no == delivery.attempts_made:
                attempt.dsn_requested = self.dsn
                attempts[delivery.id] = attempt
                continue
            if delivery.attempts_made - (delivery.attempt_base or 0) >= MAX_ATTEMPTS:
                # Cannot happen through the policy; never send a third time.
                if transition(self.session, delivery, {"status": DeliveryStatus.QUEUED}, status=DeliveryStatus.FAILED,
                              claimed_until=None):
                    open_work_item(self.session, delivery, "email_failed")
                continue
            number = delivery.attempts_made + 1
            token = new_token(delivery.id, number)
            attempt = DeliveryAttempt(
                delivery_id=delivery.id,
                attempt_no=number,
                token=token,
                envid=token,
                message_id=message_id_for(token, bounce_domain),
                dsn_requested=self.dsn,
                created_at=now,
            )
            self.session.add(attempt)
            delivery.attempts_made = number
            attempts[delivery.id] = attempt
        self.session.commit()  # every attempt (token, ENVID, Message-ID) on record before any SMTP
        return attempts

    # -- the SMTP exchange ------------------------------------------------------------------------
    def _envelope(self, delivery: Delivery, attempt: DeliveryAttempt) -> tuple[str, list[str], str, list[str]]:
        """Envelope sender (VERP), MAIL options, recipient, RCPT options (DSN when offered)."""
        sender = envelope_sender(attempt.token, self.config["BOUNCE_DOMAIN"])
        if not self.dsn:
            return sender, [], delivery.address, []
        return (
            sender,
            ["RET=HDRS", f"ENVID={xtext(attempt.envid)}"],
            delivery.address,
            ["NOTIFY=SUCCESS,FAILURE,DELAY", f"ORCPT=rfc822;{xtext(delivery.address)}"],
        )

    def _send_stepwise(self, ready: Iterator[Ready]) -> None:
        """Without PIPELINING: MAIL, RCPT, DATA, content, each waiting for its reply."""
        for delivery, attempt, message in ready:
            smtp = self._connection()
            try:
                stage, code, text = stepwise_transaction(smtp, *self._envelope(delivery, attempt), message)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._connection_lost(delivery, attempt, exc)
            if code != 250:
                self._rset()
            self._settle(delivery, attempt, stage, code, text)

    def _send_pipelined(self, ready: Iterator[Ready]) -> None:
        """With PIPELINING (RFC 2920): the next message's MAIL, RCPT and DATA go out in the same write
        as this message's content, so the server handles that envelope while this message's result
        is committed. One round trip per message. The next message's content goes out only after
        this one is on record: the at-least-once window stays the one message in flight."""
        current = next(ready, None)
        announced = False  # current's envelope already went out (with the previous content)
        while current is not None:
            delivery, attempt, message = current
            smtp = self._connection()  # the same one unless a failed RSET closed it (then not announced)
            try:
                if not announced:
                    smtp.send(envelope_commands(*self._envelope(delivery, attempt)))
                refusal = envelope_refusal(smtp)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._connection_lost(delivery, attempt, exc)
            self.awaiting_content = refusal is None
            if refusal is not None:
                self._rset()  # the refused transaction is cleared before the next envelope
                self._settle(delivery, attempt, *refusal)
                current, announced = next(ready, None), False
                continue
            following = next(ready, None)  # built and its claim checked before this content goes out
            try:
                more = envelope_commands(*self._envelope(*following[:2])) if following is not None else b""
                smtp.send(_dot_stuffed(message) + more)
                # If its envelope is accepted, the server will wait for the following content.
                self.awaiting_content = following is not None
                code, text = smtp.getreply()
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._connection_lost(delivery, attempt, exc)
            # No RSET after a refused content: the server has ended that transaction itself, and
            # the next envelope is already in its hands.
            self._settle(delivery, attempt, "DATA", code, text)
            current, announced = following, following is not None

    def _settle(self, delivery: Delivery, attempt: DeliveryAttempt, stage: str, code: int, text: bytes | str) -> str:
        """The server's last word on one message: taken (sent), refused for good (5xx), or not now."""
        reply = _reply(code, text)
        if code == 250:
            self._record_sent(delivery, attempt, reply)
            self.counts["sent"] += 1
            return "sent"
        if 500 <= code < 600:
            attempt.smtp_response = f"{stage}: {reply}"
            apply_report(self.session, attempt, "refused", enhanced_status(code, reply), reply, self.now())
            self.session.commit()
            self.counts["refused"] += 1
            return "refused"
        self._temporary(delivery, attempt, f"{stage}: {reply}")
        return "temporary"

    def _rset(self) -> None:
        try:
            self.smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def _connection_lost(self, delivery: Delivery, attempt: DeliveryAttempt, exc: Exception) -> NoReturn:
        """Lost in the middle: the server may or may not have taken the message (the in-flight window)."""
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None
        self.awaiting_content = False
        self._temporary(delivery, attempt, f"connection lost: {exc}")
        raise ConnectionLost(str(exc)) from exc

    def _record_sent(self, delivery: Delivery, attempt: DeliveryAttempt, reply: str) -> None:
        """The server took the message: sent_at and its reply on the attempt, the delivery `sent` with
        its confirmation deadline (if still queued for this attempt), committed. This runs once per
        message, so it is plain SQL, not the unit of work: on PostgreSQL one statement (the attempt's
        UPDATE as a CTE of the delivery's) on an autocommit connection, a single round trip; else
        two UPDATEs and a COMMIT in the session."""
        sent_at = self.now()
        attempts, deliveries = DeliveryAttempt.__table__, Delivery.__table__
        values = {
            "status": DeliveryStatus.SENT,
            "confirm_due_at": sent_at + self.config["CONFIRM_AFTER"],
            "claimed_until": None,
            "claimed_by": None,
            "last_error": None,
            "updated_at": sent_at,  # explicit: the column's onupdate is not applied under a DML CTE
        }
        attempt_sent = update(attempts).where(attempts.c.id == attempt.id).values(sent_at=sent_at, smtp_response=reply)
        delivery_sent = update(deliveries).where(
            deliveries.c.status == DeliveryStatus.QUEUED, deliveries.c.attempts_made == attempt.attempt_no
        )
        if self._may_open_connections():
            done = attempt_sent.returning(attempts.c.delivery_id).cte("attempt_sent")
            statement = delivery_sent.where(deliveries.c.id == select(done.c.delivery_id).scalar_subquery())
            moved = self._execute_autocommit(statement.values(**values))
        else:
            connection = self.session.connection()
            connection.execute(attempt_sent)
            moved = connection.execute(delivery_sent.where(deliveries.c.id == delivery.id).values(**values)).rowcount
            self.session.commit()
        set_committed_value(attempt, "sent_at", sent_at)
        set_committed_value(attempt, "smtp_response", reply)
        if moved == 1:  # else confirmed (the customer opened the bill on the web page) or cancelled meanwhile
            for column, value in values.items():
                set_committed_value(delivery, column, value)

    def _may_open_connections(self) -> bool:
        """The autocommit connection and the builder thread's session are connections of their own:
        on a server database (not SQLite) the sender's session reaches through an engine (a test's
        session, bound to one open transaction, does not)."""
        return not self.sqlite and isinstance(self.session.get_bind(), Engine)

    def _execute_autocommit(self, statement) -> int:  # noqa: ANN001 - a Core DML statement
        """Run one statement on the autocommit connection; its rowcount. When the database drops the
        connection (a restart, a failover, a killed backend), try again on a new one a few times: the
        relay already has the message, and a lost `sent` would have it sent again once the claim's
        lease runs out. Repeating is harmless: the attempt gets the same values, and the delivery moves
        only while it is still queued for this attempt."""
        for pause in SENT_RECORD_RETRIES:
            try:
                return self._autocommit().execute(statement).rowcount
            except DBAPIError as exc:
                if not (exc.connection_invalidated or self.autocommit is None):  # lost, or no new one yet
                    raise
                log.warning("no database connection to record a sent message (%s); trying again in %s s",
                            exc.orig, pause)
                if self.autocommit is not None:
                    self.autocommit.close()
                    self.autocommit = None
                time.sleep(pause)
        return self._autocommit().execute(statement).rowcount

    def _autocommit(self) -> Connection:
        if self.autocommit is None:
            self.autocommit = self.session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.autocommit

    def _temporary(self, delivery: Delivery, attempt: DeliveryAttempt | None, error: str) -> None:
        """A 4xx or a lost connection: the delivery stays queued, retried after a back-off; the
        unsent attempt is kept and reused (same Message-ID)."""
        self.session.rollback()
        lock_for_write(self.session)
        self.session.refresh(delivery)
        if attempt is not None:
            attempt = self.session.get(DeliveryAttempt, attempt.id)
            attempt.smtp_response = error[:2000]
        backoff = RETRY_BACKOFF[min(delivery.send_errors, len(RETRY_BACKOFF) - 1)]
        delivery.send_errors = delivery.send_errors + 1
        delivery.last_error = error[:2000]
        delivery.claimed_until = self.now() + timedelta(seconds=backoff)
        delivery.claimed_by = None
        self.session.commit()
        self.counts["temporary"] += 1

    # -- the batch -------------------------------------------------------------------------------
    def _ready(
        self, todo: list[Delivery], attempts: dict[int, DeliveryAttempt], messages: Iterator | None
    ) -> Iterator[Ready]:
        """The batch's messages to send, in order, each built (here unless the builder thread did)
        and still ours: the lease is renewed as the batch goes on, and a delivery whose claim ran
        out and another sender took is skipped."""
        lost: set[int] = set()
        for position, delivery in enumerate(todo):
            message = None
            if messages is not None:
                built_for, message = next(messages)
                if built_for != delivery.id:
                    raise RuntimeError(f"message built for delivery {built_for}, not {delivery.id}")
            if self.renewal_due():
                remaining = [d.id for d in todo[position:]]
                lost |= set(remaining) - self.renew(remaining)
            if delivery.id in lost:
                self.counts["skipped"] += 1
                continue
            attempt = attempts[delivery.id]
            if message is None:
                message = build_message(self.session, delivery, attempt, self.config).as_bytes()
            if self.sqlite or self.session.dirty or self.session.new:
                # Keeps a PDF path a first rendering stored; on SQLite also ends the read transaction,
                # so no snapshot is held across the SMTP exchange (a reader there cannot become a writer).
                self.session.commit()
            yield delivery, attempt, message

    def send_batch(self, delivery_ids: Iterable[int]) -> dict:
        ids = list(dict.fromkeys(int(i) for i in delivery_ids))
        claimed = self.claim(ids)
        self.counts["skipped"] = len(ids) - len(claimed)
        if not claimed:
            return dict(self.counts)
        try:
            self._send_claimed(claimed)
        except Exception:
            # Whatever stopped the batch (a lost connection, a database error, a message that could not be
            # built), the claims not used go back, so the job's retry sends them. Kept, they made the retry
            # skip the whole batch until the lease ran out and the sweeper asked again (bench loop: five
            # batches, 730 e-mails, 7 minutes late).
            self._release_after_failure(claimed)
            raise
        return dict(self.counts)

    def _release_after_failure(self, claimed: list[int]) -> None:
        try:
            self.session.rollback()
            self.release(claimed)  # only those still queued under this run's claim: nothing sent is resent
        except Exception:  # noqa: BLE001 - the database itself may be what failed: the lease runs out then
            log.warning("send batch: claims not released after a failure; they are free when the lease runs out",
                        exc_info=True)

    def _send_claimed(self, claimed: list[int]) -> None:
        try:
            try:
                self._connection()
            except (smtplib.SMTPException, OSError) as exc:
                for delivery in self.load(claimed):
                    self._temporary(delivery, None, f"connect: {exc}")
                raise
            build_ahead = self._may_open_connections() and has_app_context() and len(claimed) > 1
            deliveries = self.load(claimed, with_documents=not build_ahead)
            attempts = self.prepare(deliveries)
            todo = [d for d in deliveries if d.id in attempts]
            ahead = None
            if build_ahead and todo:
                app = current_app._get_current_object()
                ahead = BuildAhead(app, [d.id for d in todo], [attempts[d.id].id for d in todo])
            messages = iter(ahead) if ahead is not None else None
            try:
                ready = self._ready(todo, attempts, messages)
                (self._send_pipelined if self.pipelining else self._send_stepwise)(ready)
            finally:
                if ahead is not None:
                    ahead.close()
        finally:
            self.close()


def send_batch(session: Session, delivery_ids: Iterable[int], config: dict, **kwargs) -> dict:  # noqa: ANN003
    """Send these deliveries (those still queued and unclaimed) over one connection."""
    return Sender(session, config, **kwargs).send_batch(delivery_ids)


def send_batch_over_connections(
    app: Flask, session_factory: Callable[[], Session], delivery_ids: Iterable[int], connections: int
) -> dict:
    """The batch spread over `connections` SMTP connections (SEND_CONNECTIONS), each a Sender of its
    own — its session, its claim, its connection — in a thread. The relay works on several messages
    at once; each connection still has at most one message in flight, so a worker killed with -9
    can have sent one message per connection twice (same Message-ID), never more. On SQLite (one
    writer) a batch always goes over one connection."""
    ids = list(dict.fromkeys(int(i) for i in delivery_ids))
    sqlite = app.extensions["billpost.engine"].dialect.name == "sqlite"
    connections = 1 if sqlite else max(1, min(connections, len(ids)))
    parts = [ids[i::connections] for i in range(connections)]

    def send_part(part: list[int]) -> dict:
        with app.app_context(), session_factory() as session:
            return send_batch(session, part, app.config)

    if connections == 1:
        return send_part(ids)
    with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="smtp") as pool:
        results = list(pool.map(send_part, parts))
    return {key: sum(r[key] for r in results) for key in results[0]}
