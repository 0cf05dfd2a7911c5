"""Blocking database work, run from the event loop a few jobs at a time.

SQLAlchemy sessions are synchronous, so look-ups and final writes run in worker threads. They
are CPU-heavy Python (the ORM), and every thread competes with the event loop for the GIL: with
Starlette's default of 40 threads, a burst of final writes made navigation hops — which never
touch the database — wait up to a second for the loop thread's turn (a GIL convoy, measured
with bench/ussd_sessions.py). A small per-process limit keeps the loop responsive; jobs beyond
it wait asynchronously, holding nothing.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

# Concurrent database jobs per process, in two lanes so that a caller's first hop (one indexed
# SELECT) never queues behind final writes (a whole intake transaction each). The connection
# pool (core.db) allows 30.
LOOKUP_CONCURRENCY = 2
WRITE_CONCURRENCY = 3

P = ParamSpec("P")
T = TypeVar("T")

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
    """Writes and anything heavy."""
    return await anyio.to_thread.run_sync(
        functools.partial(func, *args, **kwargs), limiter=_lanes()[1]
    )


async def in_lookup_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Short indexed reads on the hop's critical path."""
    return await anyio.to_thread.run_sync(
        functools.partial(func, *args, **kwargs), limiter=_lanes()[0]
    )
