"""The skeleton: sign-in, sessions, role guards over every endpoint, migrations, RQ round trip."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from rq import SimpleWorker
from sqlalchemy import select

from console.db import Base
from console.models import ROLES, Bill
from tests.conftest import PASSWORD


def test_login_lands_each_role_on_its_home(app, client, make_user):
    from flask import url_for

    from console.staff.routes import ROLE_HOME

    for role, endpoint in ROLE_HOME:
        user = make_user(role)
        client.post("/login", data={"username": user.username, "password": PASSWORD})
        response = client.get("/")
        with app.test_request_context():
            expected = url_for(endpoint)
        assert response.status_code == 302 and response.headers["Location"].endswith(expected), role
        assert client.get(expected).status_code == 200, role
        client.post("/logout")


def test_wrong_password_is_refused_without_saying_which_part(client, make_user):
    user = make_user("clerk")
    wrong = client.post("/login", data={"username": user.username, "password": "nope-nope-nope"})
    unknown = client.post("/login", data={"username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password" in wrong.get_data(as_text=True) or "用户名或密码" in wrong.get_data(
        as_text=True
    )


def test_session_cookie_is_useless_after_sign_out(app, make_user):
    user = make_user("clerk")
    first = app.test_client()
    first.post("/login", data={"username": user.username, "password": PASSWORD})
    stolen_cookie = first.get_cookie("session").value
    first.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen_cookie)
    assert thief.get("/customers/").status_code == 302


def test_password_change_ends_other_sessions(app, make_user):
    user = make_user("clerk")
    laptop, phone = app.test_client(), app.test_client()
    for c in (laptop, phone):
        c.post("/login", data={"username": user.username, "password": PASSWORD})
    response = laptop.post("/account/password", data={"current": PASSWORD, "new": "a much better one 42"})
    assert response.status_code == 302
    assert laptop.get("/customers/").status_code == 200
    assert phone.get("/customers/").status_code == 302


def test_htmx_request_with_expired_session_gets_hx_redirect(client):
    response = client.get("/customers/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def _staff_blueprint_roles(app):
    for name, bp in app.blueprints.items():
        if hasattr(bp, "allowed_roles"):
            yield name, bp.allowed_roles


def test_every_endpoint_is_public_on_purpose_or_guarded(app):
    """A new route without a guard fails here: it must belong to a guarded blueprint or this list."""
    public = {"static", "auth.login", "auth.logout", "auth.language", "auth.session_token",
              "ops.healthz", "ops.metrics_page"}  # the load balancer's and Prometheus' (own address/token check)
    public_blueprints = {"portal"}  # customers' own pages: their own sign-in, tested in the portal tests
    guarded = dict(_staff_blueprint_roles(app))
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None
        assert rule.endpoint in public or blueprint in guarded or blueprint in public_blueprints, rule.endpoint


def _sample_url(app, rule) -> str:
    values = {arg: 1 for arg in rule.arguments}
    for arg, converter in rule._converters.items():
        if converter.__class__.__name__ in ("UnicodeConverter", "PathConverter"):
            values[arg] = "x"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def test_role_matrix_every_staff_endpoint_refuses_other_roles(app, make_user):
    """Walks app.url_map: each role gets 403 from every guarded endpoint it is not allowed on,
    and an anonymous request never reaches a view (302 to sign-in)."""
    guarded = dict(_staff_blueprint_roles(app))
    clients = {}
    for role in ROLES:
        clients[role] = app.test_client()
        clients[role].post("/login", data={"username": make_user(role).username, "password": PASSWORD})
    checked = 0
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rsplit(".", 1)[0]
        if blueprint not in guarded:
            continue
        url = _sample_url(app, rule)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            anonymous = app.test_client().open(url, method=method)
            assert anonymous.status_code in (302, 401), (rule.endpoint, method)
            for role, signed_in in clients.items():
                if role in guarded[blueprint]:
                    continue
                assert signed_in.open(url, method=method).status_code == 403, (rule.endpoint, method, role)
                checked += 1
    assert checked > 0


def test_security_headers_and_cookie_flags(client, make_user):
    user = make_user("clerk")
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/customers/")
    assert page.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in page.headers["Vary"] and "Cookie" in page.headers["Vary"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("app", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_unsafe_request_without_csrf_token_is_refused(client, make_user):
    user = make_user("admin")
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400


def test_chinese_by_default_english_on_request(client):
    assert "员工登录" in client.get("/login").get_data(as_text=True)
    assert "Staff sign-in" in client.get("/login?lang=en").get_data(as_text=True)


def test_money_is_exact_in_the_database(db, make_customer):
    from datetime import date

    from console.models import Cycle

    customer = make_customer()
    cycle = Cycle(period="2026-11", bill_date=date(2026, 11, 30))
    db.add(cycle)
    db.flush()
    amounts = dict(
        previous_balance=Decimal("1234567.89"),
        payments_total=Decimal("0.01"),
        charges_total=Decimal("0.10"),
        current_balance=Decimal("1234567.98"),
        deposit_held=Decimal("0.00"),
    )
    db.add(
        Bill(
            bill_no="B1", cycle_id=cycle.id, customer_id=customer.id, unit_key="P1", bill_type="regular",
            template="residential_regular", bill_date=date(2026, 11, 30), due_date=date(2026, 12, 15), **amounts,
        )
    )
    db.commit()
    db.expire_all()
    bill = db.scalar(select(Bill).where(Bill.bill_no == "B1"))
    assert bill.previous_balance == Decimal("1234567.89")
    with pytest.raises(Exception, match="more than 2 decimal"):
        bill.charges_total = Decimal("0.001")
        db.flush()


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], "models changed without a migration: " + repr(diff)


def test_job_round_trips_through_real_redis(app, redis_conn):
    from console.queues import get_queue

    queue = get_queue("default", app)
    job = queue.enqueue("jobs.context.ping", "hello")
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished"
    assert job.return_value() == "pong:hello"


def test_a_pooled_connection_closed_under_us_is_replaced_after_idling(engine, monkeypatch):
    """Pooled connections are pinged after sitting idle (not on every checkout): a server restart or
    an idle timeout that closed one costs no failed request."""
    import console.db
    from console.db import make_engine

    own = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        with own.connect() as conn:
            raw = conn.connection.dbapi_connection
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() if own.dialect.name == "postgresql" else None
        if pid is not None:  # the server ends it
            with engine.begin() as admin:
                admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        else:  # SQLite has no server: the connection is closed beneath the pool
            raw.close()
        monkeypatch.setattr(console.db, "PING_AFTER_IDLE_SECONDS", 0.0)
        with own.connect() as conn:
            assert conn.connection.dbapi_connection is not raw
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        own.dispose()
