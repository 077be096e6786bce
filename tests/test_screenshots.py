"""Screenshots of every role's main pages in both languages (issue 16, done when), in Chromium against a
live server, after the crawl test's whole demo cycle. Saved to test-artifacts/ (gitignored, made by the
suite) as `<lang>-<role>-<page>.png`; each page must load without a console error or page error, answer
200 and carry the expected `<html lang>`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.customers.demo import DEMO_USERS
from console.models import Bill, Cycle, Delivery, WorkItem
from tests.browser_fixtures import ARTIFACTS, screenshot
from tests.test_i18n_crawl import CUSTOMER_PASSWORD, PERIOD, build_demo_cycle

pytestmark = pytest.mark.browser

HTML_LANG = {"zh": "zh-CN", "en": "en"}


@pytest.fixture
def demo_server(committed_app, live_server):
    from redis import Redis

    from tests.conftest import TEST_REDIS_URL

    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    committed_app.extensions["billpost.redis"] = redis
    factory = committed_app.extensions["billpost.session_factory"]
    with committed_app.app_context(), factory() as session:
        built = build_demo_cycle(session)
        rep_item = session.scalar(select(WorkItem.id).where(WorkItem.assigned_role == "phone_rep").order_by(WorkItem.id))
        am_item = session.scalar(select(WorkItem).where(WorkItem.assigned_role == "account_manager")
                                 .order_by(WorkItem.id))
        bill = session.scalar(select(Bill.id).join(Cycle, Cycle.id == Bill.cycle_id).where(Cycle.period == PERIOD)
                              .order_by(Bill.id))
        customer_bill = session.scalar(select(Delivery.bill_id).where(Delivery.customer_id == built["customer_id"])
                                       .order_by(Delivery.bill_id.desc()))
        paper_customer = session.scalar(select(WorkItem.customer_id).where(WorkItem.reason == "paper_returned"))
        manager = "manager"
        if am_item is not None:
            from console.models import User

            manager = session.scalar(select(User.username).where(User.id == am_item.assigned_user_id)) or manager
    pages = {
        "clerk": [("inbox", "/inbox/clerk/"), ("customers", "/customers/"), ("bills", "/billing/"),
                  ("paper", "/paper/"), ("bill", f"/billing/bills/{bill}"),
                  ("customer", f"/customers/{paper_customer or built['customer_id']}")],
        "rep": [("inbox", "/inbox/rep/"), ("work-item", f"/work-items/{rep_item}"),
                ("customer", f"/customers/{built['customer_id']}")],
        manager: [("inbox", "/inbox/accounts/"), ("customers", "/customers/")]
        + ([("work-item", f"/work-items/{am_item.id}")] if am_item is not None else []),
        "admin": [("dashboard", "/inbox/admin/"), ("administration", "/admin/"), ("cycles", "/billing/cycles"),
                  ("cycle", f"/billing/cycles/{PERIOD}"), ("deliveries", "/delivery/deliveries"),
                  ("users", "/admin/users"), ("imports", "/admin/imports")],
        "customer": [("home", "/my/"), ("bills", "/my/bills"), ("bill", f"/my/bills/{customer_bill}")],
    }
    yield live_server, built, pages
    redis.flushdb()


def _sign_in(page, server, role: str, built: dict) -> None:  # noqa: ANN001
    if role == "customer":
        page.goto(f"{server.url}/my/login")
        page.fill("input[name=username]", built["customer"])
        page.fill("input[name=password]", CUSTOMER_PASSWORD)
    else:
        passwords = {u: p for u, _r, _d, p in DEMO_USERS}
        page.goto(f"{server.url}/login")
        page.fill("input[name=username]", role)
        page.fill("input[name=password]", passwords[role])
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/login" not in page.url, f"{role} could not sign in"


def _shoot(browser, server, built: dict, role: str, role_pages: list, language: str) -> list:  # noqa: ANN001
    host = server.url.split("//", 1)[1].split(":")[0]
    context = browser.new_context(locale="zh-CN" if language == "zh" else "en-US")
    context.add_cookies([{"name": "lang", "value": language, "domain": host, "path": "/"}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    _sign_in(page, server, role, built)
    label = "manager" if role.startswith("manager") else role
    made = []
    for name, path in role_pages:
        response = page.goto(f"{server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert response is not None and response.status == 200, (role, path, response and response.status)
        assert page.get_attribute("html", "lang") == HTML_LANG[language], (role, path)
        made.append(screenshot(page, f"{language}-{label}-{name}"))
        assert not errors, f"{role} {path}: {errors}"
    context.close()
    return made


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_roles_main_pages_in_both_languages(browser, demo_server, language):
    server, built, pages = demo_server
    made = []
    for role, role_pages in pages.items():
        made += _shoot(browser, server, built, role, role_pages, language)
    assert all(path.stat().st_size > 0 and path.parent == ARTIFACTS for path in made)
    assert len(made) == sum(len(p) for p in pages.values())
