"""Replies sent by the conversation task itself (``queue_sms(send_now=True)`` then
``gateway.tasks.send_claimed``) on a healthy channel; the outbound worker's task path for
anything else. In process, with the real Twilio SDK against the fake provider: no worker
runs here, so a reply that reached the provider was sent inline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.outbound import queue_sms, take_claimed
from gateway.tasks import send_claimed, sweep_outbound
from models import ChannelBreaker, Contact, Message, MessageDirection, MessageStatus
from models.base import utcnow
from models.outbox_relay import pending_tasks
from tests.gateway import fake_provider as fp
from tickets.contacts import get_or_create_contact

SENDER = "+22376123499"


def _contact(db: Session) -> Contact:
    contact = get_or_create_contact(db, SENDER)
    db.commit()
    return contact


def _reply(db: Session, contact: Contact, channel: Any, body: str = "Bien recu") -> Message:
    message = queue_sms(db, contact=contact, body=body, channel=channel, send_now=True)
    assert message is not None
    return message


def _fresh(db: Session, message_id: int) -> Message:
    db.expire_all()
    message = db.get(Message, message_id)
    assert message is not None
    return message


def test_a_reply_on_a_healthy_channel_goes_out_from_the_caller_once(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    message = _reply(db, contact, twilio_channel)
    # Claimed in the writer's transaction, and no send task for the outbound worker.
    assert message.status == MessageStatus.SENDING and message.send_started_at is not None
    assert pending_tasks(db) == []
    db.commit()
    assert send_claimed(db) == ["sent"]
    sent = _fresh(db, message.id)
    assert sent.status == MessageStatus.SENT and sent.provider_id
    assert sent.send_attempts == 1
    [request] = fake.sent("twilio")
    assert request.form["To"] == SENDER and request.form["Body"] == "Bien recu"
    assert send_claimed(db) == []  # nothing left to send twice


def test_a_channel_with_a_failure_on_record_keeps_the_worker_path(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    db.add(ChannelBreaker(channel_id=twilio_channel.id, failures=1))
    db.commit()
    contact = _contact(db)
    message = _reply(db, contact, twilio_channel)
    assert message.status == MessageStatus.PENDING and message.send_started_at is None
    assert pending_tasks(db) == [("gateway.send_outbound", [message.id, "reply"])]
    db.commit()
    assert send_claimed(db) == []
    assert fake.sent("twilio") == []


def test_a_provider_refusing_the_inline_send_leaves_it_for_a_retry(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    message = _reply(db, contact, twilio_channel)
    db.commit()
    fake.fail_next(fp.THROTTLE)
    assert send_claimed(db) == ["deferred-retry"]
    retry = _fresh(db, message.id)
    # Certainly not taken: sendable again later by the due-sweep, from the database.
    assert retry.status == MessageStatus.QUEUED and retry.send_started_at is None
    assert retry.next_attempt_at is not None


def test_a_rolled_back_reply_is_never_sent(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    _reply(db, contact, twilio_channel)
    db.rollback()
    assert take_claimed(db) != []  # what the conversation task drops on its rollback
    assert send_claimed(db) == []
    assert fake.sent("twilio") == []
    assert (
        db.scalars(select(Message).where(Message.direction == MessageDirection.OUTBOUND)).all()
        == []
    )


def test_a_worker_dying_before_the_inline_send_leaves_an_unknown_never_a_resend(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    message = _reply(db, contact, twilio_channel)
    db.commit()
    take_claimed(db)  # the process died here: committed as SENDING, never called
    db.execute(
        Message.__table__.update()
        .where(Message.id == message.id)
        .values(send_started_at=utcnow().replace(year=2020))
    )
    db.commit()
    interrupted, republished = sweep_outbound()
    assert (interrupted, republished) == (1, 0)
    assert _fresh(db, message.id).status == MessageStatus.UNKNOWN
    assert fake.sent("twilio") == []
