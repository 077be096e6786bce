"""Billing jobs: one job per chunk of a cycle's customers."""

from __future__ import annotations

import traceback

from console.billing import cycles
from console.billing.settings import billing_settings
from jobs.context import job_app, job_session


def generate_chunk(cycle_id: int, chunk_no: int) -> int:
    """Generate one chunk's bills. A failure is written to the chunk row (its own transaction) and
    re-raised, so RQ retries it and nothing is lost silently."""
    settings = billing_settings(job_app().config)
    try:
        with job_session() as session:
            made = cycles.run_chunk(session, cycle_id, chunk_no, settings)
            session.commit()
            return made
    except Exception:
        error = traceback.format_exc()
        with job_session() as session:
            cycles.record_chunk_failure(session, cycle_id, chunk_no, error)
            session.commit()
        raise
