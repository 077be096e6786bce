"""Configuration from the environment; every variable is documented in the README with its default."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def instance_path(env: Mapping[str, str] = os.environ) -> Path:
    path = Path(env.get("BILLPOST_INSTANCE", PROJECT_ROOT / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key(folder: Path, env: Mapping[str, str]) -> str:
    """SECRET_KEY from the environment, else one generated once and kept under instance/."""
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    key_file = folder / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_environment(env: Mapping[str, str] = os.environ) -> dict:
    """Every setting of the console, typed, with its default: the only reader of the environment.
    `from_environment({})` gives the defaults (tests and benches)."""
    folder = instance_path(env)
    redis = env.get("REDIS_URL", "")
    return {
        "INSTANCE_PATH": str(folder),
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{folder / 'billpost.db'}",
        # Empty means: the console starts an embedded Redis of its own (see console.redis_conn).
        "REDIS_URL": redis,
        # Throttles (Flask-Limiter) share Redis between web processes; in-process memory otherwise.
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI")
        or (redis.replace("unix://", "redis+unix://", 1) if redis else "memory://"),
        "SECRET_KEY": _secret_key(folder, env),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env, "SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(env.get("SESSION_HOURS", "12"))),
        "WTF_CSRF_TIME_LIMIT": int(env.get("CSRF_SECONDS", str(12 * 3600))),
        # How long an in-page confirmation of an irreversible action stays valid (console/web/confirm.py).
        "CONFIRM_TOKEN_MINUTES": int(env.get("CONFIRM_TOKEN_MINUTES", "60")),
        "BABEL_DEFAULT_LOCALE": env.get("DEFAULT_LOCALE", "zh"),
        "BABEL_DEFAULT_TIMEZONE": env.get("DISPLAY_TIMEZONE", "Asia/Shanghai"),
        "LANGUAGES": ["zh", "en"],
        # Billing
        "DUE_DAYS": int(env.get("DUE_DAYS", "15")),
        # The customer always has at least this many days between a bill's issue and due dates.
        "MIN_PAYMENT_DAYS": int(env.get("MIN_PAYMENT_DAYS", "10")),
        "COLLECTIVE_WINDOW_DAYS": int(env.get("COLLECTIVE_WINDOW_DAYS", "7")),
        "CYCLE_CHUNK_SIZE": int(env.get("CYCLE_CHUNK_SIZE", "1000")),
        # Late fees (滞纳金): daily rates on amounts unpaid after their due date.
        "LATE_FEE_RESIDENTIAL": env.get("LATE_FEE_RESIDENTIAL", "0.001"),
        "LATE_FEE_CURRENT_YEAR": env.get("LATE_FEE_CURRENT_YEAR", "0.002"),
        "LATE_FEE_EARLIER_YEARS": env.get("LATE_FEE_EARLIER_YEARS", "0.003"),
        # The company on every bill: name (Chinese, English), hotline, return address, logo (under static/),
        # payment channels (codes, labelled in web/labels.py "payment_channel"), bank for transfers.
        "COMPANY_NAME": env.get("COMPANY_NAME") or "苏州示例供电公司",
        "COMPANY_NAME_EN": env.get("COMPANY_NAME_EN") or "Suzhou Sample Power Supply Company",
        "COMPANY_HOTLINE": env.get("COMPANY_HOTLINE") or "95598",
        "COMPANY_ADDRESS": env.get("COMPANY_ADDRESS") or "江苏省苏州市姑苏区示例路 1 号 215000",
        "COMPANY_LOGO": env.get("COMPANY_LOGO") or "img/logo.png",
        "COMPANY_PAYMENT_CHANNELS": env.get("COMPANY_PAYMENT_CHANNELS") or "portal,wechat,alipay,bank_debit,counter",
        "COMPANY_BANK": env.get("COMPANY_BANK") or "中国工商银行苏州分行（示例）",
        "COMPANY_BANK_ACCOUNT": env.get("COMPANY_BANK_ACCOUNT") or "1102 0200 0900 0000 001",
        "PAPER_KEY_ACCOUNTS_ONLY": _bool(env, "PAPER_KEY_ACCOUNTS_ONLY", True),
        # Paper: deliveries per print batch; duplex padding; the CJK TrueType font embedded in PDFs.
        "PAPER_BATCH_SIZE": int(env.get("PAPER_BATCH_SIZE") or "500"),
        "PAPER_DUPLEX": _bool(env, "PAPER_DUPLEX", False),
        "PAPER_CJK_FONT": env.get("PAPER_CJK_FONT") or "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        # Customer web page: sign-in throttles (failed attempts only; the lock lifts when the window
        # ends), code requests and checks (registration, password reset), codes' lifetimes, paging.
        "PORTAL_LOGIN_ACCOUNT_LIMIT": env.get("PORTAL_LOGIN_ACCOUNT_LIMIT") or "5 per 15 minutes",
        "PORTAL_LOGIN_ADDRESS_LIMIT": env.get("PORTAL_LOGIN_ADDRESS_LIMIT") or "30 per 15 minutes",
        "PORTAL_CODE_ACCOUNT_LIMIT": env.get("PORTAL_CODE_ACCOUNT_LIMIT") or "5 per hour",
        "PORTAL_CODE_ADDRESS_LIMIT": env.get("PORTAL_CODE_ADDRESS_LIMIT") or "30 per hour",
        "PORTAL_CODE_MINUTES": int(env.get("PORTAL_CODE_MINUTES") or "10"),
        "PORTAL_CODE_ATTEMPTS": int(env.get("PORTAL_CODE_ATTEMPTS") or "5"),
        "PORTAL_BILL_CODE_DAYS": int(env.get("PORTAL_BILL_CODE_DAYS") or "90"),
        "PORTAL_PAGE_SIZE": int(env.get("PORTAL_PAGE_SIZE") or "24"),
        # Mail out
        "SMTP_HOST": env.get("SMTP_HOST", ""),
        "SMTP_PORT": int(env.get("SMTP_PORT", "25")),
        "SMTP_STARTTLS": _bool(env, "SMTP_STARTTLS", False),
        "SMTP_USER": env.get("SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "billing@bills.test"),
        "BOUNCE_DOMAIN": env.get("BOUNCE_DOMAIN", "bounces.bills.test"),
        "PORTAL_BASE_URL": env.get("PORTAL_BASE_URL", "http://127.0.0.1:8000"),
        "CONFIRM_AFTER": timedelta(hours=float(env.get("CONFIRM_AFTER_HOURS", "24"))),
        # Sending: deliveries per send job; how long a sender's claim on a delivery lasts (a killed
        # worker's claim runs out after this and the sweeper re-enqueues); the sweeper's period.
        "SEND_BATCH_SIZE": int(env.get("SEND_BATCH_SIZE", "200")),
        # SMTP connections one send job uses at once (one message in flight on each; SQLite: always 1).
        "SEND_CONNECTIONS": int(env.get("SEND_CONNECTIONS", "1")),
        # Working hours within which a work item should be handled (inbox due-by; 8 = one working day).
        "CASE_TARGET_HOURS": float(env.get("CASE_TARGET_HOURS", "8")),
        "CASE_TARGET_HOURS_KEY_ACCOUNT": float(env.get("CASE_TARGET_HOURS_KEY_ACCOUNT", "4")),
        "DELIVERY_LEASE_SECONDS": int(env.get("DELIVERY_LEASE_SECONDS", "300")),
        "SWEEP_SECONDS": int(env.get("SWEEP_SECONDS", "60")),
        "SEND_REENQUEUE_SECONDS": int(env.get("SEND_REENQUEUE_SECONDS", "600")),
        # Mail in
        "MAILIN_HOST": env.get("MAILIN_HOST", "127.0.0.1"),
        "MAILIN_PORT": int(env.get("MAILIN_PORT", "2526")),
        # Larger messages are refused with 552; of accepted ones, the first MAILIN_KEEP_BYTES are kept.
        "MAILIN_MAX_BYTES": int(env.get("MAILIN_MAX_BYTES", str(32 * 1024 * 1024))),
        "MAILIN_KEEP_BYTES": int(env.get("MAILIN_KEEP_BYTES", str(2 * 1024 * 1024))),
        # Peers the receiver takes connections from (addresses or networks); at most this many at once.
        "MAILIN_TRUSTED_PEERS": env.get("MAILIN_TRUSTED_PEERS", "127.0.0.1/8,::1"),
        "MAILIN_MAX_CONNECTIONS": int(env.get("MAILIN_MAX_CONNECTIONS", "50")),
        # Optional bounce mailbox polled by `console mailin --imap` (IMAPS when IMAP_SSL).
        "IMAP_HOST": env.get("IMAP_HOST", ""),
        "IMAP_PORT": int(env.get("IMAP_PORT", "993")),
        "IMAP_SSL": _bool(env, "IMAP_SSL", True),
        "IMAP_USER": env.get("IMAP_USER", ""),
        "IMAP_PASSWORD": env.get("IMAP_PASSWORD", ""),
        "IMAP_FOLDER": env.get("IMAP_FOLDER", "INBOX"),
        "IMAP_POLL_SECONDS": int(env.get("IMAP_POLL_SECONDS", "60")),
        # Demo mail sandbox (only when SMTP_HOST is empty): started by `console mailin`.
        "SANDBOX_PORT": int(env.get("SANDBOX_PORT", "2525")),
        "SANDBOX_FAIL_PATTERN": env.get("SANDBOX_FAIL_PATTERN", r"bounce|fail|nosuch"),
        "SANDBOX_SILENT_PATTERN": env.get("SANDBOX_SILENT_PATTERN", r"silent"),
        # Logging (console.logs): "json" for one JSON object a line, else plain text; the level of billpost.*.
        "LOG_FORMAT": env.get("LOG_FORMAT", "text"),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        # Reverse proxies in front of the web process whose X-Forwarded-* headers are believed (0: none).
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        # Largest CSV upload on the admin page; larger ones get 413 (the command line reads files of any size).
        "IMPORT_MAX_BYTES": int(env.get("IMPORT_MAX_BYTES", str(32 * 1024 * 1024))),
        # Operations (console/ops): who may read /metrics (networks, or the bearer token); when /healthz
        # and `console doctor` call the sweeper late; the free space `console doctor` wants for PDFs;
        # the address its probe sends to (it must be accepted by the relay and then bounce).
        "METRICS_ALLOWED_NETWORKS": env.get("METRICS_ALLOWED_NETWORKS", "127.0.0.1/8,::1"),
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "HEALTH_SWEEP_LAG_SECONDS": int(env.get("HEALTH_SWEEP_LAG_SECONDS", "300")),
        "DOCTOR_MIN_FREE_MB": int(env.get("DOCTOR_MIN_FREE_MB", "2048")),
        "DOCTOR_PROBE_ADDRESS": env.get("DOCTOR_PROBE_ADDRESS", "billpost-probe@probe.invalid"),
        # Retention (console/ops/retention.py, daily): raw inbound mail, demo sandbox mail, rendered PDFs.
        "RETAIN_INBOUND_DAYS": int(env.get("RETAIN_INBOUND_DAYS", "90")),
        "RETAIN_SANDBOX_DAYS": int(env.get("RETAIN_SANDBOX_DAYS", "30")),
        "RETAIN_PDF_YEARS": int(env.get("RETAIN_PDF_YEARS", "1")),
    }


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process of the console (the Procfile's processes, a bench's worker):
    this process's own, with these settings changed."""
    return {**os.environ, **overrides}
