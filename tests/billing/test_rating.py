"""Rating, late fees and installments: pure functions, amounts worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from console.billing import rating
from console.billing.settings import default_billing_settings
from console.billing.tariffs import sample_tariffs

VERSIONS = [
    rating.TariffVersion(t["code"], date.fromisoformat(t["effective_from"]), t["kind"], t["rates"],
                         D(t["demand_rate"]) if t.get("demand_rate") else None)
    for t in sample_tariffs()
]

DEFAULTS = default_billing_settings()


def tariff(code: str) -> rating.TariffVersion:
    return rating.tariff_in_force(VERSIONS, code, date(2026, 11, 30))


def used(total, peak=None, valley=None, demand=None):  # noqa: ANN001, ANN201
    prev = rating.Read(date(2026, 10, 10), D("1000"), D("300") if peak else None, D("200") if valley else None)
    cur = rating.Read(date(2026, 11, 10), D("1000") + D(total), D("300") + D(peak) if peak else None,
                      D("200") + D(valley) if valley else None, D(demand) if demand else None)
    return rating.consumption(prev, [cur])


def bands(rated: rating.Rated) -> dict[str, tuple[str, str]]:
    return {b["band"]: (b["quantity"], b["amount"]) for b in rated.breakdown}


def test_sample_tariffs_are_marked_as_samples():
    assert all("示例" in t["name"] and "SAMPLE" in t["name_en"] for t in sample_tariffs())
    assert {t["code"] for t in sample_tariffs()} == {"RES", "RES-TOU", "COM", "IND"}


@pytest.mark.parametrize(
    ("kwh", "expected", "parts"),
    [
        # 200 x 0.5283 = 105.66
        ("200", "105.66", {"tier1": ("200.00", "105.66")}),
        # 230 x 0.5283 = 121.509 -> 121.51; 170 x 0.5783 = 98.311 -> 98.31
        ("400", "219.82", {"tier1": ("230.00", "121.51"), "tier2": ("170.00", "98.31")}),
        # + 100 x 0.8283 = 82.83
        ("500", "302.65", {"tier1": ("230.00", "121.51"), "tier2": ("170.00", "98.31"), "tier3": ("100.00", "82.83")}),
        ("0", "0.00", {}),
    ],
)
def test_residential_tiers_per_monthly_bill(kwh, expected, parts):
    rated = rating.rate(tariff("RES"), used(kwh))
    assert rated.amount == D(expected)
    assert bands(rated) == parts


def test_residential_time_of_use_flat_counts_as_peak():
    # 300 kWh, 100 of them valley: 200 x 0.5583 = 111.66; 100 x 0.3583 = 35.83
    rated = rating.rate(tariff("RES-TOU"), used("300", peak="120", valley="100"))
    assert bands(rated) == {"peak": ("200.00", "111.66"), "valley": ("100.00", "35.83")}
    assert rated.amount == D("147.49")


def test_commercial_three_time_bands():
    # 1000 kWh: peak 400 x 1.0697 = 427.88; flat 350 x 0.6418 = 224.63; valley 250 x 0.2939 = 73.475 -> 73.48
    rated = rating.rate(tariff("COM"), used("1000", peak="400", valley="250"))
    assert bands(rated) == {"peak": ("400.00", "427.88"), "flat": ("350.00", "224.63"), "valley": ("250.00", "73.48")}
    assert rated.amount == D("725.99")


def test_industrial_adds_the_demand_charge():
    # the commercial energy 725.99 + 120 kW x 40.00 = 4,800.00
    rated = rating.rate(tariff("IND"), used("1000", peak="400", valley="250", demand="120"))
    assert bands(rated)["demand"] == ("120.00", "4800.00")
    assert rated.amount == D("5525.99")


def test_reads_without_registers_are_all_flat_for_commercial():
    rated = rating.rate(tariff("COM"), used("100"))
    assert bands(rated) == {"flat": ("100.00", "64.18")}


def test_first_read_is_the_baseline_and_a_meter_change_starts_a_new_one():
    only = rating.consumption(None, [rating.Read(date(2026, 11, 3), D("500"))])
    assert only is None
    two = rating.consumption(None, [rating.Read(date(2026, 11, 3), D("500")), rating.Read(date(2026, 11, 20), D("650"))])
    assert two.total == D("150")
    changed = rating.consumption(
        rating.Read(date(2026, 10, 10), D("9000")),
        [rating.Read(date(2026, 11, 2), D("12"), meter_change=True), rating.Read(date(2026, 11, 10), D("112"))],
    )
    assert changed.total == D("100") and changed.meter_changed


def test_tariff_version_in_force_on_the_read_date():
    newer = rating.TariffVersion("RES", date(2027, 1, 1), "tiered", {"tiers": [[None, "0.6000"]]})
    versions = [*VERSIONS, newer]
    assert rating.tariff_in_force(versions, "RES", date(2026, 12, 31)).effective_from == date(2020, 1, 1)
    assert rating.tariff_in_force(versions, "RES", date(2027, 1, 1)) is newer
    assert rating.tariff_in_force(versions, "NOPE", date(2027, 1, 1)) is None


def test_payments_settle_the_oldest_bill_first():
    sept = rating.PastBill("S", date(2026, 9, 30), date(2026, 9, 25), D("100.00"))
    octo = rating.PastBill("O", date(2026, 10, 31), date(2026, 10, 25), D("80.00"))
    # 180 billed, 120 paid: the September bill is settled, 60 of October's remain
    assert rating.unpaid_by_bill([sept, octo], D("60.00")) == [(octo, D("60.00"))]
    assert rating.unpaid_by_bill([sept, octo], D("150.00")) == [(sept, D("70.00")), (octo, D("80.00"))]
    assert rating.unpaid_by_bill([sept, octo], D("0.00")) == []


@pytest.mark.parametrize(
    ("customer_type", "due", "bill_date", "expected"),
    [
        # residential 0.1 %/day: 100 x 0.001 x 36 days = 3.60
        ("residential", date(2026, 10, 25), date(2026, 11, 30), "3.60"),
        # other customers, arrears of the current year 0.2 %/day: 100 x 0.002 x 36 = 7.20
        ("commercial", date(2026, 10, 25), date(2026, 11, 30), "7.20"),
        # earlier year 0.3 %/day: 100 x 0.003 x 42 days (2025-12-20 .. 2026-01-31) = 12.60
        ("industrial", date(2025, 12, 20), date(2026, 1, 31), "12.60"),
        # not overdue yet
        ("commercial", date(2026, 12, 5), date(2026, 11, 30), None),
    ],
)
def test_late_fee_rates_by_customer_and_year(customer_type, due, bill_date, expected):
    past = [rating.PastBill("B1", date(due.year, due.month, 1), due, D("100.00"))]
    fees = rating.late_fees(customer_type, past, D("100.00"), bill_date, None, DEFAULTS)
    if expected is None:
        assert fees == []
    else:
        assert [f["amount"] for f in fees] == [expected]


def test_late_fee_days_are_not_charged_twice():
    older = rating.PastBill("S", date(2026, 9, 30), date(2026, 9, 25), D("50.00"))
    latest = rating.PastBill("O", date(2026, 10, 31), date(2026, 10, 25), D("50.00"))
    fees = rating.late_fees("residential", [older, latest], D("100.00"), date(2026, 11, 30), date(2026, 10, 31),
                            DEFAULTS)
    # September's bill was charged up to 10-31 already: 30 more days; October's from its due date: 36 days
    assert [(f["bill_no"], f["days"], f["amount"]) for f in fees] == [("S", 30, "1.50"), ("O", 36, "1.80")]


def test_installments_add_up_to_the_total():
    parts = [rating.installment_due(D("1000.00"), 3, "2026-10", p) for p in ("2026-10", "2026-11", "2026-12")]
    assert [p["amount"] for p in parts] == [D("333.33"), D("333.33"), D("333.34")]
    assert [p["remaining"] for p in parts] == [D("666.67"), D("333.34"), D("0.00")]
    assert rating.installment_due(D("1000.00"), 3, "2026-10", "2026-09") is None
    assert rating.installment_due(D("1000.00"), 3, "2026-10", "2027-01") is None
    assert rating.installment_due(D("100.00"), 2, "2026-12", "2027-01")["number"] == 2
