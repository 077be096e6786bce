"""Chinese first: every string marked for translation in code and templates has a Chinese translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("console/**.py", "python"), ("templates/**.html", "jinja2"), ("jobs/**.py", "python")]


def _marked_strings() -> set[str]:
    found = set()
    for path in (ROOT / "console", ROOT / "templates", ROOT / "jobs"):
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(path), method_map=[("**.py", "python"), ("**.html", "jinja2")]
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
