"""The few SQL expressions that PostgreSQL and SQLite spell differently, in one place.

Deme runs the same code on both (`make run` on SQLite, production on PostgreSQL), so a query
that needs a database-specific function builds it from here instead of calling ``func.*``
directly: each expression compiles to the right SQL for the connection's dialect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


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
