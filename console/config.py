"""Configuration from the environment; every variable is documented in the README with its default."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def instance_path() -> Path:
    path = Path(os.environ.get("BILLPOST_INSTANCE", PROJECT_ROOT / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key(folder: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept under instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = folder / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_environment() -> dict:
    folder = instance_path()
    redis = os.environ.get("REDIS_URL", "")
    return {
        "INSTANCE_PATH": str(folder),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{folder / 'billpost.db'}",
        # Empty means: the console starts an embedded Redis of its own (see console.redis_conn).
        "REDIS_URL": redis,
        # Throttles (Flask-Limiter) share Redis between web processes; in-process memory otherwise.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI")
        or (redis.replace("unix://", "redis+unix://", 1) if redis else "memory://"),
        "SECRET_KEY": _secret_key(folder),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(os.environ.get("SESSION_HOURS", "12"))),
        "WTF_CSRF_TIME_LIMIT": int(os.environ.get("CSRF_SECONDS", str(12 * 3600))),
        "BABEL_DEFAULT_LOCALE": os.environ.get("DEFAULT_LOCALE", "zh"),
        "BABEL_DEFAULT_TIMEZONE": os.environ.get("DISPLAY_TIMEZONE", "Asia/Shanghai"),
        "LANGUAGES": ["zh", "en"],
        # Billing
        "DUE_DAYS": int(os.environ.get("DUE_DAYS", "15")),
        "COLLECTIVE_WINDOW_DAYS": int(os.environ.get("COLLECTIVE_WINDOW_DAYS", "7")),
        "CYCLE_CHUNK_SIZE": int(os.environ.get("CYCLE_CHUNK_SIZE", "1000")),
        # Late fees (滞纳金): daily rates on amounts unpaid after their due date.
        "LATE_FEE_RESIDENTIAL": os.environ.get("LATE_FEE_RESIDENTIAL", "0.001"),
        "LATE_FEE_CURRENT_YEAR": os.environ.get("LATE_FEE_CURRENT_YEAR", "0.002"),
        "LATE_FEE_EARLIER_YEARS": os.environ.get("LATE_FEE_EARLIER_YEARS", "0.003"),
        "PAPER_KEY_ACCOUNTS_ONLY": _bool("PAPER_KEY_ACCOUNTS_ONLY", True),
        # Mail out
        "SMTP_HOST": os.environ.get("SMTP_HOST", ""),
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", "25")),
        "SMTP_STARTTLS": _bool("SMTP_STARTTLS", False),
        "SMTP_USER": os.environ.get("SMTP_USER", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "billing@bills.test"),
        "BOUNCE_DOMAIN": os.environ.get("BOUNCE_DOMAIN", "bounces.bills.test"),
        "PORTAL_BASE_URL": os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000"),
        "CONFIRM_AFTER": timedelta(hours=float(os.environ.get("CONFIRM_AFTER_HOURS", "24"))),
        # Sending: deliveries per send job; how long a sender's claim on a delivery lasts (a killed
        # worker's claim runs out after this and the sweeper re-enqueues); the sweeper's period.
        "SEND_BATCH_SIZE": int(os.environ.get("SEND_BATCH_SIZE", "200")),
        "DELIVERY_LEASE_SECONDS": int(os.environ.get("DELIVERY_LEASE_SECONDS", "300")),
        "SWEEP_SECONDS": int(os.environ.get("SWEEP_SECONDS", "60")),
        "SEND_REENQUEUE_SECONDS": int(os.environ.get("SEND_REENQUEUE_SECONDS", "600")),
        # Mail in
        "MAILIN_HOST": os.environ.get("MAILIN_HOST", "127.0.0.1"),
        "MAILIN_PORT": int(os.environ.get("MAILIN_PORT", "2526")),
        # Larger messages are refused with 552; of accepted ones, the first MAILIN_KEEP_BYTES are kept.
        "MAILIN_MAX_BYTES": int(os.environ.get("MAILIN_MAX_BYTES", str(32 * 1024 * 1024))),
        "MAILIN_KEEP_BYTES": int(os.environ.get("MAILIN_KEEP_BYTES", str(2 * 1024 * 1024))),
        # Peers the receiver takes connections from (addresses or networks); at most this many at once.
        "MAILIN_TRUSTED_PEERS": os.environ.get("MAILIN_TRUSTED_PEERS", "127.0.0.1/8,::1"),
        "MAILIN_MAX_CONNECTIONS": int(os.environ.get("MAILIN_MAX_CONNECTIONS", "50")),
        # Optional bounce mailbox polled by `console mailin --imap` (IMAPS when IMAP_SSL).
        "IMAP_HOST": os.environ.get("IMAP_HOST", ""),
        "IMAP_PORT": int(os.environ.get("IMAP_PORT", "993")),
        "IMAP_SSL": _bool("IMAP_SSL", True),
        "IMAP_USER": os.environ.get("IMAP_USER", ""),
        "IMAP_PASSWORD": os.environ.get("IMAP_PASSWORD", ""),
        "IMAP_FOLDER": os.environ.get("IMAP_FOLDER", "INBOX"),
        "IMAP_POLL_SECONDS": int(os.environ.get("IMAP_POLL_SECONDS", "60")),
        # Demo mail sandbox (only when SMTP_HOST is empty): started by `console mailin`.
        "SANDBOX_PORT": int(os.environ.get("SANDBOX_PORT", "2525")),
        "SANDBOX_FAIL_PATTERN": os.environ.get("SANDBOX_FAIL_PATTERN", r"bounce|fail|nosuch"),
        "SANDBOX_SILENT_PATTERN": os.environ.get("SANDBOX_SILENT_PATTERN", r"silent"),
        # Logging (console.logs): "json" for one JSON object a line, else plain text; the level of billpost.*.
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        # Reverse proxies in front of the web process whose X-Forwarded-* headers are believed (0: none).
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        # Largest CSV upload on the admin page; larger ones get 413 (the command line reads files of any size).
        "IMPORT_MAX_BYTES": int(os.environ.get("IMPORT_MAX_BYTES", str(64 * 1024 * 1024))),
    }
