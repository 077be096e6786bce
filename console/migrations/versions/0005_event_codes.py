"""contact records and work items: a code and its parameters instead of display text; the call note in its own field

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00

Until now a contact record's `summary` and a work item's `summary` were sentences, in English or
in both languages, so a reader saw them in whatever language they were written in. Now each row
keeps a code (ContactEvent, WorkItemEvent) and its parameters (JSON), rendered in the reader's
language by console/web/events.py; what a person typed (a rep's call note, a clerk's note on a
returned letter) moves to `contact_records.note`.

Existing rows are read back: every sentence the code wrote (every writer, each shape it had) is
matched to its code, the parameters taken from the sentence and from the row's `details`. A row
that matches no pattern keeps its sentence as the parameter of `legacy` (shown as written). A work
item closed "confirmed later (…)" gets the close-reason code `confirmed_later`.
"""
from __future__ import annotations

import re

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

CONTACT_CODES = (
    'email_confirmed', 'email_reopened', 'auto_reply', 'auto_reply_abandoned', 'auto_reply_challenge',
    'complaint', 'call', 'delivery_wishes', 'contact_details', 'recipient_added', 'recipient_changed',
    'recipient_reactivated', 'recipient_deactivated', 'email_corrected', 'postal_corrected', 'paper_posted',
    'paper_handed', 'paper_delivered', 'paper_returned', 'portal_registration_code', 'portal_reset_code',
    'portal_already_registered', 'portal_registered', 'bill_opened', 'legacy',
)
ITEM_CODES = ('email_failed', 'email_unconfirmed', 'post_returned', 'email_address_check', 'legacy')
OPEN_CASE = "status IN ('open', 'claimed')"
BATCH = 2000

# ---- contact records: the sentences the code wrote, newest shapes first ----------------------------

CONFIRMED = {
    "电子账单已送达（投递报告确认） / E-mail bill delivered (delivery report)": "delivered",
    "电子账单已由客户邮件系统接收（relayed） / E-mail bill accepted by the customer's mail system": "relayed",
    "电子账单已送达邮件列表（expanded） / E-mail bill delivered to a mailing list": "expanded",
    "客户在网上查看了账单 / Customer opened the bill on the web page": "portal_open",
}
CONFIRMED_BY = ("delivered", "relayed", "expanded", "portal_open", "post", "hand")
REOPENED = re.compile(r"^电子账单曾由客户邮件系统接收（(?P<was>[^）]*)），后被退回 / E-mail bill accepted by the "
                      r"customer's mail system \((?P=was)\) bounced later$")
AUTO_REPLIES = (
    ("自动回复：该邮箱已不再使用 / Auto-reply: the mailbox is no longer in use", "auto_reply_abandoned"),
    ("自动回复：需要人工验证（挑战-应答） / Auto-reply: challenge-response verification asked", "auto_reply_challenge"),
    ("收到自动回复（如休假） / Auto-reply received (e.g. vacation)", "auto_reply"),
)
COMPLAINT = re.compile(r"^客户将电子账单标记为垃圾邮件（投诉：(?P<kind>.*)） / Customer reported the bill e-mail as "
                       r"spam \((?P=kind)\)$", re.S)
CALL = re.compile(r"^call: (?P<outcome>[a-z_]+)(?: — (?P<note>.*))?$", re.S)
WISHES = re.compile(r"^Delivery wishes changed \((?P<fields>.*)\)$", re.S)
CONTACT_DETAILS = re.compile(r"^(?:contact_details: (?P<a>.*)|Contact details changed \((?P<b>.*)\))$", re.S)
RECIPIENT = re.compile(r"^Bill recipient (?P<verb>added|changed|reactivated|deactivated): (?P<name>.*)$", re.S)
EMAIL_CORRECTED = re.compile(r"^e-mail corrected: (?P<before>.*) → (?P<after>\S*)$", re.S)
POSTED = re.compile(r"^Paper bill (?P<bill_no>\S+) posted to (?P<recipient>.*), tracking (?P<tracking_no>.*)$", re.S)
HANDED = re.compile(r"^Paper bill (?P<bill_no>\S+) handed to (?P<deliverer>.*?) for (?P<recipient>.*)$", re.S)
DELIVERED = re.compile(r"^Paper bill (?P<bill_no>\S+) delivered to (?P<recipient>.*)$", re.S)
RETURNED = re.compile(r"^Paper bill (?P<bill_no>\S+) returned undelivered from (?P<address>.*)$", re.S)
PLAIN = {
    "postal address corrected": "postal_corrected",
    "Web page: registration asked for an existing account": "portal_already_registered",
    "Web page: registration code sent": "portal_registration_code",
    "Web page: password reset code sent": "portal_reset_code",
    "Registered on the web page": "portal_registered",
    "Bill opened on the web page": "bill_opened",
}


def _fields(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def parse_contact(summary: str | None, details: dict | None) -> tuple[str, dict | None, str | None]:
    """(code, params, note) of an old contact record's sentence and details."""
    text = summary or ""
    d = details if isinstance(details, dict) else {}
    if text in CONFIRMED or (text in CONFIRMED_BY and d.get("confirmed_by") == text):
        return "email_confirmed", {"confirmed_by": d.get("confirmed_by") or CONFIRMED.get(text, text)}, None
    if match := REOPENED.match(text):
        return "email_reopened", _clean({"confirmed_by": match["was"], "status": d.get("status")}), None
    for sentence, code in AUTO_REPLIES:
        if text == sentence:
            return code, None, None
        if text.startswith(sentence + ": "):
            return code, {"said": text[len(sentence) + 2:]}, None
    if match := COMPLAINT.match(text):
        return "complaint", {"kind": d.get("complaint") or match["kind"]}, None
    if (match := CALL.match(text)) and match["outcome"] in ("reached", "no_answer", "wrong_number"):
        note = d.get("note") if isinstance(d.get("note"), str) else match["note"]
        return "call", _clean({"outcome": match["outcome"], "phone": d.get("phone")}), note or None
    if match := WISHES.match(text):
        fields = d.get("fields") if isinstance(d.get("fields"), list) else _fields(match["fields"])
        return "delivery_wishes", {"fields": fields}, None
    if match := CONTACT_DETAILS.match(text):
        fields = d.get("fields") if isinstance(d.get("fields"), list) else _fields(match["a"] or match["b"] or "")
        return "contact_details", {"fields": fields}, None
    if match := RECIPIENT.match(text):
        return f"recipient_{match['verb']}", {"name": match["name"]}, None
    if match := EMAIL_CORRECTED.match(text):
        before = d.get("before") if isinstance(d.get("before"), list) else _fields(match["before"])
        after = d.get("after") if isinstance(d.get("after"), str) else match["after"]
        return "email_corrected", {"before": before, "after": after}, None
    if match := POSTED.match(text):
        return "paper_posted", dict(match.groupdict()), None
    if d.get("deliverer") and text.startswith("Paper bill ") and f" handed to {d['deliverer']} for " in text:
        head, _sep, recipient = text.partition(f" handed to {d['deliverer']} for ")
        return "paper_handed", {"bill_no": head.removeprefix("Paper bill "), "deliverer": d["deliverer"],
                                "recipient": recipient}, None
    if match := HANDED.match(text):
        return "paper_handed", dict(match.groupdict()), None
    if match := DELIVERED.match(text):
        return "paper_delivered", dict(match.groupdict()), _note(d)
    if match := RETURNED.match(text):
        return "paper_returned", dict(match.groupdict()), _note(d)
    if text in PLAIN:
        code = PLAIN[text]
        if code == "postal_corrected":
            before = d.get("before") if isinstance(d.get("before"), list) else []
            return code, _clean({"before": before, "after": d.get("after")}), None
        return code, None, None
    return "legacy", {"text": text}, None


def _note(details: dict) -> str | None:
    note = details.get("note")
    return note if isinstance(note, str) and note else None


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None and v != ""}


# ---- work items -------------------------------------------------------------------------------------

HEADS = (
    ("email_failed", "电子账单投递失败 / E-mail bill failed: "),
    ("email_unconfirmed", "电子账单重发后仍未确认 / E-mail bill unconfirmed after resend: "),
    ("email_address_check", "请确认电子邮件地址（自动回复称已不再使用） / Confirm the e-mail address (an auto-reply says "
                            "it is no longer in use): "),
    ("post_returned", "纸质账单被退回 / Paper bill returned: "),
    ("email_failed", "E-mail bill failed: "),
    ("email_unconfirmed", "E-mail bill unconfirmed after resend: "),
)
OLD_RETURNED = re.compile(r"^Paper bill (?P<bill_no>\S+) returned from (?P<address>.*): call and correct the address$",
                          re.S)
EVIDENCE_NOTES = {
    "dsn_fields": " (从损坏的投递报告正文中读取 / read from DSN fields in the body of a broken report)",
    "text": " (从非标准退信的文本中读取 / read from the text of a non-standard bounce)",
}
REOPENED_TAIL = re.compile(r" \(此前已由 (?P<was>\S+) 确认 / confirmed earlier by (?P=was)\)$")
OTHER_TAIL = re.compile(r" \(报告的是另一地址，可能是转发 / the report names another address, maybe a forwarding hop: "
                        r"(?P<other>[^)]*)\)$")


def parse_item(summary: str | None, details: dict | None) -> tuple[str, dict]:
    """(code, params) of an old work item's sentence and details; ("legacy", {"text": …}) if unknown."""
    text = summary or ""
    d = details if isinstance(details, dict) else {}
    if match := OLD_RETURNED.match(text):
        return "post_returned", {"address": d.get("address") or match["address"], "bill_no": match["bill_no"]}
    for code, head in HEADS:
        if not text.startswith(head):
            continue
        rest = text[len(head):]
        address = d.get("address") if isinstance(d.get("address"), str) else None
        if address is None or not rest.startswith(address):
            cut = [i for i in (rest.find(" — "), rest.find(" (")) if i >= 0]
            address = rest[: min(cut)] if cut else rest
        rest = rest[len(address):]
        params = tails(rest, d)
        if params is None:
            break
        return code, _clean({"address": address, **params})
    return "legacy", {"text": text}


def tails(rest: str, d: dict) -> dict | None:
    """What followed the head and address: " — status meaning", " — diagnostic", " — key sentence",
    " (evidence)", " (another address …)", " (confirmed earlier by …)"; None if it is something else."""
    params: dict = {}
    if match := REOPENED_TAIL.search(rest):
        params["reopened_from"] = match["was"]
        rest = rest[: match.start()]
    if match := OTHER_TAIL.search(rest):
        params["other_address"] = match["other"]
        rest = rest[: match.start()]
    for evidence, note in EVIDENCE_NOTES.items():
        if rest.endswith(note):
            params["evidence"] = evidence
            rest = rest[: -len(note)]
    key = d.get("key_sentence")
    if isinstance(key, str) and key and rest.endswith(" — " + key[:300]):
        params["key_sentence"] = key[:300]
        rest = rest[: -len(key[:300]) - 3]
    status = d.get("status")
    if isinstance(status, str) and status and rest.startswith(f" — {status} "):
        params["status"] = status
        after = rest.find(" — ", 3)
        rest = rest[after:] if after >= 0 else ""
    if rest.startswith(" — "):
        params["diagnostic"] = rest[3:]
    elif rest:
        return None
    return params


# ---- the migration ------------------------------------------------------------------------------------


def _rows(bind, table, columns):  # noqa: ANN001, ANN202
    """Every row of `table` in keyset batches (a big contact history is never read whole)."""
    last = 0
    while True:
        rows = bind.execute(sa.select(*columns).where(table.c.id > last).order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('contact_records') as batch:
        batch.add_column(sa.Column('code', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('note', sa.Text(), nullable=True))
    with op.batch_alter_table('work_items') as batch:
        batch.add_column(sa.Column('code', sa.String(length=24), nullable=True))
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))

    contacts = sa.table('contact_records', sa.column('id', sa.Integer), sa.column('summary', sa.Text),
                        sa.column('details', sa.JSON), sa.column('code', sa.String), sa.column('params', sa.JSON),
                        sa.column('note', sa.Text))
    set_contact = contacts.update().where(contacts.c.id == sa.bindparam('b_id')).values(
        code=sa.bindparam('b_code'), params=sa.bindparam('b_params', type_=sa.JSON),
        note=sa.bindparam('b_note'), details=sa.bindparam('b_details', type_=sa.JSON))
    for rows in _rows(bind, contacts, (contacts.c.id, contacts.c.summary, contacts.c.details)):
        changes = []
        for row in rows:
            code, params, note = parse_contact(row.summary, row.details)
            details = row.details
            if note is not None and isinstance(details, dict) and "note" in details:
                details = {k: v for k, v in details.items() if k != "note"}  # now in its own field
            changes.append({"b_id": row.id, "b_code": code, "b_params": params, "b_note": note, "b_details": details})
        bind.execute(set_contact, changes)

    items = sa.table('work_items', sa.column('id', sa.Integer), sa.column('summary', sa.Text),
                     sa.column('details', sa.JSON), sa.column('code', sa.String), sa.column('params', sa.JSON))
    set_item = items.update().where(items.c.id == sa.bindparam('b_id')).values(
        code=sa.bindparam('b_code'), params=sa.bindparam('b_params', type_=sa.JSON))
    for rows in _rows(bind, items, (items.c.id, items.c.summary, items.c.details)):
        changes = []
        for row in rows:
            code, params = parse_item(row.summary, row.details)
            changes.append({"b_id": row.id, "b_code": code, "b_params": params})
        bind.execute(set_item, changes)
    op.execute("UPDATE work_items SET close_reason = 'confirmed_later' WHERE close_reason LIKE 'confirmed later (%'")

    with op.batch_alter_table('contact_records') as batch:
        batch.alter_column('code', existing_type=sa.String(length=32), nullable=False)
        batch.drop_column('summary')
        batch.create_check_constraint(op.f('ck_contact_records_code'), f"code IN {CONTACT_CODES!r}")
    # The partial unique index is rebuilt by hand around SQLite's table copy (its WHERE must survive).
    op.drop_index('uq_work_items_open_case', table_name='work_items')
    with op.batch_alter_table('work_items') as batch:
        batch.alter_column('code', existing_type=sa.String(length=24), nullable=False)
        batch.drop_column('summary')
        batch.create_check_constraint(op.f('ck_work_items_code'), f"code IN {ITEM_CODES!r}")
    op.create_index('uq_work_items_open_case', 'work_items', ['customer_id', 'case_key'], unique=True,
                    postgresql_where=sa.text(OPEN_CASE), sqlite_where=sa.text(OPEN_CASE))


def _sentence(code: str, params: dict | None) -> str:
    """Back to a stored sentence (downgrade): the legacy text as it was, else the code and parameters."""
    params = params if isinstance(params, dict) else {}
    if code == "legacy":
        return str(params.get("text", ""))
    return " ".join([code] + [f"{k}={v}" for k, v in sorted(params.items())])


def downgrade() -> None:
    bind = op.get_bind()
    for name in ('contact_records', 'work_items'):
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column('summary', sa.Text(), nullable=True))
    for name in ('contact_records', 'work_items'):
        table = sa.table(name, sa.column('id', sa.Integer), sa.column('code', sa.String),
                         sa.column('params', sa.JSON), sa.column('summary', sa.Text))
        setter = table.update().where(table.c.id == sa.bindparam('b_id')).values(summary=sa.bindparam('b_summary'))
        for rows in _rows(bind, table, (table.c.id, table.c.code, table.c.params)):
            bind.execute(setter, [{"b_id": r.id, "b_summary": _sentence(r.code, r.params)} for r in rows])
    op.execute("UPDATE work_items SET close_reason = 'confirmed later' WHERE close_reason = 'confirmed_later'")
    with op.batch_alter_table('contact_records') as batch:
        batch.drop_constraint(op.f('ck_contact_records_code'), type_='check')
        batch.alter_column('summary', existing_type=sa.Text(), nullable=False)
        batch.drop_column('note')
        batch.drop_column('params')
        batch.drop_column('code')
    op.drop_index('uq_work_items_open_case', table_name='work_items')
    with op.batch_alter_table('work_items') as batch:
        batch.drop_constraint(op.f('ck_work_items_code'), type_='check')
        batch.alter_column('summary', existing_type=sa.Text(), nullable=False)
        batch.drop_column('params')
        batch.drop_column('code')
    op.create_index('uq_work_items_open_case', 'work_items', ['customer_id', 'case_key'], unique=True,
                    postgresql_where=sa.text(OPEN_CASE), sqlite_where=sa.text(OPEN_CASE))
