"""Chinese everywhere (issue 16): after a whole demo cycle, every page each role reaches by following
links from its home (and every fragment those pages load with hx-get) is crawled with the test client in
Chinese and in English. A Chinese page may show no English word outside the allowed kinds — numbers of
accounts, bills, meters and points, e-mail addresses and domains, units, codes such as `5.1.1`, the
product's name, names and addresses from the data; an English page no Chinese outside the data's names
and addresses and the language switch. Failures read "page URL: word … context"."""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.billing import cycles
from console.billing.demo import seed_billing_demo
from console.customers.demo import DEMO_USERS, seed_demo
from console.delivery.policy import apply_report
from console.delivery.publish import publish_cycle
from console.inboxes import services as inbox
from console.models import (
    Customer,
    Delivery,
    DeliveryAttempt,
    Recipient,
    ServicePoint,
    User,
    WorkItem,
)
from console.models.billing import Campaign
from console.models.paper import PrintItem
from console.models.portal import WebAccount
from console.paper import batches, dispatch
from console.passwords import hash_password
from tests.billing.conftest import SETTINGS

TODAY = date(2026, 12, 2)
PERIOD = "2026-12"
CUSTOMER_PASSWORD = "Portal-pass-2026"
PAGES_PER_ROLE = 150
SAME_SHAPE = 3  # pages of one shape (digits and query values aside) visited per role
SKIP = ("/logout", "/my/logout", "/static/", "/login", "/my/login")
DOWNLOAD = re.compile(r"(\.pdf|\.csv|\.png|\.zip|/download|/export|/pdf|/file)(\?|$)")

# Words that are not English to a Chinese reader of these pages (units, names of products and standards).
ALLOWED = {
    "Billpost", "kWh", "kW", "kVA", "SMTP", "DSN", "PDF", "CSV", "QR", "ID", "URL", "VERP", "RFC", "MTA", "HTML",
    "RES", "RES-TOU", "COM", "IND", "EN", "English", "Redis", "RQ", "PostgreSQL", "SQLite", "Postfix", "IP", "OK", "JSON", "GBK",
}
# English still rendered from stored text that issue 16's point 1 is rewriting (another helper's part):
# empty while that change has landed; a word listed here is a bug to report, not a permanent exception.
PENDING_EVENTS_REWRITE: set[str] = set()

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+@/:'’-]*")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
TRAILING = ".:,;/'’-"
DOMAIN = re.compile(r"^([a-z0-9-]+\.)+[a-z]{2,}$", re.I)


class _Page(HTMLParser):
    """The text a reader sees (no <script>/<style>/<template>, the shown attributes only) and the GET links."""

    SHOWN_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[tuple[str, bool]] = []  # (url, as an htmx fragment)
        self.lang: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = values.get("lang")
        if tag in ("script", "style", "template"):
            self._skip += 1
        if tag == "a" and values.get("href") and "download" not in values:
            self.links.append((values["href"], False))
        if values.get("hx-get"):
            self.links.append((values["hx-get"], True))
        for name in self.SHOWN_ATTRIBUTES:
            if values.get(name):
                self.text.append(values[name])
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.text.append(values["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data.strip())


def _context(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 40):end + 40].split())


def english_words(text: str, data_words: set[str]) -> list[tuple[str, str]]:
    found = []
    for match in WORD.finditer(text):
        word = match.group().rstrip(TRAILING)
        if not word or not re.search(r"[A-Za-z]", word):
            continue
        if (re.search(r"\d", word) or EMAIL.match(word) or DOMAIN.match(word) or word in ALLOWED
                or word.lower() in data_words or word in PENDING_EVENTS_REWRITE):
            continue
        if len(word) == 1 and word.isupper():  # a unit or a grade letter (A, V)
            continue
        found.append((word, _context(text, match.start(), match.end())))
    return found


def chinese_runs(text: str, data_text: str) -> list[tuple[str, str]]:
    found = []
    for match in CJK.finditer(text):
        if match.group() in data_text or match.group() == "中文":
            continue
        found.append((match.group(), _context(text, match.start(), match.end())))
    return found


def _shape(url: str) -> str:
    parts = urlsplit(url)
    query = re.sub(r"=[^&]*", "=", parts.query)
    return re.sub(r"\d+", "N", parts.path) + ("?" + query if query else "")


def crawl(client, home: str, fragment_home: bool = False):  # noqa: ANN001, ANN201
    """Every page reachable by GET from `home` (and its hx-get fragments): yields (url, status, _Page)."""
    seen_urls: set[tuple[str, bool]] = set()
    shapes: dict[str, int] = {}
    queue = deque([(home, fragment_home)])
    visited = 0
    while queue and visited < PAGES_PER_ROLE:
        url, fragment = queue.popleft()
        url = urldefrag(url)[0]
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not url.startswith("/"):
            continue
        if (url, fragment) in seen_urls or url.startswith(SKIP) or DOWNLOAD.search(parts.path):
            continue
        seen_urls.add((url, fragment))
        shape = _shape(url) + ("#hx" if fragment else "")
        if shapes.get(shape, 0) >= SAME_SHAPE:
            continue
        shapes[shape] = shapes.get(shape, 0) + 1
        response = client.get(url, headers={"HX-Request": "true"} if fragment else {})
        visited += 1
        if response.status_code in (301, 302, 303):
            location = response.headers["Location"]
            queue.append((location, False))
            continue
        if not response.content_type.startswith("text/html"):
            continue
        page = _Page()
        page.feed(response.get_data(as_text=True))
        yield url, response.status_code, page
        for link, as_fragment in page.links:
            queue.append((link, as_fragment))


# ---- a whole demo cycle -------------------------------------------------------------------------------


def _attempt(session, delivery: Delivery, n: int, at: datetime) -> DeliveryAttempt:  # noqa: ANN001
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, attempt_no=1, token=f"crawl{n}", envid=f"crawl-env{n}",
        message_id=f"<crawl{n}@bills.test>", dsn_requested=True, sent_at=at, smtp_response="250 2.0.0 Ok: queued",
    )
    session.add(attempt)
    delivery.status, delivery.attempts_made = "sent", 1
    session.flush()
    return attempt


def build_demo_cycle(session) -> dict:  # noqa: ANN001
    """Demo customers and staff, two months of published history, this month generated and published, its
    e-mails sent and answered (delivered, failed 5.1.1, a temporary failure), paper printed, posted,
    delivered and returned, calls in the contact history; a customer with a web account."""
    seed_demo(session.connection(), 60, seed=2)
    seed_billing_demo(session, TODAY, SETTINGS, seed=2)
    session.commit()
    cycle = cycles.open_cycle(session, PERIOD, Actor.system(), today=TODAY)
    for chunk in cycles.plan_chunks(session, cycle, 1000):  # as the generation jobs run them
        cycles.run_chunk(session, cycle.id, chunk.chunk_no, SETTINGS)
    session.commit()
    now = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=3)
    publish_cycle(session, cycle.id, Actor.cli(), now, paper_key_accounts_only=False)
    session.commit()

    emails = session.scalars(select(Delivery).where(Delivery.channel == "email", Delivery.status == "queued")
                             .order_by(Delivery.id)).all()
    for n, delivery in enumerate(emails[:24]):
        attempt = _attempt(session, delivery, n, now)
        if n % 4 == 0:
            apply_report(session, attempt, "failed", "5.1.1",
                         f"smtp; 550 5.1.1 <{delivery.address}>: Recipient address rejected: User unknown",
                         now + timedelta(minutes=2), "mx.customers.test")
        elif n % 4 == 1:
            apply_report(session, attempt, "delayed", "4.4.7", "smtp; 451 4.4.7 timeout", now + timedelta(minutes=3))
        else:
            apply_report(session, attempt, "delivered", "2.0.0", "smtp; 250 2.0.0 Ok", now + timedelta(minutes=1),
                         "mx.customers.test")
    session.commit()

    clerk = session.scalar(select(User).where(User.username == "clerk"))
    batches.gather_batches(session, PERIOD, Actor.of_user(clerk), size=5, key_accounts_only=False)
    session.commit()
    items = session.scalars(select(PrintItem).order_by(PrintItem.id)).all()
    first_batches = sorted({i.batch_id for i in items})[:2]
    for batch_id in first_batches:
        batches.render_batch_now(session, batch_id, Actor.of_user(clerk))
        batches.mark_printed(session, batch_id, Actor.of_user(clerk))
    session.commit()
    printed = [i for i in items if i.batch_id in first_batches]
    for n, item in enumerate(printed):
        if n % 2:
            dispatch.dispatch_by_hand(session, item.id, "李师傅", Actor.of_user(clerk))
        else:
            dispatch.dispatch_by_post(session, item.id, f"EMS{n:09d}CN", Actor.of_user(clerk))
        if n % 3 == 0:
            dispatch.confirm_delivered(session, item.id, Actor.of_user(clerk), "")
        elif n % 3 == 1:
            dispatch.record_returned(session, item.id, Actor.of_user(clerk), "查无此人")
    session.commit()

    rep = session.scalar(select(User).where(User.username == "rep"))
    for n, item in enumerate(session.scalars(select(WorkItem).where(WorkItem.assigned_role == "phone_rep")
                                             .order_by(WorkItem.id)).all()[:4]):
        viewer = inbox.Viewer.of(rep)
        inbox.claim(session, viewer, item.id, Actor.of_user(rep))
        inbox.record_call(session, viewer, item.id, inbox.CALL_OUTCOMES[n % 2], "客户说下周更新邮箱", Actor.of_user(rep))
    session.commit()

    customer = session.scalar(select(Customer).join(Delivery, Delivery.customer_id == Customer.id)
                              .where(Delivery.channel == "email", Delivery.status == "confirmed").limit(1))
    session.add(WebAccount(customer_id=customer.id, username=customer.account_no,
                           password_hash=hash_password(CUSTOMER_PASSWORD), session_token="crawl-token"))
    session.commit()
    return {"customer": customer.account_no, "customer_id": customer.id}


def data_vocabulary(app, session) -> tuple[set[str], str]:  # noqa: ANN001
    """Words and text of the data, allowed in either language: names, addresses, user names, tariff codes,
    a campaign's text in each language, what remote mail servers answered (shown as they said it), the
    names the command line takes for each import, the sandbox's address patterns and the company's name
    and bank as configured (settings)."""
    from console.imports import IMPORTERS

    texts: list[str] = []
    for column in (Customer.name, Customer.postal_address, Recipient.name, ServicePoint.address,
                   ServicePoint.tariff_code, User.username, User.display_name, PrintItem.deliverer,
                   Campaign.name, Campaign.text_zh, Campaign.text_en, DeliveryAttempt.diagnostic,
                   DeliveryAttempt.smtp_response, DeliveryAttempt.remote_mta):
        texts += [v for v in session.scalars(select(column).distinct()) if v]
    texts += ["李师傅", "查无此人", "客户说下周更新邮箱", *IMPORTERS,
              app.config["SANDBOX_FAIL_PATTERN"], app.config["SANDBOX_SILENT_PATTERN"]]
    texts += [v for k, v in app.config.items() if k.startswith("COMPANY_") and isinstance(v, str)]  # the payee
    blob = "\n".join(texts)
    words = {w.rstrip(TRAILING).lower() for w in WORD.findall(blob)}
    return words, blob


ROLES = [("clerk", "/"), ("rep", "/"), ("manager", "/"), ("admin", "/")]


@pytest.fixture
def demo(app, db):
    built = build_demo_cycle(db)
    built["words"], built["text"] = data_vocabulary(app, db)
    return built


def _clients(app, demo: dict, language: str):  # noqa: ANN001, ANN202
    passwords = {u: p for u, _r, _d, p in DEMO_USERS}
    for username, home in ROLES:
        client = app.test_client()
        client.set_cookie("lang", language)
        response = client.post("/login", data={"username": username, "password": passwords[username]})
        assert response.status_code == 302, (username, response.get_data(as_text=True)[:500])
        yield username, client, home
    client = app.test_client()
    client.set_cookie("lang", language)
    response = client.post("/my/login", data={"username": demo["customer"], "password": CUSTOMER_PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    yield "customer", client, "/my/"


def _walk(app, demo: dict, language: str) -> tuple[list[str], dict[str, int]]:  # noqa: ANN001
    failures: list[str] = []
    pages: dict[str, int] = {}
    for role, client, home in _clients(app, demo, language):
        pages[role] = 0
        for url, status, page in crawl(client, home):
            pages[role] += 1
            if status >= 500:
                failures.append(f"{role} {url}: answered {status}")
            if page.lang is not None and not page.lang.startswith(language):
                failures.append(f"{role} {url}: <html lang={page.lang}>")
            text = "\n".join(page.text)
            found = (english_words(text, demo["words"]) if language == "zh"
                     else chinese_runs(text, demo["text"]))
            failures += [f"{role} {url}: {word} … {context}" for word, context in found]
    return failures, pages


def test_no_english_on_any_chinese_page_of_any_role(app, demo):
    failures, pages = _walk(app, demo, "zh")
    assert all(count >= 3 for count in pages.values()), pages  # each role reached more than its home
    assert not failures, f"{len(failures)} English words on Chinese pages:\n" + "\n".join(dict.fromkeys(failures))


def test_no_chinese_on_any_english_page_apart_from_the_data(app, demo):
    failures, pages = _walk(app, demo, "en")
    assert all(count >= 3 for count in pages.values()), pages
    assert not failures, f"{len(failures)} Chinese runs on English pages:\n" + "\n".join(dict.fromkeys(failures))


def _import_errors_page(app, demo: dict, language: str) -> str:  # noqa: ANN001
    """The admin's preview of a customer file with one error of each kind (a POST, so not crawled)."""
    import io

    from tests.customers.conftest import CUSTOMER_HEADER, csv_bytes, customer_line

    lines = [customer_line("3299000001", email="nope"), customer_line("3299000001"),
             customer_line("3299000002", customer_type="farm"), customer_line("3299000003", id_number="320502199001011235"),
             customer_line("3299000004", wants_ebill="maybe"), customer_line("3299000005", channels="fax")]
    clients = {role: client for role, client, _home in _clients(app, demo, language)}
    response = clients["admin"].post("/admin/imports", data={"name": "customers", "file": (
        io.BytesIO(csv_bytes(CUSTOMER_HEADER, lines)), "c.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422
    page = _Page()
    page.feed(response.get_data(as_text=True))
    return "\n".join(page.text)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_import_errors_in_the_readers_language(app, demo, language):
    text = _import_errors_page(app, demo, language)
    columns = {c.lower() for c in "account_no,name,customer_type,key_account,id_number,email,wants_ebill,channels".split(",")}
    # the file's own vocabulary: its columns, the codes a column takes and what the file said instead
    file_codes = columns | {"c.csv", "residential", "commercial", "industrial", "portal", "email", "paper", "fax",
                            "farm", "maybe"}
    found = (english_words(text, demo["words"] | file_codes) if language == "zh"
             else chinese_runs(text, demo["text"] + "张伟江苏省苏州市姑苏区人民路1号"))
    assert not found, "\n".join(f"/admin/imports (preview): {w} … {c}" for w, c in found)
    assert ("第 2 行" in text) if language == "zh" else ("line 2" in text)
