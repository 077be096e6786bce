"""The grouping of a key account's service points into collective bills (pure function)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.billing.grouping import PinConflict, group_points

NOV = date(2026, 11, 1)


def day(n: int) -> date:
    return NOV + timedelta(days=n - 1)


def test_all_points_read_on_one_day_share_one_bill():
    reads = {f"P{i:02d}": day(10) for i in range(20)}
    assert group_points(reads, 7) == [sorted(reads)]


def test_points_read_every_day_of_the_month_need_four_bills_of_at_most_seven_days():
    reads = {f"P{d:02d}": day(d) for d in range(1, 31)}
    groups = group_points(reads, 7)
    assert groups == [
        [f"P{d:02d}" for d in range(1, 9)],
        [f"P{d:02d}" for d in range(9, 17)],
        [f"P{d:02d}" for d in range(17, 25)],
        [f"P{d:02d}" for d in range(25, 31)],
    ]


def test_a_point_without_a_read_joins_the_group_of_the_earliest_read():
    reads = {"A": day(20), "B": day(3), "C": None, "D": day(4)}
    assert group_points(reads, 7) == [["B", "C", "D"], ["A"]]


def test_nothing_read_at_all_gives_one_group():
    assert group_points({"A": None, "B": None}, 7) == [["A", "B"]]


def test_pins_together_and_apart():
    reads = {"A": day(1), "B": day(2), "C": day(3), "D": day(12)}
    assert group_points(reads, 7) == [["A", "B", "C"], ["D"]]
    # B (day 2) cannot join D (day 12): three bills are the fewest with A and B apart.
    assert group_points(reads, 7, apart=[("A", "B")]) == [["A", "C"], ["B"], ["D"]]
    assert group_points(reads, 11, together=[("A", "D")]) == [["A", "B", "C", "D"]]
    with pytest.raises(PinConflict):
        group_points(reads, 7, together=[("A", "D")])
    with pytest.raises(PinConflict):
        group_points(reads, 7, together=[("A", "B")], apart=[("A", "B")])


def test_ties_are_broken_the_same_way_every_time():
    reads = {"B": day(1), "A": day(8), "C": day(8), "D": day(15)}
    first = group_points(reads, 7)
    assert first == [["A", "B", "C"], ["D"]]
    assert all(group_points(dict(reversed(list(reads.items()))), 7) == first for _ in range(3))


# --- properties ---------------------------------------------------------------------------------

point_reads = st.dictionaries(
    st.sampled_from([f"P{i}" for i in range(12)]),
    st.one_of(st.none(), st.integers(1, 31).map(day)),
    min_size=1,
    max_size=12,
)


def _span_ok(group, reads, window):
    dates = [reads[p] for p in group if reads[p] is not None]
    return not dates or (max(dates) - min(dates)).days <= window


@settings(max_examples=300, deadline=None)
@given(point_reads, st.integers(0, 10))
def test_every_point_billed_exactly_once_and_each_span_within_the_window(reads, window):
    groups = group_points(reads, window)
    flat = [p for g in groups for p in g]
    assert sorted(flat) == sorted(reads)
    assert all(_span_ok(g, reads, window) for g in groups)


def _partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first, *part[i]]] + part[i + 1 :]
        yield [[first], *part]


def _fewest_possible(reads, window, apart=()):
    read_points = [p for p in reads if reads[p] is not None]
    best = len(read_points)
    for part in _partitions(read_points):
        if len(part) < best and all(_span_ok(g, reads, window) for g in part):
            if all(not (a in g and b in g) for g in part for a, b in apart):
                best = len(part)
    return max(best, 1) if reads else 0


small_reads = st.dictionaries(
    st.sampled_from(["A", "B", "C", "D", "E", "F", "G"]), st.integers(1, 31).map(day), min_size=1, max_size=7
)


@settings(max_examples=150, deadline=None)
@given(small_reads, st.integers(0, 10))
def test_no_grouping_with_fewer_groups_exists(reads, window):
    assert len(group_points(reads, window)) == _fewest_possible(reads, window)


@settings(max_examples=150, deadline=None)
@given(small_reads, st.integers(0, 10), st.data())
def test_with_apart_pins_still_fewest_groups_and_pins_hold(reads, window, data):
    points = sorted(reads)
    pairs = [(a, b) for i, a in enumerate(points) for b in points[i + 1 :]]
    apart = data.draw(st.lists(st.sampled_from(pairs), max_size=3, unique=True)) if pairs else []
    groups = group_points(reads, window, apart=apart)
    assert all(not (a in g and b in g) for g in groups for a, b in apart)
    assert all(_span_ok(g, reads, window) for g in groups)
    assert len(groups) == _fewest_possible(reads, window, apart)
