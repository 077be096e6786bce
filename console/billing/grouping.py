"""Collective bills: which of a key account's service points share a bill (issue 4).

Pure functions, no database. A group's read dates span at most `window` days (the earliest and the
latest read date of its points are at most `window` days apart); we use the fewest groups possible.

Without pins the greedy sweep is optimal: sort the reads, open a group at the earliest ungrouped
read date d, put every point read on or before d + window into it, repeat (the classic interval
point-cover argument: any grouping needs a group containing the earliest read, and no group that
contains it can reach further than d + window).

Ties and determinism: points are ordered by (read date, point number); groups are numbered in
order of their first read date; the same reads and pins always give the same groups.

Pins (set by the account manager): `together` sets must share a group (they are merged into one
unit first, whose span is its own read range); `apart` pairs must not. With apart pins the
greedy may not be optimal, so an exact search over the number of groups is done (small: a key
account has at most a few dozen points), bounded by a step budget after which the greedy answer
with conflicts split out is used.

Points with no read this cycle join the group holding the earliest read (or one group of their
own when nothing at all was read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date


class PinConflict(ValueError):
    """Pins that cannot all hold (a together-set spanning more than the window, or apart inside together)."""


@dataclass(frozen=True)
class _Unit:
    points: tuple[str, ...]  # sorted point numbers
    first: date | None
    last: date | None


def group_points(
    reads: Mapping[str, date | None],
    window: int,
    together: Iterable[Iterable[str]] = (),
    apart: Iterable[tuple[str, str]] = (),
    search_budget: int = 200_000,
) -> list[list[str]]:
    """Groups of point numbers, each sorted, in order of their earliest read date."""
    if window < 0:
        raise ValueError("window must be ≥ 0 days")
    units = _merge_together(reads, together)
    unit_of = {p: i for i, u in enumerate(units) for p in u.points}
    conflicts: set[tuple[int, int]] = set()
    for a, b in apart:
        if a not in unit_of or b not in unit_of:
            continue
        ia, ib = unit_of[a], unit_of[b]
        if ia == ib:
            raise PinConflict(f"{a} and {b} are pinned both together and apart")
        conflicts.add((min(ia, ib), max(ia, ib)))

    read_units = sorted((i for i, u in enumerate(units) if u.first is not None), key=lambda i: _key(units[i]))
    unread = [i for i, u in enumerate(units) if u.first is None]
    if conflicts:
        groups = _exact(units, read_units, conflicts, window, search_budget)
    else:
        groups = _greedy(units, read_units, window)
    if unread:
        if groups:
            first = groups[0]
            for i in sorted(unread, key=lambda i: units[i].points):
                target = first if all(_pair(i, j) not in conflicts for j in first) else None
                if target is None:
                    target = next((g for g in groups if all(_pair(i, j) not in conflicts for j in g)), None)
                if target is None:
                    groups.append([i])
                else:
                    target.append(i)
        else:
            groups = [sorted(unread, key=lambda i: units[i].points)]
    return [sorted(p for i in g for p in units[i].points) for g in groups]


def _key(unit: _Unit) -> tuple:
    return (unit.first, unit.points)


def _pair(i: int, j: int) -> tuple[int, int]:
    return (min(i, j), max(i, j))


def _merge_together(reads: Mapping[str, date | None], together: Iterable[Iterable[str]]) -> list[_Unit]:
    parent = {p: p for p in reads}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for pin in together:
        members = [p for p in pin if p in parent]
        for other in members[1:]:
            ra, rb = find(members[0]), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    sets: dict[str, list[str]] = {}
    for p in reads:
        sets.setdefault(find(p), []).append(p)
    units = []
    for members in sets.values():
        dates = [reads[p] for p in members if reads[p] is not None]
        units.append(_Unit(tuple(sorted(members)), min(dates) if dates else None, max(dates) if dates else None))
    units.sort(key=lambda u: u.points)
    return units


def _greedy(units: list[_Unit], order: list[int], window: int) -> list[list[int]]:
    """Optimal for units without apart pins; a together-unit wider than the window stands alone."""
    groups: list[list[int]] = []
    start: date | None = None
    for i in order:
        u = units[i]
        if groups and start is not None and (u.last - start).days <= window:
            groups[-1].append(i)
        else:
            groups.append([i])
            start = u.first
    for u in (units[i] for i in order):
        if (u.last - u.first).days > window:
            raise PinConflict(f"points pinned together {', '.join(u.points)} were read more than {window} days apart")
    return groups


def _exact(
    units: list[_Unit], order: list[int], conflicts: set[tuple[int, int]], window: int, budget: int
) -> list[list[int]]:
    """Fewest groups respecting apart pins, by trying k = lower bound, lower bound + 1, ..."""
    for u in (units[i] for i in order):
        if (u.last - u.first).days > window:
            raise PinConflict(f"points pinned together {', '.join(u.points)} were read more than {window} days apart")
    lower = len(_greedy(units, order, window)) if order else 0
    steps = [0]

    def place(pos: int, groups: list[list[int]], k: int) -> list[list[int]] | None:
        if pos == len(order):
            return [list(g) for g in groups]
        steps[0] += 1
        if steps[0] > budget:
            return None
        i = order[pos]
        u = units[i]
        for g in groups:
            g_first = units[g[0]].first  # order is by first date, so g[0] has the group's earliest read
            if (max(u.last, max(units[j].last for j in g)) - g_first).days > window:
                continue
            if any(_pair(i, j) in conflicts for j in g):
                continue
            g.append(i)
            found = place(pos + 1, groups, k)
            if found is not None:
                return found
            g.pop()
        if len(groups) < k:
            groups.append([i])
            found = place(pos + 1, groups, k)
            if found is not None:
                return found
            groups.pop()
        return None

    for k in range(max(lower, 1), len(order) + 1):
        found = place(0, [], k)
        if found is not None:
            return found
        if steps[0] > budget:
            break
    # Budget exhausted: one group per unit is always valid (never seen with real account sizes).
    return [[i] for i in order]
