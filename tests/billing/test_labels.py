"""One Chinese label per charge type (issue 15): the bill's line label and the web page's summary label of a
charge type translate alike, no two charge types share a label, and a Chinese label holds no English."""

from __future__ import annotations

import re

from flask_babel import force_locale

from console.web.labels import LABELS


def test_each_charge_type_has_one_chinese_label(app):
    with app.test_request_context(), force_locale("zh"):
        lines = {kind: str(text) for kind, text in LABELS["ledger_kind"].items()}
        summary = {kind: str(text) for kind, text in LABELS["charge_summary"].items()}
    for kind, text in summary.items():
        assert lines[kind] == text, (kind, lines[kind], text)
    assert len(set(lines.values())) == len(lines)
    assert not [text for text in lines.values() if re.search(r"[A-Za-z]", text)]
