"""Publishing a Celery task with one Redis LPUSH.

``celery_app.send_task`` costs about a millisecond of CPU per call (building the task
message, kombu's producer and channel machinery, two Redis round trips) — on the inbound
webhook that is more than the database work. A task message is a small, documented JSON
envelope (Celery message protocol 2, as kombu's Redis transport stores it), so the webhook
writes exactly that envelope itself: one LPUSH on a plain redis-py connection.

The SMS webhooks use it for ``gateway.process_inbound``, and ``models.outbox_relay`` for every task
published after a commit (the USSD final hop, ticket processing, replies). Without Redis (the
embedded broker) callers use ``celery_app.send_task``. The integration tests run a real worker
on messages written here, which is what keeps the format honest across Celery upgrades.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from functools import lru_cache
from typing import Any

from core.settings import get_settings

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


@lru_cache(maxsize=1)
def _client() -> Any:
    import redis

    url = get_settings().redis_url
    assert url is not None
    # Short timeouts: a dead broker must cost the webhook milliseconds, not seconds.
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


@lru_cache(maxsize=64)
def queue_for(task_name: str) -> str:
    """The queue Celery's own router would pick (``task_routes`` patterns, else the default)."""
    from fnmatch import fnmatchcase

    from core.celery_app import celery_app

    for pattern, route in (celery_app.conf.task_routes or {}).items():
        if fnmatchcase(task_name, pattern):
            return str(route["queue"])
    return str(celery_app.conf.task_default_queue)


def available() -> bool:
    return bool(get_settings().redis_url)


def envelope(task_name: str, args: list[Any], queue: str) -> bytes:
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    message = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


def publish_task(task_name: str, args: list[Any]) -> None:
    """LPUSH one task message onto its queue; raises when Redis is unreachable."""
    queue = queue_for(task_name)
    _client().lpush(queue, envelope(task_name, args, queue))


def reset() -> None:
    _client.cache_clear()
