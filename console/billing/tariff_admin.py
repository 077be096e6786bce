"""Tariff versions on the admin's screen: list, one version, a new version loaded from a file.

A version is never edited: a change of price is a new version with a later effective date. A new
version may not take effect on or before the last read date already billed under its code, so it
can never change which version an issued bill was rated with (each electricity entry records its
version: `details.tariff`, `details.tariff_from`).

The file is one JSON object in the shape of sample_tariffs.json's entries, without the date (the
date is chosen on the form):
    {"code": "RES", "name": "…", "kind": "tiered", "rates": {"tiers": [["230", "0.5283"], [null, "0.8283"]]}}
    {"code": "COM", "name": "…", "kind": "time_of_use", "rates": {"peak": "1.06", "flat": "0.64", "valley": "0.29"},
     "demand_rate": "40.00"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.models.billing import TARIFF_KINDS, LedgerEntry, Tariff
from console.models.customers import ServicePoint

MAX_FILE_BYTES = 256 * 1024
TOU_BANDS = ("peak", "flat", "valley")


class TariffError(ValueError):
    """`code` names the problem (labels of the admin screen), `params` fill its sentence."""

    def __init__(self, problem: str, **params: object) -> None:
        super().__init__(problem)
        self.code, self.params = problem, params


@dataclass(frozen=True)
class VersionRow:
    tariff: Tariff
    until: date | None  # the day before the next version takes effect
    billed_entries: int  # electricity entries on bills rated with this version


def _decimal(value: object, *, allow_none: bool = False) -> Decimal | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str | int):
        raise TariffError("bad_number", value=str(value))
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TariffError("bad_number", value=str(value)) from None
    if not number.is_finite() or number < 0:
        raise TariffError("bad_number", value=str(value))
    return number


def parse_file(data: bytes) -> dict:
    """The version described by an uploaded file, validated; TariffError on the first problem."""
    if len(data) > MAX_FILE_BYTES:
        raise TariffError("too_large")
    try:
        item = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TariffError("not_json") from None
    if not isinstance(item, dict):
        raise TariffError("not_json")
    code = str(item.get("code") or "").strip()
    name = str(item.get("name") or "").strip()
    if not code or len(code) > 16:
        raise TariffError("bad_code")
    if not name or len(name) > 100:
        raise TariffError("bad_name")
    kind = item.get("kind")
    if kind not in TARIFF_KINDS:
        raise TariffError("bad_kind", kind=str(kind))
    rates = item.get("rates")
    if not isinstance(rates, dict):
        raise TariffError("bad_rates")
    if kind == "tiered":
        tiers = rates.get("tiers")
        if not isinstance(tiers, list) or not tiers or not all(isinstance(t, list) and len(t) == 2 for t in tiers):
            raise TariffError("bad_rates")
        for position, (limit, rate) in enumerate(tiers):
            last = position == len(tiers) - 1
            if (limit is None) != last:
                raise TariffError("bad_tiers")
            if limit is not None and _decimal(limit) <= 0:
                raise TariffError("bad_tiers")
            _decimal(rate)
        clean_rates = {"tiers": [[t[0] if t[0] is None else str(t[0]), str(t[1])] for t in tiers]}
    else:
        if set(rates) != set(TOU_BANDS):
            raise TariffError("bad_rates")
        clean_rates = {band: str(_decimal(rates[band])) for band in TOU_BANDS}
    demand = _decimal(item.get("demand_rate"), allow_none=True)
    return {"code": code, "name": name, "kind": kind, "rates": clean_rates, "demand_rate": demand}


def last_billed_read(session: Session, code: str) -> date | None:
    """The latest read date billed under `code` (electricity entries on bills of its points)."""
    return session.scalar(
        select(func.max(LedgerEntry.entry_date))
        .join(ServicePoint, ServicePoint.id == LedgerEntry.service_point_id)
        .where(LedgerEntry.kind == "electricity", LedgerEntry.bill_id.is_not(None), ServicePoint.tariff_code == code)
    )


def load_version(session: Session, data: bytes, effective_from: date, actor: Actor) -> Tariff:
    """Validate the file and add it as a new version from `effective_from`. Audited; flushes."""
    item = parse_file(data)
    if session.scalar(select(Tariff.id).where(Tariff.code == item["code"], Tariff.effective_from == effective_from)):
        raise TariffError("exists", code=item["code"], date=effective_from.isoformat())
    billed = last_billed_read(session, item["code"])
    if billed is not None and effective_from <= billed:
        raise TariffError("billed", code=item["code"], date=billed.isoformat())
    tariff = Tariff(effective_from=effective_from, sample=False, **item)
    session.add(tariff)
    session.flush()
    record_audit(session, actor, "tariff.load", "tariff", tariff.id, after={
        "code": tariff.code, "effective_from": effective_from.isoformat(), "kind": tariff.kind,
        "rates": tariff.rates, "demand_rate": str(tariff.demand_rate) if tariff.demand_rate is not None else None,
    })
    return tariff


def versions(session: Session) -> list[VersionRow]:
    """Every version, by code then date, with the day it ends and how many billed entries used it."""
    tariffs = list(session.scalars(select(Tariff).order_by(Tariff.code, Tariff.effective_from)))
    rows = []
    for index, tariff in enumerate(tariffs):
        following = tariffs[index + 1] if index + 1 < len(tariffs) else None
        until = following.effective_from if following is not None and following.code == tariff.code else None
        query = (
            select(func.count(LedgerEntry.id))
            .join(ServicePoint, ServicePoint.id == LedgerEntry.service_point_id)
            .where(
                LedgerEntry.kind == "electricity", LedgerEntry.bill_id.is_not(None),
                ServicePoint.tariff_code == tariff.code, LedgerEntry.entry_date >= tariff.effective_from,
            )
        )
        if until is not None:
            query = query.where(LedgerEntry.entry_date < until)
        rows.append(VersionRow(tariff, until, session.scalar(query) or 0))
    return rows
