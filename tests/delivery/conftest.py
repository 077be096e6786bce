"""Fixtures of the delivery tests: bills without the billing engine, and a loopback Postfix."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from console.models import Bill, BillLine, Cycle

_n = itertools.count(1)


def add_bill(session, customer, cycle=None, period: str | None = None) -> Bill:  # noqa: ANN001
    """A generated bill with a few itemized lines for `customer` (in `cycle`, made if needed)."""
    if cycle is None:
        period = period or "2026-11"
        cycle = session.scalars(select(Cycle).where(Cycle.period == period)).first()
        if cycle is None:
            cycle = Cycle(period=period, bill_date=date(2026, 11, 25), status="generated")
            session.add(cycle)
            session.flush()
    n = next(_n)
    bill = Bill(
        bill_no=f"B{cycle.period.replace('-', '')}{n:08d}",
        cycle_id=cycle.id,
        customer_id=customer.id,
        service_point_id=customer.service_points[0].id if customer.service_points else None,
        unit_key=f"P{n}",
        bill_type="regular",
        template="residential-regular",
        bill_date=cycle.bill_date,
        due_date=date(2026, 12, 10),
        previous_balance=Decimal("12.30"),
        payments_total=Decimal("12.30"),
        charges_total=Decimal("86.45"),
        current_balance=Decimal("86.45"),
        deposit_held=Decimal("0.00"),
        status="generated",
    )
    session.add(bill)
    session.flush()
    lines = [
        ("previous_balance", "上期余额 Previous balance", "12.30"),
        ("payment", "已缴费 Payments", "-12.30"),
        ("electricity", "电费 Electricity 172 kWh", "86.45"),
    ]
    for i, (kind, text, amount) in enumerate(lines):
        session.add(BillLine(bill_id=bill.id, position=i, kind=kind, description=text, amount=Decimal(amount)))
    session.flush()
    return bill


@pytest.fixture
def make_bill(db):
    def _make(customer, cycle=None, period=None) -> Bill:  # noqa: ANN001
        bill = add_bill(db, customer, cycle, period)
        db.commit()
        return bill

    return _make


# -- committed data (other processes see it) ---------------------------------------------------------

_c = itertools.count(1)


def new_customer(session, recipients: list[dict] | None = None, **fields):  # noqa: ANN001, ANN201
    """A customer with one service point, added and flushed (for committed_app tests)."""
    from console.models import Customer, Recipient, ServicePoint

    n = next(_c) + 500_000
    values = {
        "account_no": f"D{n:09d}",
        "name": f"投递客户{n}",
        "customer_type": "residential",
        "email": f"ok{n}@customers.test",
        "phone": f"1390000{n % 10000:04d}",
        "postal_address": f"苏州市工业园区星湖街{n}号",
        "postal_code": "215000",
        "wants_ebill": True,
        "channel_portal": True,
        "channel_email": True,
        "channel_paper": False,
    } | fields
    customer = Customer(**values)
    session.add(customer)
    session.flush()
    session.add(
        ServicePoint(
            customer_id=customer.id,
            point_no=f"DP{n:09d}",
            address=f"苏州市工业园区星湖街{n}号",
            meter_no=f"DM{n:09d}",
            tariff_code="RES",
            read_day=12,
        )
    )
    for rec in recipients or []:
        session.add(Recipient(customer_id=customer.id, **rec))
    session.flush()
    session.refresh(customer)
    return customer


@pytest.fixture
def committed(committed_app):
    """committed_app, closing every session a test left open (a failed assertion mid-test) before
    the tables are emptied: an idle transaction would block PostgreSQL's TRUNCATE forever."""
    from sqlalchemy.orm import close_all_sessions

    yield committed_app
    close_all_sessions()


@pytest.fixture
def own_redis(committed):
    """The real test Redis for committed_app (the shared redis_conn fixture would build a second app)."""
    from redis import Redis

    from tests.conftest import TEST_REDIS_URL  # noqa: I001

    conn = Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    committed.extensions["billpost.redis"] = conn
    yield conn
    conn.flushdb()


# -- the loopback Postfix ------------------------------------------------------------------------------

class Sink:
    """An SMTP server without DSN (aiosmtpd): the `relay.test` next hop, and a plain relay in tests.
    Recipients starting with `busy` get 450, `nosuch` 550."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        local = address.split("@", 1)[0]
        if local.startswith("busy"):
            return "450 4.2.1 mailbox busy, try later"
        if local.startswith("nosuch"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture(scope="session")
def smtp_sink():
    from aiosmtpd.controller import Controller

    from console.devtools.ports import free_port

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


def _stop_orphans(tmp) -> None:  # noqa: ANN001
    """Stop the Postfix of an earlier test run that was killed before its teardown."""
    import os
    import shutil
    import subprocess

    for owner in tmp.glob("billpost-postfix-*/owner.pid"):
        try:
            os.kill(int(owner.read_text()), 0)
            continue  # that run is alive
        except (ProcessLookupError, ValueError):
            pass
        except PermissionError:
            continue
        subprocess.run(["postfix", "-c", str(owner.parent / "etc"), "stop"], capture_output=True)
        shutil.rmtree(owner.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def loopback_postfix(smtp_sink):
    """A Postfix of the tests' own (root needed), shared by the session; queue emptied per test."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from console.devtools.loopback_postfix import LoopbackPostfix, postfix_available
    from console.devtools.ports import free_port

    if not postfix_available():
        pytest.skip("postfix not installed")
    if os.geteuid() != 0:
        pytest.skip("the loopback Postfix needs root")
    _stop_orphans(Path(tempfile.gettempdir()))
    # Not under pytest's basetemp: pytest keeps that 0700, and the Postfix daemons must walk into it.
    folder = Path(tempfile.mkdtemp(prefix="billpost-postfix-"))
    (folder / "owner.pid").write_text(str(os.getpid()))
    postfix = LoopbackPostfix(folder, "bounces.bills.test", receiver_port=free_port(), sink_port=smtp_sink.port)
    try:
        postfix.start()
        yield postfix
    finally:
        postfix.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mail_loop(committed, loopback_postfix, smtp_sink):
    """committed_app sending through the loopback Postfix, with mail-in's receiver taking reports."""
    import shutil

    from console.delivery.mailin import start_receiver

    committed_app = committed
    committed_app.config.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=loopback_postfix.port,
        SMTP_STARTTLS=False,
        SMTP_USER="",
        BOUNCE_DOMAIN="bounces.bills.test",
    )
    receiver = start_receiver(committed_app, "127.0.0.1", loopback_postfix.receiver_port)
    smtp_sink.messages.clear()
    yield committed_app
    receiver.stop()
    loopback_postfix.flush_queue()
    shutil.rmtree(loopback_postfix.mail / "customers.test", ignore_errors=True)


# -- `console worker` as a real process -----------------------------------------------------------

class WorkerProcess:
    """`console worker` as the Procfile runs it, in a subprocess against the test database, the test
    Redis and the loopback Postfix; its stderr is kept to explain a worker that stopped."""

    def __init__(self, app, smtp_port: int, *, burst: bool = False, **settings: str) -> None:  # noqa: ANN001
        from tests.conftest import TEST_REDIS_URL

        self.env = dict(
            os.environ,
            DATABASE_URL=app.extensions["billpost.engine"].url.render_as_string(hide_password=False),
            REDIS_URL=TEST_REDIS_URL,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            BOUNCE_DOMAIN="bounces.bills.test",
            PYTHONFAULTHANDLER="1",  # SIGABRT dumps every thread's stack to the log (stop() on a hang)
            **settings,
        )
        self.args = [sys.executable, "-c", "from console.cli import main; main()", "worker"] + (["--burst"] if burst else [])
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.args, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"the worker stopped: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        """The end of what the worker wrote to stderr (its job failures), to explain a failed wait."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def send_signal(self, number: int) -> None:
        """To the worker and its work horses (RQ forks each job's process in a session of its own)."""
        _signal_all([*descendants(self.process.pid), self.process.pid], number)

    def stop(self, number: int = signal.SIGTERM, grace: float = 30) -> None:
        """Signal the worker and its children and wait for it. A worker still running after `grace`
        seconds is made to dump its threads' stacks (SIGABRT, faulthandler) and killed with its whole
        tree, and the test fails with that dump: a worker left running on the test Redis would take
        the jobs of the tests after this one."""
        if self.process.poll() is None:
            self.send_signal(number)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            tree = descendants(self.process.pid)
            os.kill(self.process.pid, signal.SIGABRT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _signal_all([*tree, self.process.pid], signal.SIGKILL)  # the tree from before: orphans now
            self.process.wait(timeout=10)
            raise AssertionError(
                f"the worker did not stop within {grace} s of signal {number}; its stacks: {self.tail(20000)}"
            ) from None
        finally:
            if self.process.poll() is not None:
                self.log.close()


def _signal_all(pids: list[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
