from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext

from console.audit import Actor
from console.extensions import db
from console.models import ROLES
from console.staff import services


@click.group("users")
def users_group() -> None:
    """Staff users."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES), help="Repeat for several.")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create(username: str, roles: tuple[str, ...], display_name: str, password_stdin: bool) -> None:
    """Create a staff user; the password is prompted for (or read from stdin)."""
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = services.create_user(db(), username, password, list(roles), Actor.cli(), display_name)
    except services.StaffError as exc:
        raise click.ClickException(str(exc)) from None
    db().commit()
    click.echo(f"created user {user.username} with roles {', '.join(sorted(user.roles))}")


def register(app: Flask, import_group: click.Group) -> None:
    app.cli.add_command(users_group)
