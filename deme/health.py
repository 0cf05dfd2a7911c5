"""Readiness probes: database, broker, bot. Each returns None when fine, else a reason."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from core.bot_status import rasa_status
from core.broker import EmbeddedBroker
from core.db import ping_database
from core.settings import Settings


def check_broker(settings: Settings) -> str | None:
    # Under `deme run` the embedded broker's URL is DEME_REDIS_URL; a process started on its
    # own (`deme check`) pings the embedded broker where `deme run` would start it.
    url = settings.redis_url or EmbeddedBroker.for_settings(settings).url
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:
        if not settings.redis_url:
            return f"embedded broker not running (deme run starts it): {type(exc).__name__}"
        return f"redis unreachable: {type(exc).__name__}"
    return None


def check_bot(settings: Settings) -> str | None:
    return rasa_status(settings)


def tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    if not parsed.hostname:
        return False
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def readiness(settings: Settings) -> dict[str, str | None]:
    return {
        "database": ping_database(),
        "broker": check_broker(settings),
        "bot": check_bot(settings),
    }
