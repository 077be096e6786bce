"""`console inbox …`: the work items for scripts and checks."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


@click.group("inbox")
def inbox_group() -> None:
    """Work items (cases) of the follow-up inboxes."""


@inbox_group.command("list")
@click.option("--role", type=click.Choice(["phone_rep", "account_manager"]), default=None)
@click.option("--status", type=click.Choice(["open", "claimed", "closed"]), default=None)
@click.option("--limit", type=int, default=1000)
@click.option("--json", "as_json", is_flag=True, help="One JSON list of objects.")
@with_appcontext
def list_items(role: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Items with id, account_no, address, reason, status, assigned_role, assigned_user, age_hours,
    due_by and deliveries (id, bill_no, channel, status)."""
    from zoneinfo import ZoneInfo

    from console.inboxes.services import items_json

    app = current_app._get_current_object()
    session = app.extensions["billpost.session_factory"]()
    try:
        targets = {"key_account": app.config["CASE_TARGET_HOURS_KEY_ACCOUNT"], "default": app.config["CASE_TARGET_HOURS"]}
        zone = ZoneInfo(app.config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai")
        rows = items_json(session, role, status, targets, zone, limit)
    finally:
        session.close()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        click.echo(f"{row['id']}\t{row['account_no']}\t{row['reason']}\t{row['status']}\t{row['age_hours']}h\t"
                   f"{row['address']}\t{len(row['deliveries'])}")


def register(app: Flask, import_group: click.Group) -> None:  # noqa: ARG001 - the domains' register() shape
    app.cli.add_command(inbox_group)
