"""Tariffs kept as data, versioned by effective date. The shipped ones are SAMPLES (sample_tariffs.json)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.billing.rating import TariffVersion
from console.models.billing import Tariff

SAMPLE_FILE = Path(__file__).with_name("sample_tariffs.json")


def sample_tariffs() -> list[dict]:
    return json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))["tariffs"]


def seed_sample_tariffs(session: Session) -> int:
    """Load the sample tariffs (idempotent: versions already there are left alone). Returns rows added."""
    existing = set(session.execute(select(Tariff.code, Tariff.effective_from)).all())
    added = 0
    for item in sample_tariffs():
        effective = date.fromisoformat(item["effective_from"])
        if (item["code"], effective) in existing:
            continue
        demand = item.get("demand_rate")
        session.add(
            Tariff(
                code=item["code"], name=item["name"], name_en=item.get("name_en"), effective_from=effective, kind=item["kind"],
                rates=item["rates"], demand_rate=Decimal(demand) if demand else None, sample=True,
            )
        )
        added += 1
    session.flush()
    return added


def load_versions(session: Session) -> list[TariffVersion]:
    rows = session.execute(select(Tariff)).scalars().all()
    return [
        TariffVersion(t.code, t.effective_from, t.kind, t.rates, t.demand_rate, t.name) for t in rows
    ]
