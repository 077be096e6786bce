"""Uploads are streamed to disk with a clear limit (IMPORT_MAX_BYTES): a larger one gets 413 and a
message in the user's language, and nothing is kept; an accepted one is parsed from the file."""

from __future__ import annotations

import io
import re
import tracemalloc
from pathlib import Path

import pytest

HEADER = ("account_no,name,customer_type,key_account,account_manager,id_number,phone,email,postal_address,"
          "postal_code,wants_ebill,channels,collective_billing\r\n")


def _customers_csv(count: int) -> bytes:
    rows = "".join(f"U{i:09d},上传测试客户{i},residential,0,,,13812345678,,,,0,portal,0\r\n" for i in range(count))
    return (HEADER + rows).encode("gbk")


def _uploads(app) -> list[Path]:  # noqa: ANN001
    return sorted((Path(app.config["INSTANCE_PATH"]) / "imports").glob("*.csv"))


@pytest.mark.parametrize("app", [{"IMPORT_MAX_BYTES": 64 * 1024}], indirect=True)
def test_an_upload_over_the_limit_gets_413_in_the_users_language(app, client, login_as):
    login_as("admin")
    before = _uploads(app) if (Path(app.config["INSTANCE_PATH"]) / "imports").exists() else []
    data = _customers_csv(3000)
    assert len(data) > 64 * 1024 * 2
    response = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "big.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert "文件超过上传上限" in response.get_data(as_text=True)
    htmx = client.post("/admin/imports?lang=en", data={"name": "customers", "file": (io.BytesIO(data), "big.csv")},
                       content_type="multipart/form-data", headers={"HX-Request": "true"})
    assert htmx.status_code == 413 and htmx.headers["HX-Retarget"] == "#session-notice"
    assert "larger than 0 MB" not in htmx.get_data(as_text=True)
    after = _uploads(app) if (Path(app.config["INSTANCE_PATH"]) / "imports").exists() else []
    assert after == before  # nothing kept


@pytest.mark.parametrize("app", [{"IMPORT_MAX_BYTES": 200 * 1024}], indirect=True)
def test_a_file_just_over_the_limit_is_refused_while_it_is_copied(app, client, login_as):
    """The body is within the request limit (limit + room for the form), the file part is not."""
    login_as("admin")
    data = _customers_csv(4000)[: 200 * 1024 + 100]
    response = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_an_accepted_upload_is_previewed_from_disk_then_imported(app, client, login_as, db):
    from sqlalchemy import func, select

    from console.models import Customer

    login_as("admin")
    data = _customers_csv(2000)
    tracemalloc.start()
    response = client.post("/admin/imports", data={"name": "customers", "file": (io.BytesIO(data), "ok.csv")},
                           content_type="multipart/form-data")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert response.status_code == 200, response.get_data(as_text=True)
    confirm = re.search(r'hx-post="(/admin/imports/[^"]+/confirm)"', response.get_data(as_text=True)).group(1)
    assert client.post(confirm).status_code == 200
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.account_no.like("U%"))) == 2000
    print(f"upload of {len(data)} bytes: peak traced memory {peak / len(data):.1f}x the file")
