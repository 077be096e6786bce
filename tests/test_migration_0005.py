"""Migration 0005: contact records and work items written in the old shape (a sentence in `summary`)
come out as codes and parameters — on SQLite and on PostgreSQL, by `alembic upgrade` from 0004 on a
database holding such rows. The sentences below are the ones the code wrote, each writer's f-string
as it was (console/delivery/policy.py, paper/dispatch.py, customers/services.py, inboxes/services.py,
portal/services.py and their earlier shapes)."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from console import create_app
from console.db import UTCDateTime, make_engine, utcnow
from console.migrations import upgrade
from console.models.customers import CONTACT_EVENTS
from console.models.delivery import WORK_ITEM_EVENTS
from console.web.events import contact_text, work_item_text
from tests.rendering import en, zh

MEANING_511 = ("永久性失败：收件人地址不存在", "permanent failure: the mailbox does not exist")

# (old summary, old details, expected code, expected params, expected note)
CONTACTS = [
    ("电子账单已送达（投递报告确认） / E-mail bill delivered (delivery report)",
     {"delivery_id": 1, "confirmed_by": "delivered", "address": "li@qq.com"}, "email_confirmed",
     {"confirmed_by": "delivered"}, None),
    ("电子账单已由客户邮件系统接收（relayed） / E-mail bill accepted by the customer's mail system",
     {"confirmed_by": "relayed"}, "email_confirmed", {"confirmed_by": "relayed"}, None),
    ("电子账单已送达邮件列表（expanded） / E-mail bill delivered to a mailing list", {"confirmed_by": "expanded"},
     "email_confirmed", {"confirmed_by": "expanded"}, None),
    ("客户在网上查看了账单 / Customer opened the bill on the web page", {"confirmed_by": "portal_open"},
     "email_confirmed", {"confirmed_by": "portal_open"}, None),
    ("电子账单曾由客户邮件系统接收（relayed），后被退回 / E-mail bill accepted by the customer's mail system (relayed) "
     "bounced later", {"reopened_from": "relayed", "status": "5.1.1"}, "email_reopened",
     {"confirmed_by": "relayed", "status": "5.1.1"}, None),
    ("自动回复：该邮箱已不再使用 / Auto-reply: the mailbox is no longer in use: 此邮箱已停用", {"auto_reply": "abandoned"},
     "auto_reply_abandoned", {"said": "此邮箱已停用"}, None),
    ("自动回复：需要人工验证（挑战-应答） / Auto-reply: challenge-response verification asked",
     {"auto_reply": "challenge"}, "auto_reply_challenge", None, None),
    ("收到自动回复（如休假） / Auto-reply received (e.g. vacation): Out of office: back Monday",
     {"auto_reply": "vacation"}, "auto_reply", {"said": "Out of office: back Monday"}, None),
    ("客户将电子账单标记为垃圾邮件（投诉：abuse） / Customer reported the bill e-mail as spam (abuse)",
     {"complaint": "abuse"}, "complaint", {"kind": "abuse"}, None),
    ("call: no_answer — 响了十声没人接", {"outcome": "no_answer", "note": "响了十声没人接", "work_item_id": 1}, "call",
     {"outcome": "no_answer"}, "响了十声没人接"),
    ("call: wrong_number", {"outcome": "wrong_number", "note": "", "phone": "13912345678", "work_item_id": 1}, "call",
     {"outcome": "wrong_number", "phone": "13912345678"}, None),
    ("call: reached — said: pays at the counter — tomorrow", None, "call", {"outcome": "reached"},
     "said: pays at the counter — tomorrow"),
    ("Delivery wishes changed (wants_ebill, channels)",
     {"change": "delivery_wishes", "fields": ["wants_ebill", "channels"]}, "delivery_wishes",
     {"fields": ["wants_ebill", "channels"]}, None),
    ("contact_details: phone, postal_code", {"change": "contact_details", "fields": ["phone", "postal_code"]},
     "contact_details", {"fields": ["phone", "postal_code"]}, None),
    ("Contact details changed (email)", None, "contact_details", {"fields": ["email"]}, None),
    ("Bill recipient added: 李娜", {"change": "recipient_added", "recipient_id": 3}, "recipient_added",
     {"name": "李娜"}, None),
    ("Bill recipient changed: 财务部 王会计", {"change": "recipient_changed"}, "recipient_changed",
     {"name": "财务部 王会计"}, None),
    ("Bill recipient reactivated: 李娜", None, "recipient_reactivated", {"name": "李娜"}, None),
    ("Bill recipient deactivated: 李娜", None, "recipient_deactivated", {"name": "李娜"}, None),
    ("e-mail corrected: a@qq.com, b@qq.com → c@163.com",
     {"change": "email", "before": ["a@qq.com", "b@qq.com"], "after": "c@163.com", "work_item_id": 2},
     "email_corrected", {"before": ["a@qq.com", "b@qq.com"], "after": "c@163.com"}, None),
    ("postal address corrected",
     {"change": "postal_address", "before": ["苏州市 1 号"], "after": "苏州市 2 号 215000", "work_item_id": 3},
     "postal_corrected", {"before": ["苏州市 1 号"], "after": "苏州市 2 号 215000"}, None),
    ("Paper bill B202611-0001 posted to 苏州精密机械有限公司, tracking EMS1234567890CN",
     {"method": "post", "tracking_no": "EMS1234567890CN"}, "paper_posted",
     {"bill_no": "B202611-0001", "recipient": "苏州精密机械有限公司", "tracking_no": "EMS1234567890CN"}, None),
    ("Paper bill B202611-0002 handed to 张 for 抄表员 for 李娜", {"method": "hand", "deliverer": "张 for 抄表员"},
     "paper_handed", {"bill_no": "B202611-0002", "deliverer": "张 for 抄表员", "recipient": "李娜"}, None),
    ("Paper bill B202611-0003 handed to 王师傅 for 李娜", None, "paper_handed",
     {"bill_no": "B202611-0003", "deliverer": "王师傅", "recipient": "李娜"}, None),
    ("Paper bill B202611-0004 delivered to 李娜", {"method": "hand", "note": "本人签收", "print_item_id": 4},
     "paper_delivered", {"bill_no": "B202611-0004", "recipient": "李娜"}, "本人签收"),
    ("Paper bill B202611-0005 returned undelivered from 苏州市姑苏区人民路 1 号",
     {"method": "post", "note": "查无此人", "delivery_id": 5}, "paper_returned",
     {"bill_no": "B202611-0005", "address": "苏州市姑苏区人民路 1 号"}, "查无此人"),
    ("Web page: registration asked for an existing account", None, "portal_already_registered", None, None),
    ("Web page: registration code sent", None, "portal_registration_code", None, None),
    ("Web page: password reset code sent", None, "portal_reset_code", None, None),
    ("Registered on the web page", None, "portal_registered", None, None),
    ("Bill opened on the web page", {"opened_at": "2026-11-20T01:00:00+00:00", "account_id": 1}, "bill_opened",
     None, None),
    ("bill delivered", None, "legacy", {"text": "bill delivered"}, None),  # a bench's row: no known pattern
    ("客户来电说明已搬家", None, "legacy", {"text": "客户来电说明已搬家"}, None),
]

HEAD_FAILED = "电子账单投递失败 / E-mail bill failed: "
# (old summary, old details, expected code, expected params)
ITEMS = [
    (HEAD_FAILED + f"li@qq.com — 5.1.1 {MEANING_511[0]} / {MEANING_511[1]} — smtp; 550 5.1.1 <li@qq.com>: User unknown",
     {"address": "li@qq.com", "status": "5.1.1", "attempts": []}, "email_failed",
     {"address": "li@qq.com", "status": "5.1.1", "diagnostic": "smtp; 550 5.1.1 <li@qq.com>: User unknown"}),
    (HEAD_FAILED + f"wang@163.com — 5.1.1 {MEANING_511[0]} / {MEANING_511[1]} — 550 — no such user here"
     " — Sorry, no mailbox here by that name (从非标准退信的文本中读取 / read from the text of a non-standard bounce)",
     {"address": "wang@163.com", "status": "5.1.1", "key_sentence": "Sorry, no mailbox here by that name",
      "evidence": "text"}, "email_failed",
     {"address": "wang@163.com", "status": "5.1.1", "diagnostic": "550 — no such user here",
      "key_sentence": "Sorry, no mailbox here by that name", "evidence": "text"}),
    (HEAD_FAILED + "a@b.cn — 5.2.2 永久性失败：收件人邮箱已满 / permanent failure: the recipient's mailbox is full — full"
     " (报告的是另一地址，可能是转发 / the report names another address, maybe a forwarding hop: old@forward.test)"
     " (此前已由 relayed 确认 / confirmed earlier by relayed)",
     {"address": "a@b.cn", "status": "5.2.2", "other_address": "old@forward.test", "reopened_from": "relayed"},
     "email_failed", {"address": "a@b.cn", "status": "5.2.2", "diagnostic": "full",
                      "other_address": "old@forward.test", "reopened_from": "relayed"}),
    ("电子账单重发后仍未确认 / E-mail bill unconfirmed after resend: zhao@qq.com — 250 2.0.0 Ok: queued as 4F2",
     {"address": "zhao@qq.com"}, "email_unconfirmed", {"address": "zhao@qq.com", "diagnostic": "250 2.0.0 Ok: queued as 4F2"}),
    ("请确认电子邮件地址（自动回复称已不再使用） / Confirm the e-mail address (an auto-reply says it is no longer in use): "
     "gone@qq.com — 此邮箱已停用", {"address": "gone@qq.com", "key_sentence": "此邮箱已停用", "priority": "low"},
     "email_address_check", {"address": "gone@qq.com", "key_sentence": "此邮箱已停用"}),
    ("纸质账单被退回 / Paper bill returned: 苏州市姑苏区人民路 1 号 215000", {"address": "苏州市姑苏区人民路 1 号 215000"},
     "post_returned", {"address": "苏州市姑苏区人民路 1 号 215000"}),
    ("Paper bill B202611-0009 returned from 苏州市人民路 2 号: call and correct the address", {"method": "post"},
     "post_returned", {"address": "苏州市人民路 2 号", "bill_no": "B202611-0009"}),
    ("E-mail bill failed: bench7@customers.test", {"address": "bench7@customers.test", "attempts": []},
     "email_failed", {"address": "bench7@customers.test"}),
    ("请人工核对这个客户", None, "legacy", {"text": "请人工核对这个客户"}),
]


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL") or ""
    return url if url.startswith("postgresql") else None


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_engine(request):
    """An empty database of its own (never the suite's), on each kind of database."""
    if request.param == "sqlite":
        folder = tempfile.mkdtemp(prefix="billpost-migration-")
        engine = make_engine(f"sqlite:///{folder}/m.db")
        yield engine
        engine.dispose()
        return
    base = _postgres_url()
    if base is None:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL to a PostgreSQL database")
    name = f"{make_url(base).database}_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _table(name: str, *columns: tuple[str, object]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, t) for c, t in columns))


def _seed_old_rows(engine) -> dict[str, list[int]]:  # noqa: ANN001
    """Parents as the schema of 0004 has them, then the contact records and work items in the old shape."""
    now = utcnow()
    ts = UTCDateTime()
    customers = _table("customers", ("id", sa.Integer), ("account_no", sa.String), ("name", sa.String),
                       ("customer_type", sa.String), ("key_account", sa.Boolean), ("wants_ebill", sa.Boolean),
                       ("channel_portal", sa.Boolean), ("channel_email", sa.Boolean), ("channel_paper", sa.Boolean),
                       ("collective_billing", sa.Boolean), ("status", sa.String), ("created_at", ts),
                       ("updated_at", ts))
    cycles = _table("cycles", ("id", sa.Integer), ("period", sa.String), ("bill_date", sa.Date),
                    ("status", sa.String), ("created_at", ts))
    bills = _table("bills", *[(c, sa.Integer) for c in ("id", "cycle_id", "customer_id", "previous_balance",
                                                        "payments_total", "charges_total", "adjustments_total",
                                                        "deposit_applied", "current_balance", "deposit_held")],
                   ("bill_no", sa.String), ("unit_key", sa.String), ("bill_type", sa.String), ("template", sa.String),
                   ("bill_date", sa.Date), ("due_date", sa.Date), ("status", sa.String), ("created_at", ts))
    deliveries = _table("deliveries", ("id", sa.Integer), ("bill_id", sa.Integer), ("customer_id", sa.Integer),
                        ("channel", sa.String), ("address", sa.String), ("recipient_name", sa.String),
                        ("copies", sa.Integer), ("status", sa.String), ("attempts_made", sa.Integer),
                        ("send_errors", sa.Integer), ("created_at", ts), ("updated_at", ts))
    contacts = _table("contact_records", ("id", sa.Integer), ("customer_id", sa.Integer), ("occurred_at", ts),
                      ("channel", sa.String), ("summary", sa.Text), ("details", sa.JSON))
    items = _table("work_items", ("id", sa.Integer), ("delivery_id", sa.Integer), ("bill_id", sa.Integer),
                   ("customer_id", sa.Integer), ("reason", sa.String), ("assigned_role", sa.String),
                   ("status", sa.String), ("summary", sa.Text), ("details", sa.JSON), ("created_at", ts),
                   ("close_reason", sa.Text), ("case_key", sa.String), ("priority", sa.Integer))
    with engine.begin() as conn:
        conn.execute(customers.insert(), [{
            "id": 1, "account_no": "3200000001", "name": "苏州精密机械有限公司", "customer_type": "industrial",
            "key_account": True, "wants_ebill": True, "channel_portal": False, "channel_email": True,
            "channel_paper": True, "collective_billing": False, "status": "active", "created_at": now,
            "updated_at": now}])
        conn.execute(cycles.insert(), [{"id": 1, "period": "2026-11", "bill_date": date(2026, 11, 25),
                                        "status": "published", "created_at": now}])
        conn.execute(bills.insert(), [{
            "id": 1, "cycle_id": 1, "customer_id": 1, "previous_balance": 0, "payments_total": 0, "charges_total": 100,
            "adjustments_total": 0, "deposit_applied": 0, "current_balance": 100, "deposit_held": 0,
            "bill_no": "B202611-0001", "unit_key": "u1", "bill_type": "regular", "template": "industrial",
            "bill_date": date(2026, 11, 25), "due_date": date(2026, 12, 10), "status": "published",
            "created_at": now}])
        conn.execute(deliveries.insert(), [{
            "id": n, "bill_id": 1, "customer_id": 1, "channel": "email", "address": f"d{n}@qq.com",
            "recipient_name": "李娜", "copies": 1, "status": "failed", "attempts_made": 1, "send_errors": 0,
            "created_at": now, "updated_at": now} for n in range(1, len(ITEMS) + 1)])
        conn.execute(contacts.insert(), [
            {"id": n, "customer_id": 1, "occurred_at": now, "channel": "console", "summary": summary, "details": details}
            for n, (summary, details, *_rest) in enumerate(CONTACTS, start=1)])
        conn.execute(items.insert(), [
            {"id": n, "delivery_id": n, "bill_id": 1, "customer_id": 1, "reason": "email_failed",
             "assigned_role": "phone_rep", "status": "closed" if n == 1 else "open", "summary": summary,
             "details": details, "created_at": now, "case_key": f"email:d{n}@qq.com", "priority": 1,
             "close_reason": "confirmed later (delivered)" if n == 1 else None}
            for n, (summary, details, *_rest) in enumerate(ITEMS, start=1)])


def test_old_rows_come_out_as_codes_and_parameters(scratch_engine):
    app = create_app({"TESTING": True, "ENGINE": scratch_engine})
    upgrade(app, "0004")
    _seed_old_rows(scratch_engine)
    upgrade(app, "0005")

    contacts = _table("contact_records", ("id", sa.Integer), ("code", sa.String), ("params", sa.JSON),
                      ("note", sa.Text), ("details", sa.JSON))
    items = _table("work_items", ("id", sa.Integer), ("code", sa.String), ("params", sa.JSON),
                   ("close_reason", sa.Text))
    with scratch_engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("contact_records")}
        assert "summary" not in columns and {"code", "params", "note"} <= columns
        assert "summary" not in {c["name"] for c in sa.inspect(conn).get_columns("work_items")}
        got = {r.id: r for r in conn.execute(sa.select(contacts))}
        for n, (summary, _details, code, params, note) in enumerate(CONTACTS, start=1):
            row = got[n]
            assert (row.code, row.params, row.note) == (code, params, note), summary
            assert row.code in CONTACT_EVENTS
            if note:
                assert "note" not in (row.details or {})  # moved to its own field, as typed
        done = {r.id: r for r in conn.execute(sa.select(items))}
        for n, (summary, _details, code, params) in enumerate(ITEMS, start=1):
            assert (done[n].code, done[n].params) == (code, params), summary
            assert done[n].code in WORK_ITEM_EVENTS
        assert done[1].close_reason == "confirmed_later"
        # the one-open-case index survived the table copy
        assert "uq_work_items_open_case" in {i["name"] for i in sa.inspect(conn).get_indexes("work_items")}
    # the database refuses a code outside the vocabulary
    with pytest.raises(sa.exc.IntegrityError), scratch_engine.begin() as conn:
        conn.execute(contacts.update().where(contacts.c.id == 1).values(code="E-mail bill delivered"))

    # migrated rows read in the reader's language; a legacy row as it was written
    with scratch_engine.connect() as conn:
        first = conn.execute(sa.select(contacts).where(contacts.c.id == 1)).one()
        item = conn.execute(sa.select(items).where(items.c.id == 2)).one()
    assert zh(app, contact_text, first) == "电子账单已确认送达：投递报告"
    assert en(app, contact_text, first) == "E-mail bill confirmed: Delivery report"
    assert zh(app, work_item_text, item) == (
        "电子账单投递失败：wang@163.com — 5.1.1 永久性失败：目标邮箱地址不存在 — 550 — no such user here — "
        "Sorry, no mailbox here by that name（从非标准退信的文本中读取）")
    legacy = {"code": "legacy", "params": {"text": "客户来电说明已搬家"}}
    assert zh(app, contact_text, legacy) == en(app, contact_text, legacy) == "客户来电说明已搬家"


def test_downgrade_gives_back_a_sentence(scratch_engine):
    app = create_app({"TESTING": True, "ENGINE": scratch_engine})
    upgrade(app, "0004")
    _seed_old_rows(scratch_engine)
    upgrade(app, "0005")
    from alembic import command

    from console.migrations import alembic_config

    command.downgrade(alembic_config(app), "0004")
    with scratch_engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, summary FROM contact_records")).all())
    assert rows[len(CONTACTS)] == "客户来电说明已搬家" and all(rows.values())
