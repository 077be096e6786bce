"""The real-world bounce corpus (tests/data/bounces): templates rendered for one sent attempt.

A template is a message as the mail system writes it, in UTF-8 source form, with placeholders:

- `{{RCPT}}` the address we sent to, `{{VERP}}` our envelope sender (`bounces+TOKEN@BOUNCE_DOMAIN`),
  `{{TOKEN}}`, `{{ENVID}}`, `{{MSGID}}` (our Message-ID without brackets), `{{DATE}}`;
- `{{2047 CHARSET B|Q TEXT}}` an RFC 2047 encoded word of TEXT in CHARSET (Chinese subjects);
- `{{LONG N}}` one run of N characters (lines over 998 octets);
- a body between `%%BEGIN charset=CHARSET cte=base64|quoted-printable|7bit|8bit` and `%%END` is
  encoded in that charset and transfer encoding after the placeholders are filled (so GBK,
  GB18030, Shift_JIS and ISO-2022-JP parts carry the attempt's address);
- `%%BYTES HEX%%` raw bytes.

`expected.csv` says what each message must become (see docs/delivery.md, "Every kind of message").
"""

from __future__ import annotations

import base64
import csv
import quopri
import re
from dataclasses import dataclass
from email.header import Header
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounces"

_BLOCK_RE = re.compile(r"%%BEGIN charset=(\S+) cte=(\S+)\n(.*?)%%END\n", re.S)
_2047_RE = re.compile(r"\{\{2047 (\S+) ([BQ]) (.*?)\}\}")
_LONG_RE = re.compile(r"\{\{LONG (\d+)\}\}")
_BYTES_RE = re.compile(r"%%BYTES ([0-9a-f]+)%%\n?")


@dataclass(frozen=True)
class Case:
    file: str
    family: str
    kind: str  # hard, soft, delay, confirm, late, mismatch, noconfirm, auto, abandoned, challenge, complaint, junk, unmatched
    delivery: str  # the delivery's status afterwards
    outcome: str  # the attempt's outcome afterwards ("" = none)
    work_item: str  # reason of the work item that must exist ("" = none)
    contact: str  # contact record that must exist: confirmed, reopened, auto_reply, complaint ("" = none new)
    diagnostic: str  # must appear in the work item's summary
    quarantined: bool
    setup: str  # "", relayed / delivered (confirmed first), attempt2 (the resend), badtoken (token lost)

    @property
    def hard(self) -> bool:
        return self.kind == "hard"


def cases() -> list[Case]:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as f:
        return [
            Case(**{**row, "quarantined": row["quarantined"] == "yes"})  # type: ignore[arg-type]
            for row in csv.DictReader(f)
        ]


def _encode_block(match: re.Match) -> bytes:
    charset, cte, body = match.group(1), match.group(2), match.group(3)
    data = body.replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        data = base64.encodebytes(data)
    elif cte == "quoted-printable":
        data = quopri.encodestring(data)
    # 7bit (ISO-2022-JP is 7-bit already) and 8bit: the bytes as they are
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def render(name: str, *, rcpt: str, verp: str, token: str, envid: str, message_id: str,
           date: str = "Wed, 15 Jan 2031 10:20:30 +0800") -> bytes:
    """The message as it arrives over SMTP for this attempt (CRLF line ends)."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    raw_bytes = _BYTES_RE.search(text)
    if raw_bytes:
        return bytes.fromhex(raw_bytes.group(1))
    values = {"RCPT": rcpt, "VERP": verp, "TOKEN": token, "ENVID": envid, "DATE": date,
              "MSGID": message_id.strip("<>")}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    text = _LONG_RE.sub(lambda m: ("x" * 9 + " ") * (int(m.group(1)) // 10) + "end", text)
    text = _2047_RE.sub(lambda m: Header(m.group(3), m.group(1)).encode() if m.group(2) == "B"
                        else Header(m.group(3), m.group(1)).encode().replace("?b?", "?q?"), text)
    out, pos = bytearray(), 0
    for match in _BLOCK_RE.finditer(text):
        out += _crlf(text[pos : match.start()]) + _encode_block(match)
        pos = match.end()
    return bytes(out + _crlf(text[pos:]))
