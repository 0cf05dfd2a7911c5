"""Tasks are published only after commit, and a broker outage loses none of them: the
outbox row stays unpublished and the relay publishes it once the broker is back."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.celery_app import INTAKE_QUEUE
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
    from models.outbox_relay import enqueue_after_commit, publish_committed
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
    from models.outbox_relay import relay_pending
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
    messages = [json.loads(raw) for raw in client.lrange(INTAKE_QUEUE, 0, -1)]
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
    assert inspect.llen(INTAKE_QUEUE) == 2
    inspect.flushdb()


def test_broker_up_publishes_right_after_commit(db: Session) -> None:
    inspect = redis.Redis.from_url(INSPECT_REDIS_URL)
    inspect.flushdb()
    _run(ENQUEUE, INSPECT_REDIS_URL)
    assert sorted(_queued_task_args(inspect)) == [[41], [42]]
    assert all(r.published_at is not None for r in db.scalars(select(OutboxTask)))
    inspect.flushdb()


RELAY_AT_SIGNAL = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from pathlib import Path
    from models.outbox_relay import relay_pending
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.001)
    print(relay_pending(older_than=timedelta(0), limit=1000))
    """
)


def test_overlapping_relays_publish_each_task_once(db: Session, tmp_path: Path) -> None:
    """Two relay runs at the same instant (a slow run and the next beat tick, or two beats):
    the second skips, so each of the 538 waiting tasks is published exactly once."""
    inspect = redis.Redis.from_url(INSPECT_REDIS_URL)
    inspect.flushdb()
    db.add_all(OutboxTask(task_name="gateway.process_inbound", args=[n]) for n in range(538))
    db.commit()
    go = tmp_path / "go"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RELAY_AT_SIGNAL, str(go)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "DEME_REDIS_URL": INSPECT_REDIS_URL},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(3)  # all three imported and waiting
    go.touch()
    outputs = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    counts = sorted(int(out.strip()) for out, _ in outputs)
    assert counts == [0, 0, 538]
    assert sorted(args[0] for args in _queued_task_args(inspect)) == list(range(538))  # type: ignore[type-var]
    inspect.flushdb()
