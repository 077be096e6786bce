"""Date and time arithmetic inside SQL queries, the same on PostgreSQL and SQLite, so that reviews and
progress figures over 100k rows are aggregated by the database instead of fetched row by row.

- `days_between(later, earlier)`: whole days from one DATE column to another (PostgreSQL subtracts
  dates to an integer; SQLite, whose dates are ISO text, goes through julianday).
- `epoch_minute(ts)`: a UTC timestamp as whole minutes since 1970 (a per-minute bucket to GROUP BY;
  `minute_start` turns it back into an aware datetime).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class days_between(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """days_between(later, earlier) → integer days (negative when `later` is earlier)."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_default(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (f"CAST(julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})"
            " AS INTEGER)")


class epoch_minute(FunctionElement):  # noqa: N801
    """epoch_minute(ts) → whole minutes since 1970-01-01 00:00 UTC."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_minute"


@compiles(epoch_minute)
def _epoch_minute_default(element: epoch_minute, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(floor(extract(epoch FROM {compiler.process(value, **kw)}) / 60) AS BIGINT)"


@compiles(epoch_minute, "sqlite")
def _epoch_minute_sqlite(element: epoch_minute, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)  # SQLite keeps UTC times as naive ISO text (console.db.UTCDateTime)
    return f"(CAST(strftime('%s', {compiler.process(value, **kw)}) AS INTEGER) / 60)"


def minute_start(epoch_minutes: int) -> datetime:
    """The aware UTC datetime an `epoch_minute` bucket starts at."""
    return datetime.fromtimestamp(int(epoch_minutes) * 60, UTC)


def to_epoch_minute(when: datetime) -> int:
    return int(when.timestamp()) // 60
