"""Demo data: deterministic for a seed, realistic, valid."""

from __future__ import annotations

from sqlalchemy import func, select

from console.customers.demo import DemoGenerator, ensure_demo_data, seed_demo
from console.customers.services import parse_id_number
from console.models import Customer, Recipient, ServicePoint, User


def _customers(seed: int, n: int) -> list:
    generator = DemoGenerator(seed, managers=[7, 8])
    return [generator.customer(i) for i in range(1, n + 1)]


def test_same_seed_same_data_other_seed_other_data():
    first, second = _customers(5, 300), _customers(5, 300)
    def strip(rows: list) -> list:
        return [
            (c | {"created_at": None, "updated_at": None}, [p | {"created_at": None} for p in ps], r)
            for c, ps, r in rows
        ]

    assert strip(first) == strip(second)
    assert strip(_customers(6, 300)) != strip(first)


def test_demo_customers_are_realistic_and_valid():
    rows = _customers(1, 2000)
    types = [c["customer_type"] for c, _p, _r in rows]
    assert types.count("residential") > 0.8 * len(rows)
    assert "commercial" in types and "industrial" in types
    keys = [(c, p) for c, p, _r in rows if c["key_account"]]
    assert 10 <= len(keys) <= 80
    assert all(3 <= len(p) <= 60 and c["account_manager_id"] in (7, 8) for c, p in keys)
    for c, points, _recipients in rows:
        assert c["postal_code"].startswith("2150") and "苏州市" in c["postal_address"]
        if c["id_number"]:
            assert parse_id_number(c["id_number"]) == c["id_number"] and len(c["id_number"]) == 18
        assert not c["collective_billing"] or c["key_account"]
        assert not c["channel_paper"] or c["key_account"]
        tariffs = {"residential": {"RES", "RES-TOU"}, "commercial": {"COM"}, "industrial": {"IND"}}
        assert all(p["tariff_code"] in tariffs[c["customer_type"]] and 1 <= p["read_day"] <= 28 for p in points)
    relations = {r["relationship"] for _c, _p, rs in rows for r in rs}
    assert {"tenant", "landlord", "proxy", "finance"} <= relations
    assert any(r["copies"] == 2 for _c, _p, rs in rows for r in rs)


def test_seed_demo_writes_the_rows(db):
    counts = seed_demo(db.connection(), 120, seed=3)
    assert db.scalar(select(func.count()).select_from(Customer)) == counts["customers"] == 120
    assert db.scalar(select(func.count()).select_from(ServicePoint)) == counts["service_points"] >= 120
    assert db.scalar(select(func.count()).select_from(Recipient)) == counts["recipients"]
    assert db.scalar(select(func.count()).select_from(User).where(User.username.in_(["clerk", "admin"]))) == 2


def test_ensure_demo_data_seeds_only_an_empty_database(committed_app):
    lines = ensure_demo_data(committed_app, 40)
    assert lines[0].startswith("Demo data: 40 customers")
    assert any("demo-admin-2026" in line for line in lines)
    again = ensure_demo_data(committed_app, 40)
    assert not any(line.startswith("Demo data") for line in again) and any("admin" in line for line in again)
    engine = committed_app.extensions["billpost.engine"]
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Customer.__table__)) == 40
