"""The portal's settings, read from the app config (console/config.py holds every default)."""

from __future__ import annotations

from flask import current_app


def setting(name: str) -> str:
    return str(current_app.config[name])


def int_setting(name: str) -> int:
    return int(current_app.config[name])
