"""Fixtures in flaskr's shape, on real parts: SQLite or PostgreSQL (TEST_DATABASE_URL), a real Redis.

Each test runs inside an outer transaction that is rolled back; code under test may commit (its
commits become savepoints). Tests that need other processes to see their data use `committed_app`.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

_INSTANCE = Path(tempfile.mkdtemp(prefix="billpost-test-"))
os.environ.setdefault("BILLPOST_INSTANCE", str(_INSTANCE))

from console import create_app  # noqa: E402
from console.audit import Actor  # noqa: E402
from console.db import Base, make_engine  # noqa: E402
from console.models import Customer, Recipient, ServicePoint  # noqa: E402
from console.staff.services import create_user  # noqa: E402

# One definition of the browser fixtures for the whole suite (a session-scoped Playwright must not
# be started twice: importing the fixtures into two conftests would make two of them).
pytest_plugins = ["tests.browser_fixtures"]

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_INSTANCE / 'test.db'}"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"


def _reset_schema(engine) -> None:  # noqa: ANN001
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(scope="session")
def engine():
    engine = make_engine(TEST_DATABASE_URL)
    _reset_schema(engine)
    from console.migrations import upgrade

    # The schema comes from the migrations, so the suite proves them on both databases.
    app = create_app({"TESTING": True, "ENGINE": engine})
    upgrade(app)
    yield engine
    engine.dispose()


def _base_config(engine) -> dict:  # noqa: ANN001
    return {
        "TESTING": True,
        "ENGINE": engine,
        "WTF_CSRF_ENABLED": False,
        "REDIS_URL": TEST_REDIS_URL,
        "RATELIMIT_STORAGE_URI": "memory://",
    }


@pytest.fixture
def app(engine, request):
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    config = _base_config(engine) | {"SESSION_FACTORY": factory}
    config.update(getattr(request, "param", None) or {})
    app = create_app(config)
    from jobs.context import use_app

    use_app(app)
    yield app
    use_app(None)
    outer.rollback()
    connection.close()


@pytest.fixture
def committed_app(engine):
    """An app whose commits are real, for tests where other processes read the data; cleaned after."""
    app = create_app(_base_config(engine))
    from jobs.context import use_app

    use_app(app)
    yield app
    use_app(None)
    _truncate_all(engine)


def _truncate_all(engine) -> None:  # noqa: ANN001
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 (table names from metadata)


@pytest.fixture
def db(app) -> Iterator[Session]:
    """A session of the test's own. No app context is held open, so each request gets its own."""
    session = app.extensions["billpost.session_factory"]()
    yield session
    session.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def redis_conn(app):
    from redis import Redis

    conn = Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    app.extensions["billpost.redis"] = conn
    yield conn
    conn.flushdb()


_counter = itertools.count(1)


@pytest.fixture
def make_user(db):
    def _make(*roles: str, username: str | None = None, **fields):  # noqa: ANN202
        user = create_user(db, username or f"user{next(_counter)}", PASSWORD, list(roles), Actor.system())
        for key, value in fields.items():
            setattr(user, key, value)
        db.commit()
        return user

    return _make


@pytest.fixture
def login_as(client, make_user):
    """Sign the test client in as a new user holding `roles`; returns the user."""

    def _login(*roles: str, **fields):  # noqa: ANN202
        user = make_user(*roles, **fields)
        response = client.post("/login", data={"username": user.username, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return _login


@pytest.fixture
def make_customer(db):
    """A customer with one service point by default; keyword arguments override any column."""

    def _make(points: int = 1, recipients: list[dict] | None = None, **fields) -> Customer:  # noqa: ANN001
        n = next(_counter)
        values = {
            "account_no": f"T{n:09d}",
            "name": f"测试客户{n}",
            "customer_type": "residential",
            "email": f"customer{n}@customers.test",
            "phone": f"1380000{n:04d}",
            "postal_address": f"苏州市姑苏区人民路{n}号",
            "postal_code": "215000",
            "wants_ebill": True,
            "channel_portal": True,
            "channel_email": True,
            "channel_paper": False,
        } | fields
        customer = Customer(**values)
        db.add(customer)
        db.flush()
        for i in range(points):
            db.add(
                ServicePoint(
                    customer_id=customer.id,
                    point_no=f"P{n:09d}{i:02d}",
                    address=f"苏州市姑苏区人民路{n}号{i + 1}单元",
                    meter_no=f"M{n:09d}{i:02d}",
                    tariff_code={"residential": "RES", "commercial": "COM", "industrial": "IND"}[
                        values["customer_type"]
                    ],
                    read_day=10 + i % 15,
                )
            )
        for rec in recipients or []:
            db.add(Recipient(customer_id=customer.id, **rec))
        db.commit()
        return customer

    return _make


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    """Browser, Postfix and wrk tests are skipped with a reason when their part is missing locally;
    CI installs them all (.ci/run sets BILLPOST_REQUIRE_ALL=1, which turns a missing part into a failure)."""
    import shutil

    need_all = os.environ.get("BILLPOST_REQUIRE_ALL") == "1"
    missing = {
        "browser": shutil.which("chromium") is None,
        "postfix": shutil.which("postfix") is None and not Path("/usr/sbin/postfix").exists(),
        "wrk": shutil.which("wrk") is None,
    }
    if need_all:
        return
    for item in items:
        for marker, absent in missing.items():
            if absent and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"{marker} not installed"))
