"""`console bench loop`: the whole loop on one machine, stage by stage, with real processes.

Seeds N demo customers (multi-point and collective key accounts, several recipients, e-mail mostly,
paper for key accounts) into an empty PostgreSQL database, then:

1. generate — the cycle's chunk jobs worked by W `console worker --burst` processes;
2. publish — bills published, deliveries and registration codes written, send jobs queued;
3. send — W workers send every e-mail through a loopback Postfix with DSN; the real `console mailin`
   takes the reports; the stage ends when every e-mail is confirmed;
4. print — the paper deliveries gathered into print batches, rendered and assembled by W workers.

Per stage: wall time, rate, CPU per item (workers and mail-in, from the kernel's accounting), the
peak memory of one process, and the checks: every bill generated once, every e-mail sent and
confirmed once, every paper bill in one batch. E-mail addresses are rewritten to the loopback's
delivering mailbox domain so that every one can be confirmed.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select, text

from console.audit import Actor
from console.config import child_environment
from console.models import Bill, BillLine, Delivery, DeliveryAttempt
from console.models.delivery import Channel, DeliveryStatus


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a live process (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# Who spends the machine's CPU during a stage, by process: the bench's own children are told apart
# by pid (workers, mail-in); the rest by command name.
POSTFIX_COMMANDS = {"master", "qmgr", "pickup", "smtpd", "cleanup", "smtp", "local", "bounce", "trivial-rewrite",
                    "tlsmgr", "anvil", "scache", "proxymap", "verify", "showq", "virtual", "error", "discard"}


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat without idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _process_cpu(roles: dict[int, str]) -> dict[int, tuple[str, float]]:
    """Every live process: pid -> (its group, CPU seconds so far)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        pid, command = int(entry.name), head.split("(", 1)[1]
        fields = tail.split()
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if pid in roles:
            group = roles[pid]
        elif pid == os.getpid():
            group = "bench (publish, checks)"
        elif command.startswith("postgres"):
            group = "PostgreSQL"
        elif command in POSTFIX_COMMANDS:
            group = "Postfix"
        elif command.startswith("redis"):
            group = "Redis"
        else:
            group = "other"
        out[pid] = (group, seconds)
    return out


class CpuShares:
    """CPU seconds per process group over a stage; processes that ended during it (Postfix's
    short-lived ones, finished workers) are in the machine's total as "ended processes"."""

    def __init__(self) -> None:
        self.roles: dict[int, str] = {}
        self.start = _process_cpu(self.roles)
        self.busy = _machine_busy_seconds()
        self.seen: dict[int, tuple[str, float]] = {}

    def name(self, processes: list[subprocess.Popen], role: str) -> None:
        for p in processes:
            self.roles[p.pid] = role

    def sample(self) -> None:
        """Call now and then: the last reading of each process, kept after it ends."""
        self.seen.update(_process_cpu(self.roles))

    def shares(self) -> dict[str, float]:
        self.sample()
        total = _machine_busy_seconds() - self.busy
        by_group: dict[str, float] = {}
        for pid, (group, seconds) in self.seen.items():
            before = self.start.get(pid, (group, 0.0))[1]
            by_group[group] = by_group.get(group, 0.0) + max(seconds - before, 0.0)
        by_group["ended processes"] = max(total - sum(by_group.values()), 0.0)
        return {group: round(100 * seconds / total, 1) for group, seconds in sorted(
            by_group.items(), key=lambda item: -item[1]) if total and seconds > 0.005 * total}


class Stage:
    def __init__(self, name: str, items: str) -> None:
        self.name, self.items = name, items
        self.cpu_shares = CpuShares()
        self.started = time.perf_counter()
        self.cpu = _children_cpu() + time.process_time()
        self.extra_cpu = 0.0
        self.peak_kb = 0

    def end(self, count: int, **checks: object) -> dict:
        wall = time.perf_counter() - self.started
        cpu = _children_cpu() + time.process_time() - self.cpu + self.extra_cpu
        return {
            "stage": self.name, "items": count, "unit": self.items, "wall_s": round(wall, 1),
            "rate_per_s": round(count / wall, 1) if wall else None,
            "cpu_ms_per_item": round(cpu * 1000 / count, 2) if count else None,
            "peak_mb_one_process": round(self.peak_kb / 1024, 1) if self.peak_kb else None,
            "machine_cpu_percent_by_process": self.cpu_shares.shares(),
        } | checks


def _workers(app: Flask, count: int, env: dict, burst: bool = True, log: Path | None = None) -> list[subprocess.Popen]:
    """`count` worker processes; their output (RQ's job failures with their tracebacks) appended to `log`."""
    args = [sys.executable, "-c", "from console.cli import main; main()", "worker"] + (["--burst"] if burst else [])
    processes = []
    for _ in range(count):
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        processes.append(subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT))
        if log is not None:
            out.close()  # the child has its own descriptor
    return processes


EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: |$)")  # "module.Error: text" ends a traceback; log lines start with a date


def job_failures(log: Path) -> list[str]:
    """The exceptions the workers logged (the last line of each traceback), counted, most frequent first:
    a job that failed once and succeeded on its RQ retry leaves no other trace once the bench is over."""
    if not log.is_file():
        return []
    counts: dict[str, int] = {}
    previous = ""
    for line in log.read_text(errors="replace").splitlines():
        if previous.startswith("  ") and EXCEPTION_LINE.match(line):
            counts[line[:200]] = counts.get(line[:200], 0) + 1
        previous = line
    return [f"{n} x {text}" for text, n in sorted(counts.items(), key=lambda item: -item[1])]


def _wait_all(processes: list[subprocess.Popen], stage: Stage | None = None) -> int:
    """Waits; returns the largest peak resident memory (kB) among them (read just before they end)."""
    peak = 0
    while any(p.poll() is None for p in processes):
        if stage is not None:
            stage.cpu_shares.sample()
        for p in processes:
            if p.poll() is None:
                try:
                    peak = max(peak, _proc_peak_kb(p.pid))
                except OSError:
                    pass
        time.sleep(0.5)
    return peak


def run(app: Flask, customers: int, workers: int, connections: int, wait: float,  # noqa: ANN201
        publish_part: int = 10_000):
    from console.billing import cycles
    from console.billing.demo import seed_billing_demo
    from console.billing.settings import billing_settings
    from console.customers.demo import seed_demo
    from console.devtools.loopback_postfix import LoopbackPostfix, postfix_available
    from console.devtools.ports import free_port
    from console.migrations import upgrade
    from console.paper import batches
    from console.queues import redis_url

    engine = app.extensions["billpost.engine"]
    if engine.dialect.name != "postgresql":
        raise click.ClickException("bench loop measures PostgreSQL: set DATABASE_URL to an empty scratch database")
    if not postfix_available() or os.geteuid() != 0:
        raise click.ClickException("bench loop needs the loopback Postfix (Debian's postfix, run as root)")
    upgrade(app)
    factory = app.extensions["billpost.session_factory"]
    folder = Path(tempfile.mkdtemp(prefix="billpost-bench-loop-"))
    mailin_port = free_port()
    postfix = LoopbackPostfix(folder, app.config["BOUNCE_DOMAIN"], mailin_port, free_port()).start()
    env = child_environment(
        DATABASE_URL=engine.url.render_as_string(hide_password=False), REDIS_URL=redis_url(app),
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(postfix.port), SMTP_STARTTLS="0", SMTP_USER="",
        BOUNCE_DOMAIN=app.config["BOUNCE_DOMAIN"], MAILIN_HOST="127.0.0.1", MAILIN_PORT=str(mailin_port),
        SEND_CONNECTIONS=str(connections), SWEEP_SECONDS="5", LOG_LEVEL="WARNING",
        BILLPOST_INSTANCE=str(folder / "instance"),
    )
    (folder / "instance").mkdir()
    mailin = None
    rows = []
    try:
        # -- seed (not a stage of the loop: the customer file is the import's job)
        started = time.perf_counter()
        with engine.begin() as connection:
            seed_demo(connection, customers, 1)
            # every address delivering on the loopback (the demo's own domains go nowhere here)
            connection.execute(text("UPDATE customers SET email = 'c' || id || '@customers.test' WHERE email IS NOT NULL"))
            connection.execute(text(
                "UPDATE recipients SET address = 'r' || id || '@customers.test' WHERE channel = 'email'"))
        today = date.today()
        with factory() as session:
            reads = seed_billing_demo(session, today, billing_settings(app.config))
            session.commit()
        yield f"seeded {customers:,} customers and {reads['reads']:,} reads in {time.perf_counter() - started:.1f} s"
        period = f"{today:%Y-%m}"

        # -- 1. generate
        with factory() as session:
            cycles.open_cycle(session, period, Actor.cli())
            chunks = cycles.start_run(session, period, Actor.cli(), int(app.config["CYCLE_CHUNK_SIZE"]))
            session.commit()
        stage = Stage("generate", "bills")
        generators = _workers(app, workers, env, log=folder / "workers.log")
        stage.cpu_shares.name(generators, "Billpost workers")
        stage.peak_kb = _wait_all(generators, stage)
        with factory() as session:
            report = cycles.cycle_report(session, period)
            bills = report["bills"]
            cycle_id = cycles.get_cycle(session, period).id
            # every service point on one bill of the cycle at most (the unique key makes it so; checked)
            twice = session.scalar(select(func.count()).select_from(
                select(BillLine.service_point_id).join(Bill, Bill.id == BillLine.bill_id)
                .where(Bill.cycle_id == cycle_id, BillLine.service_point_id.is_not(None))
                .group_by(BillLine.service_point_id).having(func.count(func.distinct(BillLine.bill_id)) > 1).subquery()
            ))
        rows.append(stage.end(bills, chunks=len(chunks), status=report["status"], generated_twice=twice))
        yield json.dumps(rows[-1], ensure_ascii=False)

        # -- 2. publish, in parts of PUBLISH_PART bills: one transaction each (console.billing.cycles)
        from console import outbox
        from console.queues import get_redis

        redis = get_redis(app)
        redis_before = redis.info("memory")["used_memory"]
        stage = Stage("publish", "bills")
        result = {"email": 0, "paper": 0, "send_jobs": 0}
        longest_part = 0.0
        with factory() as session:
            part_started = time.perf_counter()
            for part in cycles.publish_in_parts(session, period, Actor.cli(), app.config, publish_part):
                session.commit()
                if outbox.handed_over(session) is None:
                    raise click.ClickException("Redis refused the send jobs")
                for key in result:
                    result[key] += part[key]
                longest_part = max(longest_part, time.perf_counter() - part_started)
                part_started = time.perf_counter()
        stage.peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        redis_bytes = redis.info("memory")["used_memory"] - redis_before
        rows.append(stage.end(bills, email_deliveries=result["email"], paper_deliveries=result["paper"],
                              send_jobs=result["send_jobs"], part_size=publish_part,
                              longest_part_transaction_s=round(longest_part, 2),
                              redis_mb_per_million_queued_ids=round(redis_bytes / result["email"], 1)
                              if result["email"] else None))
        yield json.dumps(rows[-1], ensure_ascii=False)

        # -- 3. send, with the reports received while sending
        mailin = subprocess.Popen([sys.executable, "-c", "from console.cli import main; main()", "mailin"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        mailin_cpu = _proc_cpu(mailin.pid)
        stage = Stage("send", "e-mails")
        senders = _workers(app, workers, env, burst=False, log=folder / "workers.log")
        stage.cpu_shares.name(senders, "Billpost workers (send)")
        stage.cpu_shares.name([mailin], "Billpost mail-in")
        emails = result["email"]
        deadline = time.monotonic() + wait
        confirmed = 0
        peak = 0
        while time.monotonic() < deadline:
            with factory() as session:  # this cycle's e-mails (the demo has earlier cycles of its own)
                confirmed = session.scalar(select(func.count(Delivery.id)).join(Bill, Bill.id == Delivery.bill_id).where(
                    Bill.cycle_id == cycle_id, Delivery.channel == Channel.EMAIL,
                    Delivery.status == DeliveryStatus.CONFIRMED))
            for p in senders:
                try:
                    peak = max(peak, _proc_peak_kb(p.pid))
                except OSError:
                    pass
            stage.cpu_shares.sample()
            if confirmed >= emails:
                break
            time.sleep(1)
        stage.extra_cpu = _proc_cpu(mailin.pid) - mailin_cpu
        for p in senders:
            p.send_signal(signal.SIGTERM)
        _wait_all(senders)
        stage.peak_kb = max(peak, _proc_peak_kb(mailin.pid))
        with factory() as session:
            sent_twice = session.scalar(select(func.count()).select_from(
                select(DeliveryAttempt.delivery_id).join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .join(Bill, Bill.id == Delivery.bill_id)
                .where(Bill.cycle_id == cycle_id, DeliveryAttempt.sent_at.is_not(None))
                .group_by(DeliveryAttempt.delivery_id).having(func.count() > 1).subquery()))
        rows.append(stage.end(confirmed, e_mails=emails, confirmed=confirmed, sent_twice=sent_twice,
                              mailin_cpu_ms_per_report=round(stage.extra_cpu * 1000 / confirmed, 2) if confirmed else None))
        yield json.dumps(rows[-1], ensure_ascii=False)

        # -- 4. print
        stage = Stage("print", "paper bills")
        with factory() as session:
            gathered = batches.gather_batches(session, period, Actor.cli(), size=int(app.config["PAPER_BATCH_SIZE"]),
                                              key_accounts_only=app.config["PAPER_KEY_ACCOUNTS_ONLY"])
            batches.queue_rendering(session, gathered.batch_ids)
            session.commit()
        printers = _workers(app, workers, env, log=folder / "workers.log")
        stage.cpu_shares.name(printers, "Billpost workers")
        stage.peak_kb = _wait_all(printers, stage)
        from console.models.paper import BatchStatus, PrintBatch

        with factory() as session:
            ready = session.scalar(select(func.count(PrintBatch.id)).where(PrintBatch.status == BatchStatus.READY))
        rows.append(stage.end(gathered.deliveries, batches=len(gathered.batch_ids), batches_ready=ready,
                              copies=gathered.copies))
        yield json.dumps(rows[-1], ensure_ascii=False)
        yield "stage table:"
        for row in rows:
            yield (f"  {row['stage']:<9} {row['items']:>10,} {row['unit']:<11} {row['wall_s']:>8.1f} s "
                   f"{row['rate_per_s'] or 0:>9,.1f}/s  {row['cpu_ms_per_item'] or 0:>7.2f} ms CPU/item  "
                   f"peak {row['peak_mb_one_process'] or 0:>6.1f} MB")
        yield "machine CPU by process (% of the busy time of the stage):"
        for row in rows:
            yield f"  {row['stage']:<9} " + ", ".join(
                f"{group} {share:.0f} %" for group, share in row["machine_cpu_percent_by_process"].items())
        failures = job_failures(folder / "workers.log")
        yield "job failures the workers logged (RQ retried them): " + ("none" if not failures else "")
        for failure in failures[:10]:
            yield f"  {failure}"
    finally:
        if mailin is not None:
            mailin.terminate()
            mailin.wait()
        postfix.stop()
        shutil.rmtree(folder, ignore_errors=True)


@click.command("loop")
@click.option("--customers", default=10_000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="Worker processes for each stage.")
@click.option("--connections", default=1, show_default=True, help="SMTP connections per send job.")
@click.option("--wait", default=3600.0, show_default=True, help="Seconds the send stage may take.")
@click.option("--publish-part", default=10_000, show_default=True, help="Bills per publishing transaction.")
@with_appcontext
def bench_loop(customers: int, workers: int, connections: int, wait: float, publish_part: int) -> None:
    """The whole loop on PostgreSQL (an empty scratch DATABASE_URL): generate, publish, send with DSN
    reports received, print; per stage wall time, rate, CPU per item, peak memory, and the checks."""
    for line in run(current_app._get_current_object(), customers, workers, connections, wait, publish_part):
        click.echo(line)
