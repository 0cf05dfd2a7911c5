"""Database work of the web process's hot paths (the USSD menu, the SMS webhooks), without
blocking the event loop.

On PostgreSQL each unit of work runs **on the event loop** through psycopg's asyncio driver:
SQLAlchemy runs the synchronous ORM code in a greenlet and every round trip yields to the other
callers (``AsyncSession.run_sync``). No thread is involved, so no round trip waits for the GIL:
with threads, the worker thread had to win the GIL back from the busy event loop after every
round trip (up to the 5 ms switch interval), and a final write of ~10 round trips took 30–100 ms
under load for ~3 ms of work (bench/ussd_sessions.py).

On SQLite (the embedded default, no asyncio driver installed) the same functions run in worker
threads with a synchronous session, a few at a time: with Starlette's default of 40 threads a
burst of final writes made navigation hops wait for the loop thread's turn (a GIL convoy).

Either way the functions given here are synchronous ``fn(session, ...)`` and own the
transaction (they commit); the session is theirs alone. ``in_connection`` is the same for
``fn(connection, ...)`` on the webhooks' autocommit pool (``core.db.WEBHOOK_POOL``).

``within(seconds, work)`` is the webhooks' time budget: after ``seconds`` the caller gets
``TimeoutError`` (and spools) at once, while the work is cancelled and left to wind down on
its own. Waiting for the cancellation to complete would not do: returning a connection whose
round trip was interrupted to the pool means talking to the frozen database again (measured:
~11 s). A thread is abandoned the same way; it ends within the pool's statement and busy
timeouts.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from core.db import get_async_engine, get_sessionmaker, get_webhook_engine

# Thread path only: concurrent database jobs per process, in two lanes so that a caller's first
# hop (one indexed SELECT) never queues behind final writes (a whole intake transaction each).
LOOKUP_CONCURRENCY = 2
WRITE_CONCURRENCY = 3

P = ParamSpec("P")
T = TypeVar("T")

# Work abandoned by ``within``, referenced until it has wound down (asyncio keeps only weak
# references to tasks).
_abandoned: set[asyncio.Future[Any]] = set()

# Limiters per event loop: the app has one loop, the tests open one per TestClient.
_limiters: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[CapacityLimiter, CapacityLimiter]
] = weakref.WeakKeyDictionary()


def _lanes() -> tuple[CapacityLimiter, CapacityLimiter]:
    loop = asyncio.get_running_loop()
    lanes = _limiters.get(loop)
    if lanes is None:
        lanes = (CapacityLimiter(LOOKUP_CONCURRENCY), CapacityLimiter(WRITE_CONCURRENCY))
        _limiters[loop] = lanes
    return lanes


async def in_db_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Blocking work in the write lane's threads (the database store, after-answer work)."""
    return await anyio.to_thread.run_sync(
        functools.partial(func, *args, **kwargs), limiter=_lanes()[1], abandon_on_cancel=True
    )


async def in_lookup_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Blocking short reads on the hop's critical path, in the look-up lane's threads."""
    return await anyio.to_thread.run_sync(
        functools.partial(func, *args, **kwargs), limiter=_lanes()[0], abandon_on_cancel=True
    )


async def in_session(
    func: Callable[..., T], *args: object, lookup: bool = False, **kwargs: object
) -> T:
    """``func(session, *args, **kwargs)`` with a fresh session: on the event loop on PostgreSQL,
    else in a thread (``lookup``: the look-up lane)."""
    async_engine = get_async_engine()
    if async_engine is not None:
        # One greenlet for the whole unit of work (session, round trips, commit, close), as
        # AsyncSession.run_sync does inside, without AsyncSession's two more for its own
        # set-up and close: each costs CPU on the webhook's hot path.
        sync_engine = async_engine.sync_engine

        def on_loop() -> T:
            with Session(sync_engine, expire_on_commit=False) as session:
                return func(session, *args, **kwargs)

        return await greenlet_spawn(on_loop)

    def with_session() -> T:
        with get_sessionmaker()() as session:
            return func(session, *args, **kwargs)

    if lookup:
        return await in_lookup_thread(with_session)
    return await in_db_thread(with_session)


async def in_connection(func: Callable[..., T], *args: object) -> T:
    """``func(connection, *args)`` on the webhooks' autocommit pool: on the event loop on
    PostgreSQL, else in a thread of the write lane."""
    async_engine = get_async_engine(webhook=True)
    engine = get_webhook_engine() if async_engine is None else async_engine.sync_engine

    def with_connection() -> T:
        with engine.connect() as connection:
            return func(connection, *args)

    if async_engine is not None:
        return await greenlet_spawn(with_connection)  # one greenlet, as in in_session
    return await in_db_thread(with_connection)


def _wound_down(task: asyncio.Future[Any], late: Callable[[Any], None] | None = None) -> None:
    _abandoned.discard(task)
    if task.cancelled():
        return
    error = task.exception()  # retrieved: an error of abandoned work is no news
    if error is None and late is not None:
        late(task.result())


async def within(
    seconds: float, work: Awaitable[T], *, late: Callable[[T], None] | None = None
) -> T:
    """``await work``, or ``TimeoutError`` after ``seconds`` without waiting for the
    cancelled work to wind down (see the module's docstring). With ``late``, the work is not
    cancelled but left to finish, and ``late(result)`` runs if it does (a message stored just
    after its webhook gave up is then published at once, not by the relay 30 s later)."""
    task = asyncio.ensure_future(work)
    try:
        done, _pending = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    if late is None:
        task.cancel()
    _abandoned.add(task)
    task.add_done_callback(functools.partial(_wound_down, late=late))
    raise TimeoutError(f"database work over its {seconds} s budget")
