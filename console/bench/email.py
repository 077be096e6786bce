"""`console bench email`: messages per second of one sender (one worker's send_batch, one SMTP
connection per batch, DSN requested) with the PDF off and on, and the confirmation latencies.

Against SMTP_HOST when it is set; otherwise (root, Postfix installed) against a private loopback
Postfix started for the bench, with mail-in's receiver (`console mailin`, a process of its own)
taking the reports, so the whole loop is measured: send → Postfix → `delivered` report → receiver →
policy → commit. With the loopback Postfix each mode runs twice:
- reports held: the receiver process is paused (SIGSTOP) while the worker sends, so Postfix's
  deliveries of the reports wait, connected; then it is continued. The rate is the worker's own
  (sharing the machine with Postfix and the database only), and the intake's rate is measured on
  the burst of held reports;
- reports received while sending: everything at once on this machine, as in a one-machine setup;
  with 2 cores the worker then shares them with the receiver too.
Bench data: customers EBENCH…, cycles 2000-01 (PDF off) and 2000-02 (PDF on), re-created each run.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, insert, select

from console.audit import Actor
from console.config import child_environment
from console.db import utcnow
from console.models import Bill, BillLine, ContactRecord, Customer, Cycle, Delivery, DeliveryAttempt, WorkItem
from console.queues import redis_url

PREFIX = "EBENCH"
PERIODS = {False: "2000-01", True: "2000-02"}


def _clear(session, period: str) -> None:  # noqa: ANN001
    cycle = session.scalars(select(Cycle).where(Cycle.period == period)).first()
    if cycle is None:
        return
    bills = select(Bill.id).where(Bill.cycle_id == cycle.id).scalar_subquery()
    deliveries = select(Delivery.id).where(Delivery.bill_id.in_(bills)).scalar_subquery()
    from console.models.mailin import InboundReportRecipient

    attempts = select(DeliveryAttempt.id).where(DeliveryAttempt.delivery_id.in_(deliveries)).scalar_subquery()
    session.execute(delete(InboundReportRecipient).where(InboundReportRecipient.attempt_id.in_(attempts)))
    session.execute(delete(WorkItem).where(WorkItem.delivery_id.in_(deliveries)))
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(Delivery).where(Delivery.bill_id.in_(bills)))
    session.execute(delete(ContactRecord).where(ContactRecord.bill_id.in_(bills)))
    session.execute(delete(BillLine).where(BillLine.bill_id.in_(bills)))
    session.execute(delete(Bill).where(Bill.cycle_id == cycle.id))
    session.execute(delete(Cycle).where(Cycle.id == cycle.id))
    session.commit()


def seed(session, messages: int, pdf: bool) -> int:  # noqa: ANN001
    """N bench customers (PDF setting as asked) with one published-ready bill each; returns the cycle id."""
    period = PERIODS[pdf]
    _clear(session, period)
    tag = "P" if pdf else "T"
    existing = set(session.scalars(select(Customer.account_no).where(Customer.account_no.like(f"{PREFIX}{tag}%"))))
    rows = [
        {
            "account_no": f"{PREFIX}{tag}{n:07d}", "name": f"邮件压测{n}", "customer_type": "residential",
            "key_account": False, "wants_ebill": True, "channel_portal": True, "channel_email": True,
            "channel_paper": False, "collective_billing": False, "status": "active", "attach_pdf": pdf,
            "email": f"bench{tag.lower()}{n}@customers.test",
        }
        for n in range(1, messages + 1)
        if f"{PREFIX}{tag}{n:07d}" not in existing
    ]
    for i in range(0, len(rows), 5000):
        session.execute(insert(Customer.__table__), rows[i : i + 5000])
    customers = session.execute(
        select(Customer.id, Customer.account_no)
        .where(Customer.account_no.like(f"{PREFIX}{tag}%"))
        .order_by(Customer.account_no)
        .limit(messages)
    ).all()
    cycle = Cycle(period=period, bill_date=date(2000, 1, 25), status="generated")
    session.add(cycle)
    session.flush()
    pdf_rel = None
    zero, amount = Decimal("0.00"), Decimal("123.45")
    bill_rows = [
        {
            "bill_no": f"EB{period.replace('-', '')}{n:07d}", "cycle_id": cycle.id, "customer_id": cid,
            "unit_key": f"B{n}", "bill_type": "regular", "template": "residential-regular",
            "bill_date": cycle.bill_date, "due_date": date(2000, 2, 10), "previous_balance": zero,
            "payments_total": zero, "charges_total": amount, "current_balance": amount, "deposit_held": zero,
            "status": "generated", "pdf_path": pdf_rel, "created_at": utcnow(),
        }
        for n, (cid, _acc) in enumerate(customers, 1)
    ]
    for i in range(0, len(bill_rows), 5000):
        session.execute(insert(Bill.__table__), bill_rows[i : i + 5000])
    bill_ids = session.scalars(select(Bill.id).where(Bill.cycle_id == cycle.id)).all()
    lines = [
        {"bill_id": bid, "position": p, "kind": k, "description": d, "amount": Decimal(a)}
        for bid in bill_ids
        for p, (k, d, a) in enumerate([("energy", "电费 Electricity 246 kWh", "118.45"), ("fee", "其他费用 Fees", "5.00")])
    ]
    for i in range(0, len(lines), 5000):
        session.execute(insert(BillLine.__table__), lines[i : i + 5000])
    if pdf and bill_ids:
        # A real bill PDF (the paper pipeline's, embedded CJK font) rendered once, shared by all.
        from sqlalchemy import update

        from console.paper.pdf import bill_pdf

        first = session.get(Bill, bill_ids[0])
        bill_pdf(session, first)
        session.execute(update(Bill).where(Bill.cycle_id == cycle.id).values(pdf_path=first.pdf_path))
    session.commit()
    return cycle.id


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50_ms": round(pick(0.5) * 1000, 1), "p95_ms": round(pick(0.95) * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1), "mean_ms": round(statistics.mean(values) * 1000, 1)}


def send_in_batches(app, factory, ids: list[int], connections: int) -> int:  # noqa: ANN001
    """The ids sent in batches of SEND_BATCH_SIZE, one after the other, as one worker's send jobs would: sent."""
    from console.delivery.sender import send_batch_over_connections

    size = int(app.config["SEND_BATCH_SIZE"])
    return sum(send_batch_over_connections(app, factory, ids[i : i + size], connections)["sent"]
               for i in range(0, len(ids), size))


def _send_in_processes(app, ids: list[int], senders: int, connections: int) -> tuple[int, float, float]:  # noqa: ANN001
    """The ids sent by `senders` processes at once (batch k to process k mod W, as workers share the
    send jobs): (sent, their CPU seconds together, wall seconds from the first start to the last end)."""
    size = int(app.config["SEND_BATCH_SIZE"])
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    env = child_environment(
        DATABASE_URL=app.extensions["billpost.engine"].url.render_as_string(hide_password=False),
        REDIS_URL=redis_url(app), SECRET_KEY=app.config["SECRET_KEY"], BOUNCE_DOMAIN=app.config["BOUNCE_DOMAIN"],
        SMTP_HOST=str(app.config["SMTP_HOST"]), SMTP_PORT=str(app.config["SMTP_PORT"]),
        SMTP_STARTTLS="1" if app.config["SMTP_STARTTLS"] else "0", SMTP_USER=app.config["SMTP_USER"] or "",
        SEND_CONNECTIONS=str(connections), LOG_LEVEL="WARNING",
    )
    with tempfile.TemporaryDirectory() as folder:
        processes = []
        for k in range(senders):
            part = Path(folder) / f"ids-{k}.json"
            part.write_text(json.dumps([i for batch in batches[k::senders] for i in batch]))
            processes.append(subprocess.Popen([sys.executable, "-m", "console.bench.email_sender", str(part)],
                                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        figures = []
        for process in processes:
            out, err = process.communicate()
            if process.returncode != 0:
                raise click.ClickException(f"a sender process failed: {err[-2000:]}")
            figures.append(json.loads(out.strip().splitlines()[-1]))
    return (sum(f["sent"] for f in figures), sum(f["cpu"] for f in figures),
            max(f["ended"] for f in figures) - min(f["started"] for f in figures))


def run_once(app, messages: int, pdf: bool, wait: float, receiver=None, connections: int = 1,  # noqa: ANN001
             senders: int = 1) -> dict:
    """One run; with `receiver` (the mail-in process) it is paused while the worker sends and
    continued after, so the rate is the worker's own, not shared with the report intake. With
    `senders` > 1 the ids are sent by that many processes at once (the scale-out figure)."""
    from console.delivery.publish import publish_cycle
    from console.portal.services import issue_bill_codes

    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        cycle_id = seed(session, messages, pdf)
        publish_cycle(session, cycle_id, Actor.cli(), utcnow())
        # as publishing through the console does (the send jobs are the bench's own, below)
        issue_bill_codes(session, cycle_id, app.config["SECRET_KEY"], int(app.config["PORTAL_BILL_CODE_DAYS"]), utcnow())
        session.commit()
        ids = session.scalars(
            select(Delivery.id).join(Bill, Bill.id == Delivery.bill_id)
            .where(Bill.cycle_id == cycle_id, Delivery.channel == "email").order_by(Delivery.id)
        ).all()
    if receiver is not None:
        receiver.send_signal(signal.SIGSTOP)  # Postfix's deliveries of the reports wait (connected, no greeting)
    if senders > 1:
        sent, cpu, elapsed = _send_in_processes(app, ids, senders, connections)
    else:
        started = time.perf_counter()
        cpu = time.process_time()
        sent = send_in_batches(app, factory, ids, connections)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    # The sender's own CPU time too: on a shared machine the wall-clock rate says more about the load.
    result = {"pdf": pdf, "reports": "held while sending" if receiver else "received while sending",
              "connections": connections, "senders": senders,
              "messages": len(ids), "sent": sent, "seconds": round(elapsed, 2),
              "messages_per_second": round(sent / elapsed, 1) if elapsed else None,
              "sender_cpu_seconds": round(cpu, 2),
              "messages_per_sender_cpu_second": round(sent / cpu, 1) if cpu else None}
    released = time.perf_counter()
    if receiver is not None:
        receiver.send_signal(signal.SIGCONT)
    # Confirmations (when reports come back to a receiver of ours).
    deadline = time.monotonic() + wait
    confirmed = 0
    while time.monotonic() < deadline:
        with factory() as session:
            confirmed = session.query(Delivery).filter(Delivery.id.in_(ids), Delivery.status == "confirmed").count()
        if confirmed >= sent:
            break
        time.sleep(0.5)
    with factory() as session:
        rows = session.execute(
            select(DeliveryAttempt.sent_at, Delivery.confirmed_at, Delivery.updated_at)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.id.in_(ids), Delivery.status == "confirmed")
        ).all()
    result["confirmed"] = len(rows)
    if receiver is not None:  # the held reports, all at once: how fast the intake takes them
        drain = time.perf_counter() - released
        result["held_reports_confirmed_in_seconds"] = round(drain, 2)
        result["confirmations_per_second"] = round(len(rows) / drain, 1) if rows else None
    # report arrival at the receiver (confirmed_at = received_at) → committed confirmation
    result["report_to_confirmation"] = _percentiles([(u - c).total_seconds() for _s, c, u in rows if c and u])
    if receiver is None:
        # send → report received (Postfix delivery + DSN generation + SMTP to the receiver)
        result["send_to_report"] = _percentiles([(c - s).total_seconds() for s, c, _u in rows if s and c])
    return result


def smtp_source_rate(port: int, messages: int, sessions: int = 1, size: int = 5120) -> float:
    """The floor: Postfix's own load generator `smtp-source` sending `messages` of `size` bytes over
    `sessions` parallel sessions to the same Postfix (a customers.test mailbox, delivered). Messages/s."""
    import subprocess

    started = time.perf_counter()
    subprocess.run(
        [shutil.which("smtp-source") or "/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(messages),
         "-l", str(size), "-f", "bench@bills.test", "-t", "smtp-source@customers.test", f"127.0.0.1:{port}"],
        check=True, capture_output=True, timeout=600,
    )
    return messages / (time.perf_counter() - started)


def _summary(results: list[dict]) -> dict:
    """Median (and range) over runs of one kind."""
    rates = sorted(r["messages_per_second"] for r in results)
    cpu = sorted(r["messages_per_sender_cpu_second"] for r in results)
    latency = sorted(r["report_to_confirmation"].get("p50_ms", 0) for r in results)
    ratios = sorted(r["ratio_to_smtp_source"] for r in results if "ratio_to_smtp_source" in r)
    return {"summary": f"{len(results)} runs", "pdf": results[0]["pdf"], "reports": results[0]["reports"],
            "connections": results[0]["connections"],
            "ratio_to_smtp_source_median": statistics.median(ratios) if ratios else None,
            "messages_per_second_median": statistics.median(rates), "min": rates[0], "max": rates[-1],
            "messages_per_sender_cpu_second_median": statistics.median(cpu),
            "report_to_confirmation_p50_ms_median": statistics.median(latency)}


def _start_mailin(app, port: int, folder: Path):  # noqa: ANN001, ANN202
    """`console mailin` in a process of its own (as in production), receiving on `port`."""
    import socket

    env = child_environment(
        DATABASE_URL=app.extensions["billpost.engine"].url.render_as_string(hide_password=False),
        REDIS_URL=redis_url(app),
        MAILIN_HOST="127.0.0.1",
        MAILIN_PORT=str(port),
        SMTP_HOST="127.0.0.1",  # no demo sandbox
        BOUNCE_DOMAIN=app.config["BOUNCE_DOMAIN"],
    )
    log = open(folder / "mailin.log", "wb")  # noqa: SIM115 - closed when the receiver is stopped
    process = subprocess.Popen(
        [sys.executable, "-c", "from console.cli import main; main()", "mailin"], env=env, stdout=log, stderr=log
    )
    process.port = port
    process.log = log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None:
                log.close()
                raise click.ClickException((folder / "mailin.log").read_text()[-2000:]) from None
            time.sleep(0.2)
    raise click.ClickException("mail-in receiver did not start")


@click.command("email")
@click.option("--messages", default=2000, show_default=True)
@click.option("--pdf", type=click.Choice(["off", "on", "both"]), default="both", show_default=True)
@click.option("--wait", default=60.0, show_default=True, help="Seconds to wait for the reports.")
@click.option(
    "--reports", type=click.Choice(["held", "received", "both"]), default="both", show_default=True,
    help="held: the receiver is paused until the worker has sent all (the worker's own rate); "
    "received: the receiver takes the reports while the worker sends (the whole loop on this machine).",
)
@click.option("--runs", default=1, show_default=True, help="Runs of each kind, then their median (a shared machine varies).")
@click.option("--connections", default=1, show_default=True, help="SMTP connections of the one sender (SEND_CONNECTIONS).")
@click.option("--senders", default=1, show_default=True, type=click.IntRange(min=1),
              help="Sender processes at once (the scale-out figure); the floor is then smtp-source with as many sessions.")
@with_appcontext
def bench_email(messages: int, pdf: str, wait: float, reports: str, runs: int, connections: int, senders: int) -> None:
    """E-mail sending rate of one worker (DSN requested) and the report-to-confirmation latency."""
    app = current_app._get_current_object()
    if senders > 1 and app.extensions["billpost.engine"].dialect.name == "sqlite":
        raise click.ClickException("--senders: several sender processes need PostgreSQL (SQLite has one writer)")
    postfix = receiver = folder = None
    if not app.config.get("SMTP_HOST"):
        from console.devtools.loopback_postfix import LoopbackPostfix
        from console.devtools.ports import free_port

        folder = Path(tempfile.mkdtemp(prefix="billpost-bench-postfix-"))
        receiver = _start_mailin(app, free_port(), folder)
        postfix = LoopbackPostfix(folder, app.config["BOUNCE_DOMAIN"], receiver.port, free_port()).start()
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=postfix.port, SMTP_STARTTLS=False, SMTP_USER="")
        click.echo(f"loopback Postfix on 127.0.0.1:{postfix.port}, receiver on {receiver.port}")
    try:
        modes = {"off": [False], "on": [True], "both": [False, True]}[pdf]
        holds = {"held": [True], "received": [False], "both": [True, False]}[reports] if postfix else [False]
        for mode in modes:
            for hold in holds:
                results = []
                for _ in range(max(1, runs)):
                    if postfix is not None and hold:  # the floor measured beside each run, same Postfix
                        floor = smtp_source_rate(postfix.port, min(messages, 2000), sessions=senders)
                        postfix.flush_queue()
                    result = run_once(app, messages, mode, wait, receiver if hold else None, connections, senders)
                    if postfix is not None and hold:
                        result[f"smtp_source_{senders}_session_messages_per_second"] = round(floor, 1)
                        result["ratio_to_smtp_source"] = round(result["messages_per_second"] / floor, 2)
                    results.append(result)
                    click.echo(json.dumps(results[-1], ensure_ascii=False))
                if len(results) > 1:
                    click.echo(json.dumps(_summary(results), ensure_ascii=False))
    finally:
        if postfix is not None:
            postfix.stop()
            receiver.send_signal(signal.SIGCONT)  # in case a failed run left it paused
            receiver.terminate()
            receiver.wait()
            receiver.log.close()
            shutil.rmtree(folder, ignore_errors=True)
