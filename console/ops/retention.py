"""Retention: what is kept how long (docs/deploy.md "Retention").

- raw bytes of inbound messages (delivery reports, auto-replies, junk): emptied after
  RETAIN_INBOUND_DAYS; the row stays (classification, sender, subject, Message-ID, SHA-256, its
  per-recipient blocks and what they did), so the evidence of every delivery is kept. A message still
  in the quarantine and not handled keeps its bytes until an admin has read it;
- the demo sandbox's messages: deleted after RETAIN_SANDBOX_DAYS;
- used confirmations (the nonces of in-page confirmations, console/web/confirm.py): deleted once
  their token can no longer be valid, CONFIRM_TOKEN_MINUTES after it was issued (so after it was
  used) plus CONFIRMATION_MARGIN for the clocks of several web machines and a lifetime raised since;
- rendered PDFs (instance/pdf/<period>/): a cycle's files are removed once RETAIN_PDF_YEARS full
  calendar years have passed after the cycle's year (1: the 2026 PDFs go on 1 January 2028). A bill
  asked for again is rendered again from its stored lines (console.paper.pdf.bill_pdf).

Bills, their lines, deliveries, attempts, contact records, work items and the audit log are never
touched. Run daily as the job jobs.ops.retention_run, armed by every `console worker` (arm_retention).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import delete, func, or_, update
from sqlalchemy.orm import Session

from console import outbox
from console.models.mailin import InboundMessage, SandboxMessage
from console.models.staff import UsedConfirmation

log = logging.getLogger(__name__)

RETENTION_ARMED_KEY = "billpost:retention-armed"
_PERIOD_DIR = re.compile(r"^(\d{4})-\d{2}$")
# A used nonce goes this long after its token expired at the latest. Its row is what refuses a second
# submission of the same token; once the token is past its lifetime the signature check refuses it
# anyway. The margin covers web machines whose clocks differ and CONFIRM_TOKEN_MINUTES raised by up
# to this much since the token was issued.
CONFIRMATION_MARGIN = timedelta(days=1)


def purge_rows(session: Session, now: datetime, config: Mapping) -> dict:
    """Raw inbound bytes emptied, old sandbox messages and expired confirmations' nonces deleted;
    flushes. Returns the counts."""
    inbound_cutoff = now - timedelta(days=int(config["RETAIN_INBOUND_DAYS"]))
    emptied = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.received_at < inbound_cutoff,
            func.length(InboundMessage.raw) > 0,
            or_(InboundMessage.quarantined.is_(False), InboundMessage.handled_at.is_not(None)),
        )
        .values(raw=b"", truncated=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    sandbox_cutoff = now - timedelta(days=int(config["RETAIN_SANDBOX_DAYS"]))
    deleted = session.execute(
        delete(SandboxMessage)
        .where(SandboxMessage.received_at < sandbox_cutoff)
        .execution_options(synchronize_session=False)
    ).rowcount
    # A token is used after it was issued, so one used before this cutoff is past its lifetime.
    confirmation_cutoff = now - timedelta(minutes=int(config["CONFIRM_TOKEN_MINUTES"])) - CONFIRMATION_MARGIN
    confirmations = session.execute(
        delete(UsedConfirmation)
        .where(UsedConfirmation.used_at < confirmation_cutoff)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.flush()
    return {"inbound_raw_emptied": emptied, "sandbox_deleted": deleted, "confirmations_deleted": confirmations}


def remove_old_pdfs(instance: Path, today: date, years: int) -> dict:
    """Delete instance/pdf/<YYYY-MM>/ folders of years before `today.year - years`. Returns counts."""
    root = Path(instance) / "pdf"
    folders = files = 0
    if not root.is_dir():
        return {"pdf_folders_removed": 0, "pdf_files_removed": 0}
    for folder in sorted(root.iterdir()):
        match = _PERIOD_DIR.match(folder.name)
        if not folder.is_dir() or not match or int(match.group(1)) + years >= today.year:
            continue
        files += sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        folders += 1
    return {"pdf_folders_removed": folders, "pdf_files_removed": files}


def arm_retention(app: Flask, today: date | None = None) -> bool:
    """Queue today's retention job unless one was queued within a day (any worker, any number of them)."""
    from console.queues import get_redis

    day = (today or date.today()).isoformat()
    if not get_redis(app).set(RETENTION_ARMED_KEY, day, nx=True, ex=86400):
        return False
    job = outbox.QueuedJob(
        "default", "jobs.ops.retention_run", (), f"retention-{day}",
        {"job_timeout": 3600, "result_ttl": 7 * 86400, "failure_ttl": 7 * 86400},
    )
    return outbox.enqueue(app, [job]) == 1
