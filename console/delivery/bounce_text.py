"""Reading what is not an RFC 3464 report: DSN fields in a broken body, the text of non-standard
bounces, auto-replies and ARF complaints. Pure functions over an `email.message.Message`.

The order of evidence (docs/delivery.md) is kept by `console.delivery.reports.parse_message`; this
module supplies steps 2 and 3 and the markers that tell a bounce from an auto-reply:

- `dsn_field_blocks(texts)`: `Final-Recipient`/`Action`/`Status` blocks found in decoded text
  (a report whose multipart boundary is broken, or a report part sent as text/plain);
- `read_text_bounce(msg, texts)`: every text part decoded (declared charset, then UTF-8, GB18030,
  Shift_JIS, ISO-2022-JP), cut at the returned copy of our own message; a delay notice waits; the
  first RFC 3463 status (2.x.x skipped), or else the first 4xx/5xx SMTP reply, decides; a clear
  failure without a code is permanent, its key sentence the diagnostic. `flufl.bounce` (Mailman's
  detectors) is asked too: an address it finds failed, in a notice with no code and no sentence we
  know, is still a failure. Text evidence never confirms: it yields `failed` or `delayed` only.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from email.message import Message

log = logging.getLogger("billpost.mailin")
# flufl.bounce logs a line per detector at INFO and a traceback when one of its heuristics chokes
# on odd input (an empty From:); its verdict is what counts here, not its diary.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

TEXT_LIMIT = 256 * 1024  # characters of decoded text read per message

# Charsets as declared in the wild → the codec that decodes them (supersets where they exist).
CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext", "ks_c_5601-1987": "cp949", "unknown-8bit": "utf-8",
    "us-ascii": "utf-8", "ascii": "utf-8", "x-unknown": "utf-8",
}
FALLBACK_CHARSETS = ("utf-8", "gb18030", "cp932", "iso2022_jp_ext")

# Where the returned copy of our own message begins: nothing after it is the notice.
RETURNED_COPY_RE = re.compile(
    r"^\s*(?:"
    r"-+ ?Below this line is a copy of the message|"  # qmail
    r"-+ ?This is a copy of the message|"  # Exim
    r"-+ ?(?:Original message|Unsent message|Returned message|The original message)(?: follows)?\b|"
    r"-+ ?Undelivered message follows|"  # Postfix (non-MIME)
    r"-+ ?Original Message ?-+|"
    r"-+ ?Start of returned message|"
    r"-+ ?RETURNED MAIL FOLLOWS|"
    r"Original message follows\.?$|"
    r"-+ ?(?:原始邮件|原邮件|以下是原邮件|原信件|原郵件|元のメッセージ|元メッセージ)|"
    r"(?:Received|Return-Path|Message-I[Dd]|DKIM-Signature|X-Billpost-[\w-]+): "
    r")",
    re.IGNORECASE | re.MULTILINE,
)
STATUS_IN_TEXT_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
SMTP_REPLY_RE = re.compile(r"(?:^|[\s:(\"'\[：（，、])([45][0-5]\d)(?:[ -](?=\S)|$)", re.MULTILINE)
ADDRESS_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z]{2,}")

DELAY_RE = re.compile(
    r"(\bdelayed\b|\bdelay\b|will (?:keep|continue to|continue) try|will be retried|still (?:being )?(?:trying|retried)|"
    r"has not yet been delivered|not yet been delivered|warning only|(?:do )?not need to resend|no need to resend|"
    r"could not send message for past|is still in the queue|will retry|"
    r"延迟|延遲|仍在尝试|将继续尝试|将会继续|稍后重试|仍在重试|配信遅延|遅延)",
    re.IGNORECASE,
)
NOT_A_DELAY_RE = re.compile(r"(not going to try again|giving up|gave up|will not retry|no more retries|permanent)", re.I)
# A notice saying the message did not arrive (no code needed).
FAILURE_RE = re.compile(
    r"(could not be delivered|couldn't be delivered|wasn't able to deliver|was not able to deliver|"
    r"was not delivered|not be delivered|undeliverable|undelivered|delivery (?:has )?failed|failed permanently|"
    r"permanent(?:ly)? (?:error|failure|fatal)|delivery to the following recipients? (?:failed|was aborted)|"
    r"did not reach the following recipient|could not deliver|unable to deliver|delivery failure|"
    r"address(?:es)? failed|message rejected|non-?delivery|returned mail|mail system error|"
    r"无法投递|投递失败|发送失败|發送失敗|無法投遞|退信|被退回|未能送达|未送达|没有成功发送|无法送达|投递不成功|"
    r"送信できませんでした|配信できませんでした|届きませんでした|エラーのため)",
    re.IGNORECASE,
)
# The sentences a person wants to read: why it failed.
REASON_RE = re.compile(
    r"(user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does not exist|doesn't exist|"
    r"not exist|not found|not listed in|invalid (?:recipient|address|mailbox|user)|mailbox (?:unavailable|"
    r"not found|is full|full|disabled|inactive)|over quota|quota exceeded|account (?:is )?(?:disabled|"
    r"suspended|inactive|closed)|address rejected|recipient rejected|not our customer|no mailbox|"
    r"host not found|domain not found|no mx|couldn't find|could not find|unrouteable|relay(?:ing)? denied|"
    r"not accept|blocked|spam|rejected|refused|denied|permission|not permitted|in the queue too long|"
    r"wasn't found|was not found|may not exist|cannot send message|"
    r"用户不存在|用戶不存在|该用户不存在|收件人不存在|地址不存在|邮箱不存在|帐户不存在|账户不存在|帐号不存在|账号不存在|"
    r"不存在|空间不足|已满|容量|已停用|已冻结|被拒|拒收|拒绝|垃圾邮件|域名不存在|"
    r"見つかりません|存在しません|宛先不明|容量オーバー|受信拒否)",
    re.IGNORECASE,
)
BOUNCE_SIGNATURE_RE = re.compile(
    r"(this is the qmail-send program|this message was created automatically by mail delivery software|"
    r"transcript of session follows|this is the mail system at host|delivery has failed to these recipients|"
    r"your message did not reach some or all of the intended recipients|message could not be delivered|"
    r"the following addresses had (?:permanent )?(?:fatal )?errors|delivery to the following recipients? failed|"
    r"was not delivered to:|the original message was received at|i'm afraid i wasn't able to deliver|"
    r"could not be delivered to one or more recipients|a message that you sent could not be delivered|"
    r"this is an automatically generated delivery status notification|delivery status notification|"
    r"your message wasn't delivered|message not delivered|mail delivery failed|"
    r"系统退信|退信通知|投递失败|邮件被退回|很抱歉您的邮件|您发送的邮件|未能成功发送|送信できませんでした|"
    r"次のあて先へのメッセージはエラーのため)",
    re.IGNORECASE,
)
BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|undelivered|non-?deliver|delivery (?:status )?notification|delivery failure|failure notice|"
    r"returned mail|mail delivery (?:failed|system|problem)|delivery (?:has )?failed|delivery problem|"
    r"delayed mail|delivery delayed|mail system error|could not be delivered|warning: message .* delayed|"
    r"退信|投递失败|无法投递|系统退信|发送失败|邮件被退回|未能送达|延迟|延遲|退回|"
    r"返送|エラー|不達|配信遅延|宛先不明)",
    re.IGNORECASE,
)
BOUNCE_FROM_RE = re.compile(
    r"(mailer-daemon|postmaster|mail delivery (?:system|subsystem)|mail administrator|"
    r"系统退信|邮件系统|系統管理員)", re.IGNORECASE
)
# Auto-replies that say the address is dead: a person should confirm or correct it.
ABANDONED_RE = re.compile(
    r"(no longer (?:in use|active|valid|monitored|used|available|with|employed|works?|being monitored|exists?|"
    r"receiv)|has left (?:the|our)|is not monitored|not (?:being )?monitored|address (?:has been|was) "
    r"(?:closed|discontinued|deactivated)|mailbox (?:has been|was) (?:closed|discontinued|deactivated)|"
    r"不再使用|已停止使用|停止使用|不再有效|已离职|已離職|已不在|已注销|已註銷|不再接收|不再查看|已弃用|"
    r"使用されていません|退職)",
    re.IGNORECASE,
)
CHALLENGE_RE = re.compile(
    r"(challenge[- ]response|verify (?:that )?you are (?:a )?(?:human|real)|please (?:confirm|verify) (?:your|that|you)|"
    r"click (?:the|this) link (?:below )?to (?:confirm|verify|deliver)|spam ?arrest|boxbe|add you to (?:my|the) "
    r"(?:approved|allowed|white) ?list|pending (?:your )?verification|请确认您是|验证您的身份|人工验证)",
    re.IGNORECASE,
)

FAMILY_SIGNATURES = (
    ("qmail", re.compile(r"qmail-send program|\(#[245]\.\d+\.\d+\)", re.I)),
    ("exim", re.compile(r"created automatically by mail delivery software|This is a copy of the message, including", re.I)),
    ("sendmail", re.compile(r"transcript of session follows|The original message was received at|Unsent message follows", re.I)),
    ("postfix", re.compile(r"This is the mail system at host|Undelivered message follows|MAILER-DAEMON \(Mail Delivery System\)", re.I)),
    ("opensmtpd", re.compile(r"This is the MAILER-DAEMON, please DO NOT REPLY|DragonFly Mail Agent|dma:", re.I)),
    ("exchange", re.compile(r"did not reach (?:the following recipient|some or all)|Delivery has failed to these recipients|Microsoft Exchange|Diagnostic information for administrators", re.I)),
    ("domino", re.compile(r"Domino|was not delivered to:", re.I)),
    ("gmail", re.compile(r"Google tried to deliver|mail-noreply@google|Gmail|The email account that you tried to reach", re.I)),
    ("google-groups", re.compile(r"Google Groups|googlegroups", re.I)),
    ("yahoo", re.compile(r"Yahoo|yahoo\.com", re.I)),
    ("outlook", re.compile(r"outlook\.com|hotmail|Office 365|protection\.outlook", re.I)),
    ("mail.ru", re.compile(r"mail\.ru|Не удалось доставить", re.I)),
    ("qq", re.compile(r"qq\.com|exmail|腾讯|QQ邮箱", re.I)),
    ("netease", re.compile(r"163\.com|126\.com|yeah\.net|网易|netease", re.I)),
    ("sina", re.compile(r"sina\.com|sina\.cn|新浪", re.I)),
    ("sohu", re.compile(r"sohu\.com|搜狐", re.I)),
    ("aliyun", re.compile(r"aliyun|阿里", re.I)),
    ("21cn", re.compile(r"21cn\.com|21CN", re.I)),
    ("139", re.compile(r"139\.com|移动", re.I)),
    ("japanese-carrier", re.compile(r"ezweb|docomo|softbank|au\.com|i\.softbank|vodafone\.ne\.jp", re.I)),
)


@dataclass(frozen=True)
class TextBounce:
    action: str  # failed or delayed
    status: str | None  # RFC 3463, e.g. "5.1.1"; "5.0.0" from a bare 550; None when no code at all
    diagnostic: str  # the line that holds the code, or the key sentence
    key_sentence: str | None
    addresses: tuple[str, ...] = ()  # addresses the notice names (ours, or a forwarding hop's)
    family: str | None = None
    flufl: str | None = None  # what flufl.bounce said: permanent / temporary / None
    how: str = "code"  # code, smtp_reply, sentence, flufl
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- decoding


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Declared charset first (with the aliases real mailers need), then the fallbacks; never raises."""
    tried = []
    if declared:
        name = declared.strip().strip('"').lower()
        tried.append(CHARSET_ALIASES.get(name, name))
    if b"\x1b$B" in data or b"\x1b$@" in data:
        tried.append("iso2022_jp_ext")
    tried.extend(FALLBACK_CHARSETS)
    for charset in tried:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</h\d>|</li>", "\n", text)
    text = re.sub(r"<[^>]{0,2000}>", " ", text)
    return html.unescape(text)


def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        if isinstance(raw, list):
            return ""
        payload = str(raw).encode("utf-8", "surrogateescape")
    text = decode_bytes(payload[: TEXT_LIMIT * 2], part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = _strip_html(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")[:TEXT_LIMIT]


def text_parts(msg: Message, limit: int = 200) -> list[str]:
    """Every text part's decoded text in order, not descending into returned messages. A message
    whose multipart structure is broken (no boundary found) gives its whole body as one text."""
    out: list[str] = []
    stack = [msg]
    seen = 0
    while stack and seen < limit:
        part = stack.pop()
        seen += 1
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            elif payload:
                out.append(part_text(part))  # the boundary never came: the body is text
            continue
        if ctype in ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"):
            continue
        if part.get_content_maintype() == "text":
            out.append(part_text(part))
    return out


def cut_returned_copy(text: str) -> str:
    match = RETURNED_COPY_RE.search(text)
    return text[: match.start()] if match else text


# ---------------------------------------------------------------- step 2: DSN fields in a body


def dsn_field_blocks(texts: list[str]) -> tuple[dict[str, str], list]:
    """Per-message fields and recipient blocks written as DSN fields inside text."""
    from console.delivery.reports import _field_map, recipient_block, split_blocks

    per_message: dict[str, str] = {}
    blocks = []
    for text in texts:
        if not re.search(r"(?im)^\s*action\s*:", text):
            continue
        lines = [line.strip() if re.match(r"^\s+[\w-]+\s*:", line) else line for line in text.split("\n")]
        for fields in split_blocks("\n".join(lines)):
            names = {name.lower() for name, _ in fields}
            if "original-envelope-id" in names or "reporting-mta" in names:
                for key, value in _field_map(fields).items():
                    per_message.setdefault(key, value)
            if "action" in names and names & {"final-recipient", "original-recipient", "status"}:
                block = recipient_block(fields)
                if block.action:
                    blocks.append(block)
    return per_message, blocks


# ---------------------------------------------------------------- step 3: the text of a bounce


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)].strip()
    # A reply continued on the next line(s) by an indentation (Exim, Postfix, qmail).
    rest = text[end + 1 :] if end >= 0 else ""
    for extra in rest.split("\n")[:3]:
        if extra.startswith((" ", "\t")) and extra.strip() and len(line) < 300:
            line += " " + extra.strip()
        else:
            break
    return re.sub(r"\s+", " ", line)[:300]


def _key_sentence(text: str, subject: str) -> str | None:
    """The first line that says why, skipping headings (`** Address not found **`) and the subject."""
    first = None
    for match in REASON_RE.finditer(text):
        line = _line_of(text, match.start())
        first = first or line
        if line.startswith("**") or line == subject.strip():
            continue
        return line
    return first


def family_of(text: str, from_header: str) -> str | None:
    haystack = f"{from_header}\n{text[:20000]}"
    for name, pattern in FAMILY_SIGNATURES:
        if pattern.search(haystack):
            return name
    return None


def addresses_in(text: str, exclude_domain: str | None = None) -> tuple[str, ...]:
    found: list[str] = []
    for address in ADDRESS_RE.findall(text):
        address = address.strip(".-'").lower()
        local, _, domain = address.rpartition("@")
        if local in ("mailer-daemon", "postmaster", "mail-noreply", "noreply", "no-reply", "abuse", "root"):
            continue
        if exclude_domain and domain == exclude_domain.lower():
            continue
        if "+" in local and local.startswith("bounces"):
            continue  # our own VERP address, quoted in the notice
        if address not in found:
            found.append(address)
        if len(found) >= 20:
            break
    return tuple(found)


def flufl_verdict(msg: Message) -> tuple[str | None, tuple[str, ...]]:
    """flufl.bounce's detectors: ("permanent" | "temporary" | None, addresses)."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a heuristic detector choking on odd input is no evidence
        return None, ()

    def text(values) -> tuple[str, ...]:  # noqa: ANN001
        out = []
        for value in values:
            value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            value = value.strip().strip("<>").lower()
            if "@" in value and value not in out:
                out.append(value)
        return tuple(out[:20])

    if permanent:
        return "permanent", text(permanent)
    if temporary:
        return "temporary", text(temporary)
    return None, ()


def read_text_bounce(
    msg: Message, texts: list[str], subject: str, from_header: str, bounce_domain: str | None = None
) -> TextBounce | None:
    """The notice of a non-standard bounce, or None when it says nothing we can use."""
    notice = "\n\n".join(cut_returned_copy(text) for text in texts).strip()[:TEXT_LIMIT]
    flufl, flufl_addresses = flufl_verdict(msg)
    addresses = addresses_in(notice, bounce_domain)
    for address in flufl_addresses:
        if address not in addresses:
            addresses += (address,)
    family = family_of(notice, from_header)
    head = f"{subject}\n{notice[:4000]}"
    delay = DELAY_RE.search(head)
    is_delay = bool(delay) and not NOT_A_DELAY_RE.search(notice[:4000]) and not re.search(
        r"(?i)(failed permanently|permanent (?:error|failure)|could not be delivered|wasn't able to deliver|"
        r"无法投递|投递失败|送信できませんでした)", notice[:4000]
    )

    status = None
    diagnostic = None
    how = "code"
    for match in STATUS_IN_TEXT_RE.finditer(notice):
        if match.group(1) == "2":
            continue
        status = f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
        diagnostic = _line_of(notice, match.start())
        break
    if status is None:
        for match in SMTP_REPLY_RE.finditer(notice):
            code = match.group(1)
            status = f"{code[0]}.0.0"
            diagnostic = _line_of(notice, match.start(1))
            how = "smtp_reply"
            break
    reason = REASON_RE.search(notice)
    failure = FAILURE_RE.search(head)
    key = None
    if reason:
        key = _key_sentence(notice, subject)
    elif failure:
        key = _line_of(head, failure.start())
    if is_delay:
        return TextBounce(
            "delayed", status if status and status.startswith("4") else None,
            diagnostic or _line_of(head, delay.start()), key, addresses, family, flufl, how,
        )
    if status is None:
        if failure or reason or BOUNCE_SIGNATURE_RE.search(head):
            how = "sentence"
            diagnostic = key or _line_of(head, (failure or BOUNCE_SIGNATURE_RE.search(head)).start())
        elif flufl is not None:
            how = "flufl"
            diagnostic = "bounce detected by flufl.bounce: " + ", ".join(flufl_addresses)
            if flufl == "temporary":
                return TextBounce("delayed", None, diagnostic, key, addresses, family, flufl, how)
        else:
            return None
    return TextBounce("failed", status, diagnostic or key or "", key, addresses, family, flufl, how)


# ---------------------------------------------------------------- markers


def looks_like_bounce(msg: Message, subject: str, from_header: str, mail_from: str | None, texts: list[str]) -> bool:
    """Bounce markers, looked at before the auto-reply markers (bounces carry Auto-Submitted too)."""
    if BOUNCE_FROM_RE.search(from_header or "") or BOUNCE_SUBJECT_RE.search(subject or ""):
        return True
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
        if report_type == "delivery-status":
            return True
    head = "\n".join(cut_returned_copy(t)[:4000] for t in texts[:3])
    if BOUNCE_SIGNATURE_RE.search(head):
        return True
    null_sender = (mail_from or "").strip() in ("", "<>")
    return null_sender and bool(FAILURE_RE.search(head) and (STATUS_IN_TEXT_RE.search(head) or REASON_RE.search(head)))


def auto_reply_kind(texts: list[str], subject: str) -> str | None:
    """'abandoned' (the address is dead), 'challenge' (challenge-response), or None."""
    head = subject + "\n" + "\n".join(cut_returned_copy(t)[:4000] for t in texts[:3])
    if CHALLENGE_RE.search(head):
        return "challenge"
    if ABANDONED_RE.search(head):
        return "abandoned"
    return None


def abandoned_sentence(texts: list[str], subject: str) -> str | None:
    head = subject + "\n" + "\n".join(cut_returned_copy(t)[:4000] for t in texts[:3])
    match = ABANDONED_RE.search(head)
    return _line_of(head, match.start()) if match else None
