"""Database engine and sessions.

One owner per transaction: the web request or the Celery task commits; services only flush.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import get_settings
from core.sqldialect import install_sqlite_row_locks


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the web app read while the worker writes; busy_timeout makes writers queue
        # instead of failing with "database is locked" when web, worker and beat share a file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    install_sqlite_row_locks(engine)


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 15000, **kwargs: Any) -> Engine:
    # Errors must not carry statement parameters (phone hashes, message bodies) into logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("connect_args", None)  # PostgreSQL's; SQLite's are set here
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_ms / 1000},
            **kwargs,
        )
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    # Default: ping a pooled connection only when it sat idle (``_ping_when_idle``);
    # ``pool_pre_ping=True/False`` still means always/never.
    ping_when_idle = "pool_pre_ping" not in kwargs
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 10)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    engine = create_engine(url, **kwargs)
    if ping_when_idle:
        _ping_when_idle(engine)
    return engine


# A pooled connection returned less than this long ago is handed out without a ping.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Pre-ping, but only connections that sat idle in the pool.

    ``pool_pre_ping`` costs a ``SELECT 1`` round trip per checkout, and a task checks out a
    connection per transaction: ten pings per SMS turn, as many round trips as the turn's
    useful writes (bench/message_cpu.py). A connection back in the pool a moment ago was
    working then; one idle longer (the database may have restarted meanwhile) is pinged as
    before, and a dead one replaced before use. What the ping no longer covers — the server
    gone within the last two seconds — fails on first use as it would mid-transaction:
    SQLAlchemy invalidates the pool, and the caller's retry (tasks retry transient errors;
    sweeps and relays re-run the rest) runs on fresh connections."""
    dialect = engine.dialect

    @event.listens_for(engine.pool, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["deme_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["deme_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("deme_idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (up to 3 tries).
            raise DisconnectionError("idle connection failed its ping") from exc


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().effective_database_url)


# Short timeouts of the webhooks' pools, so that a sick database fails fast and the message is
# spooled (issue 17: the provider has its answer within a second): pool checkout, connect
# (libpq's minimum is 2 s; the route's budget cuts it shorter), statement and lock waits on
# PostgreSQL; SQLite's busy wait. Autocommit: the common case is one statement, so BEGIN and
# COMMIT would be two extra round trips. No pre-ping: a SELECT 1 per request would cost as much
# as the INSERT (a stale connection fails, is invalidated and the caller retries once).
WEBHOOK_POOL: dict[str, Any] = {
    "isolation_level": "AUTOCOMMIT",
    "pool_pre_ping": False,
    "pool_timeout": 0.5,
    "connect_args": {
        "connect_timeout": 2,
        "options": "-c statement_timeout=800 -c lock_timeout=500",
    },
}
WEBHOOK_SQLITE_BUSY_MS = 500


@lru_cache(maxsize=1)
def get_webhook_engine() -> Engine:
    """The synchronous engine of the webhooks' pool (SQLite, the spool replay)."""
    return make_engine(
        get_settings().effective_database_url,
        sqlite_busy_timeout_ms=WEBHOOK_SQLITE_BUSY_MS,
        **WEBHOOK_POOL,
    )


# Asyncio engines per event loop: pooled asyncio connections must not move between loops.
# The app has one loop per process; tests open one per TestClient (disposed at its shutdown).
# Per loop, one engine per profile: "default" (transactions, the USSD menu, a new sender's
# first message) and "webhook" (``WEBHOOK_POOL``: the inbound SMS fast path).
_async_engines: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, tuple[str, AsyncEngine]]
] = weakref.WeakKeyDictionary()


def get_async_engine(*, webhook: bool = False) -> AsyncEngine | None:
    """This event loop's engine on the same database through psycopg's asyncio driver, for
    latency-critical work in the web process (webhooks, the USSD menu). PostgreSQL only, else
    None. ``webhook``: the autocommit pool with the short timeouts of ``WEBHOOK_POOL``."""
    url = get_settings().effective_database_url
    if not url.startswith("postgresql"):
        return None
    loop = asyncio.get_running_loop()
    profile = "webhook" if webhook else "default"
    engines = _async_engines.setdefault(loop, {})
    cached = engines.get(profile)
    if cached is not None and cached[0] == url:
        return cached[1]
    from sqlalchemy.ext.asyncio import create_async_engine

    # Units of work are a few milliseconds long, so 10 kept connections serve the usual load;
    # both pools count against PostgreSQL's max_connections in every web worker.
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": 5},
    }
    if webhook:
        options = dict(WEBHOOK_POOL)
    # Overflow as large as the synchronous pool's: with 5, 16 webhooks in flight on one
    # process (new senders, duplicates: a session each) waited for a connection past their
    # 0.8 s budget and were spooled (test_duplicate_storm_makes_one_message_and_one_task_per_sid).
    engine = create_async_engine(
        url, pool_size=10, max_overflow=20, hide_parameters=True, **options
    )
    engines[profile] = (url, engine)
    return engine


async def dispose_async_engine() -> None:
    """Close this event loop's asyncio pools (the app's shutdown)."""
    engines = _async_engines.pop(asyncio.get_running_loop(), {})
    for _url, engine in engines.values():
        await engine.dispose()


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on error, always closes."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping_database() -> str | None:
    """None when the database answers, else a short reason."""
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def reset_engine_cache() -> None:
    """Forget the cached engine (tests that switch DEME_DATABASE_URL, forked workers)."""
    for cached in (get_engine, get_webhook_engine):
        if cached.cache_info().currsize:
            cached().dispose()
        cached.cache_clear()
    get_sessionmaker.cache_clear()


def _transient_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    return (
        OperationalError,  # database down, restarting, connection dropped, SQLite busy
        InterfaceError,
        DisconnectionError,
        BrokerError,
        RedisConnectionError,
        RedisTimeoutError,
    )


# Errors that say "the database or the broker is briefly unavailable, try again soon" — what
# the outbound tasks (replies, sender notifications, alerts) retry with backoff.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = _transient_errors()
