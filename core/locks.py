"""Per-key mutual exclusion across processes: Redis locks, or file locks when embedded.

Used to hand one sender's messages to the bot one at a time (Rasa's open-source lock store
is not atomic across instances, so ordering is enforced before the bot is called).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from core.settings import get_settings


class LockTimeout(RuntimeError):
    """The lock stayed taken longer than the caller was willing to wait."""


@lru_cache(maxsize=1)
def _redis() -> Any:
    import redis

    url = get_settings().redis_url
    assert url is not None
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
    folder = settings.var_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha256(key.encode()).hexdigest()[:32]
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # the OS drops it if the holder dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
