"""Operations jobs: the daily retention (console.ops.retention), armed by every `console worker`."""

from __future__ import annotations

from pathlib import Path

from console.db import utcnow
from console.ops import retention
from jobs.context import job_app, job_session


def retention_run() -> dict:
    app = job_app()
    now = utcnow()
    with job_session() as session:
        counts = retention.purge_rows(session, now, app.config)
        session.commit()
    # Files after the commit: a rolled-back purge never removed anything on disk.
    counts |= retention.remove_old_pdfs(Path(app.config["INSTANCE_PATH"]), now.date(), int(app.config["RETAIN_PDF_YEARS"]))
    return counts
