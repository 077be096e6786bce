"""Chinese first: every string marked for translation in code and templates has a Chinese translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = DEFAULT_KEYWORDS | {"_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


def _marked_strings() -> set[str]:
    found = set()
    for path in (ROOT / "console", ROOT / "templates", ROOT / "jobs"):
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(path), method_map=[("**.py", "python"), ("**.html", "jinja2")], keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def _translated() -> set[str]:
    done = set()
    for po in ROOT.glob("console/**/translations/zh/LC_MESSAGES/messages.po"):
        with po.open("rb") as f:
            for message in read_po(f):
                if message.id and message.string:
                    done.add(message.id if isinstance(message.id, str) else message.id[0])
    return done


def test_every_marked_string_has_a_chinese_translation():
    missing = sorted(_marked_strings() - _translated())
    assert not missing, "add these to a console/<domain>/translations/zh/LC_MESSAGES/messages.po:\n" + "\n".join(
        missing
    )


def test_no_two_catalogs_translate_one_string_differently():
    """The domain catalogs are merged into one: a string translated twice would show only one of them."""
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in sorted(ROOT.glob("console/**/translations/zh/LC_MESSAGES/messages.po")):
        with po.open("rb") as f:
            for message in read_po(f):
                if not (message.id and message.string) or not isinstance(message.id, str):
                    continue
                if message.id in seen and seen[message.id][0] != message.string:
                    clashes.append(f"{message.id!r}: {seen[message.id][1]} {seen[message.id][0]!r} vs {po} {message.string!r}")
                seen.setdefault(message.id, (message.string, str(po.relative_to(ROOT))))
    assert not clashes, "\n".join(clashes)
