"""Enqueue Celery tasks only after the data they need is committed, and never lose one.

``enqueue_after_commit`` writes an ``outbox_tasks`` row in the caller's transaction. When
that transaction commits, the task is published at once; if the broker is down (or the
process dies in between) the row stays unpublished and ``relay_pending`` — run by beat —
publishes it later. Tasks must therefore be idempotent: they may, rarely, run twice.

``publish_after_commit`` is for tasks whose rows already say that work is left, and that a
sweep re-publishes from those rows (an outbound message ``PENDING`` and unclaimed:
``gateway.sweep_outbound``; an inbound message still ``RECEIVED``: ``gateway.relay_inbound``).
For them an outbox row only repeats what the data says, and costs an INSERT, an UPDATE and a
second transaction per task — a fifth of the database work of a whole SMS conversation turn
(bench/message_cpu.py). They are published after commit the same way; a task lost between
commit and publish is re-published by its sweep instead of the relay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.locks import single_run
from models.base import utcnow
from models.outbox import OutboxTask

log = logging.getLogger(__name__)

_PENDING_KEY = "deme_outbox_pending"
_DIRECT_KEY = "deme_outbox_direct"


def publish(task_name: str, args: Sequence[Any]) -> None:
    """Send one task to the broker; raises when the broker is unreachable."""
    from core import fastpublish

    if fastpublish.available():
        fastpublish.publish_task(task_name, list(args))  # one LPUSH, no kombu machinery
        return
    from core.celery_app import celery_app

    celery_app.send_task(task_name, args=list(args), retry=False)


def enqueue_after_commit(session: Session, task_name: str, *args: Any) -> OutboxTask:
    row = OutboxTask(task_name=task_name, args=list(args))
    session.add(row)
    pending: list[OutboxTask] = session.info.setdefault(_PENDING_KEY, [])
    pending.append(row)
    return row


def publish_after_commit(session: Session, task_name: str, *args: Any) -> None:
    """Publish ``task_name(*args)`` after the commit, with no outbox row: only for tasks a
    sweep re-publishes from the data itself (see the module docstring)."""
    session.info.setdefault(_DIRECT_KEY, []).append((task_name, list(args)))


def pending_tasks(session: Session) -> list[tuple[str, list[Any]]]:
    """What ``publish_committed`` will publish for ``session`` (tests, logs)."""
    rows: list[OutboxTask] = session.info.get(_PENDING_KEY, [])
    direct: list[tuple[str, list[Any]]] = session.info.get(_DIRECT_KEY, [])
    return [(row.task_name, list(row.args)) for row in rows] + list(direct)


def has_pending(session: Session) -> bool:
    """Whether ``session`` collected tasks for ``publish_committed``."""
    return bool(session.info.get(_PENDING_KEY) or session.info.get(_DIRECT_KEY))


def _mark_published(outbox_ids: list[int]) -> None:
    if not outbox_ids:
        return
    with get_sessionmaker()() as session:
        session.execute(
            update(OutboxTask).where(OutboxTask.id.in_(outbox_ids)).values(published_at=utcnow())
        )
        session.commit()


def _publish_rows(rows: Sequence[tuple[int, str, list[Any]]]) -> tuple[list[int], str | None]:
    published: list[int] = []
    for outbox_id, task_name, args in rows:
        try:
            publish(task_name, args)
        except Exception as exc:  # broker down: the relay will try again
            log.warning("broker unavailable, task %s left for the relay: %s", task_name, exc)
            return published, str(exc)[:500]
        published.append(outbox_id)
    return published, None


def publish_committed(session: Session) -> None:
    """Publish what ``enqueue_after_commit`` collected; call right after ``commit()``."""
    pending: list[OutboxTask] = session.info.pop(_PENDING_KEY, [])
    for task_name, args in session.info.pop(_DIRECT_KEY, []):
        try:
            publish(task_name, args)
        except Exception as exc:  # broker down: the task's sweep publishes it again
            log.warning("broker unavailable, task %s left for its sweep: %s", task_name, exc)
            break
    if not pending:
        return
    rows = [(row.id, row.task_name, list(row.args)) for row in pending]
    published, _error = _publish_rows(rows)
    try:
        _mark_published(published)
    except Exception:  # the relay may publish them again; tasks are idempotent
        log.exception("could not mark outbox rows as published")


def discard_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_DIRECT_KEY, None)


@single_run("core.relay_outbox", skipped=0)
def relay_pending(*, older_than: timedelta = timedelta(seconds=2), limit: int = 500) -> int:
    """Publish outbox rows left unpublished (broker was down, process died). Returns count."""
    cutoff = utcnow() - older_than
    with get_sessionmaker()() as session:
        rows = session.execute(
            select(OutboxTask.id, OutboxTask.task_name, OutboxTask.args)
            .where(OutboxTask.published_at.is_(None), OutboxTask.created_at <= cutoff)
            .order_by(OutboxTask.id)
            .limit(limit)
        ).all()
    published, error = _publish_rows([(r.id, r.task_name, list(r.args)) for r in rows])
    _mark_published(published)
    if error is not None:
        # Publishing stops at the first failure; that row records the error.
        failed_id = rows[len(published)].id
        with get_sessionmaker()() as session:
            session.execute(
                update(OutboxTask)
                .where(OutboxTask.id == failed_id)
                .values(attempts=OutboxTask.attempts + 1, last_error=error)
            )
            session.commit()
    return len(published)


def purge_published(*, older_than: timedelta = timedelta(days=2)) -> int:
    from sqlalchemy import delete

    with get_sessionmaker()() as session:
        result = session.execute(
            delete(OutboxTask).where(
                OutboxTask.published_at.is_not(None),
                OutboxTask.published_at < utcnow() - older_than,
            )
        )
        session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
