"""Per-key mutual exclusion across processes: Redis locks, or file locks when embedded.

Used to hand one sender's messages to the bot one at a time (Rasa's open-source lock store
is not atomic across instances, so ordering is enforced before the bot is called), and by
``single_run`` so a periodic task whose previous run is still going (a slow relay, a second
beat) skips instead of doing the same work twice.

With Redis the lock lives there (shared by every host); embedded (``make run``, no Redis)
it is an ``flock`` on a file under ``var/locks/`` — every process runs on the one host, and
the kernel releases it when its holder dies, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from core.settings import get_settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class LockTimeout(RuntimeError):
    """The lock stayed taken longer than the caller was willing to wait."""


def _redis() -> Any:
    url = get_settings().redis_url
    assert url is not None
    return _redis_for(url)


@lru_cache(maxsize=4)
def _redis_for(url: str) -> Any:
    """One client per URL: a process whose configuration changed (tests, a reload) never
    talks to the previous server through a cached client."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


@contextmanager
def exclusive(key: str, *, hold_seconds: float = 120, wait_seconds: float = 60) -> Iterator[None]:
    """Hold the lock named ``key``. ``hold_seconds`` bounds how long a crashed holder can
    block others (Redis); ``wait_seconds`` bounds how long we queue for it."""
    settings = get_settings()
    if settings.redis_url:
        lock = _redis().lock(
            f"deme:lock:{key}", timeout=hold_seconds, blocking_timeout=wait_seconds
        )
        if not lock.acquire():
            raise LockTimeout(f"lock {key} still taken after {wait_seconds}s")
        try:
            yield
        finally:
            # Expired meanwhile (LockNotOwnedError): nothing left to release.
            with contextlib.suppress(Exception):
                lock.release()
        return
    with _lock_path(key).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # the OS drops it if the holder dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(key: str) -> Path:
    folder = get_settings().var_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / hashlib.sha256(key.encode()).hexdigest()[:32]


@contextmanager
def try_exclusive(key: str, *, hold_seconds: float = 900) -> Iterator[bool]:
    """Take the lock ``key`` if it is free, without waiting: yields True when held (released
    on exit), False when another process holds it."""
    if get_settings().redis_url:
        lock = _redis().lock(f"deme:lock:{key}", timeout=hold_seconds)
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(Exception):
                lock.release()
        return
    with _lock_path(key).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def single_run(
    key: str, *, hold_seconds: float = 900, skipped: Any = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a periodic job so overlapping runs never do the same work twice: a run that
    finds the previous one still going returns ``skipped`` at once."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with try_exclusive(f"single-run:{key}", hold_seconds=hold_seconds) as held:
                if not held:
                    log.info("%s skipped: the previous run is still going", key)
                    return skipped  # type: ignore[no-any-return]
                return function(*args, **kwargs)

        return wrapper

    return decorate
