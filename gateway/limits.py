"""Flood control per sender and throughput limits per channel.

Both use Redis when ``DEME_REDIS_URL`` is set (shared by every worker), and fall back to the
database (flood) or a per-process limiter (throughput) when Redis is not configured or fails:
a broken counter must never stop the hotline.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.base import utcnow
from models.enums import MessageDirection
from models.messages import Message

log = logging.getLogger(__name__)

FLOOD_WINDOW_SECONDS = 60
DEFAULT_MAX_PER_SECOND = 10.0


def redis_client() -> Any | None:
    url = get_settings().redis_url
    return _client_for(url) if url else None


@lru_cache(maxsize=4)
def _client_for(url: str) -> Any:
    """One client per URL, so a changed configuration never reuses another server's."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def reset_redis_client() -> None:
    _client_for.cache_clear()


# --- flood control ---------------------------------------------------------------------


def is_flooding(session: Session, *, contact_id: int, message_id: int, at: float) -> bool:
    """True when this message is over the sender's per-minute limit.

    Redis: a sorted set per contact holding message ids scored by arrival time — adding the
    same id twice (a re-run task) does not count twice, unlike a bare INCR. Database: the
    count of that contact's inbound messages in the last minute, up to this one.
    """
    limit = get_settings().flood_limit_per_minute
    client = redis_client()
    if client is not None:
        key = f"deme:flood:{contact_id}"
        try:
            pipe = client.pipeline()
            pipe.zadd(key, {str(message_id): at})
            pipe.zremrangebyscore(key, "-inf", at - FLOOD_WINDOW_SECONDS)
            pipe.zcount(key, at - FLOOD_WINDOW_SECONDS, at)
            pipe.expire(key, FLOOD_WINDOW_SECONDS * 2)
            count = int(pipe.execute()[2])
            return count > limit
        except Exception as exc:
            log.warning("flood counter unavailable, counting in the database: %s", exc)
    since = utcnow() - timedelta(seconds=FLOOD_WINDOW_SECONDS)
    in_window = session.scalar(
        select(func.count(Message.id)).where(
            Message.contact_id == contact_id,
            Message.direction == MessageDirection.INBOUND,
            Message.created_at >= since,
            Message.id <= message_id,
        )
    )
    return int(in_window or 0) > limit


# --- per-channel throughput --------------------------------------------------------------

# Fixed one-second window shared by all workers: INCR and set the expiry in one atomic step.
_WINDOW_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
return n
"""


class _LocalBucket:
    """At most ``rate`` sends in any one-second window, for one process (no Redis).

    A sliding log of the last second's grants, not a token bucket: a full bucket plus its
    refill let through up to twice the rate within one second, more than a provider's
    per-second limit allows (the Redis window never grants more than ``rate`` a second)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: dict[int, deque[float]] = {}

    def take(self, channel_id: int, rate: float) -> float:
        """Take a slot; returns 0, or how long to wait before trying again."""
        allowed = max(1, int(rate))
        with self._lock:
            now = time.monotonic()
            grants = self._grants.setdefault(channel_id, deque())
            while grants and grants[0] <= now - 1.0:
                grants.popleft()
            if len(grants) < allowed:
                grants.append(now)
                return 0.0
            return grants[0] + 1.0 - now


_local = _LocalBucket()


def max_per_second(config: dict[str, Any] | Any) -> float:
    try:
        value = float(config.get("max_per_second", DEFAULT_MAX_PER_SECOND))
    except (TypeError, ValueError):
        return DEFAULT_MAX_PER_SECOND
    return value if value > 0 else DEFAULT_MAX_PER_SECOND


def acquire_send_slot(channel_id: int, rate: float, *, max_wait: float = 10.0) -> bool:
    """Wait (bounded) for a sending slot on the channel; False when none came in time.

    The caller then re-queues the task with a countdown instead of holding a worker.
    """
    deadline = time.monotonic() + max_wait
    client = redis_client()
    while True:
        wait = 0.0
        if client is not None:
            try:
                now = time.time()
                second = int(now)
                count = int(client.eval(_WINDOW_SCRIPT, 1, f"deme:rate:{channel_id}:{second}"))
                if count <= max(1, int(rate)):
                    return True
                wait = (second + 1) - now
            except Exception as exc:
                log.warning("shared rate limiter unavailable, limiting locally: %s", exc)
                client = None
                continue
        else:
            wait = _local.take(channel_id, rate)
            if wait == 0.0:
                return True
        wait += random.uniform(0, 0.05)  # spread the workers that all woke at the boundary
        if time.monotonic() + wait > deadline:
            return False
        time.sleep(wait)
