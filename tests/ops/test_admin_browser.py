"""Headless Chromium, in Chinese and in English: the admin creates a user, sets a new password,
changes roles, deactivates and reactivates; loads a tariff version from a file and views it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.models import AuditEvent, User
from console.models.billing import Tariff
from console.staff.services import create_user
from tests.browser_fixtures import screenshot, sign_in_staff
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

TEXT = {
    "zh": {"admin": "系统管理", "users": "用户与角色", "tariffs": "电价", "queues": "任务队列：失败任务与重试",
           "create": "新建", "set": "设置密码", "deactivate": "停用", "reactivate": "重新启用", "deactivated": "已停用",
           "saved_password": "已为 lin.clerk 设置新密码", "save_roles": "保存角色", "load": "载入",
           "loaded": "电价 RES：2027-01-01 生效的版本已载入。", "billed_column": "已出账条目", "refused": "未知类型"},
    "en": {"admin": "Administration", "users": "Users and roles", "tariffs": "Tariffs",
           "queues": "Job queues: failed jobs and retry", "create": "Create", "set": "Set password",
           "deactivate": "Deactivate", "reactivate": "Reactivate", "deactivated": "Deactivated",
           "saved_password": "New password set for lin.clerk", "save_roles": "Save roles", "load": "Load",
           "loaded": "Tariff RES: the version from 2027-01-01 is loaded.", "billed_column": "Billed entries",
           "refused": "Unknown kind"},
}


def _seed(app, lang: str) -> None:  # noqa: ANN001
    with app.extensions["billpost.session_factory"]() as session:
        admin = create_user(session, "boss", PASSWORD, ["admin"], Actor.system())
        admin.language = lang
        session.commit()


def _sign_in(page, server) -> None:  # noqa: ANN001
    sign_in_staff(page, server, "boss")
    page.wait_for_url(f"{server.url}/inbox/admin/")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_admin_manages_users_on_screen(live_server, browser_page, lang, tmp_path):
    text = TEXT[lang]
    app = live_server.app
    _seed(app, lang)
    page = browser_page
    _sign_in(page, live_server)
    page.click(f"header nav >> text={text['admin']}")
    assert page.locator(f"a:text-is('{text['queues']}')").count() == 1
    page.click(f"a:text-is('{text['users']}')")
    page.wait_for_url(f"{live_server.url}/admin/users")

    form = page.locator("form.new-user")
    form.locator("input[name=username]").fill("lin.clerk")
    form.locator("input[name=display_name]").fill("林文")
    form.locator("input[name=password]").fill("first violet kettle 17")
    form.locator("input[value=clerk]").check()
    form.locator("button[type=submit]").click()
    row = page.locator('tr[data-user="lin.clerk"]')
    row.wait_for()

    row.locator("form.reset button").click()  # asks in the page, with the new password in the box
    row.locator("[data-confirm] input[name=password]").fill("second meadow lantern 29")
    row.locator("[data-confirm-ok]").click()
    page.wait_for_selector(f"p.flash >> text={text['saved_password']}")

    row = page.locator('tr[data-user="lin.clerk"]')
    row.locator("form.roles input[value=phone_rep]").check()
    row.locator(f"form.roles button:text-is('{text['save_roles']}')").click()
    page.wait_for_selector("p.flash")

    page.locator('tr[data-user="lin.clerk"]').locator("form.deactivate button").click()
    page.locator('tr[data-user="lin.clerk"] [data-confirm-ok]').click()
    page.wait_for_selector(f'tr[data-user="lin.clerk"] td.status:text-is("{text["deactivated"]}")')
    screenshot(page, f"admin-users-{lang}")
    page.locator('tr[data-user="lin.clerk"]').locator(f"button:text-is('{text['reactivate']}')").click()
    page.wait_for_selector('tr[data-user="lin.clerk"] form.deactivate button')

    with app.extensions["billpost.session_factory"]() as session:
        user = session.scalar(select(User).where(User.username == "lin.clerk"))
        assert user.active and user.roles == {"clerk", "phone_rep"}
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == str(user.id),
                                                                 AuditEvent.entity_type == "user")).all()
        assert actions == ["user.create", "user.password_reset", "user.roles", "user.deactivate", "user.activate"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_admin_loads_a_tariff_version_from_a_file(live_server, browser_page, lang, tmp_path):
    text = TEXT[lang]
    app = live_server.app
    _seed(app, lang)
    page = browser_page
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/")
    page.click(f"a:text-is('{text['tariffs']}')")
    page.wait_for_url(f"{live_server.url}/admin/tariffs")
    assert page.locator(f"th:text-is('{text['billed_column']}')").count() == 1

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"code": "RES", "name": "x", "kind": "flat", "rates": {}}))
    page.set_input_files("form.load-tariff input[type=file]", str(bad))
    page.fill("form.load-tariff input[name=effective_from]", "2027-01-01")
    page.click(f"form.load-tariff button:text-is('{text['load']}')")
    page.wait_for_selector(f"p.error >> text={text['refused']}")

    good = tmp_path / "res-2027.json"
    good.write_text(json.dumps({"code": "RES", "name": "居民阶梯电价 2027", "kind": "tiered",
                                "rates": {"tiers": [["230", "0.5383"], ["170", "0.5883"], [None, "0.8383"]]}},
                               ensure_ascii=False), encoding="utf-8")
    page.set_input_files("form.load-tariff input[type=file]", str(good))
    page.fill("form.load-tariff input[name=effective_from]", "2027-01-01")
    page.click(f"form.load-tariff button:text-is('{text['load']}')")
    page.wait_for_selector(f"p.flash >> text={text['loaded']}")
    assert page.locator("table.rates td:text-is('0.8383')").count() == 1
    screenshot(page, f"admin-tariff-{lang}")
    page.click(f"a:text-is('{text['tariffs']}') >> nth=-1")
    page.wait_for_selector('tr[data-tariff="RES/2027-01-01"]')
    with app.extensions["billpost.session_factory"]() as session:
        assert session.scalar(select(Tariff.name).where(Tariff.code == "RES")) == "居民阶梯电价 2027"
