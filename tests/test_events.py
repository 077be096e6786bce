"""Stored events rendered through one catalog (console/web/events.py): every code of contact records,
work items, audit actions and import problems reads in Chinese and in English, and the Chinese has no
English word apart from its parameters (names, addresses, numbers, what a person or a server wrote)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from console.db import utcnow
from console.delivery.status_text import CLASSES, MEANINGS, status_text
from console.models import AuditEvent, ContactRecord
from console.models.customers import ContactEvent
from console.models.delivery import WorkItemEvent
from console.web import events
from console.web.events import audit_action, audit_rows, contact_text, import_reason, work_item_text
from tests.rendering import en, zh

# Acronyms and file-format tokens a Chinese sentence may keep: encodings, protocols, and the literal
# values and column names a CSV file is written with.
ALLOWED = {"UTF", "GBK", "GB18030", "CSV", "Big5", "MB", "MX", "DKIM", "SPF", "DNS", "ARC", "RRVS", "REQUIRETLS",
           "ASCII", "X", "portal", "email", "paper", "collective_billing", "meter_change"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Parameters as they come: names, addresses, numbers as such; codes for the parameters that are codes.
FREE = {"name": "李娜", "recipient": "财务部 王会计", "deliverer": "王师傅", "bill_no": "B202611-0001",
        "tracking_no": "EMS1234567890CN", "address": "li.na@qq.com", "after": "new@163.com", "said": "此邮箱已停用",
        "phone": "13912345678", "before": ["old@qq.com", "older@qq.com"], "text": "旧记录",
        "diagnostic": "smtp; 550 5.1.1 <li.na@qq.com>: User unknown", "key_sentence": "No such user",
        "other_address": "old.name@forward.test"}
CODES = {"confirmed_by": "relayed", "outcome": "wrong_number", "fields": ["wants_ebill", "channels", "postal_code"],
         "kind": "abuse", "status": "5.1.1", "evidence": "text", "reopened_from": "expanded"}


def _english_words(text: str, params: dict) -> set[str]:
    """The English words of `text` once its parameters' own values (names, addresses …) are taken out."""
    parts = [str(p) for value in params.values() for p in (value if isinstance(value, list) else [value])]
    for part in sorted(parts, key=len, reverse=True):  # the longest first: a diagnostic names the address
        text = text.replace(part, " ")
    text = re.sub(r"\d+\.\d+\.\d+", " ", text)  # a status code
    return {w for w in WORD.findall(text) if w not in ALLOWED}


def _params_of(msgids: list[str]) -> dict:
    names = {n for m in msgids for n in re.findall(r"%\((\w+)\)s", m)}
    return {n: CODES[n] if n in CODES else FREE.get(n, "7") for n in names}


@pytest.mark.parametrize("code", list(ContactEvent))
def test_every_contact_event_reads_in_both_languages(app, code):
    msgids = [events.CONTACT_SENTENCES.get(code, "%(text)s"), *events.CONTACT_CLAUSES.values()]
    params = _params_of(msgids) | {"said": FREE["said"], "phone": FREE["phone"]}
    record = {"code": code, "params": params}
    chinese, english = zh(app, contact_text, record), en(app, contact_text, record)
    assert chinese and english and (chinese != english or code == ContactEvent.LEGACY)
    assert not _english_words(chinese, params), chinese
    assert "—" not in chinese.replace(" — ", "") or code == ContactEvent.EMAIL_REOPENED  # no parameter missing
    for name in ("confirmed_by", "outcome", "kind", "fields"):
        if name in params:  # a code is shown through its label, never as the code
            assert not any(code in chinese for code in (params[name] if name == "fields" else [params[name]]))


@pytest.mark.parametrize("code", list(WorkItemEvent))
def test_every_work_item_event_reads_in_both_languages(app, code):
    params = {k: v for k, v in (FREE | CODES).items()
              if k in ("address", "status", "diagnostic", "key_sentence", "evidence", "other_address",
                       "reopened_from", "text")}
    item = {"code": code, "params": params}
    chinese, english = zh(app, work_item_text, item), en(app, work_item_text, item)
    assert not _english_words(chinese, params), chinese
    if code != WorkItemEvent.LEGACY:
        assert "li.na@qq.com" in chinese and "5.1.1 永久性失败：目标邮箱地址不存在" in chinese
        assert "User unknown" in chinese  # the server's words, as received
        assert "从非标准退信的文本中读取" in chinese and "old.name@forward.test" in chinese
        assert "5.1.1 permanent failure: bad destination mailbox address" in english
        assert "expanded" not in chinese  # the overturned confirmation through its label
    else:
        assert chinese == english == "旧记录"


def test_every_import_problem_reads_in_both_languages(app):
    for code, msgid in events.IMPORT_PROBLEMS.items():
        params = _params_of([msgid]) | {"detail": "The domain name x.y does not exist."}
        chinese, english = zh(app, import_reason, code, params), en(app, import_reason, code, params)
        assert chinese != english, code
        assert not _english_words(chinese, params), (code, chinese)


def test_the_status_table_covers_rfc_3463_and_reads_in_chinese(app):
    for subject in range(8):
        assert f"{subject}.0" in MEANINGS
    assert {f"1.{n}" for n in range(11)} <= set(MEANINGS) and {f"7.{n}" for n in range(31)} <= set(MEANINGS)
    assert zh(app, status_text, "5.1.1") == "5.1.1 永久性失败：目标邮箱地址不存在"
    assert en(app, status_text, "5.1.1") == "5.1.1 permanent failure: bad destination mailbox address"
    assert zh(app, status_text, "4.4.7") == "4.4.7 暂时性失败：投递超时，邮件已过期"
    for klass in CLASSES:
        for detail in MEANINGS:
            chinese = zh(app, status_text, f"{klass}.{detail}")
            assert not {w for w in WORD.findall(chinese) if w not in ALLOWED}, chinese


def test_audit_values_are_rows_with_labels_and_readable_values(app):
    event = {"action": "customer.delivery_wishes",
             "before": {"wants_ebill": False, "channels": ["portal"], "email": None, "attach_pdf": None},
             "after": {"wants_ebill": True, "channels": ["portal", "email"], "email": "租户@例子.中国",
                       "attach_pdf": None}}
    rows = zh(app, audit_rows, event)
    assert [(r.field, r.before, r.after) for r in rows] == [
        ("需要电子账单", "否", "是"), ("投递渠道", "网页", "网页、电子邮件"), ("电子邮件", "—", "租户@例子.中国")]
    assert zh(app, audit_action, "customer.delivery_wishes") == "投递意愿已修改"
    assert en(app, audit_action, "recipient.address") == "Bill recipient's address corrected"
    assert zh(app, audit_action, "import.customers") == "导入文件：customers"
    english = en(app, audit_rows, event)
    assert (english[1].field, english[1].after) == ("Channels", "Web page, E-mail")


def test_the_customer_page_audit_trail_shows_labels_and_readable_values(client, db, login_as, make_customer):
    login_as("clerk")
    customer = make_customer(wants_ebill=False, channel_portal=True, channel_email=False)
    headers = {"HX-Request": "true"}
    assert client.post(f"/customers/{customer.id}/wishes", headers=headers, data={
        "wants_ebill": "1", "channels": ["portal", "email"], "email": "zu.hu@qq.com"}).status_code == 200
    assert client.post(f"/customers/{customer.id}/recipients", headers=headers, data={
        "name": "租户 王芳", "relationship": "tenant", "channel": "email", "address": "wang.fang@qq.com",
        "copies": "1"}).status_code == 200
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "recipient.add")) is not None
    audit = client.get(f"/customers/{customer.id}/audit", headers=headers).get_data(as_text=True)
    assert "投递意愿已修改" in audit and "新增账单接收人" in audit
    assert "customer.delivery_wishes" not in audit.replace('data-action="customer.delivery_wishes"', "")
    assert "投递渠道：</span> 网页 → 网页、电子邮件" in audit and "租户 王芳" in audit and "租户</li>" in audit
    assert "\\u" not in audit and "{&#34;" not in audit and '{"' not in audit  # no JSON, no escapes
    english = client.get(f"/customers/{customer.id}/audit?lang=en", headers=headers).get_data(as_text=True)
    assert "Delivery wishes changed" in english and "Channels:</span> Web page → Web page, E-mail" in english
    history = client.get(f"/customers/{customer.id}/history", headers=headers).get_data(as_text=True)
    assert "新增账单接收人：租户 王芳" in history and "投递意愿已修改：需要电子账单、投递渠道、电子邮件" in history
    records = db.scalars(select(ContactRecord).where(ContactRecord.customer_id == customer.id)).all()
    assert {r.code for r in records} == {"delivery_wishes", "recipient_added"}


def test_cycle_refusals_are_in_the_readers_language(app, db):
    from console.audit import Actor
    from console.billing import cycles
    from console.delivery.publish import PublishError, publish_and_queue

    with pytest.raises(cycles.CycleError) as no_cycle:
        cycles.start_run(db, "2031-01", Actor.system(), 100)
    with pytest.raises(PublishError) as not_generated:
        publish_and_queue(db, cycles.open_cycle(db, "2031-02", Actor.system()).id, Actor.system(), utcnow(), app.config)
    assert zh(app, str, no_cycle.value) == "没有 2031-01 账期：请先开启账期。"
    assert en(app, str, no_cycle.value) == "There is no cycle 2031-01: open it first."
    assert zh(app, str, not_generated.value) == "2031-02 账期尚未全部生成：只有已生成的账期才能发布。"
