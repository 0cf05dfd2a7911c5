"""Tasks are published only after commit, and a broker outage loses none of them: the
outbox row stays unpublished and the relay publishes it once the broker is back."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import OutboxTask
from support import PROJECT_ROOT
from support.environment import TEST_REDIS_URL

# A Redis database no worker listens on, so the published task stays there to be inspected.
INSPECT_REDIS_URL = (
    TEST_REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get("DEME_TEST_OUTBOX_REDIS_DB", "10")
)

ENQUEUE = textwrap.dedent(
    """
    from core.db import session_scope
    from core.outbox import enqueue_after_commit, publish_committed
    with session_scope() as session:
        enqueue_after_commit(session, "gateway.process_inbound", 41)
        enqueue_after_commit(session, "gateway.process_inbound", 42)
        session.commit()
        publish_committed(session)
    """
)
RELAY = textwrap.dedent(
    """
    from datetime import timedelta
    from core.outbox import relay_pending
    print(relay_pending(older_than=timedelta(0)))
    """
)


def _run(script: str, redis_url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DEME_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _queued_task_args(client: redis.Redis) -> list[list[object]]:
    messages = [json.loads(raw) for raw in client.lrange("deme", 0, -1)]
    return [json.loads(base64.b64decode(m["body"]))[0] for m in messages]


def test_broker_down_then_relay_publishes_each_task_once(db: Session) -> None:
    inspect = redis.Redis.from_url(INSPECT_REDIS_URL)
    inspect.flushdb()
    _run(ENQUEUE, "redis://127.0.0.1:1/0")  # nothing listens on port 1: broker down

    rows = db.scalars(select(OutboxTask).order_by(OutboxTask.id)).all()
    assert [(r.task_name, r.args, r.published_at) for r in rows] == [
        ("gateway.process_inbound", [41], None),
        ("gateway.process_inbound", [42], None),
    ]

    assert _run(RELAY, INSPECT_REDIS_URL).strip() == "2"
    assert sorted(_queued_task_args(inspect)) == [[41], [42]]
    db.expire_all()
    assert all(r.published_at is not None for r in db.scalars(select(OutboxTask)))

    assert _run(RELAY, INSPECT_REDIS_URL).strip() == "0"  # nothing published twice
    assert inspect.llen("deme") == 2
    inspect.flushdb()


def test_broker_up_publishes_right_after_commit(db: Session) -> None:
    inspect = redis.Redis.from_url(INSPECT_REDIS_URL)
    inspect.flushdb()
    _run(ENQUEUE, INSPECT_REDIS_URL)
    assert sorted(_queued_task_args(inspect)) == [[41], [42]]
    assert all(r.published_at is not None for r in db.scalars(select(OutboxTask)))
    inspect.flushdb()
