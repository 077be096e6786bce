"""RFC 3464 delivery reports: parse and classify whatever arrives at the bounce address.

Pure functions. `parse_message(raw)` never raises, whatever the bytes: it returns a `ParsedMessage`
whose `kind` is `report`, `auto_reply` or `malformed`, with a human-readable `reason`.

Handled on purpose (see ../shared/reference/email-dsn.md): folded Diagnostic-Code, `rfc822;addr`
and `rfc822; addr`, xtext in Original-Envelope-Id, `message/global-delivery-status` (RFC 6533, not
split into blocks by the standard library) with UTF-8 addresses, returned headers as
`text/rfc822-headers`, `message/global-headers` or a whole `message/rfc822`, and the auto-replies
that also reach the bounce address (Postfix's own reports carry `Auto-Submitted: auto-replied`, so a
well-formed report is recognised before the auto-reply markers are looked at).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parsedate_to_datetime

# Only this much of a message is parsed: the report and the returned headers come first; a huge
# returned body (RET=FULL) is not needed to match or classify.
PARSE_LIMIT = 1024 * 1024
MAX_PARTS = 200  # MIME parts walked before giving up
MAX_BLOCKS = 100  # recipient blocks kept from one report
MAX_FIELD = 2000  # characters kept of one field value
MAX_X_HEADERS = 20

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")

AUTO_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic)?[\s_-]*(reply|response|antwort)|auto:|out of (the )?office|vacation|"
    r"away from|abwesenheit|absence|自动回复|自動回覆|自动答复|休假|外出|不在办公室)",
    re.IGNORECASE,
)
# Bounces that are not RFC 3464 (qmail's "failure notice", old Exchange, hand-made ones): an admin
# should see them, so they are quarantined rather than taken for auto-replies.
BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|undelivered|delivery (status )?notification|delivery failure|failure notice|returned mail|"
    r"mail delivery (failed|system)|退信|投递失败|无法投递|系统退信)",
    re.IGNORECASE,
)
BOUNCE_FROM_RE = re.compile(r"(mailer-daemon|postmaster)@", re.IGNORECASE)
FIELD_LINE_RE = re.compile(r"^([!-9;-~]+)[ \t]*:(.*)$")  # RFC 5322 field name, then ':'
RETURNED_MID_RE = re.compile(r"(?im)^[ \t>]*Message-I[Dd]:[ \t]*<([^<>\s]+)>")
XTEXT_RE = re.compile(r"\+([0-9A-Fa-f]{2})")
UTF8_ADDR_RE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


@dataclass(frozen=True)
class RecipientBlock:
    """One per-recipient block of a report. Addresses without their type (`rfc822; `) and `<>`."""

    final_recipient: str | None = None
    final_recipient_type: str | None = None
    original_recipient: str | None = None
    action: str | None = None  # lower-case; None when absent or not one of ACTIONS
    raw_action: str | None = None
    status: str | None = None  # "5.1.1"; None when absent or not a valid status
    diagnostic: str | None = None  # unfolded, e.g. "smtp; 550 5.1.1 user unknown"
    remote_mta: str | None = None
    will_retry_until: datetime | None = None
    last_attempt_date: datetime | None = None
    fields: dict[str, str] = field(default_factory=dict)
    # Where the block was read: rfc3464 (a report part), dsn_fields (DSN fields in a broken body),
    # text (the notice of a non-standard bounce). Only rfc3464 blocks can confirm.
    source: str = "rfc3464"
    addresses: tuple[str, ...] = ()  # text: the addresses the notice names
    key_sentence: str | None = None  # text: the sentence that says why


@dataclass(frozen=True)
class ParsedMessage:
    kind: str  # report, auto_reply, complaint, malformed
    reason: str
    subject: str | None = None
    from_header: str | None = None
    message_id: str | None = None  # of the received message itself
    # Per-message fields of a report.
    envid: str | None = None
    reporting_mta: str | None = None
    arrival_date: datetime | None = None
    recipients: tuple[RecipientBlock, ...] = ()
    # From the returned headers (or the returned message).
    original_message_id: str | None = None
    original_headers: dict[str, str] = field(default_factory=dict)  # X- headers, lower-case names
    global_report: bool = False
    truncated: bool = False
    evidence: str | None = None  # report: rfc3464, dsn_fields or text
    family: str | None = None  # text: the mail system whose notice it is (qmail, exim, qq, ...)
    flufl: str | None = None  # text: flufl.bounce's verdict (permanent, temporary) if any
    auto_kind: str | None = None  # auto_reply: abandoned, challenge, or None (vacation and the like)
    key_sentence: str | None = None  # auto_reply/complaint: what it says
    feedback: dict[str, str] = field(default_factory=dict)  # complaint: ARF fields (feedback-type, ...)


# ---------------------------------------------------------------- small helpers


def _text(value: object, limit: int = MAX_FIELD) -> str:
    """Any header value (str, Header, bytes) as text, control characters removed, capped."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = _fix_surrogates(str(value))
    text = text.replace("\r\n", "\n")
    text = re.sub(r"\n[ \t]+", " ", text)  # unfold
    text = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", text)
    return text.strip()[:limit]


def _fix_surrogates(text: str) -> str:
    """Header values parsed from bytes keep 8-bit bytes as surrogate escapes: decode them as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _bytes_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def unfold(value: str) -> str:
    """RFC 5322 unfolding: a line break followed by white space is the white space."""
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def decode_xtext(value: str) -> str:
    """RFC 3461 xtext: `+XX` is the byte XX. Anything not a valid escape stays as it is."""
    return XTEXT_RE.sub(lambda m: chr(int(m.group(1), 16)), value)


def _decode_utf8_addr(value: str) -> str:
    """RFC 6533 utf-8-addr-xtext: `\\x{HEX}` escapes."""

    def repl(m: re.Match) -> str:
        code = int(m.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else m.group(0)

    return UTF8_ADDR_RE.sub(repl, value)


def split_typed(value: str | None) -> tuple[str | None, str | None]:
    """`rfc822; a@b` / `rfc822;a@b` / `<a@b>` → (type, address)."""
    if not value:
        return None, None
    value = value.strip()
    kind = None
    if ";" in value:
        kind, value = value.split(";", 1)
        kind = kind.strip().lower() or None
    value = value.strip()
    if kind == "utf-8":
        value = _decode_utf8_addr(value)
    elif kind == "rfc822":
        value = decode_xtext(value)
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return kind, (value[:320] or None)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _decoded_header(msg: Message, name: str) -> str | None:
    raw = msg.get(name)
    if raw is None:
        return None
    try:
        text = str(make_header(decode_header(str(raw))))
    except Exception:  # noqa: BLE001 - RFC 2047 garbage: keep the raw text
        text = str(raw)
    return _text(text, 300) or None


def _message_id(value: object) -> str | None:
    text = _text(value, 300)
    if not text:
        return None
    match = re.search(r"<([^<>\s]+)>", text)
    return match.group(1) if match else (text.split()[0] if text.split() else None)


def normalize_message_id(value: str | None) -> str | None:
    """`<a@b>` and `a@b` compare equal."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value or None


def _payload_text(part: Message) -> str:
    """The decoded body of a non-multipart part as text (UTF-8, falling back to Latin-1)."""
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        if isinstance(payload, list):
            return "\n\n".join(p.as_string() if isinstance(p, Message) else str(p) for p in payload)
        payload = payload if isinstance(payload, bytes) else str(payload).encode("utf-8", "replace")
    payload = payload[:PARSE_LIMIT]
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        charset = part.get_content_charset() or "latin-1"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("latin-1")


# ---------------------------------------------------------------- delivery-status body


def parse_fields(block: str) -> list[tuple[str, str]]:
    """Header-style `Name: value` lines with folding; lines that are neither are skipped."""
    fields: list[tuple[str, str]] = []
    for line in block.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip())
            continue
        match = FIELD_LINE_RE.match(line)
        if match:
            fields.append((match.group(1), match.group(2).strip()))
    return [(name, _text(value)) for name, value in fields]


def split_blocks(body: str) -> list[list[tuple[str, str]]]:
    """A delivery-status body: blocks of fields separated by blank lines."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", body):
        fields = parse_fields(chunk)
        if fields:
            blocks.append(fields)
        if len(blocks) > MAX_BLOCKS + 1:
            break
    return blocks


def _field_map(fields: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in fields:
        out.setdefault(name.lower(), value)
    return out


def recipient_block(fields: list[tuple[str, str]]) -> RecipientBlock:
    f = _field_map(fields)
    final_type, final = split_typed(f.get("final-recipient"))
    _, original = split_typed(f.get("original-recipient"))
    raw_action = (f.get("action") or "").strip()
    action_word = raw_action.split("(")[0].strip().lower()  # "failed (bad mailbox)" in the wild
    status = (f.get("status") or "").split()[0] if (f.get("status") or "").split() else ""
    _, remote = split_typed(f.get("remote-mta"))
    return RecipientBlock(
        final_recipient=final,
        final_recipient_type=final_type,
        original_recipient=original,
        action=action_word if action_word in ACTIONS else None,
        raw_action=raw_action[:64] or None,
        status=status if STATUS_RE.match(status) else None,
        diagnostic=f.get("diagnostic-code") or None,
        remote_mta=(remote or None) and remote[:300],
        will_retry_until=_date(f.get("will-retry-until")),
        last_attempt_date=_date(f.get("last-attempt-date")),
        fields={k: v for k, v in list(f.items())[:40]},
    )


def parse_delivery_status(blocks: list[list[tuple[str, str]]]) -> tuple[dict[str, str], list[RecipientBlock]]:
    """The first block is per-message; every later block naming a recipient is per-recipient.

    Some MTAs omit the per-message block: a first block with Final-Recipient or Action counts as a
    recipient block."""
    if not blocks:
        return {}, []
    first = _field_map(blocks[0])
    if "final-recipient" in first or "action" in first:
        per_message: dict[str, str] = {}
        rest = blocks
    else:
        per_message, rest = first, blocks[1:]
    recipients = []
    for fields in rest[:MAX_BLOCKS]:
        names = {name.lower() for name, _ in fields}
        if names & {"final-recipient", "original-recipient", "action", "status"}:
            recipients.append(recipient_block(fields))
    return per_message, recipients


def _ds_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """Blocks of a message/delivery-status or message/global-delivery-status part.

    With the compat32 policy the standard library splits `message/delivery-status` into a list of
    Message objects, one per block (raw, folded values), and parses `message/global-delivery-status`
    as if it were one message (first block = its header, the other blocks = its body). Both shapes,
    and a plain string payload, come out as the same list of blocks."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return split_blocks(_payload_text(part))
    if _text(part.get("Content-Transfer-Encoding"), 40).lower() == "base64":
        # Not allowed by RFC 3464 but seen: the parser took the base64 lines for blocks.
        encoded = "".join(sub.as_string() for sub in payload[:100000] if isinstance(sub, Message))
        try:
            return split_blocks(_bytes_text(base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", encoded)[:PARSE_LIMIT])))
        except ValueError:
            return []
    blocks: list[list[tuple[str, str]]] = []
    for sub in payload[: MAX_BLOCKS + 1]:
        if not isinstance(sub, Message):
            continue
        fields = [(str(name), _text(value)) for name, value in sub.items()]
        if fields:
            blocks.append(fields)
        if not sub.is_multipart():
            body = sub.get_payload(decode=True) or b""  # bytes as received (get_payload() would mangle 8-bit)
            if body.strip():
                blocks.extend(split_blocks(_bytes_text(body[:PARSE_LIMIT])))
        if len(blocks) > MAX_BLOCKS + 1:
            break
    return blocks


# ---------------------------------------------------------------- returned headers


def _returned_headers(part: Message) -> Message | None:
    ctype = part.get_content_type()
    if ctype in HEADER_TYPES:
        text = _payload_text(part)
        try:
            return email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text[:PARSE_LIMIT])
        except Exception:  # noqa: BLE001
            return None
    if ctype in ("message/rfc822", "message/global"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        text = _payload_text(part)
        try:
            return email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text[:PARSE_LIMIT])
        except Exception:  # noqa: BLE001
            return None
    return None


def _x_headers(headers: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = str(name).lower()
        if lower.startswith("x-") and lower not in out and len(out) < MAX_X_HEADERS:
            out[lower] = _text(value, 300)
    return out


# ---------------------------------------------------------------- classification


def auto_reply_reason(msg: Message) -> str | None:
    """Why this message is an automatic answer (vacation, out-of-office, read receipt), or None."""
    auto = _text(msg.get("Auto-Submitted"), 100).lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Vacation"):
        if msg.get(name) is not None:
            return f"{name} header"
    precedence = _text(msg.get("Precedence"), 100).lower()
    if precedence in ("auto_reply", "bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    suppress = _text(msg.get("X-Auto-Response-Suppress"), 100).lower()
    if suppress and ("all" in suppress or "oof" in suppress) and msg.get("In-Reply-To"):
        return "X-Auto-Response-Suppress reply"
    if msg.get_content_type() == "multipart/report":
        report_type = _text(msg.get_param("report-type", header="content-type"), 100).lower()
        if report_type == "disposition-notification":
            return "read receipt (disposition notification)"
    subject = _decoded_header(msg, "Subject") or ""
    if AUTO_SUBJECT_RE.search(subject):
        return "auto-reply subject"
    return None


def _walk(msg: Message) -> list[Message]:
    """Parts in depth-first order, bounded, without descending into returned messages."""
    out: list[Message] = []
    stack = [msg]
    while stack and len(out) < MAX_PARTS:
        part = stack.pop()
        out.append(part)
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
    return out


def _returned_copy(parts: list[Message], texts: list[str]) -> tuple[str | None, dict[str, str]]:
    """Message-ID and X- headers of our message as returned: a returned-headers or message part,
    else header lines quoted in the text of the notice."""
    for part in parts:
        if part.get_content_type() in HEADER_TYPES + ("message/rfc822", "message/global"):
            returned = _returned_headers(part)
            if returned is not None and returned.get("Message-ID"):
                return _message_id(returned.get("Message-ID")), _x_headers(returned)
    for text in texts:
        match = RETURNED_MID_RE.search(text)
        if match:
            return match.group(1)[:300], {}
    return None, {}


def _feedback(msg: Message, parts: list[Message]) -> dict[str, str] | None:
    """ARF (RFC 5965): the fields of the message/feedback-report part, or None if there is none."""
    report_type = _text(msg.get_param("report-type", header="content-type"), 100).lower()
    fb_parts = [p for p in parts if p.get_content_type() == "message/feedback-report"]
    if not fb_parts and report_type != "feedback-report":
        return None
    fields: dict[str, str] = {}
    for part in fb_parts[:1]:
        for block in _ds_blocks(part):
            for name, value in block:
                fields.setdefault(name.lower(), value[:300])
    return fields


def _after_rfc3464(msg: Message, parts: list[Message], common: dict, mail_from: str | None,
                   bounce_domain: str | None) -> ParsedMessage | None:
    """Steps after the report part: ARF, DSN fields in the body, the text of a bounce, auto-replies."""
    from console.delivery import bounce_text

    subject, from_header = common["subject"] or "", common["from_header"] or ""
    feedback = _feedback(msg, parts)
    texts = bounce_text.text_parts(msg)
    original_mid, original_x = _returned_copy(parts, texts)
    replied_to = _message_id(msg.get("In-Reply-To")) or original_mid  # auto-replies name our message here
    if feedback is not None:
        kind = feedback.get("feedback-type", "abuse").lower()[:40] or "abuse"
        return ParsedMessage(
            kind="complaint", reason=f"ARF feedback report ({kind})", feedback=feedback,
            original_message_id=original_mid, original_headers=original_x, key_sentence=kind, **common,
        )
    if bounce_text.looks_like_bounce(msg, subject, from_header, mail_from, texts):
        per_message, blocks = bounce_text.dsn_field_blocks(texts)
        if blocks:
            envid = per_message.get("original-envelope-id")
            blocks = [replace(b, source="dsn_fields") for b in blocks[:MAX_BLOCKS]]
            return ParsedMessage(
                kind="report", reason="DSN fields in the body of a broken report", evidence="dsn_fields",
                envid=(decode_xtext(envid).strip()[:100] or None) if envid else None,
                recipients=tuple(blocks), original_message_id=original_mid, original_headers=original_x, **common,
            )
        found = bounce_text.read_text_bounce(msg, texts, subject, from_header, bounce_domain)
        if found is not None:
            block = RecipientBlock(
                final_recipient=found.addresses[0] if found.addresses else None,
                action=found.action, raw_action=found.action, status=found.status,
                diagnostic=(found.diagnostic or "")[:MAX_FIELD] or None, source="text",
                addresses=found.addresses, key_sentence=found.key_sentence,
            )
            family = found.family or "unknown"
            return ParsedMessage(
                kind="report", reason=f"text of a non-standard bounce ({family}, {found.how})", evidence="text",
                recipients=(block,), original_message_id=original_mid, original_headers=original_x,
                family=found.family, flufl=found.flufl, key_sentence=found.key_sentence, **common,
            )
        return ParsedMessage(kind="malformed", reason="a bounce that says nothing readable",
                             original_message_id=original_mid, **common)
    auto = auto_reply_reason(msg)
    special = bounce_text.auto_reply_kind(texts, subject)
    if auto or special:
        sentence = bounce_text.abandoned_sentence(texts, subject) if special == "abandoned" else None
        reason = auto or ("challenge-response" if special == "challenge" else "the address is no longer in use")
        if special:
            reason += f" ({special})"
        return ParsedMessage(kind="auto_reply", reason=reason, auto_kind=special, key_sentence=sentence,
                             original_message_id=replied_to, original_headers=original_x, **common)
    return None


def parse_message(
    raw: bytes | bytearray | memoryview | str | None, mail_from: str | None = None, bounce_domain: str | None = None
) -> ParsedMessage:
    """Parse and classify one received message. Never raises.

    The order of evidence (docs/delivery.md): an RFC 3464 report part; ARF feedback; then, for a
    message with bounce markers, DSN fields in the decoded body, then the text of the notice; then
    the auto-reply markers; whatever is left is malformed (the quarantine)."""
    try:
        return _parse(raw, mail_from, bounce_domain)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return ParsedMessage(kind="malformed", reason=f"parser error: {type(exc).__name__}")


def _parse(raw: bytes | bytearray | memoryview | str | None, mail_from: str | None = None,
           bounce_domain: str | None = None) -> ParsedMessage:
    if raw is None:
        return ParsedMessage(kind="malformed", reason="empty message")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw[: PARSE_LIMIT + 1]) if not isinstance(raw, bytes) else raw
    truncated = len(raw) > PARSE_LIMIT
    data = raw[:PARSE_LIMIT]
    if not data.strip():
        return ParsedMessage(kind="malformed", reason="empty message", truncated=truncated)

    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    common = {
        "subject": _decoded_header(msg, "Subject"),
        "from_header": _decoded_header(msg, "From"),
        "message_id": _message_id(msg.get("Message-ID")),
        "truncated": truncated,
    }
    if not msg.keys():
        return ParsedMessage(kind="malformed", reason="no header fields", **common)

    parts = _walk(msg)
    ds_parts = [p for p in parts if p.get_content_type() in DSN_TYPES]
    if ds_parts:
        ds = ds_parts[0]
        per_message, recipients = parse_delivery_status(_ds_blocks(ds))
        returned = None
        for part in parts:
            if part is not ds and part.get_content_type() in HEADER_TYPES + ("message/rfc822", "message/global"):
                returned = _returned_headers(part)
                if returned is not None:
                    break
        envid = per_message.get("original-envelope-id")
        _, reporting = split_typed(per_message.get("reporting-mta"))
        result = dict(
            common,
            envid=(decode_xtext(envid).strip()[:100] or None) if envid else None,
            reporting_mta=reporting,
            arrival_date=_date(per_message.get("arrival-date")),
            recipients=tuple(recipients),
            original_message_id=_message_id(returned.get("Message-ID")) if returned is not None else None,
            original_headers=_x_headers(returned) if returned is not None else {},
            global_report=ds.get_content_type() == "message/global-delivery-status",
        )
        if recipients and any(block.action for block in recipients):
            reason = "delivery report" + (" (truncated)" if truncated else "")
            return ParsedMessage(kind="report", reason=reason, evidence="rfc3464", **result)
        broken = ("delivery report without recipient blocks" if not recipients
                  else "delivery report without a valid Action")
        later = _after_rfc3464(msg, parts, common, mail_from, bounce_domain)
        if later is not None and later.kind == "report":
            return later
        return ParsedMessage(kind="malformed", reason=broken, **result)

    later = _after_rfc3464(msg, parts, common, mail_from, bounce_domain)
    if later is not None:
        return later
    if msg.get_content_type() == "multipart/report":
        return ParsedMessage(kind="malformed", reason="multipart/report without a delivery-status part", **common)

    if msg.defects and not msg.get_payload():
        return ParsedMessage(kind="malformed", reason="broken MIME", **common)
    return ParsedMessage(kind="malformed", reason="not a delivery report", **common)
