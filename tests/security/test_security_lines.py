"""Security lines for audited changes (contact details, passwords, imports, publishing) are written
once, when the unit of work commits; a rolled-back change writes none. Every line of a request
carries its id; messages are one line whatever was typed; ID numbers are masked in any logger."""

from __future__ import annotations

import json
import logging

from console.audit import Actor, record_audit
from console.logs import JsonFormatter, TextFormatter, mask_id_numbers


def _lines(caplog) -> list[logging.LogRecord]:  # noqa: ANN001
    return [r for r in caplog.records if r.name == "billpost.security"]


def test_contact_change_and_publish_are_logged_once_on_commit(db, caplog):
    actor = Actor("rep_li", None, "192.0.2.5")
    with caplog.at_level(logging.INFO, logger="billpost.security"):
        record_audit(db, actor, "customer.email", "customer", 42, before={"email": "a@x.test"}, after={"email": "b@x.test"})
        record_audit(db, actor, "cycle.publish", "cycle", 3)
        record_audit(db, actor, "work_item.claim", "work_item", 9)  # not a security event
        assert _lines(caplog) == []  # nothing before the commit
        db.commit()
    events = [(r.security["event"], r.security["user"], r.security["addr"]) for r in _lines(caplog)]
    assert events == [("contact_changed", "rep_li", "192.0.2.5"), ("publish", "rep_li", "192.0.2.5")]
    assert "b@x.test" not in caplog.text  # the detail names the record, not the new value


def test_a_rolled_back_change_writes_no_line(db, caplog):
    with caplog.at_level(logging.INFO, logger="billpost.security"):
        record_audit(db, Actor("rep_li"), "recipient.address", "recipient", 5)
        db.rollback()
        db.commit()
    assert _lines(caplog) == []


def test_request_lines_carry_the_request_id_and_stay_on_one_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="billpost.security"):
        response = client.post("/login", data={"username": "eve\r\n2026 INFO login user=admin", "password": "x"},
                               headers={"X-Request-ID": "proxy-given-id-123"})
    assert response.headers["X-Request-ID"] == "proxy-given-id-123"
    (record,) = _lines(caplog)
    text = TextFormatter().format(record)
    assert "\n" not in text and "\r" not in text and "[proxy-given-id-123]" in text
    data = json.loads(JsonFormatter().format(record))
    assert data["request_id"] == "proxy-given-id-123" and data["event"] == "login_failed"
    assert data["user"] == "eve\\r\\n2026 INFO login user=admin"


def test_a_forged_request_id_is_replaced(client):
    response = client.get("/login", headers={"X-Request-ID": "bad id with spaces"})
    assert response.headers["X-Request-ID"] != "bad id with spaces" and len(response.headers["X-Request-ID"]) == 32


def test_id_numbers_are_masked_in_any_message():
    assert mask_id_numbers("id 32050219900101123X and 320502900101123 but not 1234567890123456789") == (
        "id 320502********123X and 320502*****1123 but not 1234567890123456789"
    )


def test_a_request_ids_run_of_digits_is_not_taken_for_an_id_number():
    """A request id is random hex: one in a few thousand holds 15 digits in a row (seen in CI)."""
    assert mask_id_numbers("request 3c71478bc3a448958012345472bae81f") == "request 3c71478bc3a448958012345472bae81f"
    assert mask_id_numbers("身份证110101199003071234号") == "身份证110101********1234号"
