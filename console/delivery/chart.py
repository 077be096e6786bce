"""The chart of a cycle's sending: messages sent and deliveries confirmed, cumulative, over time. The
server works out the geometry here (pure, no database) and templates/delivery/_chart.html draws it as
an inline `<svg>` (no JavaScript library, no CDN), its time axis in the display time zone through
the one time filter.

Input: counts per minute ({epoch minute: n}, console.sqltime.epoch_minute); at most MAX_POINTS points
a line (a long sending is drawn in steps of several minutes), so the page stays small however long
the mail takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from console.sqltime import minute_start

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 40  # margins: value labels left, time labels below, legend above
MAX_POINTS = 120
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)  # minutes between time ticks
MAX_TIME_TICKS = 6


@dataclass(frozen=True)
class Tick:
    at: float  # x (time ticks) or y (value ticks), in the SVG's user units
    value: datetime | int


@dataclass
class Chart:
    start: datetime
    end: datetime
    sent: list[tuple[float, float]]
    confirmed: list[tuple[float, float]]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    total_sent: int
    total_confirmed: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM

    @property
    def sent_points(self) -> str:
        return _points(self.sent)

    @property
    def confirmed_points(self) -> str:
        return _points(self.confirmed)


def _points(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def progress_chart(
    sent_by_minute: dict[int, int], confirmed_by_minute: dict[int, int], until: int | None = None
) -> Chart | None:
    """Cumulative sent and confirmed from the first message to the last event (or to `until`, the
    current minute, while the sending goes on); None before anything was sent or confirmed."""
    minutes = set(sent_by_minute) | set(confirmed_by_minute)
    if not minutes:
        return None
    first = min(minutes)
    end = max(max(minutes) + 1, (until + 1) if until is not None else first + 1)
    step = max(1, math.ceil((end - first) / MAX_POINTS))
    count = math.ceil((end - first) / step)
    end = first + count * step
    edges = [first + k * step for k in range(count + 1)]
    sent = _cumulative(sent_by_minute, edges)
    confirmed = _cumulative(confirmed_by_minute, edges)
    top_value = nice_ceiling(max(sent[-1], confirmed[-1]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(minute: int) -> float:
        return LEFT + (minute - first) / (end - first) * plot_w

    def y(value: int) -> float:
        return TOP + plot_h - value / top_value * plot_h

    time_step = next((s for s in TIME_STEPS if (end - first) / s <= MAX_TIME_TICKS), TIME_STEPS[-1])
    first_tick = -(-first // time_step) * time_step
    x_ticks = [Tick(x(m), minute_start(m)) for m in range(first_tick, end + 1, time_step)]
    value_step = nice_ceiling(max(1, top_value // 4))
    y_ticks = [Tick(y(v), v) for v in range(0, top_value + 1, value_step)]
    return Chart(
        start=minute_start(first), end=minute_start(end),
        sent=[(x(m), y(v)) for m, v in zip(edges, sent, strict=True)],
        confirmed=[(x(m), y(v)) for m, v in zip(edges, confirmed, strict=True)],
        x_ticks=x_ticks, y_ticks=y_ticks, total_sent=sent[-1], total_confirmed=confirmed[-1],
    )


def _cumulative(by_minute: dict[int, int], edges: list[int]) -> list[int]:
    """At each edge, the events of the minutes before it."""
    ordered = sorted(by_minute.items())
    out, total, i = [], 0, 0
    for edge in edges:
        while i < len(ordered) and ordered[i][0] < edge:
            total += ordered[i][1]
            i += 1
        out.append(total)
    return out
