"""Load-or-abort helpers shared by several blueprints' routes."""

from __future__ import annotations

from flask import abort

from console.billing import cycles
from console.extensions import db
from console.models import Cycle


def cycle_or_404(period: str) -> Cycle:
    """The cycle of PERIOD (YYYY-MM), else 404 (also for a malformed period)."""
    try:
        cycle = cycles.get_cycle(db(), cycles.parse_period(period))
    except cycles.CycleError:
        abort(404)
    if cycle is None:
        abort(404)
    return cycle
