"""The importer registry: every CSV import of every domain, run the same way from the command line
(`console import NAME FILE [--dry-run]`) and from the admin page (upload → preview → confirm).

Each domain lists its importers in its `importers.IMPORTERS`; create_app registers them all
(`register_importers`), and tests may add their own with `register_importer`:

    register_importer("reads", _l("Meter reads"), import_reads)

where `import_reads(session, data, actor, dry_run, settings) -> ImportSummary` parses every row,
raises `ImportFailed` with every error, and writes only when there is none (and never on a dry run).
It flushes, never commits: the caller commits (or rolls back on a dry run).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import click
from flask import Blueprint, Flask, abort, current_app, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from console.audit import Actor, record_audit
from console.csvimport import ImportFailed, ImportSummary, RowError, Source
from console.extensions import db
from console.web.auth import guard_blueprint
from console.web.events import import_error_text
from console.web.htmx import render_page_or_fragment

# `data` is bytes, a path or a seekable binary file: importers hand it to csvimport.read_rows, which
# decodes and parses it as it reads (uploads and files are never read into memory whole).
ImportFunc = Callable[[Session, Source, Actor, bool, dict], ImportSummary]


@dataclass(frozen=True)
class Importer:
    name: str
    label: Any  # a lazy string: shown on the admin page
    func: ImportFunc


IMPORTERS: dict[str, Importer] = {}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def register_importers() -> None:
    """Every domain's importers, in the order the admin page lists them (called by create_app)."""
    from console.billing.importers import IMPORTERS as billing_importers
    from console.customers.importers import IMPORTERS as customer_importers

    for name, (label, func) in (customer_importers | billing_importers).items():
        register_importer(name, label, func)


def register_importer(name: str, label: Any, func: ImportFunc) -> None:
    """Add (or replace) the importer `name`; it appears in the CLI and on the admin page."""
    if not _NAME.match(name):
        raise ValueError(f"importer name {name!r}: lowercase letters, digits and '-'")
    IMPORTERS[name] = Importer(name, label, func)


def importer_settings(app: Flask) -> dict:
    """The plain configuration values handed to importers (never the engine or session factory)."""
    return {
        k: v for k, v in app.config.items()
        if isinstance(v, str | int | float | bool) and k.isupper() and "SECRET" not in k and "PASSWORD" not in k
    }


def run_import(
    session: Session, name: str, data: Source, actor: Actor, dry_run: bool, settings: dict, filename: str = ""
) -> ImportSummary:
    """Runs one importer; on success records one audit event (not on a dry run). Never commits."""
    importer = IMPORTERS.get(name)
    if importer is None:
        raise ImportFailed([RowError(0, "import", "unknown_import", {"name": name})])
    summary = importer.func(session, data, actor, dry_run, settings)
    summary.dry_run = dry_run
    if not dry_run:
        record_audit(
            session, actor, f"import.{name}", "import", filename[:64] or name,
            after={"file": filename, "created": summary.created, "updated": summary.updated,
                   "unchanged": summary.unchanged},
        )
        session.flush()
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def _make_command(importer: Importer) -> click.Command:
    from flask.cli import with_appcontext

    @click.command(importer.name, help=f"Import a CSV file of {importer.name} (all rows or none).")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
    @click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
    @with_appcontext
    def command(file: str, dry_run: bool) -> None:
        from console.extensions import db

        data = _spool_stdin() if file == "-" else Path(file)
        session = db()
        started = time.perf_counter()
        try:
            summary = run_import(
                session, importer.name, data, Actor.cli(), dry_run,
                importer_settings(current_app), filename=Path(file).name,
            )
        except ImportFailed as failed:
            session.rollback()
            for error in failed.errors:  # in the console's default language, as the admin page shows them
                click.echo(import_error_text(error), err=True)
            click.echo(f"{len(failed.errors)} error(s); nothing written", err=True)
            raise click.exceptions.Exit(1) from None
        if dry_run:
            session.rollback()
        else:
            session.commit()
        elapsed = time.perf_counter() - started
        click.echo(f"{importer.name}: {summary} ({elapsed:.1f} s)")

    return command


def _spool_stdin():  # noqa: ANN202
    """Standard input copied to a temporary file: parsing needs to read the file twice (encoding, rows)."""
    spooled = tempfile.TemporaryFile()
    shutil.copyfileobj(sys.stdin.buffer, spooled, 1024 * 1024)
    spooled.seek(0)
    return spooled


def add_import_commands(import_group: click.Group) -> None:
    """One subcommand of `console import` per registered importer, looked up in the registry when the
    command line runs — so importers registered after this call (billing's) appear too."""
    if getattr(import_group, "_billpost_registry", False):
        return
    commands: dict[str, tuple[Importer, click.Command]] = {}
    plain_get, plain_list = import_group.get_command, import_group.list_commands

    def get_command(ctx: click.Context, name: str) -> click.Command | None:
        importer = IMPORTERS.get(name)
        if importer is None:
            return plain_get(ctx, name)
        if name not in commands or commands[name][0] is not importer:
            commands[name] = (importer, _make_command(importer))
        return commands[name][1]

    def list_commands(ctx: click.Context) -> list[str]:
        return sorted(set(plain_list(ctx)) | set(IMPORTERS))

    import_group.get_command = get_command  # type: ignore[method-assign]
    import_group.list_commands = list_commands  # type: ignore[method-assign]
    import_group._billpost_registry = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Admin page: upload → preview (a dry run: errors or the summary) → confirm (the real run).
# The upload waits under instance/imports/, keyed by a random id, never in the cookie.

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
KEEP_UPLOADS_SECONDS = 24 * 3600


def _upload_dir() -> Path:
    folder = Path(current_app.config["INSTANCE_PATH"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sweep_old_uploads(folder: Path) -> None:
    cutoff = time.time() - KEEP_UPLOADS_SECONDS
    for path in folder.glob("*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def save_upload(name: str, filename: str, stream: BinaryIO, user_id: int, limit: int) -> tuple[str, Path]:
    """The upload copied to instance/imports/ in 1 MB chunks (never whole in memory); more than
    `limit` bytes → 413 (RequestEntityTooLarge), and nothing is kept."""
    folder = _upload_dir()
    _sweep_old_uploads(folder)
    token = secrets.token_urlsafe(24)
    path = folder / f"{token}.csv"
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise RequestEntityTooLarge()
            out.write(chunk)
    meta = {"name": name, "filename": filename, "user_id": user_id, "size": size}
    (folder / f"{token}.json").write_text(json.dumps(meta))
    return token, path


def load_upload(token: str, user_id: int) -> tuple[dict, Path]:
    if not _TOKEN.match(token):
        abort(404)
    folder = _upload_dir()
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
    except FileNotFoundError:
        abort(404)
    path = folder / f"{token}.csv"
    if meta.get("user_id") != user_id or not path.exists():
        abort(404)
    return meta, path


def drop_upload(token: str) -> None:
    folder = _upload_dir()
    for suffix in (".csv", ".json"):
        (folder / f"{token}{suffix}").unlink(missing_ok=True)


# The admin page: upload → preview (a dry run) → confirm. A blueprint of its own, registered by create_app.
bp = guard_blueprint(Blueprint("imports", __name__, url_prefix="/admin/imports"), roles=["admin"])


def _importers() -> list[Importer]:
    return sorted(IMPORTERS.values(), key=lambda i: i.name)


def _page(status: int = 200, **context: Any):  # noqa: ANN202
    context.setdefault("importers", _importers())
    context.setdefault("selected", request.values.get("name", ""))
    return render_page_or_fragment("imports/page.html", "imports/_result.html", **context), status


@bp.route("")
def page():
    return _page()


@bp.route("", methods=["POST"])
def upload():
    limit = current_app.config["IMPORT_MAX_BYTES"]
    # Refused while the body is read (413), not after: the form's own fields need little room.
    request.max_content_length = limit + 1024 * 1024
    name = request.form.get("name", "")
    upload = request.files.get("file")
    if name not in IMPORTERS:
        return _page(422, form_error=_l("Choose what to import."))
    if upload is None or not upload.filename:
        return _page(422, form_error=_l("Choose a CSV file."))
    token, path = save_upload(name, upload.filename, upload.stream, current_user.id, limit)
    actor = Actor.of_user(current_user, request.remote_addr)
    session = db()
    try:
        summary = run_import(session, name, path, actor, True, importer_settings(current_app), upload.filename)
    except ImportFailed as failed:
        session.rollback()
        drop_upload(token)
        return _page(422, importer=IMPORTERS[name], filename=upload.filename, errors=failed.errors)
    session.rollback()
    return _page(
        importer=IMPORTERS[name], filename=upload.filename, summary=summary,
        confirm_url=url_for("imports.confirm", token=token),
    )


@bp.route("/<token>/confirm", methods=["POST"])
def confirm(token: str):
    meta, data = load_upload(token, current_user.id)  # the file's path
    name = meta["name"]
    if name not in IMPORTERS:
        abort(404)
    actor = Actor.of_user(current_user, request.remote_addr)
    session = db()
    try:
        summary = run_import(session, name, data, actor, False, importer_settings(current_app), meta["filename"])
    except ImportFailed as failed:  # the database changed since the preview
        session.rollback()
        return _page(422, importer=IMPORTERS[name], filename=meta["filename"], errors=failed.errors)
    session.commit()
    drop_upload(token)
    return _page(importer=IMPORTERS[name], filename=meta["filename"], summary=summary, done=True)
