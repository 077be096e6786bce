"""The customer-file imports: all or nothing, line-numbered reports, idempotent re-imports."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.csvimport import ImportFailed
from console.imports import IMPORTERS, run_import
from console.models import Customer, Recipient, ServicePoint
from console.paper.rules import PAPER_REFUSED
from console.web.events import import_error_text
from tests.customers.conftest import CANARY_ID, CUSTOMER_HEADER, csv_bytes, customer_line

SETTINGS = {"PAPER_KEY_ACCOUNTS_ONLY": True}


def _run(db, name: str, data: bytes, dry_run: bool = False, settings: dict | None = None):
    summary = run_import(db, name, data, Actor.cli(), dry_run, settings or SETTINGS, "test.csv")
    db.commit()
    return summary


def _errors(db, name: str, data: bytes, settings: dict | None = None) -> list[str]:
    with pytest.raises(ImportFailed) as failed:
        run_import(db, name, data, Actor.cli(), False, settings or SETTINGS)
    db.rollback()
    return [import_error_text(e) for e in failed.value.errors]  # outside a request: in English


def _customer_rows(db) -> list[tuple]:
    cols = [getattr(Customer, c) for c in (
        "account_no", "name", "customer_type", "key_account", "id_number", "phone", "email", "postal_address",
        "postal_code", "wants_ebill", "channel_portal", "channel_email", "channel_paper", "collective_billing")]
    return [tuple(r) for r in db.execute(select(*cols).order_by(Customer.account_no))]


def test_the_customer_file_importers_are_registered(app):
    assert {"customers", "service-points", "recipients"} <= set(IMPORTERS)


def test_import_creates_then_reimport_changes_nothing_then_updates(db, make_user):
    manager = make_user("account_manager", username="am-li")
    lines = [
        customer_line("3200000001"),
        customer_line("3200000002", name="苏州恒信精密机械有限公司", customer_type="industrial", key_account="1",
                      account_manager=manager.username, id_number="", channels="portal;email;paper",
                      collective_billing="1"),
    ]
    data = csv_bytes(CUSTOMER_HEADER, lines)
    summary = _run(db, "customers", data)
    assert (summary.created, summary.updated, summary.unchanged) == (2, 0, 0)
    assert str(summary) == "created 2, updated 0, unchanged 0"
    key = db.scalar(select(Customer).where(Customer.account_no == "3200000002"))
    assert key.account_manager_id == manager.id and key.collective_billing and key.collective_billing_since
    assert key.channels == ["portal", "email", "paper"]

    again = _run(db, "customers", data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)

    lines[0] = customer_line("3200000001", email="new.address@qq.com")
    changed = _run(db, "customers", csv_bytes(CUSTOMER_HEADER, lines))
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 1)
    assert db.scalar(select(Customer.email).where(Customer.account_no == "3200000001")) == "new.address@qq.com"


@pytest.mark.parametrize("encoding", ["utf-8-bom", "gbk", "gb18030"])
def test_same_file_in_utf8_bom_and_gbk_imports_to_identical_rows(db, encoding):
    lines = [customer_line("3200000001"), customer_line("3200000002", name="欧阳娜娜", postal_address="苏州市吴中区东吴北路8号")]
    _run(db, "customers", csv_bytes(CUSTOMER_HEADER, lines, "utf-8"))
    expected = _customer_rows(db)
    again = _run(db, "customers", csv_bytes(CUSTOMER_HEADER, lines, encoding))
    assert again.unchanged == 2 and again.created == again.updated == 0
    assert _customer_rows(db) == expected
    assert expected[1][1] == "欧阳娜娜"


def test_dry_run_writes_nothing(db, counts):
    before = counts()
    summary = run_import(db, "customers", csv_bytes(CUSTOMER_HEADER, [customer_line()]), Actor.cli(), True, SETTINGS)
    db.rollback()
    assert summary.created == 1 and summary.dry_run
    assert str(summary).startswith("dry run, nothing written")
    assert counts() == before


def test_wrong_encoding_is_reported_and_nothing_written(db, counts):
    before = counts()
    data = (CUSTOMER_HEADER + "\n" + customer_line()).encode("utf-16")
    errors = _errors(db, "customers", data)
    assert len(errors) == 1 and errors[0].startswith("line 1: file: not UTF-8 or GBK/GB18030 text")
    assert counts() == before


def test_missing_columns_are_reported(db, counts):
    before = counts()
    header = CUSTOMER_HEADER.replace(",email", "").replace(",channels", "")
    errors = _errors(db, "customers", csv_bytes(header, ["3200000001,x"]))
    assert "line 1: email: missing column" in errors and "line 1: channels: missing column" in errors
    assert counts() == before


def test_every_bad_row_is_reported_by_line_and_column_and_nothing_written(db, counts, make_user):
    make_user("clerk", username="not-a-manager")
    before = counts()
    lines = [
        customer_line("3200000001"),
        customer_line("3200000002", email="not-an-address"),
        customer_line("3200000003", id_number="320502199001011235"),  # wrong check digit
        customer_line("3200000001"),  # duplicate key
        customer_line("3200000005", collective_billing="1"),
        customer_line("3200000006", account_manager="not-a-manager"),
        customer_line("3200000007", wants_ebill="yes"),
        customer_line("3200000008", channels="portal;fax"),
        customer_line("3200000009", channels="paper", wants_ebill="0"),
    ]
    errors = _errors(db, "customers", csv_bytes(CUSTOMER_HEADER, lines))
    assert errors[0].startswith("line 3: email: not a valid e-mail address")
    assert "line 4: id_number: ID number: wrong check digit" in errors
    assert "line 5: account_no: duplicate of line 2" in errors
    assert "line 6: collective_billing: only for key accounts" in errors
    assert "line 7: account_manager: not-a-manager: no staff user with the account_manager role" in errors
    assert "line 8: wants_ebill: must be 1 or 0" in errors
    assert any(e.startswith("line 9: channels: unknown fax") for e in errors)
    assert f"line 10: channels: {PAPER_REFUSED._args[0]}" in errors
    assert counts() == before


def test_paper_for_a_non_key_account_is_allowed_when_the_rule_is_off(db):
    data = csv_bytes(CUSTOMER_HEADER, [customer_line(channels="paper;portal")])
    assert _run(db, "customers", data, settings={"PAPER_KEY_ACCOUNTS_ONLY": False}).created == 1


def test_id_numbers_fifteen_digits_and_x_check_digit(db):
    lines = [customer_line("3200000001", id_number="320502900101123"),
             customer_line("3200000002", id_number="11010519491231002x")]
    _run(db, "customers", csv_bytes(CUSTOMER_HEADER, lines))
    assert db.scalar(select(Customer.id_number).where(Customer.account_no == "3200000002")) == "11010519491231002X"


POINT_HEADER = "account_no,point_no,address,meter_no,tariff,read_day"
RECIPIENT_HEADER = "account_no,name,relationship,channel,address,copies"


def test_service_points_and_recipients_upsert(db, make_customer):
    customer = make_customer(points=0, account_no="3200000100")
    key = make_customer(points=0, account_no="3200000200", key_account=True, customer_type="commercial")
    points = csv_bytes(POINT_HEADER, [
        "3200000100,P1,苏州市姑苏区人民路1号,M1,RES,12",
        "3200000200,P2,苏州市工业园区星海街9号,M2,com,28",
    ])
    assert (_run(db, "service-points", points).created) == 2
    assert _run(db, "service-points", points).unchanged == 2
    assert db.scalar(select(ServicePoint.tariff_code).where(ServicePoint.point_no == "P2")) == "COM"
    recipients = csv_bytes(RECIPIENT_HEADER, [
        "3200000100,李娜,tenant,email,Li.Na@QQ.com,1",
        "3200000200,财务部,finance,paper,苏州市工业园区星海街9号,2",
        "3200000200,财务部,finance,email,caiwu@hengxin.com,",
    ])
    assert _run(db, "recipients", recipients).created == 3
    assert _run(db, "recipients", recipients).unchanged == 3
    emails = db.scalars(select(Recipient.address).where(Recipient.customer_id == customer.id)).all()
    assert emails == ["Li.Na@qq.com"]
    assert db.scalar(select(Recipient.copies).where(Recipient.customer_id == key.id, Recipient.channel == "paper")) == 2


def test_unknown_account_and_duplicates_in_points_and_recipients(db, counts, make_customer):
    make_customer(points=0, account_no="3200000100")
    before = counts()
    points = csv_bytes(POINT_HEADER, [
        "3200000100,P1,addr,M1,RES,12",
        "3299999999,P2,addr,M2,RES,12",
        "3200000100,P1,addr,M1,RES,40",
    ])
    errors = _errors(db, "service-points", points)
    assert errors == [
        "line 3: account_no: 3299999999: unknown account",
        "line 4: point_no: duplicate of line 2",
        "line 4: read_day: must be between 1 and 31",
    ]
    recipients = csv_bytes(RECIPIENT_HEADER, [
        "3299999999,李娜,tenant,email,li@qq.com,1",
        "3200000100,王芳,proxy,email,wang@qq.com,1",
        "3200000100,王芳,proxy,email,wang@QQ.COM,1",
        "3200000100,王芳,proxy,paper,苏州市,1",
    ])
    errors = _errors(db, "recipients", recipients)
    assert errors[0] == "line 2: account_no: 3299999999: unknown account"
    assert errors[1] == "line 4: address: duplicate of line 3"
    assert errors[2] == f"line 5: channel: {PAPER_REFUSED._args[0]}"
    assert counts() == before


# The command line ---------------------------------------------------------------------------


def test_cli_exit_codes_and_every_error_printed(runner, db, write_file, counts):
    good = write_file(csv_bytes(CUSTOMER_HEADER, [customer_line("3200000001")]), "good.csv")
    dry = runner.invoke(args=["import", "customers", good, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing written: created 1, updated 0, unchanged 0" in dry.output
    assert db.scalar(select(Customer.id).where(Customer.account_no == "3200000001")) is None

    result = runner.invoke(args=["import", "customers", good])
    assert result.exit_code == 0, result.output
    assert "customers: created 1, updated 0, unchanged 0" in result.output
    assert "unchanged 1" in runner.invoke(args=["import", "customers", good]).output

    before = counts()
    bad = write_file(csv_bytes(CUSTOMER_HEADER, [
        customer_line("3200000002", email="bad@"), customer_line("3200000003", customer_type="farm"),
    ]), "bad.csv")
    failed = runner.invoke(args=["import", "customers", bad])
    assert failed.exit_code == 1
    # in the console's default language (Chinese): the line, the column and the reason
    assert "第 2 行 · email：不是有效的电子邮件地址" in failed.output
    assert "第 3 行 · customer_type：必须是以下之一：residential, commercial, industrial" in failed.output
    assert "2 error(s); nothing written" in failed.output
    assert counts() == before


def test_id_number_never_printed_whole_by_the_import(runner, write_file):
    bad = write_file(csv_bytes(CUSTOMER_HEADER, [customer_line(email="x@")]))
    assert CANARY_ID not in runner.invoke(args=["import", "customers", bad]).output


# The admin page -----------------------------------------------------------------------------


def test_admin_upload_preview_confirm(client, login_as, db, counts):
    login_as("admin")
    page = client.get("/admin/imports")
    assert page.status_code == 200
    for name in IMPORTERS:
        assert f'value="{name}"' in page.get_data(as_text=True)
    before = counts()
    data = csv_bytes(CUSTOMER_HEADER, [customer_line("3200000001"), customer_line("3200000002")])
    preview = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "c.csv")},
                          content_type="multipart/form-data", headers={"HX-Request": "true"})
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<html" not in html
    assert counts() == before  # the preview is a dry run
    assert "3200000002" not in (preview.headers.get("Set-Cookie") or "")  # the file waits server-side
    confirm_url = re.search(r'hx-post="(/admin/imports/[^"]+/confirm)"', html).group(1)
    done = client.post(confirm_url, headers={"HX-Request": "true"})
    assert done.status_code == 200
    assert db.scalar(select(Customer.name).where(Customer.account_no == "3200000002")) == "张伟"
    assert client.post(confirm_url).status_code == 404  # used once


def test_admin_preview_lists_errors_with_422(client, login_as, counts):
    login_as("admin")
    before = counts()
    data = csv_bytes(CUSTOMER_HEADER, [customer_line("3200000001", email="nope"), customer_line("3200000001")])
    preview = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "c.csv")},
                          content_type="multipart/form-data")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 422
    # in the reader's language, naming the line and the column; no English sentence on the Chinese page
    assert "第 2 行 · email：不是有效的电子邮件地址" in html and "第 3 行 · account_no：与第 2 行重复" in html
    assert "duplicate" not in html.split('class="import-errors"')[1].replace('data-code="duplicate"', "")
    assert not re.search(r"/admin/imports/[^\"]+/confirm", html)
    assert counts() == before
    english = client.post("/admin/imports?lang=en", data={"name": "customers", "file": (io.BytesIO(data), "c.csv")},
                          content_type="multipart/form-data").get_data(as_text=True)
    assert "line 2: email: not a valid e-mail address" in english and "line 3: account_no: duplicate of line 2" in english


def test_another_admin_cannot_confirm_my_upload(app, client, login_as, make_user):
    login_as("admin")
    data = csv_bytes(CUSTOMER_HEADER, [customer_line()])
    html = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "c.csv")},
                       content_type="multipart/form-data").get_data(as_text=True)
    confirm_url = re.search(r'"(/admin/imports/[^"]+/confirm)"', html).group(1)
    other = app.test_client()
    from tests.conftest import PASSWORD

    other.post("/login", data={"username": make_user("admin").username, "password": PASSWORD})
    assert other.post(confirm_url).status_code == 404


def test_any_registered_importer_gets_a_command_and_the_admin_page(runner, client, login_as, write_file):
    from console.cli import import_group
    from console.csvimport import ImportSummary, RowError
    from console.imports import add_import_commands, register_importer

    seen = {}

    def dummy(session, source, actor, dry_run, settings):  # noqa: ANN001, ANN202
        from console.csvimport import open_source

        with open_source(source) as stream:  # bytes, a path or a file: importers never assume bytes
            data = stream.read()
        seen.update(dry_run=dry_run, actor=actor.label, paper=settings.get("PAPER_KEY_ACCOUNTS_ONLY"))
        if b"bad" in data:
            raise ImportFailed([RowError(3, "amount", "not_amount"), RowError(2, "x", "required")])
        return ImportSummary(created=data.count(b"\n") - 1)

    add_import_commands(import_group)  # already done at app start; registering later still works
    register_importer("dummy-test", "Dummy", dummy)
    try:
        ok = runner.invoke(args=["import", "dummy-test", write_file(b"h\n1\n2\n"), "--dry-run"])
        assert ok.exit_code == 0 and "dummy-test: dry run, nothing written: created 2" in ok.output
        assert seen == {"dry_run": True, "actor": "cli", "paper": True}
        bad = runner.invoke(args=["import", "dummy-test", write_file(b"h\nbad\n")])
        assert bad.exit_code == 1
        # in the console's default language (Chinese), naming line and column
        assert bad.output.index("第 2 行 · x：必填") < bad.output.index("第 3 行 · amount：不是金额")
        login_as("admin")
        assert 'value="dummy-test"' in client.get("/admin/imports").get_data(as_text=True)
    finally:
        IMPORTERS.pop("dummy-test", None)
