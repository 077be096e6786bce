"""Building a send batch's e-mails ahead of the SMTP exchange, in a thread of its own.

A message takes a few milliseconds of CPU to build (bill template, MIME); sending it is mostly
waiting for the server's replies and the database's commits. The builder thread renders the next
messages while the sender waits, so a worker does both at once. It has its own session (a session
is not shared across threads) and loads the batch itself; it never writes anything but a bill PDF
rendered the first time (as the inline build does). Building has no side effect on the delivery
state, so the at-least-once window of the sender stays the one message in flight.

Used on a database server (PostgreSQL) when the sender's session has an engine of its own; on SQLite
(one writer, and a second connection would not see a test's uncommitted rows) messages are built
inline, one by one.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator

from flask import Flask
from sqlalchemy import select

from console.delivery.message import build_message
from console.models import DeliveryAttempt

AHEAD = 4  # messages built and waiting at most: enough to cover a wait, little memory with PDFs
# While the builder runs, the interpreter switches threads every 0.5 ms instead of 5 ms: the sender
# thread, woken by an SMTP or database reply, otherwise waits up to 5 ms for the builder to yield
# the GIL (measured: 85 → 98 messages/s for one worker). Restored when the batch ends.
SWITCH_INTERVAL = 0.0005
_DONE = object()


class _FastSwitching:
    """The process-wide switch interval, lowered while any builder runs (several senders of one job
    may run at once, one per SMTP connection) and restored when the last one stops."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.saved, SWITCH_INTERVAL))
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                sys.setswitchinterval(self.saved)


_switching = _FastSwitching()


class BuildAhead:
    """Iterate to get `(delivery_id, message bytes)` in the order of `delivery_ids`; a build that
    failed raises its exception at its turn. `close()` stops the thread (always call it)."""

    def __init__(self, app: Flask, delivery_ids: list[int], attempt_ids: list[int]) -> None:
        self.app = app
        self.delivery_ids = delivery_ids
        self.attempt_ids = attempt_ids
        self.ready: queue.Queue = queue.Queue(maxsize=AHEAD)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="build-ahead", daemon=True)
        _switching.enter()
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stopping.is_set():
            try:
                self.ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        from console.delivery.sender import load_batch

        try:
            with self.app.app_context():
                with self.app.extensions["billpost.session_factory"]() as session:
                    deliveries, _keep = load_batch(session, self.delivery_ids)
                    attempts = {
                        a.delivery_id: a
                        for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.id.in_(self.attempt_ids)))
                    }
                    session.commit()  # no snapshot held while building
                    for delivery in deliveries:
                        if self.stopping.is_set():
                            return
                        try:
                            item = (delivery.id, build_message(session, delivery, attempts[delivery.id], self.app.config).as_bytes())
                            session.commit()  # a bill PDF rendered the first time keeps its path
                        except Exception as exc:  # noqa: BLE001 - raised in the sender, at this message's turn
                            session.rollback()
                            item = (delivery.id, exc)
                        if not self._put(item):
                            return
        except Exception as exc:  # noqa: BLE001 - loading failed: the sender raises it at once
            self._put((None, exc))
        finally:
            self._put(_DONE)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        while True:
            item = self.ready.get()
            if item is _DONE:
                return
            delivery_id, message = item
            if isinstance(message, BaseException):
                raise message
            yield delivery_id, message

    def close(self) -> None:
        self.stopping.set()
        try:
            while True:
                self.ready.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(timeout=30)
        _switching.leave()
