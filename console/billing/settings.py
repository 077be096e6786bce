"""The plain settings billing services take (never read from Flask inside a service)."""

from __future__ import annotations

from collections.abc import Mapping

KEYS = ("DUE_DAYS", "MIN_PAYMENT_DAYS", "LATE_FEE_RESIDENTIAL", "LATE_FEE_CURRENT_YEAR", "LATE_FEE_EARLIER_YEARS", "CYCLE_CHUNK_SIZE",
        "COLLECTIVE_WINDOW_DAYS")


def billing_settings(config: Mapping) -> dict:
    """The billing values of an app config (console/config.py gives each its default)."""
    return {key: config[key] for key in KEYS}


def default_billing_settings() -> dict:
    """The billing values with every default of console/config.py (tests and benches)."""
    from console.config import from_environment

    return billing_settings(from_environment({}))
