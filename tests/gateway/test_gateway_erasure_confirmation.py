"""Send, then erase: the SMS confirming an erasure really reaches the provider (the number is
kept, encrypted, until the send is final), and then the number is gone too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.crypto import lookup_hash
from models import Contact, Message, MessageDirection, MessageStatus
from models.base import utcnow
from support import wait_until
from tests.gateway import fake_provider as fp
from tickets.contacts import get_or_create_contact

SENDER = "+22376123456"
CONFIRMATION = "Vos donnees vont etre effacees. Vous ne recevrez plus de messages."


def _inbound(db: Session, channel: Any, body: str) -> tuple[Contact, Message]:
    contact = get_or_create_contact(db, SENDER)
    message = Message(
        channel_id=channel.id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id="SM-erase-1",
        body=body,
        status=MessageStatus.RECEIVED,
    )
    db.add(message)
    db.commit()
    return contact, message


def _raw_phone(db: Session, contact_id: int) -> Any:
    db.rollback()
    return db.execute(
        text("SELECT phone FROM contacts WHERE id = :id"), {"id": contact_id}
    ).scalar_one()


def test_erasure_by_sms_sends_the_confirmation_then_erases_the_number(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from conversation.dispatch import handle_message

    contact, message = _inbound(db, twilio_channel, "supprimez mes donnees svp")
    contact_id = contact.id
    handle_message(message.id)  # the conversation step (fallback classifier: erase_data)

    # Everything but the number is gone at once, and the number can no longer be looked up.
    db.expire_all()
    erased = db.get(Contact, contact_id)
    assert erased is not None and erased.erased_at is not None and erased.phone_hash is None
    assert db.get(Message, message.id).body is None  # type: ignore[union-attr]

    # The worker sends the confirmation to the person's number...
    wait_until(lambda: len(fake.sent("twilio")) == 1, timeout=30)
    [request] = fake.sent("twilio")
    assert request.form["To"] == SENDER
    assert request.form["Body"] == CONFIRMATION
    # ...and then the number is erased too (no sweep needed).
    wait_until(lambda: _raw_phone(db, contact_id) is None, timeout=30)
    db.expire_all()
    outbound = db.scalar(select(Message).where(Message.direction == MessageDirection.OUTBOUND))
    assert outbound is not None and outbound.status == MessageStatus.SENT
    assert outbound.body is None and outbound.provider_id is None
    assert get_or_create_contact(db, SENDER).id != contact_id  # a new message starts afresh
    assert db.scalar(select(Contact.id).where(Contact.phone_hash == lookup_hash(SENDER))) != (
        contact_id
    )


def test_a_confirmation_that_never_completes_does_not_keep_the_number(
    db: Session, twilio_channel: Any
) -> None:
    """No worker runs here: the send stays pending forever. The sweep still erases the
    number once the bounded wait is over — and not before."""
    from gateway.outbound import KIND_ERASURE_CONFIRMATION, queue_sms
    from tickets.erasure import ERASURE_NUMBER_MAX_AGE, finish_due_erasures
    from tickets.intake import erase_contact

    contact, _message = _inbound(db, twilio_channel, "effacez tout")
    erase_contact(db, contact, actor_label="sender", confirm=True)
    assert queue_sms(db, contact=contact, body=CONFIRMATION, kind=KIND_ERASURE_CONFIRMATION)
    # An ordinary reply to an erased contact is still refused.
    assert queue_sms(db, contact=contact, body="Bonjour") is None
    db.commit()
    assert finish_due_erasures(db) == 0  # the confirmation is still to be sent
    db.commit()
    assert _raw_phone(db, contact.id) is not None
    later = utcnow() + ERASURE_NUMBER_MAX_AGE + timedelta(seconds=1)
    assert finish_due_erasures(db, now=later) == 1
    db.commit()
    assert _raw_phone(db, contact.id) is None
    assert all(m.body is None for m in db.scalars(select(Message)))
