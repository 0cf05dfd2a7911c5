"""The few SQL expressions that PostgreSQL and SQLite spell differently, in one place.

Deme runs the same code on both (`make run` on SQLite, production on PostgreSQL), so a query
that needs a database-specific function builds it from here instead of calling ``func.*``
directly: each expression compiles to the right SQL for the connection's dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Date, Engine, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

# Both dialects' INSERT constructs offer the same ``on_conflict_do_nothing`` /
# ``on_conflict_do_update`` and ``returning``; the generic ``sqlalchemy.insert`` has neither.
_INSERTS: dict[str, Callable[[Table], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def insert_on_conflict(dialect_name: str, table: Table) -> Any:
    """``INSERT INTO table`` that can say ``ON CONFLICT … DO NOTHING`` on this dialect
    (``session.get_bind().dialect.name``). Raises ValueError for any other database."""
    try:
        return _INSERTS[dialect_name](table)
    except KeyError:
        raise ValueError(f"Deme runs on PostgreSQL or SQLite, not {dialect_name!r}") from None


def _take_sqlite_write_lock(dbapi_connection: Any) -> None:
    """Take SQLite's write lock now (waiting up to busy_timeout), unless this connection holds
    it already. Python's sqlite3 opens a transaction only before a write, so a connection in
    a transaction holds it; autocommit connections (isolation_level None) are left alone."""
    if dbapi_connection.isolation_level is None or dbapi_connection.in_transaction:
        return
    dbapi_connection.execute("BEGIN IMMEDIATE")


# Execution options for a ``with_for_update()`` read whose transaction then waits on slow I/O
# that itself writes to the database (a bot turn: Rasa's actions call our API). On SQLite the
# whole database's write lock would be held through it, stalling every writer (and the API
# call would wait for it): such callers serialise by other means (core.locks.exclusive) and
# keep the row lock on PostgreSQL only.
ROW_LOCK_ON_POSTGRESQL_ONLY = {"deme_sqlite_write_lock": False}


def install_sqlite_row_locks(engine: Engine) -> None:
    """Give ``with_for_update()`` its meaning on a SQLite engine.

    SQLite has no row locks, and SQLAlchemy drops ``FOR UPDATE`` there: without this, two
    workers taking "the same row, locked" both go ahead (duplicate alerts, SLA escalations,
    ticket processing). SQLite's lock is the whole database's write lock: it is taken before
    the locked read and held until commit — what FOR UPDATE promises, only coarser (and
    ``skip_locked`` waits instead of skipping, then sees the rows already handled)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _lock_for_update(
        _connection: Any, cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        compiled = getattr(context, "compiled", None)
        if getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is None:
            return
        if context.execution_options.get("deme_sqlite_write_lock", True):
            _take_sqlite_write_lock(cursor.connection)


def serialize_on(session: Session, key: str) -> None:
    """Make concurrent transactions that call this with the same ``key`` run one after the
    other until they commit (check-then-insert without duplicates).

    PostgreSQL: a transaction-scoped advisory lock on the key. SQLite: its one write lock,
    for the whole database, taken now (if this transaction does not hold it yet) and held
    until commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    else:
        _take_sqlite_write_lock(session.connection().connection.dbapi_connection)


class utc_day(FunctionElement[Any]):  # a lower-case name: it reads as a SQL function
    """The calendar day (UTC) of a timestamp column, as a ``DATE``.

    Timestamps are stored in UTC on both databases (timezone-aware on PostgreSQL, naive UTC
    text on SQLite), so the day is taken in UTC on both.
    """

    type = Date()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(timezone('UTC', {compiler.process(column, **kw)}) AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"date({compiler.process(column, **kw)})"


class week_start(FunctionElement[Any]):  # a lower-case name: it reads as a SQL function
    """The Monday of the ISO week of a ``DATE`` column, as a ``DATE`` (weekly buckets of
    dashboards and exports). For a date, not a timestamp: there is no time zone to choose."""

    type = Date()
    inherit_cache = True
    name = "week_start"


@compiles(week_start, "postgresql")
def _week_start_postgresql(element: week_start, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(date_trunc('week', CAST({compiler.process(column, **kw)} AS DATE)) AS DATE)"


@compiles(week_start, "sqlite")
def _week_start_sqlite(element: week_start, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    # 'weekday 0' moves to the next Sunday (or stays on one); six days back is its Monday.
    return f"date({compiler.process(column, **kw)}, 'weekday 0', '-6 days')"


def _sqlite_from_hint(self: Any, table: Any, hint_text: str) -> str:
    return hint_text


# SQLAlchemy's SQLite compiler drops table hints; SQLite's own hint is "INDEXED BY".
sqlite.base.SQLiteCompiler.get_from_hint_text = _sqlite_from_hint  # type: ignore[method-assign,assignment]


def prefer_index(statement: Any, table: Any, index_name: str) -> Any:
    """Have SQLite walk ``index_name`` for ``statement`` (``tickets INDEXED BY …``): without
    statistics its planner may take another index and sort every match. PostgreSQL's planner
    picks the index from its statistics: nothing is added there. Only for a statement whose
    WHERE implies the index's predicate (SQLite refuses the query otherwise)."""
    return statement.with_hint(table, f"INDEXED BY {index_name}", dialect_name="sqlite")
