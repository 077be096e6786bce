"""A private Postfix on loopback for the delivery tests and `console bench email` (never production).

`LoopbackPostfix(folder, ...).start()` writes a main.cf/master.cf of its own under `folder` and runs
`postfix -c folder/etc start` as root: its own queue, non-standard ports, virtual mailboxes as
Maildirs under `folder/mail`, forced outcomes per address in transport_maps, the bounce domain
routed to the report receiver, and `default_transport = error:` so that nothing ever leaves the
machine. Fast queue settings keep retries and reports within seconds.

Address book of the test domain `customers.test` (regexp maps, so any address works):
- `*@customers.test`: delivered to the one Maildir `mail/customers.test/inbox/` → a `delivered` report;
- `fail*@customers.test`: accepted, then an `error:5.1.1` transport → a `failed` report;
- `silent*@customers.test`: accepted, then a `retry:` transport → no report for minutes (silence);
- `nosuch*@customers.test`: not a mailbox → refused at RCPT (550 5.1.1);
- `*@relay.test`: handed to a non-DSN SMTP sink → a `relayed` report.

The relay and bounce-domain settings are not written here: they are the production snippet
`deploy/postfix/main.cf` and `deploy/postfix/billpost_transport` (docs/deploy.md), with their
placeholders filled in for loopback, so the documented configuration is the one the tests run.
Only `relay_domains` and `transport_maps` get the test domains' entries added after the snippet's.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from console.devtools.ports import free_port

POSTFIX_DIRS = ("/usr/sbin", "/usr/lib/postfix/sbin")
DEPLOY_POSTFIX = Path(__file__).resolve().parent.parent.parent / "deploy" / "postfix"


def deploy_snippet(name: str, values: dict[str, str]) -> str:
    """A file of deploy/postfix/ with its @PLACEHOLDERS@ filled in (as docs/deploy.md's sed does)."""
    text = (DEPLOY_POSTFIX / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if re.search(r"@[A-Z_]+@", text):
        raise ValueError(f"deploy/postfix/{name}: a placeholder is left unfilled")
    return text


def main_cf_settings(text: str) -> dict[str, str]:
    """`key = value` settings of a main.cf text (comments and blank lines skipped; no continuations)."""
    settings = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _sep, value = line.partition("=")
        settings[key.strip()] = value.strip()
    return settings


def postfix_available() -> bool:
    return shutil.which("postfix") is not None or Path("/usr/sbin/postfix").exists()




def _bin(name: str) -> str:
    for folder in POSTFIX_DIRS:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(name)
    return found


class LoopbackPostfix:
    def __init__(
        self,
        folder: Path,
        bounce_domain: str,
        receiver_port: int,
        sink_port: int,
        smtp_port: int | None = None,
        delay_warning: str = "0h",
        queue_lifetime: str = "10m",
    ) -> None:
        self.folder = Path(folder)
        self.etc = self.folder / "etc"
        self.mail = self.folder / "mail"
        self.log = self.folder / "postfix.log"
        self.bounce_domain = bounce_domain
        self.receiver_port = receiver_port
        self.sink_port = sink_port
        self.port = smtp_port or free_port()
        self.delay_warning = delay_warning
        self.queue_lifetime = queue_lifetime

    # -- configuration ---------------------------------------------------------------------------
    def _placeholders(self) -> dict[str, str]:
        return {
            "BOUNCE_DOMAIN": self.bounce_domain,
            "BILLPOST_NETWORKS": "",
            "MAILIN_HOST": "127.0.0.1",
            "MAILIN_PORT": str(self.receiver_port),
        }

    def _main_cf(self) -> str:
        """The loopback's own settings, then deploy/postfix/main.cf's (which win), test entries added."""
        own = main_cf_settings(self._own_main_cf())
        snippet = main_cf_settings(deploy_snippet("main.cf", self._placeholders()))
        merged = {**own, **snippet}
        merged["relay_domains"] = f"{snippet['relay_domains']}, relay.test"
        merged["transport_maps"] = f"{snippet['transport_maps']}, regexp:{self.etc}/transport"
        return "".join(f"{key} = {value}\n" for key, value in merged.items())

    def _own_main_cf(self) -> str:
        nobody = pwd.getpwnam("nobody")
        folder = self.folder
        return f"""
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.customers.test
mydomain = customers.test
myorigin = $myhostname
mydestination =
local_transport = error:5.1.1 no local delivery
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_recipient_restrictions = check_recipient_access regexp:{self.etc}/refuse, permit_mynetworks, reject
# fail*/silent* must be accepted and fail later; nosuch* is refused by the access map above.
smtpd_reject_unlisted_recipient = no
maillog_file = {self.log}
maillog_file_prefixes = {folder}
virtual_mailbox_domains = customers.test
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = regexp:{self.etc}/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
default_transport = error:5.7.1 test machine: nothing leaves
relay_transport = error:5.7.1 test machine: nothing leaves
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = {self.delay_warning}
maximal_queue_lifetime = {self.queue_lifetime}
bounce_queue_lifetime = {self.queue_lifetime}
smtp_connect_timeout = 5s
default_destination_concurrency_limit = 20
default_process_limit = 50
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100000
smtpd_hard_error_limit = 100000
message_size_limit = 20480000
"""

    def _transport(self) -> str:
        # The bounce domain is routed by deploy/postfix/billpost_transport (hash:, looked up first).
        return (
            f"/@relay\\.test$/ smtp:[127.0.0.1]:{self.sink_port}\n"
            "/^fail[^@]*@customers\\.test$/ error:5.1.1 mailbox does not exist here\n"
            "/^silent[^@]*@customers\\.test$/ retry:4.4.1 mailbox is not answering\n"
        )

    def _vmailbox(self) -> str:
        # One Maildir for every test mailbox (regexp results may not substitute here).
        return "if !/^nosuch/\n/^[A-Za-z0-9._+-]+@customers\\.test$/ customers.test/inbox/\nendif\n"

    def write_config(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        self.mail.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        (self.folder / "queue").mkdir(exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        postfix = pwd.getpwnam("postfix")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        os.chown(self.folder / "data", postfix.pw_uid, postfix.pw_gid)
        for path in (self.folder, *self.folder.parents):  # the daemons (postfix, nobody) walk these
            if path == Path("/"):
                break
            mode = path.stat().st_mode
            if not mode & 0o001:
                path.chmod(mode | 0o011)
        (self.etc / "main.cf").write_text(self._main_cf())
        master = Path("/usr/share/postfix/master.cf.dist")
        if not master.exists():
            master = Path("/etc/postfix/master.cf")
        (self.etc / "master.cf").write_text(master.read_text())
        (self.etc / "transport").write_text(self._transport())
        (self.etc / "billpost_transport").write_text(deploy_snippet("billpost_transport", self._placeholders()))
        (self.etc / "vmailbox").write_text(self._vmailbox())
        (self.etc / "refuse").write_text("/^nosuch/ 550 5.1.1 User unknown in virtual mailbox table\n")
        # Debian's postfix needs these next to main.cf.
        for name in ("dynamicmaps.cf", "postfix-files"):
            source = Path("/etc/postfix") / name
            if source.exists():
                shutil.copy(source, self.etc / name)
        for name in ("dynamicmaps.cf.d", "postfix-files.d"):
            source = Path("/etc/postfix") / name
            if source.is_dir() and not (self.etc / name).exists():
                shutil.copytree(source, self.etc / name)
        subprocess.run([_bin("postmap"), "-c", str(self.etc), f"hash:{self.etc / 'billpost_transport'}"],
                       check=True, capture_output=True)
        self.postconf("-F", "*/*/chroot = n")
        self.postconf("-MX", "smtp/inet")
        self.postconf("-M", f"127.0.0.1:{self.port}/inet = 127.0.0.1:{self.port} inet n - n - - smtpd")

    # -- control ---------------------------------------------------------------------------------
    def postconf(self, *args: str) -> None:
        subprocess.run([_bin("postconf"), "-c", str(self.etc), *args], check=True, capture_output=True)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_bin("postfix"), "-c", str(self.etc), *args], check=True, capture_output=True, text=True
        )

    def start(self) -> LoopbackPostfix:
        self.write_config()
        self.run("start")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not start; log:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        subprocess.run([_bin("postfix"), "-c", str(self.etc), "stop"], capture_output=True)

    def flush_queue(self) -> None:
        """Drop whatever is still queued (between tests)."""
        subprocess.run([_bin("postsuper"), "-c", str(self.etc), "-d", "ALL"], capture_output=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def message_count(self) -> int:
        root = self.mail / "customers.test"
        return sum(1 for _ in root.glob("*/new/*")) + sum(1 for _ in root.glob("*/cur/*")) if root.exists() else 0

    def all_messages(self) -> list[bytes]:
        root = self.mail / "customers.test"
        if not root.exists():
            return []
        return [p.read_bytes() for p in sorted(root.glob("*/new/*")) + sorted(root.glob("*/cur/*"))]
