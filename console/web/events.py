"""Stored events rendered in the reader's language: the one catalog of their sentences.

Contact records and work items keep a code and its parameters (ContactEvent, WorkItemEvent in
console/models), audit events an action code with the values before and after, and import errors
(console/csvimport.RowError) a problem code with its parameters. Nothing of ours is stored as text:
every screen, export and e-mail that shows one renders it here, through the catalogs, at the time it
is read. A parameter that is itself a code (a channel, a call outcome, a confirmation, a field name)
is shown through its label (console/web/labels.py); an SMTP status through its RFC 3463 meaning
(console/delivery/status_text.py); names, addresses, numbers and what a person or a mail server
wrote are shown as they are.

The sentences are English catalog ids with `%(name)s` parameters, marked with `N_` and translated
in console/web/translations; templates call the globals `contact_text`, `work_item_text`,
`audit_action`, `audit_rows` and `import_error_text` (registered by create_app).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import get_locale, gettext

from console.delivery.status_text import status_text
from console.models.customers import ContactEvent
from console.models.delivery import WorkItemEvent
from console.web.labels import label


def N_(message: str) -> str:  # noqa: N802 - the marker name Babel extracts
    """Marks a sentence for the catalog; translated where it is rendered."""
    return message


MISSING = "—"


class _Params(dict):
    """The parameters of a sentence; one that an old row lacks reads as a dash, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return MISSING


def _sentence(msgid: str, params: Mapping[str, Any]) -> str:
    return gettext(msgid) % _Params(params)


def _join(values: list[str]) -> str:
    locale = get_locale()
    return ("、" if locale is not None and locale.language == "zh" else ", ").join(values)


def _value(kind: str | None, value: Any) -> str:
    """One parameter as shown: through its label when it is a code, a list joined, else as it is."""
    if value is None or value == "":
        return MISSING
    if kind == "status":
        return status_text(str(value))
    if isinstance(value, list | tuple):
        return _join([_value(kind, v) for v in value]) if value else MISSING
    if kind is not None:
        return label(kind, str(value))
    return str(value)


def _shown(params: Mapping[str, Any] | None, kinds: Mapping[str, str]) -> dict[str, str]:
    return {name: _value(kinds.get(name), value) for name, value in (params or {}).items()}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


# ---- contact records --------------------------------------------------------------------------------

# The label vocabulary of parameters that are codes (console/web/labels.py).
CONTACT_PARAM_KINDS = {
    "confirmed_by": "confirmed_by",
    "outcome": "call_outcome",
    "fields": "contact_field",
    "kind": "feedback_type",
    "status": "status",
}

CONTACT_SENTENCES = {
    ContactEvent.EMAIL_CONFIRMED: N_("E-mail bill confirmed: %(confirmed_by)s"),
    ContactEvent.EMAIL_REOPENED: N_("The e-mail bill bounced after the customer's mail system had taken it "
                                    "(%(confirmed_by)s)"),
    ContactEvent.AUTO_REPLY: N_("Auto-reply received (e.g. vacation)"),
    ContactEvent.AUTO_REPLY_ABANDONED: N_("Auto-reply: the mailbox is no longer in use"),
    ContactEvent.AUTO_REPLY_CHALLENGE: N_("Auto-reply: challenge-response verification asked"),
    ContactEvent.COMPLAINT: N_("The customer reported the bill e-mail as spam (%(kind)s)"),
    ContactEvent.CALL: N_("Call: %(outcome)s"),
    ContactEvent.DELIVERY_WISHES: N_("Delivery wishes changed: %(fields)s"),
    ContactEvent.CONTACT_DETAILS: N_("Contact details changed: %(fields)s"),
    ContactEvent.RECIPIENT_ADDED: N_("Bill recipient added: %(name)s"),
    ContactEvent.RECIPIENT_CHANGED: N_("Bill recipient changed: %(name)s"),
    ContactEvent.RECIPIENT_REACTIVATED: N_("Bill recipient reactivated: %(name)s"),
    ContactEvent.RECIPIENT_DEACTIVATED: N_("Bill recipient deactivated: %(name)s"),
    ContactEvent.EMAIL_CORRECTED: N_("E-mail address corrected: %(before)s → %(after)s"),
    ContactEvent.POSTAL_CORRECTED: N_("Postal address corrected: %(before)s → %(after)s"),
    ContactEvent.PAPER_POSTED: N_("Paper bill %(bill_no)s posted to %(recipient)s, tracking number %(tracking_no)s"),
    ContactEvent.PAPER_HANDED: N_("Paper bill %(bill_no)s handed to %(deliverer)s for %(recipient)s"),
    ContactEvent.PAPER_DELIVERED: N_("Paper bill %(bill_no)s delivered to %(recipient)s"),
    ContactEvent.PAPER_RETURNED: N_("Paper bill %(bill_no)s came back undelivered from %(address)s"),
    ContactEvent.PORTAL_REGISTRATION_CODE: N_("Web page: registration code sent"),
    ContactEvent.PORTAL_RESET_CODE: N_("Web page: password reset code sent"),
    ContactEvent.PORTAL_ALREADY_REGISTERED: N_("Web page: registration asked for an account that exists"),
    ContactEvent.PORTAL_REGISTERED: N_("Registered on the web page"),
    ContactEvent.BILL_OPENED: N_("Bill opened on the web page"),
}
# A parameter that, when present, adds a clause to the sentence.
CONTACT_CLAUSES = {
    "said": N_("%(text)s: %(said)s"),
    "phone": N_("%(text)s, new number %(phone)s"),
    "status": N_("%(text)s — %(status)s"),
}


def event_text(code: str | None, params: Mapping[str, Any] | None) -> str:
    """The sentence of a contact record's code and parameters in the reader's language."""
    params = params or {}
    if code == ContactEvent.LEGACY or code not in CONTACT_SENTENCES:
        return str(params.get("text") or code or "")
    shown = _shown(params, CONTACT_PARAM_KINDS)
    text = _sentence(CONTACT_SENTENCES[code], shown)
    for name, clause in CONTACT_CLAUSES.items():
        if params.get(name) and f"%({name})s" not in CONTACT_SENTENCES[code]:
            text = _sentence(clause, {"text": text, name: shown[name]})
    return text


def contact_text(record: Any) -> str:
    """A contact record (the model, or a mapping with `code` and `params`) as a sentence; the note a
    person typed is not part of it (templates show `record.note` beside it, as typed)."""
    return event_text(_get(record, "code"), _get(record, "params"))


# ---- work items --------------------------------------------------------------------------------------

WORK_ITEM_SENTENCES = {
    WorkItemEvent.EMAIL_FAILED: N_("E-mail bill failed: %(address)s"),
    WorkItemEvent.EMAIL_UNCONFIRMED: N_("E-mail bill not confirmed after the resend: %(address)s"),
    WorkItemEvent.EMAIL_ADDRESS_CHECK: N_("Confirm the e-mail address (an auto-reply says it is no longer in use): "
                                          "%(address)s"),
    WorkItemEvent.POST_RETURNED: N_("Paper bill returned: %(address)s"),
}
WORK_ITEM_NOTES = {
    "other_address": N_("the report names another address, maybe a forwarding hop: %(other_address)s"),
    "reopened_from": N_("confirmed earlier: %(reopened_from)s"),
}


def work_item_text(item: Any) -> str:
    """A work item (the model, or a mapping with `code` and `params`) as one paragraph: what
    happened, the status with its RFC 3463 meaning, the server's words as received, how the report
    was read, another address it spoke of, an overturned confirmation."""
    code, params = _get(item, "code"), _get(item, "params") or {}
    if code == WorkItemEvent.LEGACY or code not in WORK_ITEM_SENTENCES:
        return str(params.get("text") or code or "")
    parts = [_sentence(WORK_ITEM_SENTENCES[code], {"address": params.get("address") or MISSING})]
    if params.get("status"):
        parts.append(status_text(params["status"]))
    parts += [str(params[name]) for name in ("diagnostic", "key_sentence") if params.get(name)]
    text = " — ".join(parts)
    notes = []
    if params.get("evidence"):
        notes.append(label("report_evidence", params["evidence"]))
    if params.get("other_address"):
        notes.append(_sentence(WORK_ITEM_NOTES["other_address"], {"other_address": params["other_address"]}))
    if params.get("reopened_from"):
        notes.append(_sentence(WORK_ITEM_NOTES["reopened_from"],
                               {"reopened_from": label("confirmed_by", params["reopened_from"])}))
    for note in notes:
        text += gettext(" (%(note)s)") % {"note": note}
    return text


# ---- audit events --------------------------------------------------------------------------------

# Audit values that are codes: the label vocabulary of each field.
AUDIT_VALUE_KINDS = {
    "channels": "channel",
    "channel": "channel",
    "relationship": "relationship",
    "kind": "pin_kind",
    "close_reason": "close_reason",
    "outcome": "call_outcome",
    "roles": "role",
    "assigned_role": "role",
    "customer_type": "customer_type",
    "language": "language",
}


@dataclass(frozen=True)
class AuditRow:
    field: str  # the field's label
    before: str | None  # None: the event has no "before" (a creation)
    after: str | None  # None: no "after" (a removal)


def audit_action(action: str | None) -> str:
    """An audit action code (`customer.email`) as its label; `import.NAME` as "CSV import: NAME"."""
    action = action or ""
    if action.startswith("import."):
        return gettext("CSV import: %(name)s", name=action.removeprefix("import."))
    return label("audit_action", action)


def _audit_value(name: str, value: Any) -> str:
    if value is None or value == "" or value == []:
        return MISSING
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    kind = AUDIT_VALUE_KINDS.get(name)
    if isinstance(value, list | tuple):
        return _join([_audit_value(name, v) for v in value])
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if kind is not None:
        return label(kind, str(value))
    return str(value)


def audit_field(name: str) -> str:
    """A field of an audit event's values as its label (the field's own name when it has none)."""
    text = label("audit_field", name)
    return text if text != name else label("contact_field", name)


def audit_rows(event: Any) -> list[AuditRow]:
    """An audit event's values as rows "field: before → after", labelled and readable (Chinese as
    Chinese, codes through their labels, yes/no for flags); fields that did not change are left out
    when both sides are there."""
    before, after = _get(event, "before"), _get(event, "after")
    before = before if isinstance(before, dict) else ({} if before is None else {"value": before})
    after = after if isinstance(after, dict) else ({} if after is None else {"value": after})
    names = list(after) + [n for n in before if n not in after]
    rows = []
    for name in names:
        if name in before and name in after and before[name] == after[name] and name != "recipient_id":
            continue
        rows.append(AuditRow(
            audit_field(name),
            _audit_value(name, before[name]) if name in before else None,
            _audit_value(name, after[name]) if name in after else None,
        ))
    return rows


# ---- import errors -----------------------------------------------------------------------------------

IMPORT_PROBLEMS = {
    # the file and its header (console/csvimport.py)
    "utf16": N_("not UTF-8 or GBK/GB18030 text: UTF-16 is not accepted; save it as CSV UTF-8 (or CSV in "
                "GBK/GB18030)"),
    "encoding": N_("not UTF-8 or GBK/GB18030 text: byte %(byte)s of the line is %(value)s; save it as CSV UTF-8 "
                   "(or CSV in GBK/GB18030)"),
    "encoding_big5": N_("not UTF-8 or GBK/GB18030 text (it looks like Big5, which is not accepted): byte %(byte)s "
                        "of the line is %(value)s; save it as CSV UTF-8 (or CSV in GBK/GB18030)"),
    "file_too_large": N_("larger than %(mb)s MB"),
    "empty_file": N_("empty file"),
    "not_csv": N_("not CSV: %(detail)s"),
    "missing_column": N_("missing column"),
    "unknown_column": N_("unknown column"),
    "column_twice": N_("column appears twice"),
    "too_many_fields": N_("%(fields)s fields, header has %(header)s"),
    "unknown_import": N_("unknown import %(name)s"),
    # fields
    "required": N_("required"),
    "invalid": N_("invalid (%(detail)s)"),
    "too_long": N_("longer than %(max)s characters"),
    "nul": N_("contains a NUL character"),
    "line_break": N_("contains a line break"),
    "bool": N_("must be 1 or 0"),
    "unknown_items": N_("unknown %(items)s (one of %(choices)s, ;-separated)"),
    "choice": N_("must be one of %(choices)s"),
    "not_whole_number": N_("not a whole number"),
    "out_of_range": N_("must be between %(low)s and %(high)s"),
    "not_date": N_("not a date (YYYY-MM-DD)"),
    "not_period": N_("not a period (YYYY-MM)"),
    "not_number": N_("not a number"),
    "not_amount": N_("not an amount"),
    "amount_decimals": N_("more than 2 decimal places"),
    "decimals": N_("more than 2 decimal places"),
    "negative": N_("must not be negative"),
    "too_large": N_("too large"),
    "not_positive": N_("must be more than 0"),
    "email": N_("not a valid e-mail address (%(detail)s)"),
    # the customer file (console/customers/importers.py)
    "bad_key": N_("letters, digits and '-', at most 32"),
    "bad_phone": N_("not a phone number (digits, '+', '-', spaces)"),
    "bad_postcode": N_("a postal code is 6 digits"),
    "bad_tariff": N_("a tariff code: capital letters, digits and '-', at most 16"),
    "id_digits_18": N_("ID number: 17 digits and a check digit or X"),
    "id_digits_15": N_("ID number: 15 digits"),
    "id_birth_date": N_("ID number: no valid birth date in it"),
    "id_check_digit": N_("ID number: wrong check digit"),
    "id_length": N_("ID number: 18 characters (or an old 15-digit number)"),
    "duplicate": N_("duplicate of line %(first)s"),
    "channels_required": N_("required (portal, email, paper; ;-separated)"),
    "email_for_channel": N_("required for the email channel"),
    "postal_for_channel": N_("required for the paper channel"),
    "paper_refused": N_("Paper bills are for key accounts only for now; choose e-mail or the web page."),
    "ebill_channel": N_("an e-bill needs portal or email among the channels"),
    "collective_key_only": N_("only for key accounts"),
    "collective_since": N_("only with collective_billing 1"),
    "unknown_manager": N_("%(manager)s: no staff user with the account_manager role"),
    "masked_id": N_("masked: only the customer's own ID number, as exported"),
    "unknown_account": N_("%(account_no)s: unknown account"),
    # billing (console/billing/importers.py)
    "no_customer": N_("no customer %(account_no)s"),
    "no_point": N_("no service point %(point_no)s"),
    "point_not_customers": N_("service point %(point_no)s is not this customer's"),
    "customer_no_point": N_("the customer has no service point"),
    "no_billing_point": N_("the customer has %(points)s service points and no billing point: name one"),
    "peak_valley": N_("peak + valley is more than the total"),
    "second_read": N_("a second read of this point on this date (line %(first)s)"),
    "reading_below": N_("reading %(after)s on %(date)s is below the previous reading %(before)s (mark meter_change "
                        "if the meter was changed)"),
    "zero_adjustment": N_("an adjustment of 0"),
    "charge_not_positive": N_("must be more than 0 (write-offs too: they are credited)"),
    "same_charge": N_("the same charge as line %(first)s"),
    "bad_reference": N_("letters, digits and _ . / : - only"),
    "reference_twice": N_("used twice in the file (line %(first)s)"),
    "reference_used": N_("reference %(reference)s was already used for another payment"),
    "same_deposit": N_("the same deposit as line %(first)s"),
    "second_plan": N_("a second plan from this period (line %(first)s)"),
    "plan_billed": N_("the plan has installments on bills already; it cannot change"),
}
# Columns that are not a header name of the file.
IMPORT_PLACES = {"file": N_("file"), "header": N_("header"), "row": N_("row"), "import": N_("import")}


def import_reason(code: str, params: Mapping[str, Any] | None = None) -> str:
    """An import problem's reason in the reader's language (the code itself if unknown)."""
    msgid = IMPORT_PROBLEMS.get(code)
    return _sentence(msgid, params or {}) if msgid else code


def import_error_text(error: Any) -> str:
    """`第 3 行，email 列：重复，与第 2 行相同` / `line 3: email: duplicate of line 2`: an import error
    naming its line and field (a column name of the file, as written there)."""
    column = error.column
    place = gettext(IMPORT_PLACES[column]) if column in IMPORT_PLACES else column
    return gettext("line %(line)s: %(column)s: %(reason)s", line=error.line, column=place,
                   reason=import_reason(error.code, error.params))


def register(env) -> None:  # noqa: ANN001
    env.globals.update(contact_text=contact_text, work_item_text=work_item_text, audit_action=audit_action,
                       audit_rows=audit_rows, import_error_text=import_error_text, status_text=status_text)
