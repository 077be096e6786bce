from __future__ import annotations

import click
from flask import Flask


def register(app: Flask, import_group: click.Group, bench_group: click.Group) -> None:
    """Adds this domain's commands."""
