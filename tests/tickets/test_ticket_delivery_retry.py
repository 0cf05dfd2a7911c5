"""Sender notifications are never parked: a notify_sender task that hits a database outage
retries with backoff in the real worker, and one whose task was lost is found by the sweep
within a minute — sent once, however many times the sweep runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from ticket_helpers import World, reachable_contact

from models.base import utcnow
from models.enums import MessageDirection, MessageStatus, TicketCategory
from models.messages import Message
from models.outbox import OutboxTask
from models.outbox_relay import discard_pending
from models.tickets import TicketEvent
from support import wait_until
from tests.gateway.gateway_helpers import CutOffWorker, RedisServer
from tickets import notifications
from tickets.i18n import translate
from tickets.intake import create_ticket


@pytest.fixture()
def cut_off_worker() -> Iterator[CutOffWorker]:
    redis = RedisServer().start()
    worker = CutOffWorker(redis)
    yield worker
    worker.stop()
    redis.kill()


def _ussd_ticket(db: Session) -> tuple[Any, list[Any]]:
    """A USSD ticket: its "received" SMS is scheduled (outbox row) but not published."""
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=TicketCategory.WASH, source="ussd", contact=contact)
    db.commit()
    discard_pending(db)
    task = db.scalar(select(OutboxTask).where(OutboxTask.task_name == notifications.NOTIFY_TASK))
    assert task is not None
    return ticket, list(task.args)


def _outbound(db: Session, contact_id: int) -> list[Message]:
    db.expire_all()
    return list(
        db.scalars(
            select(Message).where(
                Message.contact_id == contact_id, Message.direction == MessageDirection.OUTBOUND
            )
        )
    )


def test_lost_notification_is_sent_by_the_sweep_once(db: Session, world: World) -> None:
    ticket, _args = _ussd_ticket(db)
    # Published long ago, and its task died with a database error: only the data remembers.
    db.execute(
        update(OutboxTask).values(
            published_at=utcnow(), created_at=utcnow() - timedelta(seconds=40)
        )
    )
    db.commit()
    assert notifications.sweep_unsent() == 1
    assert notifications.sweep_unsent() == 0
    [sms] = _outbound(db, ticket.contact_id)
    assert sms.body == translate("sender.received", "fr", reference=ticket.reference)


def test_a_notification_just_scheduled_is_left_to_its_task(db: Session, world: World) -> None:
    ticket, _args = _ussd_ticket(db)
    assert notifications.sweep_unsent() == 0
    assert _outbound(db, ticket.contact_id) == []


@pytest.mark.server_only(reason="cuts the worker's TCP connection to PostgreSQL")
def test_notify_sender_retries_a_database_outage_in_the_worker(
    db: Session, world: World, cut_off_worker: CutOffWorker
) -> None:
    ticket, args = _ussd_ticket(db)
    cut_off_worker.proxy.cut()
    cut_off_worker.send(notifications.NOTIFY_TASK, *args)
    wait_until(lambda: "OperationalError" in cut_off_worker.worker.log(), timeout=30)
    cut_off_worker.proxy.restore()

    def sent() -> bool:
        messages = _outbound(db, ticket.contact_id)
        return len(messages) == 1 and messages[0].status == MessageStatus.SENT

    wait_until(sent, timeout=60)
    notified = db.scalars(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "sender_notified"
        )
    ).all()
    assert len(notified) == 1
