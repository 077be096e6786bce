"""Engine, sessions and the column types every model shares (money as integer fen, UTC times)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from operator import itemgetter
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Date,
    DateTime,
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from console.money import from_fen, to_fen


class MoneyType(TypeDecorator):
    """Decimal yuan in Python, integer fen in the database: exact on SQLite and PostgreSQL alike."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> int | None:
        return None if value is None else to_fen(value)

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        return None if value is None else from_fen(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use console.db.utcnow() or an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Money = Annotated[Decimal, "money"]
Timestamp = Annotated[datetime, "timestamp"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {Money: MoneyType(), Timestamp: UTCDateTime(), date: Date()}


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_proper_transactions(engine)
    else:
        engine = create_engine(url, **kwargs)
    _ping_connections_that_sat_idle(engine)
    return engine


# A connection back from the pool after this long is pinged before use (a server restart or an
# idle timeout may have closed it). Not every checkout, as pool_pre_ping does: the sender and the
# mail-in receiver commit once per message, and a ping each time was a round trip per message.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_connections_that_sat_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):  # noqa: ANN001
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means: discard it, the pool connects anew
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc
        if not alive:
            raise DisconnectionError("stale pooled connection")


def _sqlite_proper_transactions(engine: Engine) -> None:
    """pysqlite's own BEGIN handling breaks SAVEPOINTs; let SQLAlchemy emit BEGIN (documented recipe)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_immediate.get() else "BEGIN")


# SQLite: a deferred transaction that reads and then writes fails at once ("database is locked")
# when another process wrote in between; waiting does not help. Background writers (jobs, mail-in)
# therefore take the write lock at BEGIN (IMMEDIATE), waiting up to the busy timeout for it. Web
# requests stay deferred so an idle reader never blocks a writer. PostgreSQL needs none of this.
_sqlite_immediate: ContextVar[bool] = ContextVar("sqlite_immediate", default=False)


@contextmanager
def sqlite_write_transactions() -> Iterator[None]:
    token = _sqlite_immediate.set(True)
    try:
        yield
    finally:
        _sqlite_immediate.reset(token)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain values of a status vocabulary, in order, as check constraints and migrations spell them."""
    return tuple(member.value for member in enum)


BULK_CHUNK = 1000


def bulk_insert(connection: Connection, table: Table, rows: list[dict]) -> None:
    """New rows in bulk on a Connection (dicts with the same keys). On PostgreSQL: COPY (several times
    faster than an executemany), with the columns' Python-side defaults and the column types' bind
    conversions applied by hand (money to fen, JSON to text, times to UTC); elsewhere a Core
    executemany in chunks."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        for start in range(0, len(rows), BULK_CHUNK):
            connection.execute(insert(table), rows[start : start + BULK_CHUNK])
        return
    keys = list(rows[0])
    defaults = {}
    for col in table.columns:
        if col.name in keys or col.primary_key or col.default is None:
            continue
        default = col.default
        defaults[col.name] = default.arg(None) if default.is_callable else default.arg
    columns = keys + list(defaults)
    converted = [(i, c) for i, c in enumerate(_copy_converter(table.columns[name]) for name in columns) if c]
    default_values = list(defaults.values())
    pick = itemgetter(*keys) if len(keys) > 1 else (lambda row: (row[keys[0]],))
    names = ", ".join(f'"{name}"' for name in columns)
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = [*pick(row), *default_values]
            for i, convert in converted:
                if values[i] is not None:
                    values[i] = convert(values[i])
            copy.write_row(values)


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int] | None:
    """On PostgreSQL, `count` new ids from the table's own sequence in one query, so that rows can be
    written by COPY with their ids already known (no read-back by a unique key). None elsewhere."""
    if connection.dialect.name != "postgresql" or count == 0:
        return None
    # the sequence looked up once (OFFSET 0 keeps the subquery from being folded into the join): called
    # for every row, pg_get_serial_sequence cost 5 ms a thousand ids, a third of the bills' own COPY
    return list(connection.execute(
        text("SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(:table, 'id')::regclass AS seq OFFSET 0) s,"
             " generate_series(1, :count)"),
        {"table": table.name, "count": count},
    ).scalars())


_encode_json = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per value


def _copy_converter(column):  # noqa: ANN001, ANN202
    """What the column type's bind processing would do, for COPY."""
    if isinstance(column.type, MoneyType):
        return to_fen
    if isinstance(column.type, JSON):
        return _encode_json
    if isinstance(column.type, UTCDateTime):
        return lambda value: value.astimezone(UTC)
    return None
