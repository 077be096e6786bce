"""The plain settings billing services take (never read from Flask inside a service)."""

from __future__ import annotations

from collections.abc import Mapping

KEYS = ("DUE_DAYS", "LATE_FEE_RESIDENTIAL", "LATE_FEE_CURRENT_YEAR", "LATE_FEE_EARLIER_YEARS", "CYCLE_CHUNK_SIZE",
        "COLLECTIVE_WINDOW_DAYS")
DEFAULTS = {
    "DUE_DAYS": 15,
    "LATE_FEE_RESIDENTIAL": "0.001",
    "LATE_FEE_CURRENT_YEAR": "0.002",
    "LATE_FEE_EARLIER_YEARS": "0.003",
    "CYCLE_CHUNK_SIZE": 1000,
    "COLLECTIVE_WINDOW_DAYS": 7,
}


def billing_settings(config: Mapping) -> dict:
    """The billing values of an app config (or any mapping), defaults for the missing ones."""
    return {key: config.get(key, DEFAULTS[key]) for key in KEYS}
