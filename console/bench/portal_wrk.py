"""`console bench portal --wrk`: the customer's bill list and bill page under `wrk` (Debian's), against
the real server: gunicorn started with the settings of deploy/systemd/billpost-web.service on a free
loopback port, customers signed in over HTTP through the portal's own sign-in form (CSRF token
included), their session cookies and bill ids spread over the requests by a Lua script written for
the run. p95 comes from wrk's own latency histogram (`latency:percentile(95)` in the script's
`done()`; wrk's `--latency` table stops at p50/p75/p90/p99). Any answer but 200 fails the bench."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import click
from flask import Flask

from console.config import PROJECT_ROOT, child_environment

UNIT = PROJECT_ROOT / "deploy" / "systemd" / "billpost-web.service"
# One browser per customer: Flask-Login's "strong" session protection binds a session to the
# address and User-Agent it signed in with, so wrk must send the same one.
USER_AGENT = "billpost-bench-portal"
PAGES = {"bill list": "list", "bill page": "bill"}


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise click.ClickException(
            "wrk is not installed: `apt-get install wrk` (Debian's package; `scripts/install --test` installs it)"
        )
    return path


def cores() -> int:
    return len(os.sched_getaffinity(0))


def default_workers() -> int:
    """gunicorn's rule, 2 × cores + 1: the shipped unit's 5 workers on its 2-core machine."""
    return 2 * cores() + 1


def gunicorn_command(bind: str, workers: int, unit: Path = UNIT) -> list[str]:
    """The unit's ExecStart (threads, timeouts, forwarded-allow-ips, the app), with this bind address,
    this many workers and the gunicorn of this venv."""
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    args = shlex.split(line.removeprefix("ExecStart="))[1:]
    for option, value in (("--bind", bind), ("--workers", str(workers))):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args[:0] = [option, value]
    return [str(Path(sys.executable).parent / "gunicorn"), *args]


class Server:
    """gunicorn in a process of its own, stopped the way systemd stops it (SIGTERM to the master)."""

    def __init__(self, command: list[str], env: dict, folder: Path, port: int) -> None:
        self.command, self.env, self.port = command, env, port
        self.log_path = folder / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: float = 60.0) -> Server:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise click.ClickException(f"gunicorn exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                status, _headers, _body = request(self.port, "GET", "/my/login")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise click.ClickException(f"gunicorn did not answer within {wait:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def request(port: int, method: str, path: str, cookies: dict | None = None, form: dict | None = None):  # noqa: ANN201
    """One HTTP request as the customer's browser makes it: (status, headers, body text)."""
    headers = {"User-Agent": USER_AGENT}
    if cookies:
        headers["Cookie"] = cookie_header(cookies)
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def keep_cookies(cookies: dict, headers) -> None:  # noqa: ANN001
    """The browser's part: cookies set by the answer kept, cookies it deletes dropped."""
    for raw in headers.get_all("Set-Cookie") or []:
        jar = SimpleCookie()
        jar.load(raw)
        for name, morsel in jar.items():
            if morsel.value == "" or morsel["max-age"] == "0":
                cookies.pop(name, None)
            else:
                cookies[name] = morsel.value


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(port: int, username: str, password: str) -> str:
    """The portal's own sign-in over HTTP: the form (its CSRF token and session cookie), the POST,
    then the bill list the redirect leads to (where the session gains the CSRF token its pages
    carry). Returns the Cookie header the customer's browser sends from then on."""
    cookies: dict = {}
    status, headers, body = request(port, "GET", "/my/login")
    keep_cookies(cookies, headers)
    token = CSRF_FIELD.search(body)
    if status != 200 or token is None:
        raise click.ClickException(f"sign-in form for {username}: {status}, CSRF token {'found' if token else 'missing'}")
    status, headers, _body = request(port, "POST", "/my/login", cookies,
                                     {"csrf_token": token.group(1), "username": username, "password": password})
    if status == 429:
        raise click.ClickException(
            f"sign-in of {username} throttled (429): PORTAL_LOGIN_ACCOUNT_LIMIT / PORTAL_LOGIN_ADDRESS_LIMIT count "
            "failed sign-ins; the bench's own sign-ins succeed, so earlier failures from 127.0.0.1 are still counted"
        )
    location = headers.get("Location", "")
    if status != 302 or not location.endswith("/my/bills"):
        raise click.ClickException(f"sign-in of {username} answered {status} (Location {location!r})")
    keep_cookies(cookies, headers)
    status, headers, _body = request(port, "GET", "/my/bills", cookies)
    if status != 200:
        raise click.ClickException(f"bill list of {username} right after sign-in answered {status}")
    keep_cookies(cookies, headers)
    return cookie_header(cookies)


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(page: str, sessions: list[tuple[str, list[int]]]) -> str:
    """wrk's script: each request a customer at random, for the bill page one of their bills at random;
    the answers counted by status in each thread; `done()` prints one BENCH-RESULT line."""
    rows = ",\n".join(
        f"  {{{_lua_string(cookie)}, {{{', '.join(str(b) for b in bills)}}}}}" for cookie, bills in sessions
    )
    return f"""-- written by `console bench portal --wrk` (console/bench/portal_wrk.py)
local sessions = {{
{rows}
}}
local page = {_lua_string(page)}
local agent = {_lua_string(USER_AGENT)}
local threads = {{}}
local n = 0

function setup(thread)
  n = n + 1
  thread:set("seed", 7919 * n)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed)
  ok, redirected, other, first_other = 0, 0, 0, 0
end

function request()
  local s = sessions[math.random(#sessions)]
  local path = "/my/bills"
  if page == "bill" then
    path = "/my/bills/" .. s[2][math.random(#s[2])]
  end
  return wrk.format("GET", path, {{["Cookie"] = s[1], ["User-Agent"] = agent}})
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status >= 300 and status < 400 then
    redirected = redirected + 1
  else
    other = other + 1
    if first_other == 0 then first_other = status end
  end
end

function done(summary, latency, requests)
  local total_ok, total_redirected, total_other, first = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    total_redirected = total_redirected + (t:get("redirected") or 0)
    total_other = total_other + (t:get("other") or 0)
    if first == 0 then first = t:get("first_other") or 0 end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%.0f p95_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f " ..
    "ok=%d redirected=%d other=%d first_other=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, total_ok, total_redirected, total_other, first,
    e.connect, e.read, e.write, e.timeout))
end
"""


RESULT = re.compile(r"^BENCH-RESULT (.*)$", re.MULTILINE)


def run_wrk(wrk: str, port: int, script: Path, connections: int, threads: int, seconds: int,
            out: Path | None) -> dict:
    """One wrk run; the figures of the script's BENCH-RESULT line (times in µs)."""
    args = [wrk, f"-c{connections}", f"-t{threads}", f"-d{seconds}s", "--latency", "--timeout", "30s",
            "-s", str(script), f"http://127.0.0.1:{port}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    if out is not None:
        out.write_text(" ".join(args) + "\n\n" + result.stdout + result.stderr)
    match = RESULT.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise click.ClickException(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return {key: float(value) for key, value in (pair.split("=") for pair in match.group(1).split())}


def describe(name: str, figures: dict) -> str:
    seconds = figures["duration_us"] / 1e6
    rate = figures["requests"] / seconds if seconds else 0.0
    errors = sum(int(figures[k]) for k in ("connect", "read", "write", "timeout"))
    ms = {k: figures[f"{k}_us"] / 1000 for k in ("p50", "p95", "p99", "max")}
    return (f"{name:<10} {rate:8.1f} requests/s   p50 {ms['p50']:6.1f} ms   p95 {ms['p95']:6.1f} ms   "
            f"p99 {ms['p99']:6.1f} ms   max {ms['max']:7.1f} ms   ({int(figures['requests'])} requests in "
            f"{seconds:.1f} s; non-2xx {int(figures['redirected'] + figures['other'])}, socket errors {errors})")


def problems(name: str, figures: dict) -> list[str]:
    found = []
    if figures["redirected"]:
        found.append(f"{name}: {int(figures['redirected'])} redirects (a session lost: signed out, sent to sign-in)")
    if figures["other"]:
        found.append(f"{name}: {int(figures['other'])} answers neither 200 nor a redirect "
                     f"(the first: {int(figures['first_other'])}; 429 would be a throttle)")
    errors = {k: int(figures[k]) for k in ("connect", "read", "write", "timeout") if figures[k]}
    if errors:
        found.append(f"{name}: socket errors {errors}")
    if not figures["requests"]:
        found.append(f"{name}: no request completed")
    return found


def run(app: Flask, accounts: list[tuple[str, list[int]]], password: str, *, seconds: int, connections: int,
        threads: int, workers: int, warmup: int) -> Iterator[str]:
    """Start the server, sign the customers in, run wrk on each page; figures, then a failure if any
    answer was not a 200. `accounts`: (username, the customer's published bill ids)."""
    from console.devtools.ports import free_port
    from console.queues import redis_url

    wrk = wrk_binary()
    folder = Path(tempfile.mkdtemp(prefix="billpost-bench-portal-wrk-"))
    port = free_port()
    command = gunicorn_command(f"127.0.0.1:{port}", workers)
    engine = app.extensions["billpost.engine"]
    env = child_environment(
        DATABASE_URL=engine.url.render_as_string(hide_password=False), REDIS_URL=redis_url(app),
        BILLPOST_INSTANCE=str(app.config["INSTANCE_PATH"]),
    )
    threads_per_worker = command[command.index("--threads") + 1] if "--threads" in command else "1"
    how = "2 × cores + 1" if workers == default_workers() else "--workers"
    yield (f"server: gunicorn {workers} workers × {threads_per_worker} threads on 127.0.0.1:{port}, the options of "
           f"{UNIT.relative_to(PROJECT_ROOT)} (its 5 workers are for 2 cores; here {cores()} cores, workers by "
           f"{how}); no nginx in front")
    yield (f"throttles as configured, none changed for the bench: PORTAL_LOGIN_ACCOUNT_LIMIT "
           f"{app.config['PORTAL_LOGIN_ACCOUNT_LIMIT']!r}, PORTAL_LOGIN_ADDRESS_LIMIT "
           f"{app.config['PORTAL_LOGIN_ADDRESS_LIMIT']!r} count failed sign-ins only; the bill pages have none "
           f"(storage {'Redis' if env['REDIS_URL'] else 'memory'})")
    server = Server(command, env, folder, port).start()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(2, workers)) as pool:
            cookies = list(pool.map(lambda a: sign_in(port, a[0], password), accounts))
        sessions = [(cookie, bills) for cookie, (_user, bills) in zip(cookies, accounts, strict=True)]
        yield (f"{len(sessions)} customers signed in over HTTP in {time.perf_counter() - started:.1f} s "
               f"(their {sum(len(b) for _c, b in sessions)} bills spread over the requests)")
        yield (f"wrk: -c{connections} -t{threads} -d{seconds}s --latency --timeout 30s, on this machine beside "
               f"the server and the database; script, wrk's output and the server's log in {folder}")
        found = []
        for name, page in PAGES.items():
            script = folder / f"portal-{page}.lua"
            script.write_text(lua_script(page, sessions))
            if warmup:
                warm = run_wrk(wrk, port, script, connections, threads, warmup, None)
                found += problems(f"{name} (warm-up)", warm)
            figures = run_wrk(wrk, port, script, connections, threads, seconds, folder / f"wrk-{page}.txt")
            yield describe(name, figures)
            found += problems(name, figures)
    finally:
        server.stop()
    if found:
        raise click.ClickException("not every answer was a 200:\n  " + "\n  ".join(found) +
                                   f"\nserver log ({server.log_path}):\n{server.log_tail()}")
